"""``log.txt``: everything a training run prints, as the official loop keeps it.

:class:`RunLog` is the run's ``log`` function: it passes each line on to the caller's ``log``
(the console) and, once the run directory is known (:meth:`RunLog.open`), appends it to
``RUN_DIR/log.txt``, flushed at once so that ``tail -f`` follows a run under ``nohup``. Lines
printed before the directory exists are kept and written first. Processes other than the
chief never open the file.
"""

import contextlib
import os
import time
import warnings

__all__ = ["LOG_FILE", "RunLog"]

LOG_FILE = "log.txt"


class RunLog:
    """A ``log(line)`` callable that tees into ``log.txt`` after :meth:`open`."""

    def __init__(self, log=print):
        self.inner = log
        self.path = None
        self._pending = []

    def __call__(self, msg=""):
        self.inner(msg)
        self._write(str(msg))

    def _write(self, msg):
        if self.path is None:
            if self._pending is not None:
                self._pending.append(msg)
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(msg + "\n")
            f.flush()

    def open(self, run_dir, resumed_kimg=None):
        """Start writing to ``run_dir/log.txt`` (appending; a resumed run first writes one
        ``resumed at kimg X`` line), with the lines printed so far."""
        self.path = os.path.join(run_dir, LOG_FILE)
        if resumed_kimg is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self._write(f"---- resumed at kimg {resumed_kimg:.3f} ({stamp}) ----")
        pending, self._pending = self._pending or [], None
        for msg in pending:
            self._write(msg)

    def discard(self):
        """Not the chief: nothing goes to a file."""
        self._pending = None

    def error(self, exc):
        """Write the exception that ends the run (file only: the caller reports it)."""
        self._write(f"Error: {type(exc).__name__}: {exc}")

    @contextlib.contextmanager
    def warnings_too(self):
        """Within the block, Python warnings shown on the console also go to the file (one
        ``file:line: Category: message`` line each)."""
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            shown(message, category, filename, lineno, file, line)
            self._write(f"{filename}:{lineno}: {category.__name__}: {message}")
        warnings.showwarning = show
        try:
            yield self
        finally:
            warnings.showwarning = shown

    def file_only(self, msg):
        """A block for the file only (the run's options: the console is spared them)."""
        for line in str(msg).splitlines():
            self._write(line)
