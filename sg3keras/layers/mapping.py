"""The StyleGAN3 mapping network z (+ c) -> ws (depth 2: Alias-Free GAN §3.1, config D)."""

import keras
from keras import ops

from sg3keras.layers.fully_connected import FullyConnectedLayer
from sg3keras.ops.misc import lerp, normalize_2nd_moment

__all__ = ["MappingNetwork"]


@keras.saving.register_keras_serializable(package="sg3keras")
class MappingNetwork(keras.layers.Layer):
    """Map latents ``z`` (and labels ``c``) to ``num_ws`` copies of ``w``, with truncation.

    ``z`` is normalised by its 2nd moment; a conditional network embeds ``c`` (linear FC),
    normalises it the same way and concatenates it. Then ``num_layers`` lrelu FC layers with
    ``lr_multiplier``. The non-trainable ``w_avg`` tracks the mean ``w`` (update when
    ``update_emas``) and is the centre of the truncation trick.

    Args:
        z_dim: latent dimensionality.
        c_dim: label dimensionality (0 = unconditional).
        w_dim: intermediate latent dimensionality.
        num_ws: number of broadcast copies of ``w``.
        num_layers: number of FC layers (2 for StyleGAN3).
        lr_multiplier: learning-rate multiplier of the FC layers.
        w_avg_beta: decay of ``w_avg``.

    Call arguments:
        z: ``[N, z_dim]``. c: ``[N, c_dim]`` or None (unconditional).
        truncation_psi: float or scalar tensor; 1 = no truncation.
        truncation_cutoff: truncate ``ws[:, :cutoff]``; None = all, 0 = none.
        update_emas: update ``w_avg`` with the un-truncated batch mean first.

    Returns ``ws [N, num_ws, w_dim]``.

    Example:
        >>> m = MappingNetwork(z_dim=8, c_dim=0, w_dim=8, num_ws=4)
        >>> ws = m(keras.random.normal([2, 8]))
    """

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=2, lr_multiplier=0.01,
                 w_avg_beta=0.998, **kwargs):
        super().__init__(**kwargs)
        self.z_dim = int(z_dim)
        self.c_dim = int(c_dim)
        self.w_dim = int(w_dim)
        self.num_ws = int(num_ws)
        self.num_layers = int(num_layers)
        self.lr_multiplier = float(lr_multiplier)
        self.w_avg_beta = float(w_avg_beta)
        self.embed = FullyConnectedLayer(self.w_dim, name="embed") if self.c_dim > 0 else None
        self.fcs = [FullyConnectedLayer(self.w_dim, activation="lrelu",
                                        lr_multiplier=self.lr_multiplier, name=f"fc{i}")
                    for i in range(self.num_layers)]

    def build(self, input_shape=None):
        if self.embed is not None:
            self.embed.build((None, self.c_dim))
        features = self.z_dim + (self.w_dim if self.c_dim > 0 else 0)
        for fc in self.fcs:
            fc.build((None, features))
            features = self.w_dim
        self.w_avg = self.add_weight(name="w_avg", shape=(self.w_dim,), initializer="zeros",
                                     trainable=False, aggregation="mean")  # See SynthesisLayer.

    @classmethod
    def for_generator(cls, cfg, num_ws):
        """The mapping network of a :class:`sg3keras.config.GeneratorConfig` (either family)."""
        return cls(cfg.z_dim, cfg.c_dim, cfg.w_dim, num_ws, num_layers=cfg.mapping_layers,
                   lr_multiplier=cfg.mapping_lr_multiplier, w_avg_beta=cfg.w_avg_beta,
                   name="mapping")

    def _check_inputs(self, z, c):
        if len(z.shape) != 2 or (z.shape[1] is not None and z.shape[1] != self.z_dim):
            raise ValueError(f"z: expected shape [N, {self.z_dim}], got {list(z.shape)}")
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"c: this generator is conditional (c_dim={self.c_dim}); "
                                 f"pass labels c of shape [N, {self.c_dim}]")
            if len(c.shape) != 2 or (c.shape[1] is not None and c.shape[1] != self.c_dim):
                raise ValueError(f"c: expected shape [N, {self.c_dim}], got {list(c.shape)}")

    def call(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, update_emas=False):
        z = ops.convert_to_tensor(z)
        c = None if c is None else ops.convert_to_tensor(c)
        self._check_inputs(z, c)
        x = normalize_2nd_moment(ops.cast(z, "float32"))
        if self.c_dim > 0:
            y = normalize_2nd_moment(self.embed(ops.cast(c, "float32")))
            x = ops.concatenate([x, y], axis=1)
        for fc in self.fcs:
            x = fc(x)
        if update_emas:
            mean = ops.mean(x, axis=0)
            self.w_avg.assign(lerp(mean, ops.cast(self.w_avg, mean.dtype), self.w_avg_beta))
        ws = ops.repeat(x[:, None, :], self.num_ws, axis=1)             # [N, num_ws, w_dim]
        return self.truncate(ws, truncation_psi, truncation_cutoff)

    def truncate(self, ws, truncation_psi=1.0, truncation_cutoff=None):
        """``ws[:, :cutoff] = w_avg + psi * (ws[:, :cutoff] - w_avg)`` (cutoff None = all)."""
        if isinstance(truncation_psi, (int, float)) and truncation_psi == 1:
            return ws
        cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
        if cutoff <= 0:
            return ws
        w_avg = ops.cast(self.w_avg, ws.dtype)
        truncated = lerp(w_avg, ws, truncation_psi)
        if cutoff >= self.num_ws:
            return truncated
        mask = (ops.arange(self.num_ws) < cutoff)[None, :, None]
        return ops.where(mask, truncated, ws)

    def compute_output_shape(self, z_shape, *args, **kwargs):
        return (z_shape[0], self.num_ws, self.w_dim)

    def get_config(self):
        config = super().get_config()
        config.update(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                      num_layers=self.num_layers, lr_multiplier=self.lr_multiplier,
                      w_avg_beta=self.w_avg_beta)
        return config
