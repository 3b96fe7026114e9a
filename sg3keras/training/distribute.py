"""Multi-worker training: the training-side callbacks and failure handling (TensorFlow only).

The strategy itself is chosen by :mod:`sg3keras.runtime.strategy` (shared with the metrics); its
helpers are re-exported here for the training code.

Failure handling under ``MultiWorkerMirroredStrategy`` (measured with TF 2.21, 2 workers on one
machine, see ``tests/test_distributed.py``):

* a peer that never starts blocks the constructor / first step forever, holding the GIL and
  ignoring SIGTERM: the start-up watchdog (``faulthandler``, ``$SG3KERAS_STARTUP_TIMEOUT``) ends it;
* a peer that dies (SIGKILL) or freezes (SIGSTOP) mid-run is detected by TensorFlow's coordination
  service: the survivor's next collective raises ``UnavailableError`` within about 10 s (heartbeat
  timeout; at once, "Connection refused" or "reset", when the dead peer was worker 0, the
  coordination leader). :class:`WorkerWatchdog` turns that into a :class:`PeerFailureError`
  naming the peer;
* a peer that is alive but stops calling collectives keeps sending heartbeats, so nothing in
  TensorFlow notices; :class:`WorkerWatchdog` bounds each training step
  (``$SG3KERAS_STEP_TIMEOUT``).

No per-collective ``timeout_seconds`` is set by default: it also fires while a healthy chief is
busy between ticks (checkpoint, snapshot, metrics -- chief-only work that can take far longer than
any step), and the waiting worker then fails with ``DeadlineExceededError: Collective has timed
out during execution`` or, in some runs, a segmentation fault.
"""

import faulthandler
import json
import os
import re
import sys
import tempfile
import threading
import time

import keras
import tensorflow as tf

from sg3keras.runtime.strategy import (
    is_chief,
    is_multi_worker,
    make_strategy,
    mark_started,
    num_workers_from_env,
)

__all__ = ["make_strategy", "mark_started", "is_chief", "is_multi_worker", "scratch_dir",
           "num_workers_from_env", "StartedCallback", "WorkerWatchdog", "PeerFailureError",
           "explain_peer_failure"]

DEFAULT_STEP_TIMEOUT = 600.0   # seconds; $SG3KERAS_STEP_TIMEOUT overrides, 0 disables.


def scratch_dir():
    """A throw-away directory for the files non-chief workers must not write to the run dir."""
    return tempfile.mkdtemp(prefix="sg3keras-worker-")


class StartedCallback(keras.callbacks.Callback):
    """Cancels the start-up watchdog once the first training step has completed."""

    def on_train_batch_end(self, batch, logs=None):
        mark_started()


class PeerFailureError(RuntimeError):
    """A collective with the other workers failed: a peer worker died, stopped or is unreachable."""


def _cluster_from_env():
    """``(task_type, task_index, {job: [address, ...]})`` from ``TF_CONFIG`` (empty if unset)."""
    try:
        cfg = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError:
        cfg = {}
    task = cfg.get("task", {})
    return task.get("type", "worker"), int(task.get("index", 0)), cfg.get("cluster", {})


def _describe_worker():
    task_type, index, cluster = _cluster_from_env()
    names = ", ".join(f"{job}[{i}]={addr}" for job, addrs in cluster.items()
                      for i, addr in enumerate(addrs))
    return f"this process is TF_CONFIG task {task_type}[{index}] of cluster {names or '?'}"


def _peers_named_in(message):
    """The cluster members (other than this task) that TensorFlow's error message mentions."""
    task_type, index, cluster = _cluster_from_env()
    found = set()
    for job, i in re.findall(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", message):
        found.add((job, int(i)))
    for job, addrs in cluster.items():
        for i, addr in enumerate(addrs):
            if addr in message:
                found.add((job, i))
    found.discard((task_type, index))
    return [f"{job}[{i}]" + (f" ({cluster[job][i]})" if i < len(cluster.get(job, ())) else "")
            for job, i in sorted(found)]


def _tf_reason(err):
    """The informative part of a TensorFlow collective error (its first lines, no node info)."""
    text = getattr(err, "message", None) or str(err)
    m = re.search(r"(Collective ops is aborted by: .*?)(?:\n\s*\[\[|$)", text, re.S)
    text = m.group(1) if m else text
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text[:400]


def explain_peer_failure(err):
    """A :class:`PeerFailureError` for a collective error ``err`` (naming the peer if known)."""
    peers = _peers_named_in(str(err))
    who = f"The peer {' / '.join(peers)}" if peers else "A peer worker"
    out = PeerFailureError(
        f"multi-worker training stopped: a collective with the other workers failed. {who} "
        f"probably died, was stopped or is unreachable; {_describe_worker()}. Restart every "
        f"worker (--resume RUN_DIR continues from the last checkpoint). TensorFlow: "
        f"{type(err).__name__}: {_tf_reason(err)}")
    out.tf_error = err   # Keras re-raises with ``from None``, hiding ``__cause__``.
    return out


_COLLECTIVE_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                      tf.errors.AbortedError, tf.errors.CancelledError)


