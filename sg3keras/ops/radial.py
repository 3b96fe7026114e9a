"""The strided 2-D (radial) down filter of ``filtered_lrelu``, two exact formulations, NHWC.

Both compute ``y[i, j] = sum_{a, b} g[a, b] * x[down*i + a, down*j + b]`` ("valid"
correlation with the ``[kh, kw]`` kernel ``g``, every ``down``-th output of both axes):

- :func:`down_2d_strided`: one depthwise convolution with stride ``down`` (oneDNN's strided
  kernel on TensorFlow CPU);
- :func:`down_2d_phases`: the polyphase split. With ``x`` cut into its ``down**2`` phases
  ``x_pq[i, j] = x[down*i + p, down*j + q]`` and ``g`` into sub-kernels ``g_pq[a, b] =
  g[down*a + p, down*b + q]`` (``g`` zero-padded to a multiple of ``down``), ``y = sum_pq
  corr(x_pq, g_pq)``: an unstrided depthwise convolution over the phases stacked along
  channels (``[N, H/d, W/d, d*d*C]``), then a sum over the phase groups. Same products, another
  summation order (equal to float rounding); which kernel is faster depends on the CPU, so the
  autotuner (:mod:`sg3keras.ops.autotune`) times both (``impl="fast"`` vs ``"fast_poly"``).
"""

from keras import ops

__all__ = ["down_2d_strided", "down_2d_phases"]


def down_2d_strided(x, g, down):
    """2-D FIR (correlation kernel ``g [kh, kw]``) kept at every ``down``-th sample of both
    axes: one strided depthwise convolution."""
    kh, kw, c = int(g.shape[0]), int(g.shape[1]), x.shape[3]
    kernel = ops.broadcast_to(ops.reshape(g, [kh, kw, 1, 1]), [kh, kw, c, 1])
    return ops.depthwise_conv(x, kernel, strides=down, padding="valid")


def down_2d_phases(x, g, down):
    """Same result as :func:`down_2d_strided`, as one unstrided depthwise convolution over the
    ``down**2`` polyphase components stacked along channels (module docstring)."""
    if down == 1:
        return down_2d_strided(x, g, 1)
    d = int(down)
    kh, kw = int(g.shape[0]), int(g.shape[1])
    n, h, w, c = x.shape
    ho, wo = (h - kh) // d + 1, (w - kw) // d + 1
    sh, sw = -(-kh // d), -(-kw // d)                      # sub-kernel taps per axis
    g = ops.pad(g, [[0, sh * d - kh], [0, sw * d - kw]])   # zero taps: exact
    # the rows/columns the phases need: d * (out + sub - 1), zero rows past the end are
    # multiplied by the zero taps only
    ph, pw = d * (ho + sh - 1), d * (wo + sw - 1)
    x = x[:, :min(h, ph), :min(w, pw), :]
    if x.shape[1] < ph or x.shape[2] < pw:
        x = ops.pad(x, [[0, 0], [0, ph - x.shape[1]], [0, pw - x.shape[2]], [0, 0]])
    x = ops.reshape(x, [-1, ph // d, d, pw // d, d, c])
    x = ops.reshape(ops.transpose(x, [0, 1, 3, 2, 4, 5]), [-1, ph // d, pw // d, d * d * c])
    sub = ops.transpose(ops.reshape(g, [sh, d, sw, d]), [0, 2, 1, 3])     # [sh, sw, p, q]
    kernel = ops.broadcast_to(ops.reshape(sub, [sh, sw, d * d, 1, 1]), [sh, sw, d * d, c, 1])
    y = ops.depthwise_conv(x, ops.reshape(kernel, [sh, sw, d * d * c, 1]), padding="valid")
    return ops.sum(ops.reshape(y, [-1, ho, wo, d * d, c]), axis=3)
