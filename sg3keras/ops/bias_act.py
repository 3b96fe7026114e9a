"""Fused bias + activation + gain + clamp (the official ``bias_act`` reference path), NHWC.

Steps, in order:
1. ``x = x + b`` with ``b`` broadcast along ``axis`` (default: the last, channel axis);
2. ``x = act(x, alpha)``;
3. ``x = x * gain`` (the activation's default gain unless given);
4. ``x = clip(x, -clamp, clamp)`` when ``clamp`` is not None (after the gain).
"""

import math

from keras import ops

__all__ = ["ACTIVATIONS", "bias_act"]

# name -> (function(x, alpha), default alpha, default gain)
ACTIVATIONS = {
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: ops.relu(x), 0.0, math.sqrt(2)),
    # The backend's leaky ReLU, not ``where``: like PyTorch's, its second derivative is a
    # (zero) gradient w.r.t. the input, so a bias feeding it stays connected to an R1 penalty
    # and gets a zero gradient (one optimizer step), not none (no step) -- as in the official
    # training loop.
    "lrelu": (lambda x, a: ops.leaky_relu(x, negative_slope=a), 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: ops.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, a: ops.sigmoid(x), 0.0, 1.0),
    "elu": (lambda x, a: ops.elu(x), 0.0, 1.0),
    "selu": (lambda x, a: ops.selu(x), 0.0, 1.0),
    "softplus": (lambda x, a: ops.softplus(x), 0.0, 1.0),
    "swish": (lambda x, a: ops.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(x, b=None, act="linear", alpha=None, gain=None, clamp=None, axis=-1):
    """Add a bias, apply an activation, scale and clamp.

    Args:
        x: input tensor of any rank.
        b: optional bias vector ``[x.shape[axis]]``.
        act: one of :data:`ACTIVATIONS` (``linear``, ``relu``, ``lrelu``, ``tanh``, ``sigmoid``,
            ``elu``, ``selu``, ``softplus``, ``swish``).
        alpha: activation shape parameter (the lrelu slope); default 0.2 for lrelu.
        gain: output scale; default sqrt(2) for relu/lrelu/swish, else 1.
        clamp: clamp the output to ``[-clamp, clamp]`` after the gain; None disables.
        axis: the axis ``b`` broadcasts along.
    Returns:
        Tensor of the same shape and dtype as ``x``.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown act {act!r}; expected one of {sorted(ACTIVATIONS)}")
    fn, def_alpha, def_gain = ACTIVATIONS[act]
    alpha = def_alpha if alpha is None else float(alpha)
    gain = def_gain if gain is None else float(gain)
    if b is not None:
        rank = len(x.shape)
        axis = axis % rank
        if b.shape[0] != x.shape[axis]:
            raise ValueError(f"bias_act: bias has shape {tuple(b.shape)}, expected "
                             f"[{x.shape[axis]}] (x.shape[{axis}] of x {tuple(x.shape)})")
        shape = [1] * rank
        shape[axis] = -1
        x = x + ops.reshape(ops.cast(b, x.dtype), shape)
    x = fn(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = ops.clip(x, -clamp, clamp)
    return x
