"""TensorFlow-only XLA wrappers of the fast op paths (imported lazily by the ops).

Every compiled function is a ``tf.function(jit_compile=True)`` over *tensors only*: filters and
biases come in as tensor arguments, static settings as Python values (part of the trace key),
and no variables are read inside. That keeps XLA fusion usable inside any ``tf.distribute``
strategy (TF-NOTES.md §3: reading mirrored variables inside a compiled function fails on
logical CPUs). ``filtered_lrelu`` is compiled stage by stage (see
``sg3keras.ops.filtered_lrelu``) and its hand-derived backward
(:func:`~sg3keras.ops.filtered_lrelu.filtered_lrelu_fast_grad`) is joined with
``tf.custom_gradient``: XLA's own differentiation of the many strided slices was slower on CPU
than the reference path.
"""

import functools

import tensorflow as tf

from .filtered_lrelu import filtered_lrelu_fast, filtered_lrelu_fast_grad

__all__ = ["compiled_stage", "filtered_lrelu_xla"]


@functools.lru_cache(maxsize=None)
def _compiled(fn):
    def run(*tensors, static):
        return fn(*tensors, **dict(static))
    run.__name__ = f"xla_{fn.__name__}"
    return tf.function(run, jit_compile=True)


def compiled_stage(fn, *tensors, **static):
    """Run ``fn(*tensors, **static)`` as an XLA cluster; ``static`` values must be hashable."""
    return _compiled(fn)(*tensors, static=tuple(sorted(static.items())))


def filtered_lrelu_xla(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    """XLA-compiled :func:`sg3keras.ops.filtered_lrelu.filtered_lrelu_fast` (same arguments),
    differentiable w.r.t. ``x`` and ``b`` (the filters are constants)."""
    static = dict(up=up, down=down, padding=tuple(padding), gain=gain, slope=slope, clamp=clamp,
                  flip_filter=flip_filter)
    # Read variables (e.g. a layer's filter / bias weights) here, outside the compiled stages:
    # a Keras variable handed to a tf.function is not a tensor and cannot be traced in a graph.
    x = tf.convert_to_tensor(x)
    fu, fd, b = (None if t is None else tf.convert_to_tensor(t) for t in (fu, fd, b))

    def forward(x, b):
        return filtered_lrelu_fast(x, fu, fd, b, **static, stage=compiled_stage)

    def backward(dy, x, b):
        return filtered_lrelu_fast_grad(dy, x, fu, fd, b, **static, stage=compiled_stage)

    if b is None:
        @tf.custom_gradient
        def op(x):
            return forward(x, None), lambda dy: backward(dy, x, None)[0]
        return op(x)

    @tf.custom_gradient
    def op_b(x, b):
        return forward(x, b), lambda dy: backward(dy, x, b)
    return op_b(x, b)
