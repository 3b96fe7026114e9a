"""2-D convolution with optional FIR up/downsampling (the official ``conv2d_resample``), NHWC.

Semantics of the official reference path: the requested ``padding`` is combined once with the
padding the resampling filter needs, then the cheapest equivalent order is used:

* ``down > 1`` (no up): filter ``f`` with the combined padding, then a strided "valid" conv
  (a 1x1 kernel downsamples first and convolves the small image);
* ``up > 1``: transposed convolution with stride ``up`` (zero-insertion followed by a *true*
  convolution when ``flip_weight`` is False), then ``f`` with gain ``up**2`` and the remaining
  padding, then an optional ``down`` filter;
* neither: a plain convolution with zero padding (pad/crop first when the padding is uneven).

``flip_weight=True`` means cross-correlation (``torch.conv2d``); False flips the kernel (true
convolution). The official Conv2dLayer / SynthesisLayer pass ``flip_weight = (up == 1)``.
"""

from keras import ops

from .misc import assert_shape, parse_padding, parse_scaling
from .modulated_conv import demodulation_coefficients
from .upfirdn2d import filter_size, pad_or_crop, upfirdn2d, zero_insert

__all__ = ["conv2d_resample", "modulated_conv2d_resample"]


def _conv(x, w, stride=1, flip_weight=True):
    """"valid" conv of NHWC ``x`` with ``w [kh, kw, I, O]``; flip the kernel unless flip_weight."""
    if not flip_weight and (w.shape[0] > 1 or w.shape[1] > 1):
        w = ops.flip(w, axis=(0, 1))
    return ops.conv(x, w, strides=stride, padding="valid", data_format="channels_last")


def _conv_transpose(x, w, up, pad_x, pad_y, flip_weight):
    """``torch.conv_transpose2d(x, w^T, stride=up, padding=[pad_y, pad_x])`` for NHWC ``x``.

    Computed as zero insertion (``up - 1`` zeros after each sample), zero padding by
    ``k - 1 - pad`` before and ``k - up - pad`` after (negative = crop), and a "valid" true
    convolution with ``w`` (a correlation when ``flip_weight``).
    """
    upx, upy = up
    kh, kw = int(w.shape[0]), int(w.shape[1])
    x = zero_insert(x, upx, upy)                                    # [N, H*uy, W*ux, I]
    x = pad_or_crop(x, kw - 1 - pad_x, kw - upx - pad_x, kh - 1 - pad_y, kh - upy - pad_y)
    return _conv(x, w, flip_weight=flip_weight)


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, flip_weight=True):
    """Pad, convolve and resample a batch of NHWC images in one go.

    Steps:
    1. Combine ``padding`` with the filter padding: for ``up > 1`` add
       ``[(fw + up - 1) // 2, (fw - up) // 2]`` per axis, for ``down > 1`` add
       ``[(fw - down + 1) // 2, (fw - down) // 2]``.
    2. 1x1 kernel, down only: ``upfirdn2d(x, f, down, padding)`` then the 1x1 conv.
       1x1 kernel, up only: the 1x1 conv, then ``upfirdn2d(., f, up, padding, gain=up**2)``.
    3. Down only: ``upfirdn2d(x, f, padding)`` then a conv with stride ``down``.
    4. Up: transposed conv with stride ``up`` (padding moved into it where possible), then
       ``upfirdn2d(., f, padding=rest, gain=up**2)``, then ``upfirdn2d(., f, down)`` if
       ``down > 1``.
    5. Neither: zero pad (crop if negative) and conv.

    Args:
        x: ``[N, H, W, I]`` float tensor (batch may be dynamic).
        w: ``[kh, kw, I, O]`` weight (Keras layout); cast to ``x.dtype``.
        f: resampling filter (1-D separable or 2-D, e.g. ``setup_filter([1, 3, 3, 1])``);
            required when ``up > 1`` or ``down > 1``.
        up: integer upsampling factor (>= 1). Default 1.
        down: integer downsampling factor (>= 1). Default 1.
        padding: int, ``[px, py]`` or ``[x0, x1, y0, y1]`` w.r.t. the upsampled image. Default 0.
        flip_weight: True = cross-correlation (no flip), False = true convolution.
    Returns:
        ``[N, H', W', O]`` in ``x.dtype``.
    """
    if len(w.shape) != 4:
        raise ValueError(f"conv2d_resample: w must be [kh, kw, I, O], got shape {list(w.shape)}")
    kh, kw, in_ch, _ = (int(v) for v in w.shape)
    assert_shape(x, [None, None, None, in_ch], "conv2d_resample: x")
    if any(s is None for s in x.shape[1:]):
        raise ValueError(f"conv2d_resample: x needs static H, W, C, got {list(x.shape)}")
    upx, upy = parse_scaling(up, "up")
    downx, downy = parse_scaling(down, "down")
    if upx != upy or downx != downy:
        raise ValueError(f"conv2d_resample: up/down must be equal along x and y, got up={up}, "
                         f"down={down}")
    up, down = upx, downx
    if (up > 1 or down > 1) and f is None:
        raise ValueError("conv2d_resample: a resampling filter f is required when up or down > 1")
    w = ops.cast(w, x.dtype)
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    pads = [px0, px1, py0, py1]

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=pads)
        return _conv(x, w, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pads, gain=up ** 2)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=pads)
        return _conv(x, w, stride=down, flip_weight=flip_weight)
    if up > 1:
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv_transpose(x, w, (up, up), pxt, pyt, flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2)
        if down > 1:
            x = upfirdn2d(x, f, down=down)
        return x
    x = pad_or_crop(x, px0, px1, py0, py1)
    return _conv(x, w, flip_weight=flip_weight)


