"""Building blocks of the StyleGAN2 discriminator used by every official config (StyleGAN2 §4.1;
unchanged in Alias-Free GAN, Appendix F).

``DiscriminatorBlock`` (one resolution, default residual), ``MinibatchStdLayer`` and the 4x4
``DiscriminatorEpilogue``. All NHWC; layer names follow the official modules (``fromrgb``,
``conv0``, ``conv1``, ``skip``, ``mbstd``, ``conv``, ``fc``, ``out``).
"""

import math

import keras
import numpy as np
from keras import ops

from sg3keras.layers.conv2d_layer import Conv2dLayer
from sg3keras.layers.fully_connected import FullyConnectedLayer
from sg3keras.ops.filters import setup_filter
from sg3keras.ops.minibatch_std import minibatch_std
from sg3keras.ops.upfirdn2d import downsample2d

__all__ = ["DiscriminatorBlock", "MinibatchStdLayer", "DiscriminatorEpilogue", "ARCHITECTURES"]

ARCHITECTURES = ("orig", "skip", "resnet")


def _check_architecture(architecture, who):
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{who}: architecture must be one of {ARCHITECTURES}, "
                         f"got {architecture!r}")


@keras.saving.register_keras_serializable(package="sg3keras")
class DiscriminatorBlock(keras.layers.Layer):
    """One discriminator resolution: (fromrgb) -> conv0 (3x3) -> conv1 (3x3, down 2) (+ skip).

    ``resnet``: ``x = skip(x, gain=sqrt(.5)) + conv1(conv0(x), gain=sqrt(.5))`` where ``skip`` is
    a 1x1 down-2 conv without bias, activation or clamp. ``fromrgb`` (1x1, lrelu) exists in the
    first block (``in_channels == 0``) and in every block of the ``skip`` architecture, which also
    downsamples the image. Layers number ``first_layer_idx, ...`` in the order fromrgb, conv0,
    conv1, skip; those with an index below ``freeze_layers`` are built with ``trainable=False``.

    Args:
        in_channels: input feature channels, 0 for the first block.
        tmp_channels: channels of fromrgb/conv0.
        out_channels: output channels.
        resolution: input resolution of the block.
        img_channels: image channels.
        first_layer_idx: index of this block's first layer (freeze-D counting).
        architecture: ``"orig"``, ``"skip"`` or ``"resnet"``.
        activation: activation of the convs. Default ``"lrelu"``.
        resample_filter: low-pass filter taps. Default ``[1, 3, 3, 1]``.
        conv_clamp: clamp of the conv outputs (None = off).
        freeze_layers: number of leading (frozen) layers of the whole discriminator.

    Call arguments:
        x: ``[N, R, R, in_channels]`` or None (first block). img: ``[N, R, R, img_channels]``.

    Returns ``(x [N, R/2, R/2, out_channels], img)`` (img is None unless ``skip``).
    """

    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels,
                 first_layer_idx=0, architecture="resnet", activation="lrelu",
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, freeze_layers=0, **kwargs):
        super().__init__(**kwargs)
        _check_architecture(architecture, "DiscriminatorBlock")
        self.in_channels = int(in_channels)
        self.tmp_channels = int(tmp_channels)
        self.out_channels = int(out_channels)
        self.resolution = int(resolution)
        self.img_channels = int(img_channels)
        self.first_layer_idx = int(first_layer_idx)
        self.architecture = architecture
        self.activation = activation
        self.resample_filter = [float(v) for v in resample_filter]
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.freeze_layers = int(freeze_layers)
        self.num_layers = 0

        def conv(name, filters, k, **kw):
            trainable = self.first_layer_idx + self.num_layers >= self.freeze_layers
            self.num_layers += 1
            return Conv2dLayer(filters, k, resample_filter=self.resample_filter, name=name,
                               trainable=trainable, **kw)

        self.fromrgb = None
        if self.in_channels == 0 or architecture == "skip":
            self.fromrgb = conv("fromrgb", self.tmp_channels, 1, activation=activation,
                                conv_clamp=self.conv_clamp)
        self.conv0 = conv("conv0", self.tmp_channels, 3, activation=activation,
                          conv_clamp=self.conv_clamp)
        self.conv1 = conv("conv1", self.out_channels, 3, activation=activation, down=2,
                          conv_clamp=self.conv_clamp)
        self.skip = None
        if architecture == "resnet":
            self.skip = conv("skip", self.out_channels, 1, use_bias=False, down=2)
        self._filter = setup_filter(np.asarray(self.resample_filter, np.float32))

    def build(self, x_shape=None, img_shape=None):
        r = self.resolution
        if self.fromrgb is not None:
            self.fromrgb.build((None, r, r, self.img_channels))
        self.conv0.build((None, r, r, self.tmp_channels))
        self.conv1.build((None, r, r, self.tmp_channels))
        if self.skip is not None:
            self.skip.build((None, r, r, self.tmp_channels))
        self.resample_filter_weight = self.add_weight(
            name="resample_filter", shape=self._filter.shape,
            initializer=keras.initializers.Constant(self._filter), trainable=False)

    def call(self, x, img=None):
        r = self.resolution
        if x is not None and tuple(x.shape[1:]) != (r, r, self.in_channels):
            raise ValueError(f"{self.name}: x must be [N, {r}, {r}, {self.in_channels}], "
                             f"got {list(x.shape)}")
        if self.fromrgb is not None:
            if img is None or tuple(img.shape[1:]) != (r, r, self.img_channels):
                raise ValueError(f"{self.name}: img must be [N, {r}, {r}, {self.img_channels}], "
                                 f"got {None if img is None else list(img.shape)}")
            y = self.fromrgb(ops.cast(img, "float32"))
            x = y if x is None else x + y
            img = downsample2d(img, self.resample_filter_weight) \
                if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, tmp_channels=self.tmp_channels,
                      out_channels=self.out_channels, resolution=self.resolution,
                      img_channels=self.img_channels, first_layer_idx=self.first_layer_idx,
                      architecture=self.architecture, activation=self.activation,
                      resample_filter=self.resample_filter, conv_clamp=self.conv_clamp,
                      freeze_layers=self.freeze_layers)
        return config


