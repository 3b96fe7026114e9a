"""Small helpers shared by the ops and layers: static shape contracts, argument parsing,
``torch.lerp``-exact interpolation and 2nd-moment normalisation."""

from keras import ops

__all__ = ["assert_shape", "parse_scaling", "parse_padding", "lerp", "normalize_2nd_moment"]


def assert_shape(x, shape, name="x"):
    """Check the *static* shape of ``x`` against ``shape`` (``None`` = any size).

    Runs at trace time only (static shapes), so it costs nothing inside ``tf.function``/XLA.
    Unknown static dimensions (e.g. a dynamic batch) are accepted.

    Args:
        x: tensor (anything with ``.shape``).
        shape: list of ints or ``None``; its length is the expected rank.
        name: the tensor's name used in the error message.
    Raises:
        ValueError naming the tensor, the expected and the actual shape.
    """
    actual = tuple(x.shape)
    if len(actual) != len(shape):
        raise ValueError(f"{name}: expected rank {len(shape)} with shape {list(shape)}, "
                         f"got shape {list(actual)}")
    for i, (a, e) in enumerate(zip(actual, shape)):
        if e is None or a is None:
            continue
        if int(a) != int(e):
            raise ValueError(f"{name}: dimension {i} is {a}, expected {e} "
                             f"(expected shape {list(shape)}, got {list(actual)})")


def _as_int(v, what):
    if isinstance(v, bool) or int(v) != v:
        raise ValueError(f"{what}: expected integers, got {v!r}")
    return int(v)


def parse_scaling(factor, name="up"):
    """``int`` or ``[fx, fy]`` -> ``(fx, fy)``, both >= 1."""
    if not hasattr(factor, "__len__") and hasattr(factor, "__int__"):
        fx = fy = _as_int(factor, name)
    else:
        try:
            vals = list(factor)
        except TypeError:
            raise ValueError(f"{name}: expected an int or [fx, fy], got {factor!r}") from None
        if len(vals) != 2:
            raise ValueError(f"{name}: expected an int or [fx, fy] (2 values), got {factor!r}")
        fx, fy = (_as_int(v, name) for v in vals)
    if fx < 1 or fy < 1:
        raise ValueError(f"{name}: factors must be >= 1, got {factor!r}")
    return fx, fy


def parse_padding(padding, name="padding"):
    """``int``, ``[px, py]`` or ``[x0, x1, y0, y1]`` -> ``(x0, x1, y0, y1)`` (x = width axis)."""
    if not hasattr(padding, "__len__"):
        p = _as_int(padding, name)
        return p, p, p, p
    vals = [_as_int(v, name) for v in padding]
    if len(vals) == 2:
        px, py = vals
        return px, px, py, py
    if len(vals) == 4:
        return tuple(vals)
    raise ValueError(f"{name}: expected an int, [px, py] or [x0, x1, y0, y1], got {padding!r}")


def lerp(a, b, t):
    """``a + t * (b - a)`` evaluated like ``torch.lerp`` (from ``b`` when ``t >= 0.5``)."""
    if isinstance(t, (int, float)):
        return a + t * (b - a) if t < 0.5 else b - (b - a) * (1 - t)
    t = ops.cast(t, a.dtype)
    return ops.where(t < 0.5, a + t * (b - a), b - (b - a) * (1 - t))


def normalize_2nd_moment(x, eps=1e-8):
    """``x * rsqrt(mean(x**2, axis=1) + eps)`` per sample."""
    return x * ops.rsqrt(ops.mean(ops.square(x), axis=1, keepdims=True) + eps)
