"""Shims between our GAN and Keras 3 ``fit`` on the TensorFlow backend, kept in one place.

Each one leans on a Keras internal. ``tests/test_training_compat.py`` checks both directions:
that each shim still works (else: "... stopped working" -- the internal moved, update the shim)
and that the Keras/TensorFlow behaviour it works around still happens (else: "Keras fixed ...:
remove the shim").

1. :func:`install_phase_dispatch` -- lazy regularisation needs a different compiled step on some
   iterations, and an optimizer step inside ``tf.cond`` is refused under a strategy
   (``RuntimeError: `merge_call` called while defining a new graph or a tf.function``). We build
   one compiled step per phase combination with Keras's own ``Trainer._make_function`` (which
   adds ``strategy.run`` and the per-replica reduction) and pick one per iteration in Python.
   Requires ``steps_per_execution == 1``.
2. :func:`prepare_for_multiworker` -- Keras 3.15 ``fit`` under a multi-worker
   ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585) fails twice:
   :func:`skip_symbolic_build` -- ``_maybe_symbolic_build`` reduces the ``PerReplica`` first batch
   (``ValueError: Attempt to convert a value (PerReplica:{...}) with an unsupported type ... to a
   Tensor``); we skip it, the model and optimizers being built beforehand.
   :func:`use_vector_logs` -- ``reduce_per_replica`` reduces the logs along axis 0 (``ValueError:
   Invalid reduction dimension 0 for input with 0 dimensions``); we return logs of shape ``[1]``.
   A 1-worker cluster shows neither failure (Keras reduces this way only across workers).
"""

__all__ = ["install_phase_dispatch", "prepare_for_multiworker", "skip_symbolic_build",
           "use_vector_logs"]


def install_phase_dispatch(model, step_functions, choose):
    """Make ``model.fit`` run ``step_functions[choose()]`` for every iteration.

    Args:
        model: a Keras ``Model`` (TensorFlow backend).
        step_functions: dict key -> ``fn(data) -> logs`` (a replica-local train step).
        choose: zero-argument callable returning the key of the next iteration's step.
    """
    if not hasattr(model, "_make_function"):
        raise RuntimeError("keras Trainer._make_function is gone: update "
                           "sg3keras.training.compat.install_phase_dispatch for this Keras")

    def make_train_function(force=False):
        if model.train_function is not None and not force:
            return model.train_function
        compiled = {k: model._make_function(fn) for k, fn in step_functions.items()}

        def function(iterator):
            return compiled[choose()](iterator)

        model.train_function = function
        return function

    model.make_train_function = make_train_function
    model.train_function = None


def skip_symbolic_build(model):
    """Keras 3.15 ``fit`` under multi-worker MWMS reduces a ``PerReplica`` batch in
    ``_maybe_symbolic_build`` and fails; ``model`` (and its optimizers) must be built already."""
    if not hasattr(model, "_maybe_symbolic_build"):
        raise RuntimeError("keras Trainer._maybe_symbolic_build is gone: update "
                           "sg3keras.training.compat.skip_symbolic_build for this Keras")
    model._maybe_symbolic_build = lambda *args, **kwargs: None


def use_vector_logs(model):
    """``reduce_per_replica`` reduces logs along axis 0 under multi-worker MWMS: make ``model``
    (one that honours a ``logs_as_vectors`` attribute, like ``StyleGAN``) return shape-[1] logs."""
    if not hasattr(model, "logs_as_vectors"):
        raise TypeError(f"{type(model).__name__} has no logs_as_vectors switch")
    model.logs_as_vectors = True


def prepare_for_multiworker(model):
    """Apply the two ``MultiWorkerMirroredStrategy`` workarounds to an already-built model."""
    skip_symbolic_build(model)
    use_vector_logs(model)
