"""Style-modulated convolution of StyleGAN3 (StyleGAN2 §2.2, weight demodulation; Alias-Free GAN
Figure 4b; docs/PAPER.md), NHWC, "unfused" form.

The official code builds per-sample weights ``W_n`` and runs one grouped convolution. Here the
same linear map is computed as (with gradients the fastest form on CPU, and the only one that
stays fast under XLA, where the backward pass of a grouped convolution is very slow)
``y_n = d_n * conv(x_n * g_n * s_n, w)``, because ``conv(x, w * s_n * g) = conv(x * s_n * g, w)``
for per-input-channel factors and the demodulation coefficient ``d_n`` is per output channel.
"""

from keras import ops

from .misc import assert_shape

__all__ = ["modulated_conv2d", "demodulation_coefficients"]


def demodulation_coefficients(w, s):
    """``d[n, o] = rsqrt(sum_{k,k,i} (w[., ., i, o] * s[n, i])^2 + 1e-8)`` (StyleGAN2 Eq. 3).

    The per-sample, per-output-channel factor that gives the modulated conv unit expected output
    magnitude; shared by :func:`modulated_conv2d` (StyleGAN3) and
    :func:`sg3keras.ops.conv2d_resample.modulated_conv2d_resample` (StyleGAN2).

    Args:
        w: ``[k, k, I, O]`` weight; s: ``[N, I]`` styles (same dtype as ``w``).
    Returns:
        ``[N, O]``.
    """
    wsq = ops.sum(ops.square(w), axis=(0, 1))                                      # [I, O]
    return ops.rsqrt(ops.matmul(ops.square(s), wsq) + 1e-8)                        # [N, O]


def modulated_conv2d(x, w, s, demodulate=True, padding=0, input_gain=None):
    """Modulated (and optionally demodulated) 2-D convolution.

    Steps:
    1. If ``demodulate``: pre-normalise ``w`` per output channel by its RMS over
       ``[k, k, I]`` and ``s`` by its RMS over the *whole* ``[N, I]`` tensor (all samples).
    2. Demodulation coefficients ``d[n, o] = rsqrt(sum_{k,k,i} (w[., ., i, o] * s[n, i])**2
       + 1e-8)`` (1 when not demodulating).
    3. Per-sample input scale ``s[n, i] * input_gain[(n,) i]`` (the gain acts *after* demod, so
       it is not cancelled by it).
    4. ``y = d * conv(pad(x * scale, padding), w)`` -- one convolution shared by all samples,
       zero padding on all four sides, cross-correlation (no flip), "valid".

    Args:
        x: ``[N, H, W, I]`` activations.
        w: ``[k, k, I, O]`` weight (Keras layout).
        s: ``[N, I]`` styles.
        demodulate: normalise each output channel to unit expected magnitude. Default True.
        padding: zero padding on each side (int). Default 0.
        input_gain: None, scalar, ``[I]`` or ``[N, I]``; multiplies the effective weights per
            input channel after demodulation.
    Returns:
        ``[N, H + 2p - k + 1, W + 2p - k + 1, O]`` in ``x.dtype``.
    """
    if len(w.shape) != 4 or w.shape[0] != w.shape[1]:
        raise ValueError(f"modulated_conv2d: w must be [k, k, I, O], got shape {list(w.shape)}")
    k, _, in_ch, out_ch = (int(v) for v in w.shape)
    assert_shape(x, [None, None, None, in_ch], "modulated_conv2d: x")
    assert_shape(s, [x.shape[0], in_ch], "modulated_conv2d: s")
    padding = int(padding)
    dtype = x.dtype
    w = ops.cast(w, "float32")
    s = ops.cast(s, "float32")
    if demodulate:
        w = w * ops.rsqrt(ops.mean(ops.square(w), axis=[0, 1, 2], keepdims=True))  # [k, k, I, O]
        s = s * ops.rsqrt(ops.mean(ops.square(s)))                                  # [N, I]
    scale = s                                                                      # [N, I]
    if demodulate:
        dcoefs = demodulation_coefficients(w, s)                                   # [N, O]
    if input_gain is not None:
        g = ops.cast(input_gain, "float32")
        if len(g.shape) not in (0, 1, 2) or (len(g.shape) >= 1 and g.shape[-1] != in_ch):
            raise ValueError(f"modulated_conv2d: input_gain must be a scalar, [I] or [N, I] with "
                             f"I={in_ch}, got shape {list(g.shape)}")
        scale = scale * g
    x = x * ops.cast(ops.reshape(scale, [-1, 1, 1, in_ch]), dtype)
    if padding > 0:
        x = ops.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    y = ops.conv(x, ops.cast(w, dtype), strides=1, padding="valid", data_format="channels_last")
    if demodulate:
        y = y * ops.cast(ops.reshape(dcoefs, [-1, 1, 1, out_ch]), dtype)
    return y