@keras.saving.register_keras_serializable(package="sg3keras")
class MinibatchStdLayer(keras.layers.Layer):
    """Append per-group feature standard deviations (:func:`sg3keras.ops.minibatch_std`).

    Args:
        group_size: maximum group size (``min(group_size, N)`` is used).
        num_channels: number of appended statistics channels.

    Call arguments:
        x: ``[N, H, W, C]`` -> ``[N, H, W, C + num_channels]``.
    """

    def __init__(self, group_size=4, num_channels=1, **kwargs):
        super().__init__(**kwargs)
        self.group_size = int(group_size)
        self.num_channels = int(num_channels)

    def call(self, x):
        return minibatch_std(x, self.group_size, self.num_channels)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + self.num_channels,)

    def get_config(self):
        config = super().get_config()
        config.update(group_size=self.group_size, num_channels=self.num_channels)
        return config


@keras.saving.register_keras_serializable(package="sg3keras")
class DiscriminatorEpilogue(keras.layers.Layer):
    """The 4x4 head: (fromrgb) -> mbstd -> conv (3x3) -> fc -> out (-> projection on cmap).

    ``fc`` sees the features flattened in the official NCHW order ``(C, H, W)`` so that its
    weight is the official one transposed. With ``cmap_dim > 0`` the logits are
    ``sum(out(x) * cmap, axis=1) / sqrt(cmap_dim)``.

    Args:
        in_channels: feature channels ``C`` at the input resolution.
        cmap_dim: conditioning-embedding size (0 = unconditional: ``out`` has 1 unit).
        resolution: input resolution (4).
        img_channels: image channels (``skip`` architecture only).
        architecture: ``"orig"``, ``"skip"`` or ``"resnet"``.
        mbstd_group_size: minibatch-std group size (None = no mbstd layer).
        mbstd_num_channels: minibatch-std statistics channels.
        activation: activation of conv/fc. Default ``"lrelu"``.
        conv_clamp: clamp of the conv output (None = off).

    Call arguments:
        x: ``[N, R, R, C]``. img: image (``skip`` only). cmap: ``[N, cmap_dim]`` or None.

    Returns logits ``[N, 1]`` (float32).
    """

    def __init__(self, in_channels, cmap_dim=0, resolution=4, img_channels=3,
                 architecture="resnet", mbstd_group_size=4, mbstd_num_channels=1,
                 activation="lrelu", conv_clamp=None, **kwargs):
        super().__init__(**kwargs)
        _check_architecture(architecture, "DiscriminatorEpilogue")
        self.in_channels = int(in_channels)
        self.cmap_dim = int(cmap_dim or 0)
        self.resolution = int(resolution)
        self.img_channels = int(img_channels)
        self.architecture = architecture
        self.mbstd_group_size = None if mbstd_group_size is None else int(mbstd_group_size)
        self.mbstd_num_channels = int(mbstd_num_channels)
        self.activation = activation
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        c = self.in_channels
        self.fromrgb = Conv2dLayer(c, 1, activation=activation, name="fromrgb") \
            if architecture == "skip" else None
        self.mbstd = MinibatchStdLayer(self.mbstd_group_size, self.mbstd_num_channels,
                                       name="mbstd") if self.mbstd_group_size is not None else None
        self.conv = Conv2dLayer(c, 3, activation=activation, conv_clamp=self.conv_clamp,
                                name="conv")
        self.fc = FullyConnectedLayer(c, activation=activation, name="fc")
        self.out = FullyConnectedLayer(self.cmap_dim if self.cmap_dim > 0 else 1, name="out")

    def build(self, x_shape=None, img_shape=None, cmap_shape=None):
        r, c = self.resolution, self.in_channels
        if self.fromrgb is not None:
            self.fromrgb.build((None, r, r, self.img_channels))
        extra = self.mbstd_num_channels if self.mbstd is not None else 0
        self.conv.build((None, r, r, c + extra))
        self.fc.build((None, c * r * r))
        self.out.build((None, c))

    def call(self, x, img=None, cmap=None):
        r, c = self.resolution, self.in_channels
        if tuple(x.shape[1:]) != (r, r, c):
            raise ValueError(f"{self.name}: x must be [N, {r}, {r}, {c}], got {list(x.shape)}")
        x = ops.cast(x, "float32")
        if self.fromrgb is not None:
            x = x + self.fromrgb(ops.cast(img, "float32"))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = ops.reshape(ops.transpose(x, (0, 3, 1, 2)), [-1, c * r * r])  # NCHW flatten (C, H, W)
        x = self.fc(x)
        x = self.out(x)
        if self.cmap_dim > 0:
            if cmap is None:
                raise ValueError(f"{self.name}: cmap [N, {self.cmap_dim}] is required")
            x = ops.sum(x * ops.cast(cmap, x.dtype), axis=1, keepdims=True)
            x = x * (1.0 / math.sqrt(self.cmap_dim))
        return x

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, cmap_dim=self.cmap_dim,
                      resolution=self.resolution, img_channels=self.img_channels,
                      architecture=self.architecture, mbstd_group_size=self.mbstd_group_size,
                      mbstd_num_channels=self.mbstd_num_channels, activation=self.activation,
                      conv_clamp=self.conv_clamp)
        return config
