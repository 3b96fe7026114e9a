"""Choosing a ``tf.distribute`` strategy (TensorFlow only), for training and for metrics.

* ``TF_CONFIG`` naming more than one worker (or ``workers > 1``) -> ``MultiWorkerMirroredStrategy``;
* ``gpus > 1`` -> ``MirroredStrategy`` over that many GPUs, or -- on a machine without GPUs --
  over that many *logical CPU devices* (useful to exercise the distributed code paths on CPU);
* otherwise the default (no-op) strategy.

Create the strategy before anything else touches the TensorFlow runtime ("Collective ops must be
configured at program startup").

A ``MultiWorkerMirroredStrategy`` peer that never starts blocks the constructor / first step
forever, holding the GIL and ignoring SIGTERM: :func:`make_strategy` arms a start-up watchdog
(``faulthandler``, ``$SG3KERAS_STARTUP_TIMEOUT``) that ends the process unless
:func:`mark_started` is called first. The failures of a running multi-worker job are handled in
:mod:`sg3keras.training.distribute`.
"""

import faulthandler
import json
import os
import sys

import tensorflow as tf

__all__ = ["make_strategy", "mark_started", "is_chief", "is_multi_worker",
           "num_workers_from_env"]


def num_workers_from_env():
    cfg = os.environ.get("TF_CONFIG")
    if not cfg:
        return 1
    try:
        cluster = json.loads(cfg).get("cluster", {})
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


class _Watchdog:
    """Exit the process unless :meth:`cancel` is called within ``timeout`` seconds.

    A MultiWorkerMirroredStrategy worker whose peer never starts (or dies before the first step)
    waits forever -- in the constructor or in the first collective -- holding the GIL and
    ignoring SIGTERM. ``faulthandler``'s watchdog runs in a C thread that needs no GIL: it dumps
    the stacks and exits the process with status 1.
    """

    def __init__(self, timeout, what):
        sys.stderr.write(f"sg3keras: {what}; if that does not finish within {timeout:g} s "
                         "(is every worker named in TF_CONFIG running and reachable?), this "
                         "process exits with a 'Timeout' stack dump.\n")
        sys.stderr.flush()
        faulthandler.dump_traceback_later(timeout, repeat=False, file=sys.stderr, exit=True)

    def cancel(self):
        faulthandler.cancel_dump_traceback_later()


_startup_watchdog = None


def mark_started():
    """Tell the start-up watchdog that the cluster is up (the first step completed)."""
    global _startup_watchdog
    if _startup_watchdog is not None:
        _startup_watchdog.cancel()
        _startup_watchdog = None


def make_strategy(gpus=1, workers=1, collective_timeout=None, startup_timeout=None,
                  cpu_replicas=False):
    """Return the strategy for ``--gpus``/``--workers`` (see module docstring).

    ``gpus`` > 1 needs that many visible GPUs; on a machine without GPUs ``cpu_replicas=True``
    (``--cpu-replicas``) makes ``gpus`` logical CPU replicas instead, on purpose (to test the
    distributed path: slower than one replica).

    ``collective_timeout`` (seconds, default none) bounds every cross-worker collective; it must
    exceed the longest chief-only pause between ticks (see the module docstring). Dead peers are
    detected without it. ``startup_timeout`` (default ``$SG3KERAS_STARTUP_TIMEOUT`` or 300 s)
    bounds the wait for all workers to join, up to the first completed step (see
    :func:`mark_started`).
    """
    if startup_timeout is None:
        startup_timeout = float(os.environ.get("SG3KERAS_STARTUP_TIMEOUT", 300))
    env_workers = num_workers_from_env()
    if workers > 1 or env_workers > 1:
        if env_workers < 2:
            raise ValueError(f"--workers={workers} needs TF_CONFIG describing the cluster "
                             "(cluster.worker = [host:port, ...], task.index = this worker)")
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=collective_timeout)
        global _startup_watchdog
        _startup_watchdog = _Watchdog(startup_timeout, "joining the multi-worker cluster "
                                      "(strategy set-up and first training step)")
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if gpus > 1:
        physical = tf.config.list_physical_devices("GPU")
        if physical:
            if len(physical) < gpus:
                raise ValueError(f"--gpus={gpus} but only {len(physical)} GPU(s) are visible")
            return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(gpus)])
        if not cpu_replicas:
            raise ValueError(f"--gpus={gpus} but TensorFlow sees no GPU; to run {gpus} logical "
                             f"CPU replicas on purpose (to test the distributed path; slower "
                             f"than --gpus=1) add --cpu-replicas")
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * gpus)
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:gpus]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def is_multi_worker(strategy):
    """True for a MultiWorkerMirroredStrategy spanning more than one worker."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
        strategy.extended._in_multi_worker_mode()


def is_chief(strategy):
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0)
