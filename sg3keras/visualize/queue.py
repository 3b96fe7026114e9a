"""Newest-wins rendering: one worker thread renders; a newer request of a client replaces that
client's request still waiting, so dragging a slider never queues stale frames."""

import collections
import threading

__all__ = ["LatestOnly", "Superseded", "Busy"]


class Superseded(Exception):
    """The request was replaced by a newer one of the same client before it started."""


class Busy(Exception):
    """Too many clients are waiting (``max_waiting``) or the render did not finish in time."""


class _Job:
    def __init__(self, fn):
        self.fn, self.done = fn, threading.Event()
        self.result = self.error = None
        self.superseded = False


class LatestOnly:
    """Run submitted callables one at a time on one worker thread; per ``key`` (a client) at
    most one waits: submitting again replaces the waiting one (its caller gets
    :class:`Superseded`). Jobs of different keys run in submission order."""

    def __init__(self, max_waiting=16):
        self.max_waiting = int(max_waiting)
        self._waiting = collections.OrderedDict()
        self._cv = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="sg3keras-render", daemon=True)
        self._thread.start()

    def submit(self, key, fn, timeout=300.0):
        """``fn()``'s result once the worker ran it; raises what ``fn`` raised,
        :class:`Superseded` or :class:`Busy`."""
        job = _Job(fn)
        with self._cv:
            old = self._waiting.pop(key, None)
            if old is not None:
                old.superseded = True
                old.done.set()
            elif len(self._waiting) >= self.max_waiting:
                raise Busy(f"too many clients waiting ({self.max_waiting})")
            self._waiting[key] = job
            self._cv.notify()
        if not job.done.wait(timeout):
            raise Busy(f"the render took longer than {timeout:g} s")
        if job.superseded:
            raise Superseded("replaced by a newer request")
        if job.error is not None:
            raise job.error
        return job.result

    def _work(self):
        while True:
            with self._cv:
                while not self._waiting and not self._stopped:
                    self._cv.wait(1.0)
                if self._stopped:
                    return
                _, job = self._waiting.popitem(last=False)
            try:
                job.result = job.fn()
            except Exception as e:    # handed to the caller, which answers the client
                job.error = e
            job.done.set()

    def stop(self, timeout=5.0):
        with self._cv:
            self._stopped = True
            for job in self._waiting.values():
                job.superseded = True
                job.done.set()
            self._waiting.clear()
            self._cv.notify_all()
        self._thread.join(timeout)
