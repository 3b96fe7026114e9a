"""StyleGAN2 synthesis layers: modulated conv + noise, ToRGB and the per-resolution block.

Official ``training/networks_stylegan2.py`` (``SynthesisLayer``, ``ToRGBLayer``,
``SynthesisBlock``), NHWC, float32, always the non-fused modulated convolution
(:func:`sg3keras.ops.conv2d_resample.modulated_conv2d_resample`).
"""

import math

import keras
import numpy as np
from keras import ops

from sg3keras.layers.conv2d_layer import Conv2dLayer
from sg3keras.layers.fully_connected import FullyConnectedLayer
from sg3keras.layers.synthesis_input import SynthesisInput
from sg3keras.ops.bias_act import ACTIVATIONS, bias_act
from sg3keras.ops.conv2d_resample import modulated_conv2d_resample
from sg3keras.ops.filters import setup_filter
from sg3keras.ops.misc import lerp
from sg3keras.ops.upfirdn2d import upsample2d

__all__ = ["SynthesisLayer2", "ToRGBLayer", "SynthesisBlock2", "NOISE_MODES"]

NOISE_MODES = ("random", "const", "none")


def _filter_weight(layer, taps):
    f = setup_filter(np.asarray(taps, np.float32))
    return layer.add_weight(name="resample_filter", shape=f.shape,
                            initializer=keras.initializers.Constant(f), trainable=False)


def _add_magnitude_ema(layer):
    """The running mean square of the layer's input (Alias-Free GAN config D), or None."""
    if layer.magnitude_ema_beta is None:
        return None
    return layer.add_weight(name="magnitude_ema", shape=(), trainable=False,
                            initializer="ones", aggregation="mean")


def _normalize_magnitude(layer, x, update_emas):
    """``x / sqrt(magnitude_ema)`` after updating the EMA when ``update_emas`` (config D);
    ``x`` unchanged for a layer without it. Dividing the input equals the official folding of
    the gain into the demodulated weights."""
    if layer.magnitude_ema is None:
        return x
    if update_emas:
        m = ops.mean(ops.square(ops.cast(x, "float32")))
        layer.magnitude_ema.assign(lerp(m, ops.cast(layer.magnitude_ema, "float32"),
                                        layer.magnitude_ema_beta))
    return x * ops.rsqrt(ops.cast(layer.magnitude_ema, x.dtype))


