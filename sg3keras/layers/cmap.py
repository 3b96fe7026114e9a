"""The discriminator's label mapping ``c -> cmap`` (conditioning of the official StyleGAN2 D).

The official conditional discriminator uses the StyleGAN2 ``MappingNetwork`` with ``z_dim=0``,
``num_ws=None`` and ``w_avg_beta=None``: no latent input, no broadcast, no truncation and no
``w_avg`` buffer. That is a different enough contract from :class:`MappingNetwork` (which
always has ``z`` and ``w_avg``) to deserve its own small layer.
"""

import keras
from keras import ops

from sg3keras.layers.fully_connected import FullyConnectedLayer
from sg3keras.ops.misc import normalize_2nd_moment

__all__ = ["ConditioningMapping"]


@keras.saving.register_keras_serializable(package="sg3keras")
class ConditioningMapping(keras.layers.Layer):
    """Embed labels: ``embed`` (linear FC, lr 1) -> 2nd-moment normalise -> lrelu FCs.

    Args:
        c_dim: label dimensionality (> 0).
        cmap_dim: embedding / output width.
        num_layers: number of lrelu FC layers after the embedding. Default 8.
        lr_multiplier: learning-rate multiplier of those layers. Default 0.01.

    Call arguments:
        c: ``[N, c_dim]`` labels.

    Returns ``cmap [N, cmap_dim]`` (float32).
    """

    def __init__(self, c_dim, cmap_dim, num_layers=8, lr_multiplier=0.01, **kwargs):
        super().__init__(**kwargs)
        self.c_dim = int(c_dim)
        self.cmap_dim = int(cmap_dim)
        self.num_layers = int(num_layers)
        self.lr_multiplier = float(lr_multiplier)
        if self.c_dim <= 0 or self.cmap_dim <= 0:
            raise ValueError(f"ConditioningMapping: c_dim and cmap_dim must be > 0, got "
                             f"c_dim={c_dim}, cmap_dim={cmap_dim}")
        self.embed = FullyConnectedLayer(self.cmap_dim, name="embed")
        self.fcs = [FullyConnectedLayer(self.cmap_dim, activation="lrelu",
                                        lr_multiplier=self.lr_multiplier, name=f"fc{i}")
                    for i in range(self.num_layers)]

    def build(self, input_shape=None):
        self.embed.build((None, self.c_dim))
        for fc in self.fcs:
            fc.build((None, self.cmap_dim))

    def call(self, c):
        c = ops.convert_to_tensor(c)
        if len(c.shape) != 2 or (c.shape[1] is not None and c.shape[1] != self.c_dim):
            raise ValueError(f"c: expected labels of shape [N, {self.c_dim}], got {list(c.shape)}")
        x = normalize_2nd_moment(self.embed(ops.cast(c, "float32")))
        for fc in self.fcs:
            x = fc(x)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.cmap_dim)

    def get_config(self):
        config = super().get_config()
        config.update(c_dim=self.c_dim, cmap_dim=self.cmap_dim, num_layers=self.num_layers,
                      lr_multiplier=self.lr_multiplier)
        return config
