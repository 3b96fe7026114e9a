"""Filtered leaky ReLU: the alias-free nonlinearity of StyleGAN3 (paper §3.2), NHWC.

Two implementations behind one signature (Alias-Free GAN §2.1 "Nonlinearity", Appendix D;
docs/PAPER.md):

- ``impl="ref"``: the literal composition bias -> ``upfirdn2d(up, padding, gain=up**2)`` ->
  lrelu * gain -> clamp -> ``upfirdn2d(down)``. It materialises the zero-stuffed upsampled image.
- ``impl="fast"``: the same maths in polyphase form. Upsampling by ``u`` with a ``K``-tap filter
  is ``u`` interleaved correlations with sub-filters of ``~K/u`` taps applied to the
  *low-resolution* signal; downsampling evaluates the filter only at the kept positions (strided
  slices). Each correlation is a sum of shifted slices times scalar taps, i.e. purely
  elementwise work that XLA fuses into a few loops. Separable filters run one axis at a time
  (x first); 2-D filters (e.g. radial down filters) use 2-D tap sums. No zero-stuffed tensor is
  built. On the TensorFlow backend the fast path is compiled with
  ``tf.function(jit_compile=True)`` (:mod:`sg3keras.ops.xla`).
- ``impl="fast_poly"``: ``"fast"`` with the 2-D down filter as polyphase components
  (:mod:`sg3keras.ops.radial`); ``impl="auto"`` picks per geometry (:mod:`sg3keras.ops.autotune`).
- ``impl="conv"``: the same polyphase plan as depthwise convolutions, matmuls and reshapes, for
  graphs that must run without XLA (the exported SavedModel, :mod:`sg3keras.export`).
  Upsampling along W copies the input once per phase along channels and filters each copy with
  its sub-filter in one depthwise convolution (the result, read as ``[..., Q, up, C]``, is the
  interleaved signal). Upsampling along H is a matmul: each block of output rows is one fixed
  ``[up * B, B + T - 1]`` matrix times a window of input rows (measured faster than the
  depthwise form, whose channel copies are as large as the output). Both passes' zero
  padding, the overlapping row windows and the per-phase copies are made from the small input
  (one pad and one gather) so that no large intermediate is copied. Downsampling is a depthwise
  convolution with stride ``down`` that computes the kept samples only, on a view whose other
  axis has size 1 (``[N * H, W, 1, C]`` for W, ``[N, H, 1, W * C]`` for H; depthwise strides
  must be equal on both axes). The lrelu gain is folded into the up filter
  (``lrelu(g t) = g lrelu(t)`` for ``g > 0``). The clamp is a full pass over the largest
  tensor, so it runs only when it can change something: ``max|x + b|`` times the largest L1
  norm of the up filter's phase sub-filters (per axis) times the gain bounds every activation,
  and when that bound is below the clamp a ``cond`` skips the clip (the result is identical).
"""

import math

import keras
import numpy as np
from keras import backend, ops

from .autotune import choose_impl
from .bias_act import bias_act
from .misc import parse_padding
from .radial import down_2d_phases, down_2d_strided
from .upfirdn2d import filter_size, prepare_filter, upfirdn2d

__all__ = ["filtered_lrelu", "filtered_lrelu_fast", "output_size", "IMPLS"]

IMPLS = ("ref", "fast", "conv", "fast_poly", "auto")
CONV_STAGES = ("bias", "clamp_bound", "pad_gather", "up_w", "up_h", "lrelu", "clamp",
               "down_w", "down_h", "down_2d", "crop")   # impl="conv" name scopes
_scope = keras.name_scope
_HALF = ("float16", "bfloat16")


def output_size(in_size, up, down, padding, fu_taps, fd_taps):
    """Output length along one axis: ``(in*up + p0 + p1 - (Ku-1) - (Kd-1) + (down-1)) // down``."""
    p0, p1 = padding
    return (in_size * up + p0 + p1 - (fu_taps - 1) - (fd_taps - 1) + (down - 1)) // down


def _factor(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"filtered_lrelu: {name} must be an int >= 1, got {v!r}")
    return int(v)


