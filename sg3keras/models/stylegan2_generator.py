"""The StyleGAN2 generator (official ``training/networks_stylegan2.py::Generator``), NHWC.

Used by the ``stylegan2`` preset (config A of Alias-Free GAN): 8-layer mapping network, learned
4x4 constant, noise inputs, ``skip`` architecture; and by the paper's configs B-D, which change
it through :class:`~sg3keras.config.GeneratorConfig` fields (``const_input=False``: Fourier
features; ``use_noise=False``; ``architecture="orig"``, ``mapping_layers=2`` and
``magnitude_norm``: the simplified generator). Same calling API as
:class:`sg3keras.models.Generator`.
"""

import keras
from keras import ops

from sg3keras.layers.mapping import MappingNetwork
from sg3keras.layers.stylegan2_synthesis import SynthesisBlock2
from sg3keras.models._serialization import ConfigSerialization
from sg3keras.models.base import (GeneratorBase, as_generator_config, check_noise_mode,
                                  register_generator)
from sg3keras.ops.misc import assert_shape

__all__ = ["SynthesisNetwork2", "StyleGAN2Generator"]


def _as_config(config):
    config = as_generator_config(config)
    if config.family != "stylegan2":
        raise ValueError(f"config.family: expected 'stylegan2', got {config.family!r}")
    r = config.img_resolution
    if r < 4 or r & (r - 1):
        raise ValueError(f"config.img_resolution must be a power of two >= 4, got {r}")
    return config


