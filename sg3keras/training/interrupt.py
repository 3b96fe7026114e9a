"""Ctrl-C (SIGINT) and SIGTERM during training: a clean stop.

:func:`graceful_stop` installs handlers for both signals (main thread only) for the length of a
run. Before training starts (reading the dataset, building the networks) a signal stops the run
at once: nothing has been trained yet. While ``fit`` runs (``StopRequest.deferring``) the first
signal is a request: the step that is running finishes, the tick it belongs to is abandoned
(unless it was the tick's last step, whose checkpoint is then written as usual), and the run
ends with :class:`RunInterrupted`; its message says which checkpoint was kept and the command
that resumes the run. A second signal stops at once, which is as safe as a kill: every file is
written atomically, so the newest checkpoint on disk is a complete one.

The CLI prints the message as its only line and exits with ``128 + signal`` (130 for SIGINT,
143 for SIGTERM), as a shell does for a process a signal ended.
"""

import contextlib
import shlex
import signal
import threading

__all__ = ["RunInterrupted", "StopRequest", "graceful_stop", "resume_command"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``str()`` is the one line to show, ``exit_status``
    ``128 + signum``."""

    def __init__(self, signum, message=None):
        self.signum = int(signum)
        self.message = message or f"Stopped by {signal.Signals(self.signum).name}"
        super().__init__(self.message)

    @property
    def exit_status(self):
        return 128 + self.signum

    def __str__(self):
        return self.message


class StopRequest:
    """The state the signal handler shares with the training loop."""

    def __init__(self):
        self.signum = None
        self.deferring = False      # True while fit runs: the first signal asks, the second stops

    @property
    def requested(self):
        return self.signum is not None

    def handler(self, signum, frame):
        first = self.signum is None
        if first:
            self.signum = signum
        if not (first and self.deferring):
            raise RunInterrupted(self.signum)


@contextlib.contextmanager
def graceful_stop():
    """Within the block SIGINT and SIGTERM go to a :class:`StopRequest` (yielded); the previous
    handlers come back after it. Outside the main thread nothing is installed."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, stop.handler)
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)


def resume_command(run_dir):
    """The exact command that continues the run in ``run_dir``."""
    return f"sg3keras train --resume {shlex.quote(str(run_dir))}"


def _kept(run_dir):
    """``'checkpoint PATH (kimg K)'`` of the run's newest checkpoint, or None."""
    import os

    from sg3keras.training.checkpoint import CKPT_DIR, CheckpointError, read_latest
    try:
        info = read_latest(run_dir)
    except CheckpointError:
        return None
    if info is None:
        return None
    path = os.path.join(run_dir, CKPT_DIR, info["file"])
    return f"checkpoint {path} (kimg {float(info.get('kimg', 0.0)):.3f})"


def how_to_continue(run_dir, resumable):
    """The end of a stopped run's line: what was kept and the command that continues it."""
    if run_dir is None or not resumable:
        return "nothing was trained yet; run the same command again"
    kept = _kept(run_dir)
    if kept is None:
        return (f"no checkpoint yet (stopped in its first tick); train it from step 0 with: "
                f"{resume_command(run_dir)}")
    return f"kept {kept}; resume with: {resume_command(run_dir)}"


def stopped(signum, run_dir, resumable):
    """The :class:`RunInterrupted` that ends a run a signal stopped."""
    name = signal.Signals(signum).name
    where = f" {run_dir}" if run_dir is not None else ""
    return RunInterrupted(signum, f"Stopped{where} ({name}): "
                                  f"{how_to_continue(run_dir, resumable)}")