def _is_tracing(frame):
    """True if ``frame``'s thread is tracing a ``tf.function`` (a new concrete function)."""
    while frame is not None:
        if frame.f_code.co_name == "_create_concrete_function":
            return True
        frame = frame.f_back
    return False


class WorkerWatchdog(keras.callbacks.Callback):
    """Ends a multi-worker run whose peers died or stalled with a clear error, never a hang.

    Active only under a multi-worker strategy (the model's ``distribute_strategy``). For the
    duration of ``fit`` it wraps ``model.train_function``:

    * a collective error (``UnavailableError`` etc., raised by TensorFlow when a peer dies or
      freezes) is re-raised as :class:`PeerFailureError` naming the peer and this TF_CONFIG task;
    * a step that runs longer than ``step_timeout`` seconds (default ``$SG3KERAS_STEP_TIMEOUT``
      or 600; 0 disables) -- computing, or waiting in a collective for a peer that is alive but
      no longer steps -- makes a watchdog thread print why, dump the stacks and exit the process
      with status 1 (a blocked collective releases the GIL, so the thread runs). Exempt: the
      first step of every epoch (tick), which waits for the chief's checkpoint, snapshot and
      metrics, and steps that trace a new step function (the workers trace at their own speed;
      the first step of the run is also covered by the start-up watchdog).
    """

    def __init__(self, step_timeout=None):
        super().__init__()
        if step_timeout is None:
            step_timeout = float(os.environ.get("SG3KERAS_STEP_TIMEOUT", DEFAULT_STEP_TIMEOUT))
        self.step_timeout = float(step_timeout)
        self._inner = None
        self._watched = None       # (step number, thread id, start time) of the timed step.
        self._steps = 0
        self._exempt = True
        self._stop = None

    def on_train_begin(self, logs=None):
        self._unwrap()
        if not is_multi_worker(self.model.distribute_strategy):
            return
        self._inner = self.model.train_function
        if self._inner is None:
            raise RuntimeError("WorkerWatchdog: keras fit no longer builds train_function before "
                               "on_train_begin; update sg3keras.training.distribute")
        self.model.train_function = self._step
        if self.step_timeout > 0:
            self._stop = threading.Event()
            threading.Thread(target=self._watch, args=(self._stop,), daemon=True,
                             name="sg3keras-step-watchdog").start()

    def on_epoch_begin(self, epoch, logs=None):
        self._exempt = True

    def on_train_end(self, logs=None):
        self._unwrap()

    def _step(self, iterator):
        exempt, self._exempt = self._exempt, False
        self._steps += 1
        if not exempt:
            self._watched = (self._steps, threading.get_ident(), time.monotonic())
        try:
            return self._inner(iterator)
        except _COLLECTIVE_ERRORS as err:
            self._unwrap()
            raise explain_peer_failure(err) from err
        except BaseException:
            self._unwrap()
            raise
        finally:
            self._watched = None

    def _unwrap(self):
        self._watched = None
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        if self._inner is not None and getattr(self.model, "train_function", None) is self._step:
            self.model.train_function = self._inner
        self._inner = None

    def _watch(self, stop):
        poll, current, exempt = min(0.5, self.step_timeout / 20), None, False
        while not stop.wait(poll):
            watched = self._watched
            if watched != current:
                current, exempt = watched, False
            if watched is None or exempt:
                continue
            if _is_tracing(sys._current_frames().get(watched[1])):
                exempt = True
            elif time.monotonic() - watched[2] > self.step_timeout and not stop.is_set():
                self._expire()

    def _expire(self):
        sys.stderr.write(
            f"\nsg3keras: PeerFailureError: a training step has been running for more than "
            f"{self.step_timeout:g} s (SG3KERAS_STEP_TIMEOUT), most likely waiting in a "
            "collective for a peer worker that is alive but stuck or unreachable (one that died "
            "or was stopped is normally reported by TensorFlow within seconds); "
            f"{_describe_worker()}. Exiting with status 1; restart every worker (--resume "
            "RUN_DIR continues from the last checkpoint). Stacks of this process:\n")
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        os._exit(1)
