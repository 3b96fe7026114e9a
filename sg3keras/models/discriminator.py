"""The StyleGAN2 residual discriminator used by every official config (StyleGAN2 §4.1;
unchanged in Alias-Free GAN, Appendix F)."""

import dataclasses

import keras
from keras import ops

from sg3keras.config import DiscriminatorConfig, resolve_preset
from sg3keras.layers.cmap import ConditioningMapping
from sg3keras.layers.discriminator_blocks import DiscriminatorBlock, DiscriminatorEpilogue
from sg3keras.models._serialization import ConfigSerialization

__all__ = ["Discriminator"]


def _channels(config: DiscriminatorConfig, res: int) -> int:
    return min(config.channel_base // res, config.channel_max)


@keras.saving.register_keras_serializable(package="sg3keras")
class Discriminator(ConfigSerialization, keras.Model):
    """Image (+ label) -> realness logit, NHWC.

    Blocks ``b{R}, b{R/2}, ..., b8`` (``DiscriminatorBlock``, residual by default) with
    ``channels(res) = min(channel_base // res, channel_max)``, then the 4x4 epilogue ``b4``
    (minibatch std, conv, fc, out). A conditional discriminator (``c_dim > 0``) maps the labels
    with ``mapping`` (8 lrelu FCs) to ``cmap`` and projects the ``out`` features onto it.
    Weight names follow the official state dict (``b32.conv0.weight`` <-> ``b32/conv0/weight``).
    ``num_fp16_res`` is recorded only: everything runs in float32.

    Args:
        config: a :class:`sg3keras.config.DiscriminatorConfig`.

    Call arguments:
        img: ``[N, R, R, img_channels]`` images in ``[-1, 1]``.
        c: ``[N, c_dim]`` labels (None or ``[N, 0]`` when unconditional).
        update_emas: ignored (accepted for symmetry with the generator).

    Returns logits ``[N, 1]`` (float32).

    Example:
        >>> D = Discriminator.from_preset("stylegan3-t", img_resolution=32, channel_base=512,
        ...                               channel_max=32)
        >>> logits = D(keras.random.normal([4, 32, 32, 3]))
    """

    _config_attrs = ("metadata",)

    def __init__(self, config=None, metadata=None, **kwargs):
        kwargs.setdefault("name", "discriminator")
        super().__init__(**kwargs)
        self.metadata = dict(metadata or {})   # e.g. the official source it was converted from
        if isinstance(config, dict):
            config = DiscriminatorConfig.from_dict(config)
        if not isinstance(config, DiscriminatorConfig):
            raise ValueError(f"Discriminator: config must be a DiscriminatorConfig, got {config!r}")
        r = config.img_resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"Discriminator: img_resolution must be a power of two >= 8, got {r}")
        self.config = config
        self.c_dim = config.c_dim
        self.img_resolution = r
        self.img_channels = config.img_channels
        cmap_dim = config.cmap_dim if config.cmap_dim is not None else _channels(config, 4)
        self.cmap_dim = cmap_dim if config.c_dim > 0 else 0
        self.block_resolutions = [2 ** i for i in range(r.bit_length() - 1, 2, -1)]
        common = dict(architecture=config.architecture, resample_filter=config.resample_filter,
                      conv_clamp=config.conv_clamp)
        self.blocks = []
        layer_idx = 0
        for res in self.block_resolutions:
            in_ch = _channels(config, res) if res < r else 0
            block = DiscriminatorBlock(in_ch, _channels(config, res), _channels(config, res // 2),
                                       res, config.img_channels, first_layer_idx=layer_idx,
                                       freeze_layers=config.freeze_layers, name=f"b{res}",
                                       **common)
            layer_idx += block.num_layers
            self.blocks.append(block)
        self.mapping = None
        if config.c_dim > 0:
            self.mapping = ConditioningMapping(config.c_dim, self.cmap_dim,
                                               num_layers=config.mapping_layers, name="mapping")
        self.b4 = DiscriminatorEpilogue(
            _channels(config, 4), cmap_dim=self.cmap_dim, resolution=4,
            img_channels=config.img_channels, architecture=config.architecture,
            mbstd_group_size=config.mbstd_group_size,
            mbstd_num_channels=config.mbstd_num_channels, conv_clamp=config.conv_clamp, name="b4")
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        for block in self.blocks:
            block.build()
        if self.mapping is not None:
            self.mapping.build()
        self.b4.build()
        self.built = True

    def call(self, img, c=None, update_emas=False):
        del update_emas  # The discriminator keeps no running statistics.
        img = ops.convert_to_tensor(img)
        r, ch = self.img_resolution, self.img_channels
        if len(img.shape) != 4 or tuple(img.shape[1:]) != (r, r, ch):
            raise ValueError(f"Discriminator: img must be NHWC [N, {r}, {r}, {ch}], "
                             f"got {list(img.shape)}")
        img = ops.cast(img, "float32")
        x = None
        for block in self.blocks:
            x, img = block(x, img)
        cmap = None
        if self.mapping is not None:
            if c is None:
                raise ValueError(f"Discriminator: conditional (c_dim={self.c_dim}); pass labels c "
                                 f"of shape [N, {self.c_dim}]")
            cmap = self.mapping(c)
        elif c is not None and len(c.shape) == 2 and c.shape[1] not in (0, None):
            raise ValueError(f"Discriminator: unconditional, but c has shape {list(c.shape)}")
        return self.b4(x, img, cmap)

    def compute_output_shape(self, img_shape, *args, **kwargs):
        return (img_shape[0], 1)

    @classmethod
    def from_preset(cls, name, img_resolution, **overrides):
        """Discriminator of preset ``name`` at ``img_resolution``; kwargs override config fields."""
        config = resolve_preset(name, img_resolution=img_resolution).discriminator
        fields = {f.name for f in dataclasses.fields(DiscriminatorConfig)}
        unknown = set(overrides) - fields
        if unknown:
            raise ValueError(f"Discriminator.from_preset: unknown config field(s) "
                             f"{sorted(unknown)}; "
                             f"expected some of {sorted(fields)}")
        return cls(dataclasses.replace(config, **overrides))