def _check_filter(f, name):
    if f is None:
        return
    shape = list(f.shape)
    if len(shape) not in (1, 2) or 0 in shape:
        raise ValueError(f"filtered_lrelu: {name} must be None, 1-D [taps] or 2-D [fh, fw], "
                         f"got shape {shape}")


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=math.sqrt(2),
                   slope=0.2, clamp=None, flip_filter=False, impl="fast"):
    """Bias, upsample, leaky ReLU, clamp and downsample, with alias-suppressing FIR filters.

    Steps:
    1. add ``b`` per channel;
    2. upsample by ``up`` (zero insertion after each sample), pad/crop by ``padding`` relative
       to the upsampled image, convolve with ``fu`` at gain ``up**2``;
    3. leaky ReLU with ``slope``, multiply by ``gain``;
    4. clamp to ``[-clamp, clamp]`` (if ``clamp`` is not None);
    5. convolve with ``fd`` and keep every ``down``-th sample.
    Filters are convolved (flipped) unless ``flip_filter``; 1-D filters are separable.

    Args:
        x: ``[N, H, W, C]`` float tensor (float32/float16/bfloat16; dynamic batch allowed).
        fu: up filter: None (identity), 1-D ``[taps]`` or 2-D ``[fh, fw]`` (numpy or tensor).
        fd: down filter: same forms as ``fu``.
        b: None or ``[C]`` bias.
        up: integer upsampling factor (>= 1). Default 1.
        down: integer downsampling factor (>= 1). Default 1.
        padding: int, ``[px, py]`` or ``[x0, x1, y0, y1]`` w.r.t. the upsampled image.
        gain: scale after the lrelu. Default sqrt(2).
        slope: negative slope of the lrelu. Default 0.2.
        clamp: None or the clamp bound (applied after the gain).
        flip_filter: correlate instead of convolve. Default False.
        impl: ``"fast"`` (polyphase, XLA on TensorFlow; default), ``"conv"`` (polyphase as
            depthwise convolutions, no XLA), ``"ref"``, ``"fast_poly"`` (``"fast"`` with the
            2-D down filter in polyphase form, :mod:`sg3keras.ops.radial`) or ``"auto"`` (the
            fastest of these on this machine, measured once and cached:
            :mod:`sg3keras.ops.autotune`).
    Returns:
        ``[N, H', W', C]`` with sizes from :func:`output_size`, in ``x.dtype``.
    """
    if impl not in IMPLS:
        raise ValueError(f"filtered_lrelu: impl must be one of {IMPLS}, got {impl!r}")
    if len(x.shape) != 4 or any(s is None for s in x.shape[1:]):
        raise ValueError(f"filtered_lrelu: x must be NHWC [N, H, W, C] with static H, W, C, "
                         f"got shape {list(x.shape)}")
    up, down = _factor(up, "up"), _factor(down, "down")
    _check_filter(fu, "fu")
    _check_filter(fd, "fd")
    pad = parse_padding(padding)
    if b is not None and (len(b.shape) != 1 or b.shape[0] != x.shape[-1]):
        raise ValueError(f"filtered_lrelu: b must be [C] = [{x.shape[-1]}], got {list(b.shape)}")
    fuw, fuh = filter_size(fu)
    fdw, fdh = filter_size(fd)
    out_w = output_size(x.shape[2], up, down, pad[0:2], fuw, fdw)
    out_h = output_size(x.shape[1], up, down, pad[2:4], fuh, fdh)
    if out_w < 1 or out_h < 1:
        raise ValueError(f"filtered_lrelu: x {list(x.shape)} with up={up}, down={down}, "
                         f"padding={padding} gives an empty output")
    args = dict(up=up, down=down, padding=pad, gain=float(gain), slope=float(slope),
                clamp=None if clamp is None else float(clamp), flip_filter=bool(flip_filter))
    if impl == "auto":
        impl = choose_impl(filtered_lrelu, x, fu, fd, b, args)
    if impl == "ref":
        return _filtered_lrelu_ref(x, fu, fd, b, **args)
    if impl == "conv":
        return filtered_lrelu_conv(x, fu, fd, b, **args)
    fu = None if fu is None else ops.convert_to_tensor(fu, "float32")
    fd = None if fd is None else ops.convert_to_tensor(fd, "float32")
    b = None if b is None else ops.convert_to_tensor(b)
    down_2d = down_2d_phases if impl == "fast_poly" else down_2d_strided
    if backend.backend() == "tensorflow":
        from . import xla  # TensorFlow-only; imported lazily
        stage = xla.compiled_stage
        return xla.with_custom_gradient(
            lambda x, b, fu, fd: filtered_lrelu_fast(x, fu, fd, b, **args, stage=stage,
                                                     down_2d=down_2d),
            lambda dy, x, b, fu, fd: filtered_lrelu_fast_grad(dy, x, fu, fd, b, **args,
                                                              stage=stage),
            x, b, consts=(fu, fd))
    return filtered_lrelu_fast(x, fu, fd, b, **args, down_2d=down_2d)