@keras.saving.register_keras_serializable(package="sg3keras")
class SynthesisLayer2(keras.layers.Layer):
    """Style-modulated, demodulated conv (optionally up 2) + per-pixel noise + bias/lrelu/clamp.

    ``styles = affine(w)`` (FC, bias init 1); ``x = modconv(x, weight, styles, up)``; noise
    ``noise_const * noise_strength`` (``"const"``), fresh ``N(0, 1) * noise_strength``
    (``"random"``) or nothing (``"none"``) is added before ``bias_act(lrelu, gain sqrt(2) * g,
    clamp conv_clamp * g)``.

    Args:
        in_channels, out_channels: channel counts.
        w_dim: width of ``w``.
        resolution: output resolution (size of ``noise_const``).
        kernel_size: conv kernel size. Default 3.
        up: 1 or 2. Default 1.
        use_noise: whether the layer has noise inputs. Default True.
        activation: ``bias_act`` activation. Default ``"lrelu"``.
        resample_filter: low-pass taps. Default ``[1, 3, 3, 1]``.
        conv_clamp: output clamp (None = off).
        magnitude_ema_beta: None (StyleGAN2), or the decay of a running input magnitude that
            normalises the input (Alias-Free GAN config D).

    Call arguments:
        x: ``[N, R/up, R/up, in_channels]``; w: ``[N, w_dim]``;
        noise_mode: ``"random"``, ``"const"`` or ``"none"``; gain: extra output gain;
        update_emas: update ``magnitude_ema`` first.
    """

    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1,
                 use_noise=True, activation="lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp=None, magnitude_ema_beta=None, **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"SynthesisLayer2: unknown activation {activation!r}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.w_dim = int(w_dim)
        self.resolution = int(resolution)
        self.kernel_size = int(kernel_size)
        self.up = int(up)
        self.use_noise = bool(use_noise)
        self.activation = activation
        self.resample_filter = [float(v) for v in resample_filter]
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.act_gain = ACTIVATIONS[activation][2]
        self.magnitude_ema_beta = None if magnitude_ema_beta is None else \
            float(magnitude_ema_beta)
        self.affine = FullyConnectedLayer(self.in_channels, bias_init=1.0, name="affine")

    def build(self, input_shape=None):
        k, r = self.kernel_size, self.resolution
        self.affine.build((None, self.w_dim))
        self.weight = self.add_weight(name="weight", shape=(k, k, self.in_channels,
                                                            self.out_channels),
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        if self.use_noise:
            self.noise_const = self.add_weight(
                name="noise_const", shape=(r, r), trainable=False,
                initializer=keras.initializers.RandomNormal(stddev=1.0))
            self.noise_strength = self.add_weight(name="noise_strength", shape=(),
                                                  initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
        self.resample_filter_weight = _filter_weight(self, self.resample_filter)
        self.magnitude_ema = _add_magnitude_ema(self)

    def call(self, x, w, noise_mode="random", gain=1, noise=None, update_emas=False):
        """``noise``: optional ``[N, R, R, 1]`` N(0, 1) draws used instead of drawing fresh ones
        (``noise_mode="random"`` only; the training loop passes its own stateless draws)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        r = self.resolution
        if tuple(x.shape[1:]) != (r // self.up, r // self.up, self.in_channels):
            raise ValueError(f"{self.name}: x must be [N, {r // self.up}, {r // self.up}, "
                             f"{self.in_channels}], got {list(x.shape)}")
        x = _normalize_magnitude(self, x, update_emas)
        styles = self.affine(w)
        raw, noise = noise, None
        if self.use_noise and noise_mode == "random":
            if raw is None:
                raw = keras.random.normal((ops.shape(x)[0], r, r, 1))
            noise = ops.cast(raw, "float32") * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = ops.reshape(self.noise_const, (r, r, 1)) * self.noise_strength
        x = modulated_conv2d_resample(x, self.weight, styles, noise=noise,
                                      f=self.resample_filter_weight, up=self.up,
                                      padding=self.kernel_size // 2, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, out_channels=self.out_channels,
                      w_dim=self.w_dim, resolution=self.resolution,
                      kernel_size=self.kernel_size, up=self.up, use_noise=self.use_noise,
                      activation=self.activation, resample_filter=self.resample_filter,
                      conv_clamp=self.conv_clamp, magnitude_ema_beta=self.magnitude_ema_beta)
        return config


@keras.saving.register_keras_serializable(package="sg3keras")
class ToRGBLayer(keras.layers.Layer):
    """Modulated (not demodulated) 1x1 conv to image channels, bias, clamp.

    ``styles = affine(w) / sqrt(in_channels * k^2)``.

    Args:
        in_channels, out_channels: channel counts; w_dim: width of ``w``;
        kernel_size: default 1; conv_clamp: output clamp (None = off);
        magnitude_ema_beta: None, or the decay of the input magnitude EMA (config D).

    Call arguments:
        x: ``[N, H, W, in_channels]``; w: ``[N, w_dim]``; update_emas: update the EMA first.
    """

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None,
                 magnitude_ema_beta=None, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.w_dim = int(w_dim)
        self.kernel_size = int(kernel_size)
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.weight_gain = 1.0 / math.sqrt(self.in_channels * self.kernel_size ** 2)
        self.magnitude_ema_beta = None if magnitude_ema_beta is None else \
            float(magnitude_ema_beta)
        self.affine = FullyConnectedLayer(self.in_channels, bias_init=1.0, name="affine")

    def build(self, input_shape=None):
        k = self.kernel_size
        self.affine.build((None, self.w_dim))
        self.weight = self.add_weight(name="weight", shape=(k, k, self.in_channels,
                                                            self.out_channels),
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.bias = self.add_weight(name="bias", shape=(self.out_channels,), initializer="zeros")
        self.magnitude_ema = _add_magnitude_ema(self)

    def call(self, x, w, update_emas=False):
        x = _normalize_magnitude(self, x, update_emas)
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d_resample(x, self.weight, styles, demodulate=False,
                                      padding=self.kernel_size // 2)
        return bias_act(x, self.bias, clamp=self.conv_clamp)

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, out_channels=self.out_channels,
                      w_dim=self.w_dim, kernel_size=self.kernel_size, conv_clamp=self.conv_clamp,
                      magnitude_ema_beta=self.magnitude_ema_beta)
        return config


@keras.saving.register_keras_serializable(package="sg3keras")
class SynthesisBlock2(keras.layers.Layer):
    """One StyleGAN2 resolution: (const | conv0 up 2) -> conv1 (-> torgb), running RGB image.

    The first block (``in_channels == 0``) starts from the learned ``const [R, R, C]`` or, with
    ``fourier_input``, from Fourier features of bandwidth ``R/2`` sampled at ``R`` (Alias-Free
    GAN §3.1, configs B-D; :class:`SynthesisInput` without the learned transform). With the
    ``skip`` architecture (official default) every block has a ToRGB and the running image is
    upsampled with ``resample_filter`` and summed; ``resnet`` adds a 1x1 up-2 skip conv with
    ``sqrt(.5)`` gains; ``orig`` has ToRGB only in the last block.
    Uses ``num_conv + num_torgb`` consecutive ws; the next block starts ``num_conv`` later.

    Args:
        in_channels (0 = first block), out_channels, w_dim, resolution, img_channels;
        is_last: last block (always has ToRGB); architecture: ``orig``/``skip``/``resnet``;
        resample_filter: taps; conv_clamp: clamp; use_noise: noise inputs;
        fourier_input: first block only, Fourier features instead of the constant;
        magnitude_ema_beta: None, or every layer normalises its input by a magnitude EMA (D).

    Call arguments:
        x: ``[N, R/2, R/2, in_channels]`` or None; img: running image or None;
        ws: ``[N, num_conv + num_torgb, w_dim]``; noise_mode: ``random``/``const``/``none``;
        transform: the Fourier input's ``[N, 3, 3]`` transform (first block); update_emas.

    Returns ``(x [N, R, R, out_channels], img [N, R, R, img_channels] or None)``.
    """

    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last,
                 architecture="skip", resample_filter=(1, 3, 3, 1), conv_clamp=None,
                 use_noise=True, fourier_input=False, magnitude_ema_beta=None, **kwargs):
        super().__init__(**kwargs)
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"SynthesisBlock2: architecture must be orig, skip or resnet, got "
                             f"{architecture!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.w_dim, self.resolution = int(w_dim), int(resolution)
        self.img_channels, self.is_last = int(img_channels), bool(is_last)
        self.architecture = architecture
        self.resample_filter = [float(v) for v in resample_filter]
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.use_noise = bool(use_noise)
        self.fourier_input = bool(fourier_input) and self.in_channels == 0
        self.magnitude_ema_beta = None if magnitude_ema_beta is None else \
            float(magnitude_ema_beta)
        common = dict(w_dim=self.w_dim, resolution=self.resolution, use_noise=self.use_noise,
                      resample_filter=self.resample_filter, conv_clamp=self.conv_clamp,
                      magnitude_ema_beta=self.magnitude_ema_beta)
        self.conv0 = None
        if self.in_channels > 0:
            self.conv0 = SynthesisLayer2(self.in_channels, self.out_channels, up=2, name="conv0",
                                         **common)
        self.conv1 = SynthesisLayer2(self.out_channels, self.out_channels, name="conv1", **common)
        self.torgb = None
        if self.is_last or architecture == "skip":
            self.torgb = ToRGBLayer(self.out_channels, self.img_channels, self.w_dim,
                                    conv_clamp=self.conv_clamp,
                                    magnitude_ema_beta=self.magnitude_ema_beta, name="torgb")
        self._input_layer = None
        if self.fourier_input:
            r = self.resolution
            self._input_layer = SynthesisInput(self.w_dim, self.out_channels, r, r, r / 2,
                                               learned_transform=False, name="input")
        self.skip = None
        if self.in_channels > 0 and architecture == "resnet":
            self.skip = Conv2dLayer(self.out_channels, 1, use_bias=False, up=2,
                                    resample_filter=self.resample_filter, name="skip")
        self.num_conv = 2 if self.in_channels > 0 else 1
        self.num_torgb = 1 if self.torgb is not None else 0

    @property
    def input(self):
        """The Fourier-feature :class:`SynthesisInput` of the first block, or None."""
        return self._input_layer

    def build(self, input_shape=None):
        r, c = self.resolution, self.out_channels
        if self.input is not None:
            self.input.build()
        elif self.in_channels == 0:
            self.const = self.add_weight(name="const", shape=(r, r, c),
                                         initializer=keras.initializers.RandomNormal(stddev=1.0))
        for layer in (self.conv0, self.conv1, self.torgb):
            if layer is not None:
                layer.build()
        if self.skip is not None:
            self.skip.build((None, r // 2, r // 2, self.in_channels))
        self.resample_filter_weight = _filter_weight(self, self.resample_filter)

    def call(self, x, img, ws, noise_mode="random", noise=None, transform=None,
             update_emas=False):
        """``noise``: optional ``{"conv0"|"conv1": [N, R, R, 1]}`` draws for the layers."""
        noise = noise or {}
        n_ws = self.num_conv + self.num_torgb
        if len(ws.shape) != 3 or tuple(ws.shape[1:]) != (n_ws, self.w_dim):
            raise ValueError(f"{self.name}: ws must be [N, {n_ws}, {self.w_dim}], "
                             f"got {list(ws.shape)}")
        ws = ops.cast(ws, "float32")
        ema = dict(update_emas=True) if update_emas else {}
        if self.in_channels == 0:
            if self.input is not None:
                x = self.input(ws[:, 0], transform=transform)
            else:
                x = ops.zeros_like(ws[:, :1, :1])[..., None] + self.const[None]  # [N, R, R, C]
            x = self.conv1(x, ws[:, 0], noise_mode=noise_mode, noise=noise.get("conv1"), **ema)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, ws[:, 0], noise_mode=noise_mode, noise=noise.get("conv0"), **ema)
            x = self.conv1(x, ws[:, 1], noise_mode=noise_mode, gain=math.sqrt(0.5),
                           noise=noise.get("conv1"), **ema)
            x = y + x
        else:
            x = self.conv0(x, ws[:, 0], noise_mode=noise_mode, noise=noise.get("conv0"), **ema)
            x = self.conv1(x, ws[:, 1], noise_mode=noise_mode, noise=noise.get("conv1"), **ema)
        if img is not None:
            img = upsample2d(img, self.resample_filter_weight)
        if self.torgb is not None:
            y = ops.cast(self.torgb(x, ws[:, self.num_conv], **ema), "float32")
            img = y if img is None else img + y
        return x, img

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, out_channels=self.out_channels,
                      w_dim=self.w_dim, resolution=self.resolution,
                      img_channels=self.img_channels, is_last=self.is_last,
                      architecture=self.architecture, resample_filter=self.resample_filter,
                      conv_clamp=self.conv_clamp, use_noise=self.use_noise,
                      fourier_input=self.fourier_input,
                      magnitude_ema_beta=self.magnitude_ema_beta)
        return config
