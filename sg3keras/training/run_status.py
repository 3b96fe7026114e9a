"""``status.json`` in a run directory: whether the run is running, finished, stopped or failed.

The chief writes it (atomically) when the run starts, at every tick end (a heartbeat), and when
:func:`sg3keras.training.loop.train` returns or raises::

    {"state": "running" | "finished" | "stopped" | "error", "pid": 1234, "host": "node1",
     "started": <time.time()>, "updated": <time.time()>, "kimg": 0.128, "message": "..."}

``stopped``: the run ended before its length (a ``deadline``, Ctrl-C); ``error``: it raised,
``message`` is the error's first line. A killed run keeps ``running`` with a pid that no longer
exists (``sg3keras runs`` tells the two apart, :mod:`sg3keras.tools.runs_table`).
"""

import contextvars
import functools
import json
import os
import socket
import time

import keras

from sg3keras.utils import atomic_write_json

__all__ = ["STATUS_FILE", "tracked", "started", "StatusCallback"]

STATUS_FILE = "status.json"
_current = contextvars.ContextVar("sg3keras_run_status", default=None)


class _Status:
    def __init__(self):
        self.run_dir, self.total_steps, self.record = None, None, {}

    def write(self, state, **extra):
        if self.run_dir is None:
            return
        self.record.update(state=state, updated=time.time(), **extra)
        try:
            atomic_write_json(os.path.join(self.run_dir, STATUS_FILE), self.record)
        except OSError:         # the status is a convenience; never the reason a run fails
            pass

    def ended(self):
        """``finished`` when the newest checkpoint reached the run's length, else ``stopped``."""
        step = None
        try:
            with open(os.path.join(self.run_dir or "", "checkpoints", "latest.json")) as f:
                step = int(json.load(f)["step"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        done = step is not None and self.total_steps is not None and step >= self.total_steps
        self.write("finished" if done else "stopped", message=None if done else
                   "ended before its length (time limit or interrupted)")


def _first_line(e):
    text = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def tracked(fn):
    """Decorate ``train``: once :func:`started` named the run directory, the run's end (return,
    exception, interrupt) is recorded in its ``status.json``."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        status = _Status()
        token = _current.set(status)
        try:
            result = fn(*args, **kwargs)
        except Exception as e:
            status.write("error", message=_first_line(e))
            raise
        except BaseException as e:          # KeyboardInterrupt, SystemExit
            status.write("stopped", message=_first_line(e))
            raise
        else:
            if status.run_dir is not None:
                status.ended()
            return result
        finally:
            _current.reset(token)
    return wrapper


def started(run_dir, chief, total_steps):
    """Record that the run in ``run_dir`` is running (the chief only; other workers write
    nothing)."""
    status = _current.get()
    if status is None or not chief:
        return
    status.run_dir, status.total_steps = run_dir, int(total_steps)
    status.record = dict(pid=os.getpid(), host=socket.gethostname(), started=time.time())
    status.write("running", message=None)


class StatusCallback(keras.callbacks.Callback):
    """The heartbeat: ``status.json``'s ``updated`` and ``kimg`` at each tick end."""

    def __init__(self, gan):
        super().__init__()
        self.gan = gan

    def on_epoch_end(self, epoch, logs=None):
        status = _current.get()
        if status is not None and status.run_dir is not None:
            status.write("running", kimg=int(self.gan.cur_nimg.numpy()) / 1000.0)