def _filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=padding, flip_filter=flip_filter, gain=up ** 2)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down, flip_filter=flip_filter)


def _phase_taps(length, taps, up, p0, p1):
    """Polyphase plan for one axis of upsample(up) -> pad(p0, p1) -> correlate(taps).

    Output ``y[u*q + r] = sum_t g[idx[r][t]] * xp[q + t]`` with ``xp`` = ``x`` padded by
    ``(lo, hi)`` (negative = crop), ``g`` the correlation kernel and ``idx = -1`` for no tap.
    Returns ``(out_len, q_len, lo, hi, idx)``.
    """
    out_len = length * up + p0 + p1 - taps + 1
    q_len = -(-out_len // up)
    # y[u*q + r] = sum_a g[u*a + p0 - r] * x[q + a]
    a_min = min(-((p0 - r) // up) for r in range(up))
    a_max = max((taps - 1 + r - p0) // up for r in range(up))
    idx = [[u_a if 0 <= u_a < taps else -1
            for u_a in (up * a + p0 - r for a in range(a_min, a_max + 1))] for r in range(up)]
    return out_len, q_len, -a_min, q_len + a_max - length, idx


def _crop_pad(x, axis, lo, hi):
    """Pad (zeros) / crop one axis (1 = H, 2 = W) by ``(lo, hi)``; negative = crop."""
    return _pad2(x, (lo, hi) if axis == 1 else (0, 0), (lo, hi) if axis == 2 else (0, 0))


def _pad2(x, h, w):
    """Pad (zeros) / crop H by ``h = (lo, hi)`` and W by ``w``: one pad and one slice at most."""
    pads = [[0, 0], [max(h[0], 0), max(h[1], 0)], [max(w[0], 0), max(w[1], 0)], [0, 0]]
    if any(p for pair in pads for p in pair):
        x = ops.pad(x, pads)
    if min(*h, *w) < 0:
        x = x[:, max(-h[0], 0):x.shape[1] - max(-h[1], 0),
              max(-w[0], 0):x.shape[2] - max(-w[1], 0), :]
    return x


def _shift(x, offsets, steps, counts):
    """Slice ``x[:, oy + sy*i, ox + sx*j, :]`` for i < counts[0], j < counts[1]."""
    (oy, ox), (sy, sx), (ny, nx) = offsets, steps, counts
    return x[:, oy:oy + sy * (ny - 1) + 1:sy, ox:ox + sx * (nx - 1) + 1:sx, :]


def _tap_sum(x, g, taps, steps, counts):
    """``sum_k g[k] * shift(x, offset_k)`` over ``taps = [(g_index, (oy, ox)), ...]``."""
    y = None
    for gi, off in taps:
        term = _shift(x, off, steps, counts) * g[gi]
        y = term if y is None else y + term
    return y


def _interleave(phases, axis):
    """Interleave equal tensors along ``axis`` (1 = H, 2 = W): ``out[u*q + r] = phases[r][q]``."""
    if len(phases) == 1:
        return phases[0]
    y = ops.stack(phases, axis=axis + 1)                           # [..., Q, u, ...]
    shape = list(y.shape)
    shape[axis:axis + 2] = [shape[axis] * shape[axis + 1]]
    shape[0] = -1
    return ops.reshape(y, shape)


def _upsample_axes(x, g, up, pad, axes):
    """Polyphase up-FIR along ``axes`` (``(2,)``, ``(1,)`` for 1-D g, ``(1, 2)`` for 2-D g)."""
    taps_hw = list(g.shape) if len(axes) == 2 else [g.shape[0]]
    plans = []
    for axis, k in zip(axes, taps_hw):
        p0, p1 = pad[0:2] if axis == 2 else pad[2:4]
        plans.append(_phase_taps(x.shape[axis], int(k), up, p0, p1))
    for axis, plan in zip(axes, plans):
        x = _crop_pad(x, axis, plan[2], plan[3])
    gf = ops.reshape(g, [-1])
    if len(axes) == 1:
        axis, (out_len, q_len, _, _, idx) = axes[0], plans[0]
        counts = [x.shape[1], x.shape[2]]
        counts[axis - 1] = q_len
        phases = []
        for row in idx:
            taps = [(i, (t, 0) if axis == 1 else (0, t)) for t, i in enumerate(row) if i >= 0]
            phases.append(_tap_sum(x, gf, taps, (1, 1), counts))
        y = _interleave(phases, axis)
        return _crop_pad(y, axis, 0, out_len - q_len * up)
    (oy_len, qy, _, _, idy), (ox_len, qx, _, _, idx) = plans
    kw = int(g.shape[1])
    rows = []
    for ry in idy:
        cols = []
        for rx in idx:
            taps = [(iy * kw + ix, (ty, tx)) for ty, iy in enumerate(ry) if iy >= 0
                    for tx, ix in enumerate(rx) if ix >= 0]
            cols.append(_tap_sum(x, gf, taps, (1, 1), (qy, qx)))
        rows.append(_interleave(cols, 2))
    y = _interleave(rows, 1)
    y = _crop_pad(y, 1, 0, oy_len - qy * up)
    return _crop_pad(y, 2, 0, ox_len - qx * up)


def _downsample_axes(x, g, down, axes, pad=(0, 0, 0, 0)):
    """Pad/crop by ``pad`` (x0, x1, y0, y1), then FIR with correlation kernel ``g`` and keep every
    ``down``-th sample, evaluating only the kept positions (strided slices)."""
    for axis in axes:
        x = _crop_pad(x, axis, *(pad[0:2] if axis == 2 else pad[2:4]))
    gf = ops.reshape(g, [-1])
    if len(axes) == 1:
        axis, k = axes[0], int(g.shape[0])
        counts = [x.shape[1], x.shape[2]]
        counts[axis - 1] = (x.shape[axis] - k) // down + 1
        steps = (down, 1) if axis == 1 else (1, down)
        taps = [(t, (t, 0) if axis == 1 else (0, t)) for t in range(k)]
        return _tap_sum(x, gf, taps, steps, counts)
    kh, kw = int(g.shape[0]), int(g.shape[1])
    counts = ((x.shape[1] - kh) // down + 1, (x.shape[2] - kw) // down + 1)
    taps = [(ty * kw + tx, (ty, tx)) for ty in range(kh) for tx in range(kw)]
    return _tap_sum(x, gf, taps, (down, down), counts)


def _up_fir(x, g, up, padding):
    """Separable (1-D ``g``: x then y) or 2-D polyphase up-FIR."""
    if len(g.shape) == 1:
        return _upsample_axes(_upsample_axes(x, g, up, padding, (2,)), g, up, padding, (1,))
    return _upsample_axes(x, g, up, padding, (1, 2))


def _upsampled(x, fu, b, up, padding, flip_filter):
    """Steps 1-2: bias, then up-FIR at gain ``up**2``; returns the pre-activation ``t``."""
    if b is not None:
        x = x + ops.reshape(ops.cast(b, x.dtype), [1, 1, 1, -1])
    fu = np.ones([1], np.float32) if fu is None else fu
    return _up_fir(x, prepare_filter(fu, x.dtype, flip_filter, gain=up ** 2), up, padding)


def _call(fn, *tensors, **static):
    return fn(*tensors, **static)


def _acc(x):
    """Filters accumulate in float32 for 16-bit inputs (as the official CUDA kernel does): a
    float32 FIR is both more accurate and, on CPU, far faster than an emulated bfloat16 one."""
    return ops.cast(x, "float32") if backend.standardize_dtype(x.dtype) in _HALF else x


def _out(x, dtype):
    return x if dtype is None else ops.cast(x, dtype)


# Stages of the fast path. Each is compiled separately on TensorFlow (sg3keras.ops.xla): fusing
# two tapped passes into one XLA loop makes XLA recompute the first pass once per tap of the
# second (measured 480 ms vs 90 ms for the two down passes of a 256-px layer), so the stage
# boundaries materialise exactly the intermediates that the reference path also builds.

def stage_up_act(x, fu, b, up, padding, gain, slope, clamp, flip_filter, dtype=None):
    """Bias, polyphase up-FIR (gain up**2), lrelu * gain, clamp; result cast to ``dtype``."""
    t = _upsampled(_acc(x), fu, b, up, padding, flip_filter)
    t = ops.where(t >= 0, t, t * slope)
    if gain != 1:
        t = t * gain
    return _out(t if clamp is None else ops.clip(t, -clamp, clamp), dtype)


def stage_down(x, fd, down, flip_filter, axes, dtype=None):
    """Down-FIR along ``axes`` evaluated at the kept positions only; result cast to ``dtype``."""
    fd = np.ones([1], np.float32) if fd is None else fd
    x = _acc(x)
    return _out(_downsample_axes(x, prepare_filter(fd, x.dtype, flip_filter), down, axes), dtype)


def stage_adjoint_down(dy, fd, down, flip_filter, t_size):
    """Adjoint of :func:`stage_down` (both axes): zero-insert by ``down``, pad, correlate with
    the flipped kernel; returns the gradient at the upsampled size ``t_size = (th, tw)``."""
    fd = np.ones([1], np.float32) if fd is None else fd
    dy = _acc(dy)
    gd = prepare_filter(fd, dy.dtype, not flip_filter)
    kdw, kdh = filter_size(fd)
    (th, tw), (qh, qw) = t_size, dy.shape[1:3]
    return _up_fir(dy, gd, down, (kdw - 1, tw - qw * down, kdh - 1, th - qh * down))


def stage_act_grad(g, x, fu, b, up, padding, gain, slope, clamp, flip_filter):
    """Multiply by the derivative of clamp(lrelu(t) * gain), recomputing ``t`` from ``x``."""
    t = _upsampled(_acc(x), fu, b, up, padding, flip_filter)
    g = ops.cast(g, t.dtype)
    scale = ops.where(t >= 0, ops.ones_like(t) * gain, ops.ones_like(t) * (slope * gain))
    if clamp is not None:
        act = ops.where(t >= 0, t, t * slope) * gain
        scale = ops.where(ops.abs(act) <= clamp, scale, ops.zeros_like(scale))
    return g * scale


def stage_adjoint_up(g, fu, up, padding, flip_filter, axes):
    """Adjoint of the up-FIR along ``axes``: pad ``K-1-p``, correlate with the flipped kernel,
    keep every ``up``-th sample."""
    fu = np.ones([1], np.float32) if fu is None else fu
    g = _acc(g)
    gu = prepare_filter(fu, g.dtype, not flip_filter, gain=up ** 2)
    kuw, kuh = filter_size(fu)
    x0, x1, y0, y1 = padding
    return _downsample_axes(g, gu, up, axes,
                            (kuw - 1 - x0, kuw - 1 - x1, kuh - 1 - y0, kuh - 1 - y1))


def _axes_passes(f):
    return [(1, 2)] if f is not None and len(f.shape) == 2 else [(2,), (1,)]


def filtered_lrelu_fast(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter,
                        stage=_call, down_2d=down_2d_strided):
    """Polyphase ``filtered_lrelu`` written with ``keras.ops`` (any backend). Arguments as
    :func:`filtered_lrelu`, already validated (``padding`` a 4-tuple, filters float32 tensors or
    None); ``stage(fn, *tensors, **static)`` runs each stage (``sg3keras.ops.xla`` compiles it).
    """
    dtype = backend.standardize_dtype(x.dtype)
    dtype = dtype if dtype in _HALF else None     # 16-bit in: float32 inside, cast at the end
    if fd is None and down == 1:
        return stage(stage_up_act, x, fu, b, up=up, padding=padding, gain=gain, slope=slope,
                     clamp=clamp, flip_filter=flip_filter, dtype=dtype)
    if fd is not None and len(fd.shape) == 2:
        # A 2-D (radial) down filter is one strided depthwise convolution: oneDNN's kernel runs
        # it ~3x faster than XLA's sum of K*K shifted slices (bench/ops.py --radial). oneDNN
        # also has a native bfloat16 depthwise kernel (float32 accumulation, ~2x the float32
        # rate on avx512_bf16), so bfloat16 layers hand it bfloat16; float16 stays float32.
        mid = dtype if dtype == "bfloat16" else None
        y = stage(stage_up_act, x, fu, b, up=up, padding=padding, gain=gain, slope=slope,
                  clamp=clamp, flip_filter=flip_filter, dtype=mid)
        y = down_2d(y, prepare_filter(fd, y.dtype, flip_filter), down)
        return _out(y, dtype)
    y = stage(stage_up_act, x, fu, b, up=up, padding=padding, gain=gain, slope=slope,
              clamp=clamp, flip_filter=flip_filter)
    passes = _axes_passes(fd)
    for i, axes in enumerate(passes):
        y = stage(stage_down, y, fd, down=down, flip_filter=flip_filter, axes=axes,
                  dtype=dtype if i == len(passes) - 1 else None)
    return y


def filtered_lrelu_fast_grad(dy, x, fu, fd, b, up, down, padding, gain, slope, clamp,
                             flip_filter, stage=_call):
    """Gradients ``(dx, db)`` of :func:`filtered_lrelu_fast` for the upstream gradient ``dy``.

    The adjoint of "zero-insert by u, pad (p0, p1), correlate with g" is "pad (K-1-p0, K-1-p1),
    correlate with flip(g), keep every u-th sample", and the adjoint of "correlate with h, keep
    every d-th" is "zero-insert by d, pad (K-1, rest), correlate with flip(h)". So the backward
    pass is itself a filtered-lrelu-like chain with swapped resampling roles:
    1. ``g = adjoint_down(dy)`` at the upsampled resolution;
    2. ``g *= gain * (1 if t >= 0 else slope) * [|lrelu(t) * gain| <= clamp]``, recomputing the
       pre-activation ``t`` (cheaper than storing it);
    3. ``dx = adjoint_up(g)``; ``db = sum(dx over N, H, W)``.
    """
    g = dy
    if fd is not None or down > 1:
        fuw, fuh = filter_size(fu)
        t_size = (x.shape[1] * up + padding[2] + padding[3] - fuh + 1,
                  x.shape[2] * up + padding[0] + padding[1] - fuw + 1)
        g = stage(stage_adjoint_down, dy, fd, down=down, flip_filter=flip_filter, t_size=t_size)
    g = stage(stage_act_grad, g, x, fu, b, up=up, padding=padding, gain=gain, slope=slope,
              clamp=clamp, flip_filter=flip_filter)
    for axes in _axes_passes(fu):
        g = stage(stage_adjoint_up, g, fu, up=up, padding=padding, flip_filter=flip_filter,
                  axes=axes)
    db = None if b is None else ops.cast(ops.sum(g, axis=[0, 1, 2]), b.dtype)
    return ops.cast(g, x.dtype), db


# ------------------------------------------------------------------------------------------------
# impl="conv": the polyphase plan as depthwise convolutions (no XLA; see the module docstring).

def _taps(g, index):
    """``g[index]`` with ``index = -1`` meaning "no tap" (0): the sub-filters of a phase plan."""
    gz = ops.concatenate([ops.zeros([1], g.dtype), g])
    return ops.take(gz, np.asarray(index, np.int32) + 1, axis=0)


def _up_plan(length, g, up, p0, p1, block=False):
    """The phase plan of one up pass: ``(idx, lo, hi, q_len)`` with ``(lo, hi)`` the padding
    (negative = crop) of the *input* that the pass reads. With ``block`` (the H pass), ``hi``
    also covers the rows of the last, partly used, matmul block."""
    _, q_len, lo, hi, idx = _phase_taps(length, int(g.shape[0]), up, p0, p1)
    if block:
        rows, nb = _blocks(q_len)
        hi += nb * rows - q_len
    return idx, lo, hi, q_len


def _conv_up_cols(x, g, up, idx):
    """Up-FIR along W with correlation kernel ``g`` (1-D tensor) and the phase plan ``idx``,
    of the padded input given as ``up`` copies along channels (``[N, H, W, up*C]``, from
    :func:`_row_frames`): one depthwise convolution filters copy ``r`` with phase ``r``'s
    sub-filter, and ``[..., Q, up*C]`` read as ``[..., Q*up, C]`` is the interleaved signal.
    The phases give ``ceil(out/up) * up`` samples; the (< ``up``) extra ones at the end are
    kept for the caller to crop."""
    h, c = x.shape[1], x.shape[3] // up
    sub = _taps(g, idx)                                                  # [up, T]
    t = sub.shape[1]
    kernel = ops.broadcast_to(ops.reshape(ops.transpose(sub), [1, t, up, 1, 1]),
                              [1, t, up, c, 1])
    y = ops.depthwise_conv(x, ops.reshape(kernel, [1, t, up * c, 1]), padding="valid")
    return ops.reshape(y, [-1, h, (x.shape[2] - t + 1) * up, c])


def _peak(x):
    """``max |x|`` as two read-only reductions (``abs`` would write a copy first)."""
    return ops.maximum(ops.max(x), -ops.min(x))


def _phase_l1(g, idx):
    """Largest L1 norm of the phase sub-filters of an up pass: a bound on the pass's gain."""
    return ops.max(ops.sum(ops.abs(_taps(g, idx)), axis=1))


def _blocks(q_len, lo=8, hi=24):
    """The H pass's matmul blocks ``(B, nb)``: ``B`` phase rows each, the size in ``[lo, hi]``
    that wastes the fewest rows, and ``nb = ceil(q_len / B)`` of them."""
    rows = min(range(lo, hi + 1), key=lambda b: (-(-q_len // b) * b - q_len, -b))
    return rows, -(-q_len // rows)


def _row_frames(x, t, q_len, up):
    """What the two up passes read, gathered from the small (padded) input in one copy:
    the overlapping row windows of the H pass's matmul blocks (``win = B + T - 1`` rows per
    block of ``B`` phase rows), each pixel repeated ``up`` times along channels for the W pass
    (:func:`_conv_up_cols`). Returns ``[N, nb * win, W, up * C]``."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    rows, nb = _blocks(q_len)
    assert h == nb * rows + t - 1, (x.shape, nb, rows, t)
    win_rows = (np.arange(nb)[:, None] * rows + np.arange(rows + t - 1)).reshape(-1, 1, 1)
    # (row, col, copy) -> pixel; built in the graph: as a constant it would be ~F*W*up int32s
    # per layer in the exported file (tens of MB at 1024 px)
    pick = (ops.convert_to_tensor(win_rows.astype(np.int32) * w)
            + ops.reshape(ops.arange(w, dtype="int32"), [1, w, 1])
            + ops.zeros([1, 1, up], "int32"))
    y = ops.take(ops.reshape(x, [-1, h * w, c]), ops.reshape(pick, [-1]), axis=1)
    return ops.reshape(y, [-1, win_rows.size, w, up * c])


def _conv_up_rows(x, g, up, idx, q_len):
    """Up-FIR along H as a matmul on the row windows of :func:`_row_frames` (``x``, already
    filtered along W): each block of ``B`` phase rows is one ``[up*B, B+T-1]`` matrix (the same
    for every block, broadcast over N and blocks) times its window. Output rows past
    ``ceil(out/up)*up`` (< ``up*B``) are kept for the caller to crop."""
    w, c = x.shape[2], x.shape[3]
    t = len(idx[0])
    rows, nb = _blocks(q_len)
    win = rows + t - 1
    frames = ops.reshape(x, [-1, nb, win, w * c])
    where = np.full([up * rows, win], -1, np.int32)                  # -1 -> no tap
    for a in range(rows):
        for r in range(up):
            where[up * a + r, a:a + t] = idx[r]
    y = ops.matmul(_taps(g, where), frames)                          # [N, nb, up*rows, W*C]
    return ops.reshape(y, [-1, nb * up * rows, w, c])


def _conv_down_axis(x, g, down, axis):
    """Correlate with ``g`` (1-D tensor) along ``axis``, keeping every ``down``-th sample: one
    strided depthwise convolution over a view in which the pass axis is the row axis and the
    column axis has size 1 (depthwise convolutions need equal strides on both)."""
    k, n, h, w, c = int(g.shape[0]), x.shape[axis], x.shape[1], x.shape[2], x.shape[3]
    q = (n - k) // down + 1
    if axis == 2:
        xv, per = ops.reshape(x, [-1, w, 1, c]), c                  # [N*H, W, 1, C]
    else:
        xv, per = ops.reshape(x, [-1, h, 1, w * c]), w * c          # [N, H, 1, W*C]
    kernel = ops.broadcast_to(ops.reshape(g, [k, 1, 1, 1]), [k, 1, per, 1])
    y = ops.depthwise_conv(xv, kernel, strides=down, padding="valid")
    return ops.reshape(y, [-1, h, q, c] if axis == 2 else [-1, q, w, c])


def filtered_lrelu_conv(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    """``filtered_lrelu`` as depthwise convolutions (``impl="conv"``). Arguments as
    :func:`filtered_lrelu`, validated; ``padding`` a 4-tuple. Filters run in float32."""
    dtype = backend.standardize_dtype(x.dtype)
    fuw, fuh = filter_size(fu)
    fdw, fdh = filter_size(fd)
    out_h = output_size(x.shape[1], up, down, padding[2:4], fuh, fdh)
    out_w = output_size(x.shape[2], up, down, padding[0:2], fuw, fdw)
    x = _acc(x)
    if b is not None:
        with _scope("bias"):
            x = x + ops.reshape(ops.cast(b, x.dtype), [1, 1, 1, -1])
    fold = gain if gain > 0 else 1.0                   # lrelu(g t) = g lrelu(t) for g > 0
    reach = None                                       # bound on |x| after the up filter
    if fu is None and up == 1:
        x = _pad2(x, padding[2:4], padding[0:2])
        x = x * fold if fold != 1 else x
        if clamp is not None:
            reach = _peak(x)
    else:
        gu = prepare_filter(np.ones([1], np.float32) if fu is None else fu, "float32",
                            flip_filter, gain=up ** 2)
        if len(gu.shape) == 1:
            cols = _up_plan(x.shape[2], gu, up, *padding[0:2])
            rows = _up_plan(x.shape[1], gu, up, *padding[2:4], block=True)
            if clamp is not None:
                with _scope("clamp_bound"):
                    reach = _phase_l1(gu, cols[0]) * abs(fold) * _phase_l1(gu, rows[0])
                    reach = reach * _peak(x)
            # Both passes' padding, and the H pass's overlapping row windows, are applied to
            # the small input. The up passes keep their few extra samples at the end; they
            # only add outputs past the end, cropped once from the (small) result below.
            # Along H a block matmul beat the depthwise form (and the W form needs no matrix).
            with _scope("pad_gather"):
                x = _row_frames(_pad2(x, rows[1:3], cols[1:3]), len(rows[0][0]), rows[3], up)
            with _scope("up_w"):
                x = _conv_up_cols(x, gu * fold, up, cols[0])
            with _scope("up_h"):
                x = _conv_up_rows(x, gu, up, rows[0], rows[3])
        else:   # 2-D up filters (not used by the generators): the reference composition
            x = upfirdn2d(x, gu * fold, up=up, padding=padding, flip_filter=True)
    with _scope("lrelu"):
        x = ops.leaky_relu(x, slope) if slope != 1 else x
        x = x * gain if gain != fold else x
    if clamp is not None and reach is None:
        x = ops.clip(x, -clamp, clamp)
    elif clamp is not None:
        # A clip is a full pass over the largest tensor. It changes nothing unless some value
        # can exceed the clamp: |out| <= max|x| * (largest phase L1 norm per axis) * gain.
        reach = reach * (abs(gain / fold) * max(1.0, abs(slope)) * 1.001)
        with _scope("clamp"):
            x = ops.cond(reach > clamp, lambda: ops.clip(x, -clamp, clamp), lambda: x)
    if fd is not None or down > 1:
        gd = prepare_filter(np.ones([1], np.float32) if fd is None else fd, "float32",
                            flip_filter)
        if len(gd.shape) == 1:
            with _scope("down_w"):
                x = _conv_down_axis(x, gd, down, 2)
            with _scope("down_h"):
                x = _conv_down_axis(x, gd, down, 1)
        else:
            with _scope("down_2d"):
                x = down_2d_strided(x, gd, down)
    if x.shape[1] != out_h or x.shape[2] != out_w:
        with _scope("crop"):
            x = x[:, :out_h, :out_w, :]
    return ops.cast(x, dtype) if dtype != backend.standardize_dtype(x.dtype) else x
