"""Shims between our GAN and Keras 3 ``fit`` on the TensorFlow backend, kept in one place.

Each one leans on a Keras internal; ``tests/test_training_compat.py`` fails when one of them stops
working (the internal moved) so that it can be updated or removed.

1. :func:`install_phase_dispatch` -- lazy regularisation needs a different compiled step on some
   iterations, and an optimizer step inside ``tf.cond`` is refused under a strategy (``merge_call``
   inside control flow). We build one compiled step per phase combination with Keras's own
   ``Trainer._make_function`` (which adds ``strategy.run`` and the per-replica reduction) and pick
   one per iteration in Python. Requires ``steps_per_execution == 1``.
2. :func:`prepare_for_multiworker` -- Keras 3.15 ``fit`` under ``MultiWorkerMirroredStrategy``
   (keras-team/keras#20585): its symbolic build reduces a ``PerReplica`` batch and fails, and
   ``reduce_per_replica`` cannot reduce scalar logs along axis 0. We skip the symbolic build
   (the model and optimizers are built beforehand) and return logs with shape ``[1]``.
"""

__all__ = ["install_phase_dispatch", "prepare_for_multiworker"]


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


def prepare_for_multiworker(model):
    """Apply the two ``MultiWorkerMirroredStrategy`` workarounds to an already-built model."""
    if not hasattr(model, "_maybe_symbolic_build"):
        raise RuntimeError("keras Trainer._maybe_symbolic_build is gone: update "
                           "sg3keras.training.compat.prepare_for_multiworker for this Keras")
    model._maybe_symbolic_build = lambda *args, **kwargs: None
    model.logs_as_vectors = True