def modulated_conv2d_resample(x, w, styles, noise=None, f=None, up=1, down=1, padding=0,
                              demodulate=True, flip_weight=True):
    """StyleGAN2 modulated convolution with optional resampling and noise, NHWC.

    The official StyleGAN2 ``modulated_conv2d`` (``networks_stylegan2.py``) in its non-fused
    form, which equals the fused grouped convolution up to float rounding (measured ≤ 4.8e-6 on
    ``g_sg2_32``) and needs no per-sample weights. The fp16-only inf-norm pre-normalisation of
    the official code is skipped: it cancels exactly in float32 and sg3keras runs in float32.

    Steps:
    1. ``d[n, o] = rsqrt(sum_{k,k,i} (w[., ., i, o] * s[n, i])^2 + 1e-8)`` if ``demodulate``.
    2. ``x = x * s`` (per sample and input channel).
    3. ``x = conv2d_resample(x, w, f, up, down, padding, flip_weight)`` (shared weight).
    4. ``x = x * d`` (if ``demodulate``), then ``x = x + noise`` (if given).

    Args:
        x: ``[N, H, W, I]``.
        w: ``[k, k, I, O]`` raw weight (no equalized-lr gain: demodulation cancels it).
        styles: ``[N, I]``.
        noise: None or a tensor broadcastable to the output (``[N, H', W', 1]`` / ``[H', W', 1]``).
        f, up, down, padding, flip_weight: as :func:`conv2d_resample`.
        demodulate: normalise every output channel. Default True.
    Returns:
        ``[N, H', W', O]``.
    """
    if len(w.shape) != 4:
        raise ValueError(f"modulated_conv2d_resample: w must be [k, k, I, O], got {list(w.shape)}")
    in_ch = int(w.shape[2])
    assert_shape(styles, [x.shape[0], in_ch], "modulated_conv2d_resample: styles")
    w = ops.cast(w, x.dtype)
    styles = ops.cast(styles, x.dtype)
    x = x * styles[:, None, None, :]
    x = conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, flip_weight=flip_weight)
    if demodulate:
        x = x * demodulation_coefficients(w, styles)[:, None, None, :]
    if noise is not None:
        x = x + ops.cast(noise, x.dtype)
    return x
