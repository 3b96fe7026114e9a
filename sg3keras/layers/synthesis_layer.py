"""One StyleGAN3 synthesis layer: modulated conv + alias-free filtered leaky ReLU
(Alias-Free GAN, Section 3, Appendices C, D and F.1; docs/PAPER.md)."""

import math

import keras
import numpy as np
from keras import ops

from sg3keras.layers.fully_connected import FullyConnectedLayer
from sg3keras.ops.filtered_lrelu import IMPLS, filtered_lrelu
from sg3keras.ops.filters import design_lowpass_filter
from sg3keras.ops.misc import assert_shape, lerp
from sg3keras.ops.modulated_conv import modulated_conv2d

__all__ = ["SynthesisLayer"]


@keras.saving.register_keras_serializable(package="sg3keras")
class SynthesisLayer(keras.layers.Layer):
    """Modulated convolution followed by a filtered (up-sample, lrelu, down-sample) activation.

    The geometry (factors, taps, padding) comes precomputed from
    :func:`sg3keras.models.schedule.synthesis_schedule` (``LayerSpec.layer_kwargs()``); the
    layer designs its low-pass filters from the cutoffs/half-widths and keeps them as
    non-trainable weights ``up_filter``/``down_filter`` (absent for a single tap).

    Steps: (``update_emas``) ``magnitude_ema <- lerp(mean(x**2), magnitude_ema, beta)``;
    ``styles = affine(w)`` (ToRGB: ``/ sqrt(in_channels)``); modulated conv with
    ``input_gain = rsqrt(magnitude_ema)`` (demodulated except ToRGB, "full" padding ``k - 1``);
    ``filtered_lrelu`` with the bias, gain ``sqrt(2)`` / slope 0.2 (ToRGB: 1 / 1) and clamp.

    Args (grouped as in the schedule):
        w_dim: intermediate latent dimensionality.
        is_torgb: the last layer (no demodulation, linear, 1x1).
        in_channels, out_channels: feature counts.
        in_size, out_size: square spatial sizes (margin included).
        tmp_sampling_rate: rate at which the nonlinearity runs.
        in_cutoff, out_cutoff: cutoff frequencies f_c of the input / output.
        in_half_width, out_half_width: transition half-widths f_h.
        conv_kernel: convolution kernel size (1 for ToRGB and -r).
        up_factor, down_factor: integer resampling factors around the nonlinearity.
        up_taps, down_taps: filter lengths (1 = no filter).
        down_radial: radial (2-D jinc) down filter.
        padding: ``[x0, x1, y0, y1]`` padding of the upsampled signal.
        conv_clamp: clamp of the activation output (None = off).
        magnitude_ema_beta: decay of the input magnitude EMA.
        impl: ``filtered_lrelu`` implementation: ``"fast"`` (default), ``"conv"`` (no XLA),
            ``"ref"``, ``"fast_poly"`` or ``"auto"`` (the fastest on this machine for this
            layer's geometry, measured once and cached: :mod:`sg3keras.ops.autotune`).

    Call arguments:
        x: ``[N, in_size, in_size, in_channels]``; w: ``[N, w_dim]``;
        update_emas: update ``magnitude_ema`` first (training).

    Returns ``[N, out_size, out_size, out_channels]``.
    """

    def __init__(self, w_dim, is_torgb, in_channels, out_channels, in_size, out_size,
                 tmp_sampling_rate, in_cutoff, out_cutoff, in_half_width, out_half_width,
                 conv_kernel=3, up_factor=1, down_factor=1, up_taps=1, down_taps=1,
                 down_radial=False, padding=(0, 0, 0, 0), conv_clamp=256,
                 magnitude_ema_beta=0.999, impl="fast", **kwargs):
        super().__init__(**kwargs)
        self.w_dim = int(w_dim)
        self.is_torgb = bool(is_torgb)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.tmp_sampling_rate = float(tmp_sampling_rate)
        self.in_cutoff, self.out_cutoff = float(in_cutoff), float(out_cutoff)
        self.in_half_width, self.out_half_width = float(in_half_width), float(out_half_width)
        self.conv_kernel = int(conv_kernel)
        self.up_factor, self.down_factor = int(up_factor), int(down_factor)
        self.up_taps, self.down_taps = int(up_taps), int(down_taps)
        self.down_radial = bool(down_radial)
        self.padding = [int(p) for p in padding]
        if len(self.padding) != 4:
            raise ValueError(f"padding: expected [x0, x1, y0, y1], got {padding!r}")
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.magnitude_ema_beta = float(magnitude_ema_beta)
        if impl not in IMPLS:
            raise ValueError(f"impl: expected one of {list(IMPLS)}, got {impl!r}")
        self.impl = impl
        self.affine = FullyConnectedLayer(self.in_channels, bias_init=1.0, name="affine")

    def _filters(self):
        up = design_lowpass_filter(self.up_taps, self.in_cutoff, 2 * self.in_half_width,
                                   self.tmp_sampling_rate)
        down = design_lowpass_filter(self.down_taps, self.out_cutoff, 2 * self.out_half_width,
                                     self.tmp_sampling_rate, radial=self.down_radial)
        return up, down

    def _buffer(self, name, value):
        value = np.asarray(value, np.float32)
        return self.add_weight(name=name, shape=value.shape, trainable=False,
                               initializer=keras.initializers.Constant(value))

    def build(self, input_shape=None):
        k = self.conv_kernel
        self.affine.build((None, self.w_dim))
        self.weight = self.add_weight(name="weight",
                                      shape=(k, k, self.in_channels, self.out_channels),
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.bias = self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
        # aggregation="mean": under a distribution strategy each replica updates with its
        # local batch; the mean of those lerps is exactly the lerp with the global-batch mean.
        self.magnitude_ema = self.add_weight(name="magnitude_ema", shape=(), trainable=False,
                                             initializer="ones", aggregation="mean")
        up, down = self._filters()
        self.up_filter = None if up is None else self._buffer("up_filter", up)
        self.down_filter = None if down is None else self._buffer("down_filter", down)

    def call(self, x, w, update_emas=False):
        assert_shape(x, [None, self.in_size, self.in_size, self.in_channels], name="x")
        assert_shape(w, [None, self.w_dim], name="w")
        if update_emas:
            m = ops.mean(ops.square(ops.cast(x, "float32")))
            self.magnitude_ema.assign(lerp(m, ops.cast(self.magnitude_ema, "float32"),
                                           self.magnitude_ema_beta))
        input_gain = ops.rsqrt(ops.cast(self.magnitude_ema, x.dtype))
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        x = modulated_conv2d(x, ops.cast(self.weight, x.dtype), styles,
                             demodulate=not self.is_torgb, padding=self.conv_kernel - 1,
                             input_gain=input_gain)
        fu = None if self.up_filter is None else ops.convert_to_tensor(self.up_filter)
        fd = None if self.down_filter is None else ops.convert_to_tensor(self.down_filter)
        x = filtered_lrelu(x, fu=fu, fd=fd, b=ops.cast(self.bias, x.dtype), up=self.up_factor,
                           down=self.down_factor, padding=self.padding,
                           gain=1.0 if self.is_torgb else math.sqrt(2),
                           slope=1.0 if self.is_torgb else 0.2, clamp=self.conv_clamp,
                           impl=self.impl)
        assert_shape(x, [None, self.out_size, self.out_size, self.out_channels], name="y")
        return x

    def compute_output_shape(self, x_shape, w_shape=None):
        return (x_shape[0], self.out_size, self.out_size, self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            w_dim=self.w_dim, is_torgb=self.is_torgb, in_channels=self.in_channels,
            out_channels=self.out_channels, in_size=self.in_size, out_size=self.out_size,
            tmp_sampling_rate=self.tmp_sampling_rate, in_cutoff=self.in_cutoff,
            out_cutoff=self.out_cutoff, in_half_width=self.in_half_width,
            out_half_width=self.out_half_width, conv_kernel=self.conv_kernel,
            up_factor=self.up_factor, down_factor=self.down_factor, up_taps=self.up_taps,
            down_taps=self.down_taps, down_radial=self.down_radial, padding=list(self.padding),
            conv_clamp=self.conv_clamp, magnitude_ema_beta=self.magnitude_ema_beta,
            impl=self.impl)
        return config
