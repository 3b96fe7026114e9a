"""Upsample, pad, FIR-filter and downsample 2-D images (the official ``upfirdn2d``), NHWC.

Semantics of the official reference path (Alias-Free GAN §2.1 "Upsampling and downsampling",
Appendix C.3), per spatial axis:
1. upsample by inserting ``up - 1`` zeros *after* every sample;
2. pad ``[x0, x1, y0, y1]`` with zeros relative to the upsampled image (negative = crop);
3. convolve ("valid") with ``f`` -- i.e. correlate with the flipped filter unless
   ``flip_filter`` -- scaled by ``gain ** (f.ndim / 2)`` (a 1-D filter is applied along x, then y);
4. keep every ``down``-th sample, starting at index 0.

Filters may be numpy arrays or tensors: 1-D ``[taps]`` (separable), 2-D ``[fh, fw]`` or None
(identity). The filtering uses depthwise convolutions (``keras.ops.depthwise_conv``).
"""

import numpy as np
from keras import ops

from .misc import parse_padding, parse_scaling

__all__ = ["upfirdn2d", "filter2d", "upsample2d", "downsample2d", "filter_size", "prepare_filter"]


def filter_size(f):
    """``(fw, fh)`` of a filter (1-D filters are square), ``(1, 1)`` for None."""
    if f is None:
        return 1, 1
    shape = tuple(f.shape)
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    if len(shape) == 2:
        return int(shape[1]), int(shape[0])
    raise ValueError(f"filter f: expected a 1-D [taps] or 2-D [fh, fw] filter, "
                     f"got shape {list(shape)}")


def prepare_filter(f, dtype, flip_filter=False, gain=1, name="f"):
    """Convert ``f`` to a tensor of ``dtype``, flip it (true convolution) unless ``flip_filter``,
    and scale it by ``gain ** (ndim / 2)``. None is the 1x1 identity."""
    if f is None:
        f = np.ones([1, 1], np.float32)  # identity, but the gain still applies (once)
    filter_size(f)  # rank check
    if len(f.shape) == 0 or any(int(s) == 0 for s in f.shape):
        raise ValueError(f"{name}: expected a non-empty 1-D or 2-D filter, "
                         f"got shape {list(f.shape)}")
    f = ops.convert_to_tensor(f, dtype="float32")
    ndim = len(f.shape)
    if not flip_filter:
        f = ops.flip(f, axis=tuple(range(ndim)))
    if gain != 1:
        f = f * float(gain ** (ndim / 2))
    return ops.cast(f, dtype)


def _check_x(x, fn):
    if len(x.shape) != 4:
        raise ValueError(f"{fn}: x must be NHWC [N, H, W, C], got shape {list(x.shape)}")
    if any(s is None for s in x.shape[1:]):
        raise ValueError(f"{fn}: x needs static H, W, C (batch may be dynamic), "
                         f"got {list(x.shape)}")


def zero_insert(x, upx, upy):
    """Insert ``up - 1`` zeros after every sample along W (``upx``) and H (``upy``). NHWC."""
    if upx == 1 and upy == 1:
        return x
    _, h, w, c = x.shape
    x = ops.reshape(x, [-1, h, 1, w, 1, c])                                  # [N, H, 1, W, 1, C]
    x = ops.pad(x, [[0, 0], [0, 0], [0, upy - 1], [0, 0], [0, upx - 1], [0, 0]])
    return ops.reshape(x, [-1, h * upy, w * upx, c])                         # [N, H*uy, W*ux, C]


def pad_or_crop(x, x0, x1, y0, y1):
    """Zero-pad (positive) or crop (negative) the W axis by ``x0, x1`` and H by ``y0, y1``."""
    if max(x0, x1, y0, y1) > 0:
        x = ops.pad(x, [[0, 0], [max(y0, 0), max(y1, 0)], [max(x0, 0), max(x1, 0)], [0, 0]])
    if min(x0, x1, y0, y1) < 0:
        h, w = x.shape[1], x.shape[2]
        x = x[:, max(-y0, 0):h - max(-y1, 0), max(-x0, 0):w - max(-x1, 0), :]
    return x


