"""Metric evaluation over the replicas of a ``tf.distribute`` strategy (TensorFlow only).

The official metrics split their samples across GPUs by index. Here every batch (latents for the
generator, images for the detector) is cut into contiguous per-replica slices; each replica
evaluates its slice (``strategy.run`` inside one ``tf.function``) and the per-replica outputs are
concatenated back in sample order. The latents, labels, transforms and images are drawn exactly
as in a single-replica evaluation with the same seed, so the metric values agree with it up to
float rounding (reduction order, and the batch-wide style scaling of the modulated convolutions,
which demodulation cancels).

Every replica gets the same slice length: short or empty slices are padded by repeating a row
and the padded outputs are dropped (an uneven last batch costs one extra trace, not an error).

Multi-worker strategies are not used for metrics (they run on the chief alone during training,
so a collective would wait for the other workers): :func:`runner_for` returns ``None`` for
them, as for single-replica strategies, and the caller evaluates in-process.
"""

import numpy as np
import tensorflow as tf

__all__ = ["ReplicaRunner", "runner_for", "make_eval_strategy"]


class ReplicaRunner:
    """Runs ``fn`` on per-replica slices of a batch and gathers the results in order.

    Attributes:
        strategy: the ``tf.distribute.Strategy``.
        num_replicas: ``strategy.num_replicas_in_sync``.
    """

    def __init__(self, strategy):
        self.strategy = strategy
        self.num_replicas = int(strategy.num_replicas_in_sync)
        self._steps = {}

    def _step(self, key, fn):
        step = self._steps.get(key)
        if step is None:
            strategy = self.strategy

            @tf.function
            def step(*args):
                return strategy.run(fn, args=args)

            self._steps[key] = step
        return step

    def map(self, key, fn, *arrays, per_replica=None):
        """``fn(*arrays)`` evaluated slice-wise on the replicas, as one numpy array.

        Steps: cut each array (same leading length ``n``) into ``num_replicas`` contiguous
        slices of ``per_replica`` rows (default ``ceil(n / num_replicas)``); pad short / empty
        slices by repeating their last row (the batch's first row for empty ones); run the
        cached ``tf.function`` ``key`` over ``strategy.run(fn)``; drop the padding and
        concatenate the replicas' outputs in replica order.

        Args:
            key: cache key of the compiled step (one per distinct ``fn``).
            fn: traceable ``fn(*tensors) -> tensor [rows, ...]``, rows aligned with the input.
            arrays: numpy arrays ``[n, ...]``; per_replica: slice length (``>= 1``).
        """
        arrays = [np.asarray(a) for a in arrays]
        n = arrays[0].shape[0]
        per = int(per_replica or -(-n // self.num_replicas))
        if n < 1 or per * self.num_replicas < n:
            raise ValueError(f"ReplicaRunner.map: {n} rows do not fit {self.num_replicas} "
                             f"replicas x {per}")
        sizes, slices = [], []
        for r in range(self.num_replicas):
            lo, hi = min(r * per, n), min((r + 1) * per, n)
            sizes.append(hi - lo)
            slices.append([_pad_rows(a[lo:hi] if hi > lo else a[:1], per) for a in arrays])
        dist = [self.strategy.experimental_distribute_values_from_function(
            lambda ctx, j=j: tf.constant(slices[ctx.replica_id_in_sync_group][j]))
            for j in range(len(arrays))]
        out = self.strategy.experimental_local_results(self._step(key, fn)(*dist))
        return np.concatenate([np.asarray(o)[:k] for o, k in zip(out, sizes) if k])

    def replica_variables(self, var):
        """The per-replica components of a (Keras) variable, or ``None`` if it is not mirrored
        over the replicas (created outside ``strategy.scope()``)."""
        comps = self.strategy.experimental_local_results(getattr(var, "value", var))
        if len(comps) != self.num_replicas or not all(hasattr(c, "assign") for c in comps):
            return None
        return comps

    def assign_per_replica(self, var, values):
        """Assign ``values[i]`` to replica ``i``'s copy of ``var`` (the last value to replicas
        beyond ``len(values)``). Returns False when ``var`` is not mirrored."""
        comps = self.replica_variables(var)
        if comps is None:
            return False
        for i, comp in enumerate(comps):
            comp.assign(values[min(i, len(values) - 1)])
        return True


def _pad_rows(x, rows):
    if x.shape[0] >= rows:
        return x
    return np.concatenate([x, np.repeat(x[-1:], rows - x.shape[0], axis=0)])


def runner_for(strategy=None):
    """A :class:`ReplicaRunner` for ``strategy`` (default: the active one), or ``None`` when it
    has a single replica or spans several workers."""
    from sg3keras.runtime.strategy import is_multi_worker

    strategy = strategy or tf.distribute.get_strategy()
    if int(strategy.num_replicas_in_sync) <= 1 or is_multi_worker(strategy):
        return None
    return ReplicaRunner(strategy)


def make_eval_strategy(gpus, cpu_replicas=False):
    """The strategy for ``sg3keras metrics --gpus N``.

    Uses :func:`sg3keras.runtime.strategy.make_strategy`: N GPUs under ``MirroredStrategy``
    (an error naming ``--gpus`` if fewer are visible), or on a machine without GPUs N logical
    CPU devices. If TensorFlow is already initialised (logical devices can no longer be
    created), already existing logical CPUs are used when there are enough.
    """
    from sg3keras.runtime.strategy import make_strategy, num_workers_from_env

    gpus = int(gpus)
    if num_workers_from_env() > 1:
        raise ValueError("--gpus: metrics run on one machine; unset TF_CONFIG (it names "
                         "several workers)")
    try:
        return make_strategy(gpus, cpu_replicas=cpu_replicas)
    except RuntimeError as err:
        cpus = tf.config.list_logical_devices("CPU")
        if tf.config.list_physical_devices("GPU") or len(cpus) < gpus:
            raise ValueError(f"--gpus={gpus}: cannot create {gpus} logical CPU devices after "
                             f"TensorFlow was initialised ({err})") from err
        return tf.distribute.MirroredStrategy([d.name for d in cpus[:gpus]])
