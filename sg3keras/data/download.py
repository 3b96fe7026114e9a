"""Downloads into the sg3keras cache: atomic, resumable by hand, never a partial file.

The cache is ``$SG3KERAS_CACHE`` if set, else ``$XDG_CACHE_HOME/sg3keras`` (``~/.cache/sg3keras``).
:func:`download` writes into a temporary file beside the destination and renames it only when
the body is complete (``Content-Length``) and matches the recorded SHA-256, if any; every failure
(offline, HTTP error, dropped connection, truncated body, wrong checksum) raises one
:class:`DownloadError` naming the URL, the cache path and how to place the file by hand.
"""

import contextlib
import hashlib
import http.client
import os
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from sg3keras.utils import fault_point

__all__ = ["DownloadError", "cache_dir", "cached_file", "download", "is_url"]

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download that did not complete; nothing was left in the cache."""


def cache_dir(*parts):
    """The cache directory (not created): ``$SG3KERAS_CACHE`` or ``~/.cache/sg3keras``."""
    root = os.environ.get("SG3KERAS_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "sg3keras")
    return os.path.join(root, *parts)


def is_url(s):
    return isinstance(s, str) and re.match(r"^https?://", s, re.IGNORECASE) is not None


def cached_file(url, subdir="downloads"):
    """Where :func:`download` keeps ``url``: ``<cache>/<subdir>/<key>/<file name of the URL>``.

    ``key`` is the first 16 hex digits of the SHA-256 of the whole URL, so two URLs that end in
    the same file name (``http://a/x/network.pkl``, ``http://a/y/network.pkl``) never share a
    cache entry; the file keeps the URL's own name (its extension tells the file's kind).
    """
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not name or name in (".", ".."):
        name = "download"
    return cache_dir(subdir, _url_key(url), name)


def _url_key(url):
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class _Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal; silent otherwise)."""

    def __init__(self, label, total, enabled):
        self.label, self.total, self.done = label, total, 0
        self.enabled = enabled and sys.stderr.isatty()
        self.last = 0.0

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last > 0.2:
            self.last = now
            self._draw()

    def _draw(self, end=""):
        mb = self.done / 2 ** 20
        if self.total:
            frac = self.done / self.total
            bar = "#" * int(frac * 30)
            text = f"{self.label} [{bar:<30s}] {100 * frac:5.1f}% of {self.total / 2 ** 20:.1f} MB"
        else:
            text = f"{self.label} {mb:.1f} MB"
        sys.stderr.write("\r" + text + end)
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            self._draw(end="\n")


def _temp_beside(dest, url):
    """A new temporary file (fd, path) in ``dest``'s folder, made if needed."""
    directory = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(directory, exist_ok=True)
        return tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=".part",
                                dir=directory)
    except OSError as e:
        raise DownloadError(f"cannot write the download cache {directory} for {url}: "
                            f"{e.strerror or e} (set $SG3KERAS_CACHE to a writable directory)"
                            ) from None


def download(url, dest=None, *, sha256=None, progress=True, timeout=60.0, log=None):
    """Return a local path holding ``url``'s body, downloading it into the cache if needed.

    Args:
        url: an ``http://`` or ``https://`` URL.
        dest: where to keep the file (default :func:`cached_file`). An existing file is reused
            (after the checksum check when ``sha256`` is given).
        sha256: expected hex digest, or None.
        progress: draw a progress bar on stderr when it is a terminal.
        timeout: seconds without data before giving up.
        log: ``callable(str)`` told when a download starts, once the server has answered
            (default: stderr).

    Raises:
        DownloadError: one line naming the URL, the cache path and how to place it by hand.
    """
    dest = os.fspath(dest) if dest is not None else cached_file(url)
    hint = (f"; download it by hand (e.g. curl -L -o '{dest}' '{url}') and run again, or give "
            "the path of a local copy")
    if os.path.isfile(dest):
        if sha256 is None or _sha256(dest) == sha256.lower():
            return dest
        raise DownloadError(f"{dest}: the cached copy of {url} has the wrong SHA-256 (expected "
                            f"{sha256}); delete it and run again")
    directory = os.path.dirname(os.path.abspath(dest))
    fd, tmp = _temp_beside(dest, url)
    received = 0
    try:
        with os.fdopen(fd, "wb") as f:
            req = urllib.request.Request(url, headers={"User-Agent": "sg3keras"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                (log or (lambda m: print(m, file=sys.stderr)))(f"Downloading {url} -> {dest}")
                length = resp.headers.get("Content-Length")
                length = int(length) if length and length.isdigit() else None
                bar = _Progress(os.path.basename(dest), length, progress)
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    f.write(block)
                    fault_point("download.mid", dest)
                    received += len(block)
                    bar.update(len(block))
                bar.close()
            if length is not None and received != length:
                raise DownloadError(f"cannot download {url}: the connection ended after "
                                    f"{received} of {length} bytes; nothing was cached at "
                                    f"{dest}" + hint)
            f.flush()
            os.fsync(f.fileno())
        if sha256 is not None and _sha256(tmp) != sha256.lower():
            raise DownloadError(f"cannot download {url}: the body's SHA-256 is not the expected "
                                f"{sha256}; nothing was cached at {dest}" + hint)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        fault_point("download.before_rename", dest)
        os.replace(tmp, dest)
        return dest
    except DownloadError:
        raise
    except urllib.error.HTTPError as e:
        raise DownloadError(f"cannot download {url}: HTTP {e.code} {e.reason}; nothing was "
                            f"cached at {dest}" + hint) from None
    except urllib.error.URLError as e:
        reason = getattr(e.reason, "strerror", None) or e.reason
        raise DownloadError(f"cannot download {url}: {reason} (offline?); nothing was cached at "
                            f"{dest}" + hint) from None
    except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as e:
        what = type(e).__name__ if not str(e) else f"{type(e).__name__}: {e}"
        raise DownloadError(f"cannot download {url}: the connection failed after {received} "
                            f"bytes ({what}); nothing was cached at {dest}" + hint) from None
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if not os.path.exists(dest) and os.path.basename(directory) == _url_key(url):
            with contextlib.suppress(OSError):  # a failed download leaves no empty URL folder
                os.rmdir(directory)
