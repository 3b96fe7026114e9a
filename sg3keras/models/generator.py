"""The StyleGAN3 generator: mapping network + alias-free synthesis network (Alias-Free GAN
Figure 4b; docs/PAPER.md).

Symbols used throughout (Alias-Free GAN, Section 3): ``s`` sampling rate, ``f_c`` cutoff,
``f_t`` stopband, ``f_h`` transition half-width; see :mod:`sg3keras.models.schedule`.
"""

import keras
from keras import ops

from sg3keras.layers.mapping import MappingNetwork
from sg3keras.layers.synthesis_input import SynthesisInput
from sg3keras.layers.synthesis_layer import SynthesisLayer
from sg3keras.models._serialization import ConfigSerialization
from sg3keras.models.base import (GeneratorBase, as_generator_config, check_noise_mode,
                                  make_transform, register_generator)
from sg3keras.models.schedule import synthesis_schedule
from sg3keras.ops.misc import assert_shape

__all__ = ["SynthesisNetwork", "Generator", "make_transform"]


@keras.saving.register_keras_serializable(package="sg3keras")
class SynthesisNetwork(ConfigSerialization, keras.layers.Layer):
    """Fourier-feature input followed by ``num_layers + 1`` synthesis layers and output scale.

    Args:
        config: :class:`GeneratorConfig` (or its dict) of a ``stylegan3`` generator.
        impl: ``filtered_lrelu`` implementation, ``"fast"`` (default) or ``"ref"``.
        seed: seed of the random Fourier features (None = random).

    Call arguments:
        ws: ``[N, num_ws, w_dim]``; update_emas: update every ``magnitude_ema`` first;
        transform: optional per-sample ``[N, 3, 3]`` input transform replacing the stored
        ``input.transform`` buffer (see :class:`SynthesisInput`); noise_mode: accepted (any of
        ``"random"``, ``"const"``, ``"none"``) and unused, noise: must be empty -- there are
        no noise inputs (the keywords every generator's synthesis takes).

    Returns images ``[N, R, R, img_channels]`` (float32, x ``output_scale``, unclamped).
    """

    _config_attrs = ("impl", "seed")

    def __init__(self, config, impl="fast", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.config = as_generator_config(config)
        self.impl = impl
        self.seed = seed
        cfg = self.config
        self.schedule = synthesis_schedule(cfg)
        self.num_ws = self.schedule.num_ws
        spec = self.schedule.input
        self._input_layer = SynthesisInput(
            cfg.w_dim, spec.channels, spec.size, spec.sampling_rate, spec.bandwidth, seed=seed,
            learned_transform=cfg.has_learned_input_transform, name="input")
        self.layer_names = [s.name for s in self.schedule.layers]
        self.synthesis_layers = [
            SynthesisLayer(cfg.w_dim, name=s.name, impl=impl, **s.layer_kwargs())
            for s in self.schedule.layers]

    @property
    def input(self):
        """The Fourier-feature :class:`SynthesisInput` layer (official name ``input``)."""
        return self._input_layer

    def build(self, input_shape=None):
        self.input.build()
        for layer in self.synthesis_layers:
            layer.build()

    def noise_inputs(self):
        """No noise inputs: ``[]``."""
        return []

    def call(self, ws, noise_mode="random", update_emas=False, noise=None, transform=None):
        check_noise_mode(noise_mode)
        if noise:
            raise ValueError(f"noise: this synthesis network has no noise inputs, got "
                             f"{sorted(noise)}")
        cfg = self.config
        assert_shape(ws, [None, self.num_ws, cfg.w_dim], name="ws")
        ws = ops.cast(ws, "float32")
        x = self.input(ws[:, 0], transform=transform)
        for i, layer in enumerate(self.synthesis_layers):
            x = layer(x, ws[:, i + 1], update_emas=update_emas)
        if cfg.output_scale != 1:
            x = x * cfg.output_scale
        assert_shape(x, [None, cfg.img_resolution, cfg.img_resolution, cfg.img_channels],
                     name="images")
        return ops.cast(x, "float32")

    def layer_outputs(self, ws, transform=None):
        """The forward pass, one layer at a time: yields ``(name, tensor)`` for ``"input"``
        (the Fourier features), each synthesis layer (official names) and ``"output"`` (the
        image ``call`` returns, x ``output_scale``). Same ops as :meth:`call`, no EMA update."""
        ws = ops.cast(ws, "float32")
        x = self.input(ws[:, 0], transform=transform)
        yield "input", x
        for i, layer in enumerate(self.synthesis_layers):
            x = layer(x, ws[:, i + 1])
            yield layer.name, x
        if self.config.output_scale != 1:
            x = x * self.config.output_scale
        yield "output", ops.cast(x, "float32")

    def compute_output_shape(self, ws_shape):
        r = self.config.img_resolution
        return (ws_shape[0], r, r, self.config.img_channels)


@register_generator("stylegan3")
@keras.saving.register_keras_serializable(package="sg3keras")
class Generator(GeneratorBase, ConfigSerialization, keras.Model):
    """StyleGAN3 generator ``G(z, c) -> images`` (NHWC, float32).

    Args:
        config: :class:`GeneratorConfig` (or its dict); ``family`` must be ``"stylegan3"``.
        impl: ``filtered_lrelu`` implementation, ``"fast"`` (default) or ``"ref"``.
        seed: seed of the random Fourier features (None = random). The trainable weights draw
            from Keras's global RNG: call ``keras.utils.set_random_seed`` first for a
            reproducible initialisation.

    Call arguments:
        z: ``[N, z_dim]``; c: ``[N, c_dim]`` (required when ``c_dim > 0``);
        truncation_psi: float or scalar tensor (1 = none); truncation_cutoff: None = all ws,
        0 = none; noise_mode: accepted and unused (no noise inputs); training: unused (no
        dropout); update_emas: update ``mapping.w_avg`` and every ``magnitude_ema`` (the
        training-time D phase does this).

    Example:
        >>> G = Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256,
        ...                           channel_max=16, z_dim=8, w_dim=8)
        >>> img = G(keras.random.normal([2, 8]), truncation_psi=0.7)

    Reference: Karras et al., "Alias-Free Generative Adversarial Networks", NeurIPS 2021.
    """

    _config_attrs = ("impl", "seed", "metadata")
    _build_options = ("impl", "seed")

    def __init__(self, config, impl="fast", seed=None, metadata=None, **kwargs):
        kwargs.setdefault("name", "generator")
        super().__init__(**kwargs)
        self.metadata = dict(metadata or {})   # e.g. the official source it was converted from
        self.config = as_generator_config(config)
        if self.config.family != "stylegan3":
            raise ValueError(f"config.family: expected 'stylegan3', got "
                             f"{self.config.family!r}; use sg3keras.models.build_generator "
                             f"(or Generator.from_preset)")
        self.impl = impl
        self.seed = seed
        cfg = self.config
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg, impl=impl, seed=seed, name="synthesis")
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork.for_generator(cfg, self.num_ws)
        self.build()

    def build(self, input_shape=None):
        self.synthesis.build()
        self.mapping.build()
        self.built = True

    def call(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="random",
             training=False, update_emas=False):
        ws = self.mapping(z, c, truncation_psi=truncation_psi,
                          truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas)

    def with_impl(self, impl):
        """A copy built with ``filtered_lrelu`` implementation ``impl`` holding the same weights
        (``metadata`` is not copied)."""
        clone = type(self)(self.config, impl=impl, seed=self.seed, name=self.name)
        src, dst = self.weights, clone.weights
        if [tuple(v.shape) for v in src] != [tuple(v.shape) for v in dst]:
            raise RuntimeError(f"with_impl: the impl={impl!r} rebuild has different weights "
                               "than the generator; cannot copy them")
        clone.set_weights([v.numpy() for v in src])
        return clone

    def compute_output_shape(self, z_shape, *args, **kwargs):
        return (z_shape[0], self.img_resolution, self.img_resolution, self.img_channels)
