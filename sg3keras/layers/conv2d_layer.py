"""Convolution layer with equalized learning rate and FIR resampling (the StyleGAN2
discriminator's, kept by Alias-Free GAN, Appendix F)."""

import math

import keras
import numpy as np
from keras import ops

from sg3keras.ops.bias_act import ACTIVATIONS, bias_act
from sg3keras.ops.conv2d_resample import conv2d_resample
from sg3keras.ops.filters import setup_filter

__all__ = ["Conv2dLayer"]


@keras.saving.register_keras_serializable(package="sg3keras")
class Conv2dLayer(keras.layers.Layer):
    """Equalized-lr convolution + optional up/down resampling + bias/activation/gain/clamp.

    The stored ``weight [k, k, I, O]`` (init ``N(0, 1)``) is used as ``weight / sqrt(I k^2)``;
    ``bias [O]`` is initialised to 0. The output is
    ``bias_act(conv2d_resample(x, w, f, up, down, padding=k // 2, flip_weight=(up == 1)), b,
    act, gain=def_gain * g, clamp=conv_clamp * g)`` where ``g`` is the per-call ``gain``. The
    resampling filter ``setup_filter(resample_filter)`` is a non-trainable weight named
    ``resample_filter`` (the official buffer). Pass ``trainable=False`` for frozen layers
    (freeze-D): the official code then stores ``weight``/``bias`` as buffers of the same name.

    Args:
        filters: output channels ``O``.
        kernel_size: square kernel size ``k``.
        use_bias: whether the layer has a bias.
        activation: ``bias_act`` activation name. Default ``"linear"``.
        up: integer upsampling factor. Default 1.
        down: integer downsampling factor. Default 1.
        resample_filter: 1-D taps of the low-pass filter. Default ``[1, 3, 3, 1]``.
        conv_clamp: clamp the output to ``+-conv_clamp`` (None = no clamp).

    Call arguments:
        x: ``[N, H, W, I]``.
        gain: extra output gain (scales the activation gain and the clamp). Default 1.

    Example:
        >>> conv = Conv2dLayer(32, 3, activation="lrelu", down=2, conv_clamp=256)
        >>> y = conv(keras.ops.ones([2, 16, 16, 8]))           # [2, 8, 8, 32]
    """

    def __init__(self, filters, kernel_size, use_bias=True, activation="linear", up=1, down=1,
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"Conv2dLayer: unknown activation {activation!r}; expected one of "
                             f"{sorted(ACTIVATIONS)}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.use_bias = bool(use_bias)
        self.activation = activation
        self.up = int(up)
        self.down = int(down)
        self.resample_filter = [float(v) for v in resample_filter]
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.act_gain = ACTIVATIONS[activation][2]
        self._filter = setup_filter(np.asarray(self.resample_filter, np.float32))

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        self.weight_gain = 1.0 / math.sqrt(in_channels * self.kernel_size ** 2)
        k = self.kernel_size
        self.weight = self.add_weight(name="weight", shape=(k, k, in_channels, self.filters),
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
        self.resample_filter_weight = self.add_weight(
            name="resample_filter", shape=self._filter.shape,
            initializer=keras.initializers.Constant(self._filter), trainable=False)

    def call(self, x, gain=1):
        w = ops.cast(self.weight, x.dtype) * self.weight_gain
        b = ops.cast(self.bias, x.dtype) if self.use_bias else None
        x = conv2d_resample(x, w, f=self.resample_filter_weight, up=self.up, down=self.down,
                            padding=self.kernel_size // 2, flip_weight=(self.up == 1))
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        scale = lambda s: None if s is None else s * self.up // self.down  # noqa: E731
        return (n, scale(h), scale(w), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, use_bias=self.use_bias,
                      activation=self.activation, up=self.up, down=self.down,
                      resample_filter=self.resample_filter, conv_clamp=self.conv_clamp)
        return config