@keras.saving.register_keras_serializable(package="sg3keras")
class SynthesisNetwork2(ConfigSerialization, keras.layers.Layer):
    """Blocks ``b4, b8, ..., bR`` with ``channels(res) = min(channel_base // res, channel_max)``.

    Block ``b{res}`` reads ``ws[:, i : i + num_conv + num_torgb]`` and the next block starts at
    ``i + num_conv``; ``num_ws`` counts every conv plus the last ToRGB.

    Args:
        config: :class:`GeneratorConfig` (or its dict) with ``family="stylegan2"``.

    Call arguments:
        ws: ``[N, num_ws, w_dim]``; noise_mode: ``"random"`` (official default), ``"const"`` or
        ``"none"``; update_emas: accepted, unused (no running statistics in synthesis); noise:
        optional ``{layer name: [N, R, R, 1]}`` N(0, 1) draws for ``noise_mode="random"``
        (names from :meth:`noise_inputs`; a missing layer draws its own); transform: the
        ``[N, 3, 3]`` transform of a Fourier-feature input (configs B-D), None otherwise (the
        keywords every generator's synthesis takes).

    Returns images ``[N, R, R, img_channels]`` (float32, unclamped; x ``output_scale`` with
    ``magnitude_norm``).
    """

    _config_attrs = ()

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = _as_config(config)
        cfg = self.config
        ch = lambda res: min(cfg.channel_base // res, cfg.channel_max)  # noqa: E731
        self.block_resolutions = [2 ** i for i in range(2, cfg.img_resolution.bit_length())]
        self.blocks, self.ws_index = [], []
        num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock2(ch(res // 2) if res > 4 else 0, ch(res), cfg.w_dim, res,
                                    cfg.img_channels, is_last=(res == cfg.img_resolution),
                                    architecture=cfg.architecture,
                                    resample_filter=cfg.resample_filter,
                                    conv_clamp=cfg.conv_clamp, use_noise=cfg.use_noise,
                                    fourier_input=not cfg.const_input,
                                    magnitude_ema_beta=(cfg.magnitude_ema_beta
                                                        if cfg.magnitude_norm else None),
                                    name=f"b{res}")
            self.ws_index.append(num_ws)
            num_ws += block.num_conv
            self.blocks.append(block)
        self.num_ws = num_ws + self.blocks[-1].num_torgb
        self.layer_names = [f"{block.name}.{layer.name}" for block in self.blocks
                            for layer in (block.conv0, block.conv1, block.torgb)
                            if layer is not None]

    @property
    def input(self):
        """The Fourier-feature input (configs B-D; ``None`` with the learned constant)."""
        return self.blocks[0].input

    def build(self, input_shape=None):
        for block in self.blocks:
            block.build()

    def noise_inputs(self):
        """``[(name, resolution)]`` of every layer with a noise input, in forward order, named
        as the official modules (``b4.conv1``, ``b8.conv0``, ``b8.conv1``, ...)."""
        if not self.config.use_noise:
            return []
        out = []
        for block in self.blocks:
            for layer in (block.conv0, block.conv1):
                if layer is not None:
                    out.append((f"{block.name}.{layer.name}", block.resolution))
        return out

    def call(self, ws, noise_mode="random", update_emas=False, noise=None, transform=None):
        check_noise_mode(noise_mode)
        if transform is not None and self.input is None:
            raise ValueError("transform: this synthesis network has no input transform (it "
                             "starts from a learned 4x4 constant)")
        cfg = self.config
        assert_shape(ws, [None, self.num_ws, cfg.w_dim], name="ws")
        ws = ops.cast(ws, "float32")
        if noise:
            unknown = sorted(set(noise) - {name for name, _ in self.noise_inputs()})
            if unknown:
                raise ValueError(f"noise: unknown layer(s) {unknown}; expected names from "
                                 f"noise_inputs(): {[n for n, _ in self.noise_inputs()]}")
        x = img = None
        for block, i in zip(self.blocks, self.ws_index):
            mine = None
            if noise:
                prefix = block.name + "."
                mine = {k[len(prefix):]: v for k, v in noise.items() if k.startswith(prefix)}
            kw = dict(update_emas=True) if update_emas else {}
            if transform is not None and i == 0:        # the Fourier input (first block)
                kw["transform"] = transform
            x, img = block(x, img, ws[:, i:i + block.num_conv + block.num_torgb],
                           noise_mode=noise_mode, noise=mine, **kw)
        return self._scale(img)

    def _scale(self, img):
        """The simplified generator's output scale (config D; StyleGAN2 has none)."""
        if self.config.magnitude_norm and self.config.output_scale != 1:
            return img * self.config.output_scale
        return img

    def layer_outputs(self, ws, noise_mode="const", transform=None):
        """The forward pass, one block at a time: yields ``(block name, features)`` per block
        and ``"output"`` (the image ``call`` returns). Same ops as :meth:`call`."""
        check_noise_mode(noise_mode)
        ws = ops.cast(ws, "float32")
        x = img = None
        for block, i in zip(self.blocks, self.ws_index):
            kw = dict(transform=transform) if transform is not None and i == 0 else {}
            x, img = block(x, img, ws[:, i:i + block.num_conv + block.num_torgb],
                           noise_mode=noise_mode, **kw)
            yield block.name, x
        yield "output", self._scale(img)

    def compute_output_shape(self, ws_shape, *args, **kwargs):
        r = self.config.img_resolution
        return (ws_shape[0], r, r, self.config.img_channels)


@register_generator("stylegan2")
@keras.saving.register_keras_serializable(package="sg3keras")
class StyleGAN2Generator(GeneratorBase, ConfigSerialization, keras.Model):
    """StyleGAN2 generator ``G(z, c) -> images`` (NHWC, float32).

    Weight names follow the official state dict (``synthesis.b8.conv0.weight``,
    ``mapping.fc7.bias``); the noise buffers ``noise_const`` are non-trainable weights.

    Args:
        config: :class:`GeneratorConfig` (or its dict) with ``family="stylegan2"``.

    Call arguments:
        z: ``[N, z_dim]``; c: ``[N, c_dim]`` (required when ``c_dim > 0``);
        truncation_psi, truncation_cutoff: truncation trick (see ``MappingNetwork``);
        noise_mode: ``"random"`` (official default, fresh noise per call), ``"const"``
        (reproducible, what ``gen_images.py`` uses) or ``"none"``;
        training: unused; update_emas: update ``mapping.w_avg``.

    Example:
        >>> G = StyleGAN2Generator.from_preset("stylegan2", img_resolution=16, z_dim=8,
        ...                                    w_dim=8, channel_base=256, channel_max=16)
        >>> img = G(keras.random.normal([2, 8]), noise_mode="const")

    Reference: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", 2020.
    """

    _config_attrs = ("metadata",)

    def __init__(self, config, metadata=None, **kwargs):
        kwargs.setdefault("name", "generator")
        super().__init__(**kwargs)
        self.metadata = dict(metadata or {})   # e.g. the official source it was converted from
        self.config = _as_config(config)
        cfg = self.config
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork2(cfg, name="synthesis")
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork.for_generator(cfg, self.num_ws)
        self.build()

    @classmethod
    def from_config_dataclass(cls, cfg):
        """Build from a :class:`GeneratorConfig` (``family="stylegan2"``)."""
        return cls(cfg)

    @classmethod
    def from_preset(cls, name="stylegan2", img_resolution=None, batch=None, **overrides):
        """Build from a :data:`sg3keras.config.PRESETS` entry (see
        :meth:`GeneratorBase.from_preset`; the config picks the class)."""
        return super().from_preset(name, img_resolution=img_resolution, batch=batch, **overrides)

    def build(self, input_shape=None):
        if self.built:
            return
        self.synthesis.build()
        self.mapping.build()
        self.built = True

    def call(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="random",
             training=False, update_emas=False):
        ws = self.mapping(z, c, truncation_psi=truncation_psi,
                          truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas)

    def compute_output_shape(self, z_shape, *args, **kwargs):
        return (z_shape[0], self.img_resolution, self.img_resolution, self.img_channels)
