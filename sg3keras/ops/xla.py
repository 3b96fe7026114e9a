"""TensorFlow-only XLA wrappers of the fast op paths (imported lazily by the ops).

Every compiled function is a ``tf.function(jit_compile=True)`` over *tensors only*: filters and
biases come in as tensor arguments, static settings as Python values (part of the trace key),
and no variables are read inside. That keeps XLA fusion usable inside any ``tf.distribute``
strategy (reading mirrored variables inside a compiled function fails on logical CPUs).
``filtered_lrelu`` is compiled stage by stage (see ``sg3keras.ops.filtered_lrelu``) and its
hand-derived backward (:func:`~sg3keras.ops.filtered_lrelu.filtered_lrelu_fast_grad`) is joined
with ``tf.custom_gradient`` (:func:`with_custom_gradient`): XLA's own differentiation of the
many strided slices was slower on CPU than the reference path. This module imports nothing from
the ops that use it.
"""

import functools

import tensorflow as tf

__all__ = ["compiled_stage", "with_custom_gradient", "outside_trace", "graph_function",
           "constant"]


@functools.lru_cache(maxsize=None)
def _compiled(fn):
    def run(*tensors, static):
        return fn(*tensors, **dict(static))
    run.__name__ = f"xla_{fn.__name__}"
    return tf.function(run, jit_compile=True)


def compiled_stage(fn, *tensors, **static):
    """Run ``fn(*tensors, **static)`` as an XLA cluster; ``static`` values must be hashable."""
    return _compiled(fn)(*tensors, static=tuple(sorted(static.items())))


def with_custom_gradient(forward, backward, x, b=None, consts=()):
    """``forward(x, b, *consts)`` joined with a hand-written ``backward(dy, x, b, *consts) ->
    (dx, db)`` through ``tf.custom_gradient`` (differentiable w.r.t. ``x`` and, when given,
    ``b``; ``consts`` such as filters get no gradient; None entries stay None).

    ``forward`` and ``backward`` run their stages with :func:`compiled_stage`. Keras variables
    are read here, outside the compiled stages: a Keras variable handed to a ``tf.function``
    is not a tensor and cannot be traced in a graph."""
    x = tf.convert_to_tensor(x)
    consts = tuple(None if t is None else tf.convert_to_tensor(t) for t in consts)
    if b is None:
        @tf.custom_gradient
        def op(x):
            return forward(x, None, *consts), lambda dy: backward(dy, x, None, *consts)[0]
        return op(x)

    b = tf.convert_to_tensor(b)

    @tf.custom_gradient
    def op_b(x, b):
        return forward(x, b, *consts), lambda dy: backward(dy, x, b, *consts)
    return op_b(x, b)


def outside_trace():
    """Context in which ops run eagerly even while a ``tf.function`` is being traced (the
    gradient tape paused): where :mod:`sg3keras.ops.autotune` times its candidates."""
    return tf.init_scope()


def graph_function(fn):
    return tf.function(fn)


def constant(value, dtype):
    return tf.cast(tf.constant(value), dtype)


def tf_version():
    """The TensorFlow version (part of the autotuner's cache key)."""
    return tf.__version__
