"""Choosing a ``tf.distribute`` strategy (TensorFlow only).

* ``TF_CONFIG`` naming more than one worker (or ``workers > 1``) -> ``MultiWorkerMirroredStrategy``;
* ``gpus > 1`` -> ``MirroredStrategy`` over that many GPUs, or -- on a machine without GPUs --
  over that many *logical CPU devices* (useful to exercise the distributed code paths on CPU);
* otherwise the default (no-op) strategy.

Create the strategy before anything else touches the TensorFlow runtime ("Collective ops must be
configured at program startup").
"""

import faulthandler
import json
import os
import sys
import tempfile

import keras
import tensorflow as tf

__all__ = ["make_strategy", "mark_started", "is_chief", "is_multi_worker", "scratch_dir",
           "num_workers_from_env", "StartedCallback"]


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


def make_strategy(gpus=1, workers=1, collective_timeout=120.0, startup_timeout=None):
    """Return the strategy for ``--gpus``/``--workers`` (see module docstring).

    ``collective_timeout`` bounds every cross-worker collective (a dead peer mid-run raises an
    error instead of hanging); ``startup_timeout`` (default ``$SG3KERAS_STARTUP_TIMEOUT`` or
    300 s) bounds the wait for all workers to join, up to the first completed step (see
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


def scratch_dir():
    """A throw-away directory for the files non-chief workers must not write to the run dir."""
    return tempfile.mkdtemp(prefix="sg3keras-worker-")


class StartedCallback(keras.callbacks.Callback):
    """Cancels the start-up watchdog once the first training step has completed."""

    def on_train_batch_end(self, batch, logs=None):
        mark_started()
