"""Bilinear image sampling at arbitrary points (``torch.nn.functional.grid_sample`` semantics), NHWC.

Two entry points:
- :func:`bilinear_sample` -- sample at *pixel* coordinates (pixel ``i`` has its centre at ``i``),
  zeros outside the image;
- :func:`grid_sample` -- the PyTorch-style interface: a normalised ``[-1, 1]`` grid with
  ``align_corners=False`` (or True), bilinear interpolation, zeros padding.

Pure ``keras.ops`` (gathers + weights), differentiable w.r.t. both the image and the coordinates,
batch may be dynamic.
"""

from keras import ops

__all__ = ["bilinear_sample", "grid_sample"]


def _check(x, fn):
    if len(x.shape) != 4 or any(s is None for s in x.shape[1:]):
        raise ValueError(f"{fn}: x must be NHWC [N, H, W, C] with static H, W, C, "
                         f"got shape {list(x.shape)}")


def bilinear_sample(x, px, py):
    """Bilinearly interpolate ``x`` at pixel coordinates ``(px, py)``; zeros outside the image.

    Steps:
    1. Split each coordinate into the integer corner ``floor(p)`` and the fraction ``p - floor(p)``.
    2. For each of the 4 neighbouring pixels: gather its value (index clipped into the image) and
       weight it by the bilinear weight times "the neighbour lies inside the image" (so a
       neighbour outside contributes 0, i.e. zero padding).
    3. Sum the 4 weighted values.

    Args:
        x: ``[N, H, W, C]`` float tensor.
        px, py: ``[N, Ho, Wo]`` float tensors, x (column) and y (row) positions in pixel units,
            pixel ``(i, j)`` of ``x`` sits at ``px = j, py = i``; or ``[Ho, Wo]`` (one grid for
            every image). The integer/fraction split happens in the coordinates' own float
            dtype (float64 coordinates keep exact fractions at large positions); the weights
            are then cast to ``x.dtype``.
    Returns:
        ``[N, Ho, Wo, C]`` tensor of ``x.dtype``.
    """
    _check(x, "bilinear_sample")
    h, w, c = (int(s) for s in x.shape[1:])
    px, py = ops.convert_to_tensor(px), ops.convert_to_tensor(py)
    if len(px.shape) == 2:
        n = ops.shape(x)[0]
        px = ops.broadcast_to(px[None], (n,) + tuple(px.shape))
        py = ops.broadcast_to(py[None], (n,) + tuple(py.shape))
    if "float" not in str(px.dtype):
        px, py = ops.cast(px, x.dtype), ops.cast(py, x.dtype)
    out_shape = ops.shape(px)
    flat = ops.reshape(x, [-1, h * w, c])
    x0 = ops.floor(px)
    y0 = ops.floor(py)
    fx = ops.cast(px - x0, x.dtype)
    fy = ops.cast(py - y0, x.dtype)
    x0 = ops.cast(x0, "int32")
    y0 = ops.cast(y0, "int32")
    out = None
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi = x0 + dx
            yi = y0 + dy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            idx = ops.clip(yi, 0, h - 1) * w + ops.clip(xi, 0, w - 1)
            idx = ops.reshape(idx, [out_shape[0], -1, 1])
            vals = ops.take_along_axis(flat, ops.repeat(idx, c, axis=2), axis=1)
            weight = wx * wy * ops.cast(inside, x.dtype)
            term = vals * ops.reshape(weight, [out_shape[0], -1, 1])
            out = term if out is None else out + term
    return ops.reshape(out, [out_shape[0], out_shape[1], out_shape[2], c])


def grid_sample(x, grid, align_corners=False):
    """PyTorch ``grid_sample(mode='bilinear', padding_mode='zeros')`` for NHWC images.

    Steps:
    1. Map the normalised grid to pixel coordinates: ``align_corners=False``:
       ``p = ((g + 1) * size - 1) / 2`` (-1/+1 are the outer pixel *edges*); True:
       ``p = (g + 1) / 2 * (size - 1)`` (-1/+1 are the outer pixel *centres*).
    2. :func:`bilinear_sample` with zeros outside.

    Args:
        x: ``[N, H, W, C]`` float tensor.
        grid: ``[N, Ho, Wo, 2]``, last axis ``(x, y)`` in ``[-1, 1]`` (values outside sample zeros).
        align_corners: see step 1; default False.
    Returns:
        ``[N, Ho, Wo, C]``.
    """
    _check(x, "grid_sample")
    if len(grid.shape) != 4 or grid.shape[-1] != 2:
        raise ValueError(f"grid_sample: grid must be [N, Ho, Wo, 2], got shape {list(grid.shape)}")
    h, w = int(x.shape[1]), int(x.shape[2])
    grid = ops.cast(grid, x.dtype)
    gx, gy = grid[..., 0], grid[..., 1]   # Mapped in x.dtype, as grid_sample does.
    if align_corners:
        px = (gx + 1) * 0.5 * (w - 1)
        py = (gy + 1) * 0.5 * (h - 1)
    else:
        px = ((gx + 1) * w - 1) * 0.5
        py = ((gy + 1) * h - 1) * 0.5
    return bilinear_sample(x, px, py)
