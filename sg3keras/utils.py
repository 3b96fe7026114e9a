"""Small shared helpers: atomic file writes (with fault points for the crash tests), official
latents from seeds, image conversion and grids, time formatting."""

import contextlib
import fnmatch
import json
import os
import signal
import sys
import tempfile

import numpy as np

__all__ = ["atomic_path", "atomic_write", "atomic_write_bytes", "atomic_write_json", "to_uint8", "format_time",
           "z_from_seed", "save_png", "make_grid", "save_keras_atomic", "fault_point"]


# ---- fault points (docs/RELIABILITY.md lists them) --------------------------------------------

def parse_faults(spec):
    """``"a@x*:2,b:1"`` -> ``[["a", "x*", 2, 0], ["b", None, 1, 0]]`` (the last item counts hits).
    A malformed spec is one ValueError naming ``$SG3KERAS_FAULT``."""
    plan = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, n = item.rpartition(":")
        name, _, glob = name.partition("@")
        if not name or not n.isdigit() or int(n) < 1:
            raise ValueError(f"$SG3KERAS_FAULT: {item!r}: expected POINT[@GLOB]:N with N >= 1")
        plan.append([name, glob or None, int(n), 0])
    return plan


_FAULTS = parse_faults(os.environ.get("SG3KERAS_FAULT", ""))
FAULTS_ARMED = bool(_FAULTS)


def fault_point(name, path=None, partial=None):
    """A step of a write to ``path`` where the crash tests may kill this process.

    ``$SG3KERAS_FAULT="POINT[@GLOB]:N[,...]"`` (read at import) makes the ``N``-th hit of point
    ``POINT`` whose file's base name matches ``GLOB`` (any file when omitted) print ``FAULT
    POINT@NAME`` on stderr and SIGKILL this process (no ``finally``, no flush: a power cut).
    Unset, this returns at once. ``partial``: a file complete at this point, cut to half its
    size before the kill (what a kill while writing it would leave)."""
    if not _FAULTS:
        return
    base = os.path.basename(os.fspath(path)) if path is not None else ""
    for item in _FAULTS:
        if item[0] != name or (item[1] is not None and not fnmatch.fnmatch(base, item[1])):
            continue
        item[3] += 1
        if item[3] == item[2]:
            if partial is not None and os.path.isfile(partial):
                os.truncate(partial, os.path.getsize(partial) // 2)
            os.write(sys.stderr.fileno(), f"FAULT {name}@{base}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)


# ---- atomic writes ------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary file name beside ``path`` for a writer that wants a file name; on
    success the file gets the user's usual permissions (``0666 & ~umask``; ``mkstemp``
    creates 0600) and is renamed over ``path``. On any error it is removed, and a crash
    (or SIGKILL) leaves the previous ``path`` untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix,
                               dir=directory)
    os.close(fd)
    try:
        fault_point("atomic.begin", path)
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        fault_point("atomic.before_rename", path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fault_point("atomic.after_rename", path)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success rename it over ``path``
    (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def atomic_write_bytes(path, data: bytes):
    with atomic_write(path, "wb") as f:
        if FAULTS_ARMED:          # crash tests only: stop with half of the bytes written
            f.write(data[:len(data) // 2])
            f.flush()
            fault_point("atomic.mid_write", path)
            data = data[len(data) // 2:]
        f.write(data)


def atomic_write_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def z_from_seed(seed, z_dim):
    """Latent for ``seed`` exactly as the official gen_images.py draws it.

    ``numpy.random.RandomState(seed).randn(1, z_dim)`` (float64), cast to float32.
    """
    return np.random.RandomState(int(seed)).randn(1, int(z_dim)).astype(np.float32)


def format_time(seconds):
    """Human-readable duration as the official tools print it: ``'12s'``, ``'3m 05s'``,
    ``'2h 03m 04s'``, ``'1d 02h 03m'``."""
    s = max(int(np.rint(seconds)), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s // 60 % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {s // 3600 % 24:02d}h {s // 60 % 60:02d}m"


def to_uint8(images):
    """Official quantisation of generator output: ``clip(img * 127.5 + 128, 0, 255)`` in float32,
    truncated to uint8. The one implementation used by the CLI tools, the metrics and the
    SavedModel: numpy (or a list) in, numpy out; a backend tensor in (also inside a traced
    graph), a tensor out."""
    from keras import ops
    as_numpy = isinstance(images, (np.ndarray, np.generic, list, tuple))
    x = ops.convert_to_tensor(images, "float32") * 127.5 + 128.0
    out = ops.cast(ops.clip(x, 0.0, 255.0), "uint8")
    return np.asarray(out) if as_numpy else out


def make_grid(images, grid=None):
    """Tile ``[N, H, W, C]`` uint8 images into one ``[gh*H, gw*W, C]`` image."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    if grid is None:
        gw = int(np.ceil(np.sqrt(n)))
        gh = int(np.ceil(n / gw))
    else:
        gw, gh = grid
    canvas = np.zeros((gh * h, gw * w, c), images.dtype)
    for i in range(min(n, gw * gh)):
        y, x = divmod(i, gw)
        canvas[y * h:(y + 1) * h, x * w:(x + 1) * w] = images[i]
    return canvas


def save_png(path, image):
    """Write an ``[H, W, C]`` uint8 image (C = 1 or 3) atomically as PNG."""
    import io

    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def save_keras_atomic(model, path):
    """``model.save(path)`` through a temporary ``.keras`` file beside it and a rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        fault_point("atomic.mid_write", path, partial=tmp)
        with open(tmp, "rb") as f:      # on disk before the rename makes it the snapshot
            os.fsync(f.fileno())
        fault_point("atomic.before_rename", path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fault_point("atomic.after_rename", path)
    return path


def lazy_exports(package, exports):
    """``(__getattr__, __all__)`` for a package whose public names load on first use, so that
    importing it stays cheap: ``exports`` maps each name to the module that defines it."""
    import importlib

    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__, sorted(exports)


def append_bytes(path, data):
    """Append ``data`` to ``path`` in one ``write`` on an ``O_APPEND`` file, then ``fsync``: a
    line appended so is never interleaved with another writer's, and a kill leaves at most the
    last line cut short (the readers drop it). After such a cut line, ``data`` starts on a new
    line, so the cut line stays a damaged line of its own instead of swallowing this one."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)   # umask applies
    try:
        size = os.fstat(fd).st_size
        if size and data and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        if FAULTS_ARMED:          # crash tests only: stop with half of the line appended
            os.write(fd, data[:len(data) // 2])
            fault_point("append.mid", path)
            data = data[len(data) // 2:]
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fault_point("append.after", path)