def _depthwise(x, kernel2d, strides=1):
    # TF's CPU depthwise convolution has no fast half-precision kernel (float16/bfloat16 ran for
    # minutes on a 3-channel test image), so low-precision inputs are filtered in float32.
    dtype, c = x.dtype, x.shape[-1]
    if dtype not in ("float32", "float64"):
        x, kernel2d = ops.cast(x, "float32"), ops.cast(kernel2d, "float32")
    k = ops.reshape(kernel2d, list(kernel2d.shape) + [1, 1])
    k = ops.tile(k, [1, 1, c, 1])                                           # [kh, kw, C, 1]
    y = ops.depthwise_conv(x, k, strides=strides, padding="valid", data_format="channels_last")
    return ops.cast(y, dtype)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Upsample, pad, filter and downsample a batch of NHWC images.

    Steps: (1) zero-insert upsampling by ``up``; (2) pad/crop by ``padding`` w.r.t. the
    upsampled image; (3) "valid" convolution with ``f * gain ** (f.ndim / 2)`` (flipped unless
    ``flip_filter``; 1-D = along x then y); (4) keep every ``down``-th sample from index 0.

    Args:
        x: ``[N, H, W, C]`` float tensor (batch may be dynamic).
        f: None, 1-D ``[taps]`` (separable) or 2-D ``[fh, fw]``; numpy or tensor (float32).
        up: int or ``[ux, uy]`` (>= 1).
        down: int or ``[dx, dy]`` (>= 1).
        padding: int, ``[px, py]`` or ``[x0, x1, y0, y1]``; default 0.
        flip_filter: correlate with ``f`` as is instead of convolving.
        gain: overall signal gain; default 1.
    Returns:
        ``[N, (H*uy + y0 + y1 - fh + dy) // dy, (W*ux + x0 + x1 - fw + dx) // dx, C]``.
    """
    _check_x(x, "upfirdn2d")
    upx, upy = parse_scaling(up, "up")
    downx, downy = parse_scaling(down, "down")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    out_h = (x.shape[1] * upy + y0 + y1 - fh) // downy + 1
    out_w = (x.shape[2] * upx + x0 + x1 - fw) // downx + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"upfirdn2d: x {list(x.shape)} with up={up}, padding={padding} and a "
                         f"{fh}x{fw} filter gives an empty output")
    x = zero_insert(x, upx, upy)
    x = pad_or_crop(x, x0, x1, y0, y1)
    if fw == 1 and fh == 1:
        if f is not None or gain != 1:  # 1 tap: a scale (a 1-D filter acts twice)
            f = prepare_filter(f, x.dtype, flip_filter, gain)
            x = x * ops.reshape(f, [1, 1, 1, 1]) ** (2 if len(f.shape) == 1 else 1)
    else:
        f = prepare_filter(f, x.dtype, flip_filter, gain)
        x = _depthwise(x, f) if len(f.shape) == 2 else _depthwise(
            _depthwise(x, ops.reshape(f, [1, fw])), ops.reshape(f, [fh, 1]))
    if downx > 1 or downy > 1:
        x = x[:, ::downy, ::downx, :]
    return x


def filter2d(x, f, padding=0, flip_filter=False, gain=1):
    """Filter NHWC images with ``f``, keeping the size (plus ``padding``).

    Pads ``[fw // 2, (fw - 1) // 2, fh // 2, (fh - 1) // 2]`` on top of ``padding``, then
    :func:`upfirdn2d`. Args as in :func:`upfirdn2d`.
    """
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1):
    """Upsample NHWC images by ``up`` with interpolation filter ``f`` (gain ``gain * up**2``).

    Pads ``[(fw + ux - 1) // 2, (fw - ux) // 2, (fh + uy - 1) // 2, (fh - uy) // 2]`` on top of
    ``padding``, then :func:`upfirdn2d`. Args as in :func:`upfirdn2d`.
    """
    upx, upy = parse_scaling(up, "up")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [x0 + (fw + upx - 1) // 2, x1 + (fw - upx) // 2,
         y0 + (fh + upy - 1) // 2, y1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter,
                     gain=gain * upx * upy)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1):
    """Filter NHWC images with ``f`` and keep every ``down``-th sample.

    Pads ``[(fw - dx + 1) // 2, (fw - dx) // 2, (fh - dy + 1) // 2, (fh - dy) // 2]`` on top of
    ``padding``, then :func:`upfirdn2d`. Args as in :func:`upfirdn2d`.
    """
    downx, downy = parse_scaling(down, "down")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [x0 + (fw - downx + 1) // 2, x1 + (fw - downx) // 2,
         y0 + (fh - downy + 1) // 2, y1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain)
