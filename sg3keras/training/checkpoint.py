"""Training checkpoints: every variable of the trainer in one ``.npz``, written atomically,
with its SHA-256 beside it.

A checkpoint holds G, D, G_ema, both optimizers (moments and iteration counters), the trainer's
counters (step, images seen, ADA statistics, path-length mean), the augmentation probability, the
random-number generator states, and a JSON ``meta`` dict (kimg, tick, data position, options).

Layout of a run directory::

    checkpoints/ckpt-00000128.npz   one file per checkpoint (temp file + rename)
    checkpoints/ckpt-00000128.json  its record: {"file", "sha256", "size", "step", "kimg", ...}
    checkpoints/latest.json         the newest checkpoint's record, replaced last

A kill at any moment leaves ``latest.json`` pointing at a complete file: the ``.npz`` and its
record are renamed into place before ``latest.json`` is rewritten, and old checkpoints are
removed only after that (the newest ``keep`` stay, so that a damaged newest one has a
predecessor). :func:`restore_latest` checks the SHA-256 before it reads anything: a truncated or
bit-flipped checkpoint (or a ``latest.json`` that is not JSON) is reported in one line each and
the newest good checkpoint is restored instead.

A write that fails for lack of space or a read-only disk (ENOSPC, EDQUOT, EFBIG, EROFS) raises
:class:`StorageError`, whose message names the file; the previous checkpoint is untouched.
"""

import contextlib
import errno as _errno
import hashlib
import io
import json
import os
import re

import numpy as np

from sg3keras.utils import atomic_write_bytes, atomic_write_json

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "restore_latest",
           "read_latest", "file_digest", "writing", "CheckpointError", "CorruptCheckpointError",
           "NonFiniteStateError", "StorageError", "STORAGE_ERRNOS"]

CKPT_DIR = "checkpoints"
LATEST = "latest.json"
_NAME = re.compile(r"^ckpt-(\d+)\.npz$")
# A full disk, a quota, a file-size limit, a read-only file system.
STORAGE_ERRNOS = tuple(getattr(_errno, n) for n in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS")
                       if hasattr(_errno, n))


class CheckpointError(RuntimeError):
    pass


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file is truncated, altered or unreadable (its SHA-256 or its zip is wrong)."""


class NonFiniteStateError(CheckpointError):
    """The state to be saved holds NaN/Inf values (training diverged); nothing was written."""


class StorageError(OSError):
    """A write failed because the disk is full or read-only; ``str()`` is the whole message."""

    def __init__(self, err, message, filename=None):
        super().__init__(err, message)
        self.message, self.filename = message, filename

    def __str__(self):
        return self.message


@contextlib.contextmanager
def writing(path, what):
    """Within the block, an OSError of :data:`STORAGE_ERRNOS` becomes a :class:`StorageError`
    naming ``what`` and ``path`` (the errors of a Python file's ``write`` name no file)."""
    try:
        yield
    except StorageError:
        raise
    except OSError as e:
        if e.errno not in STORAGE_ERRNOS:
            raise
        code = _errno.errorcode.get(e.errno, str(e.errno))
        raise StorageError(e.errno, f"cannot write {what} {path}: "
                           f"{e.strerror or os.strerror(e.errno)} ({code})", path) from e


def _variables(trainer):
    """Ordered (key, variable) pairs of everything that must survive a resume."""
    return trainer.checkpoint_variables()


def file_digest(path):
    """``(sha256 hex, size in bytes)`` of a file, read in 1 MiB blocks."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def _step_of(name):
    m = _NAME.match(name)
    return int(m.group(1)) if m else None


def save_checkpoint(run_dir, trainer, meta, keep=2):
    """Write ``checkpoints/ckpt-<step>.npz`` and its record, and point ``latest.json`` at it.
    Returns its path.

    Refuses (:class:`NonFiniteStateError`) to save a state with NaN/Inf weights, so the latest
    checkpoint is always a usable one. The newest ``keep`` checkpoints up to this one stay; any
    with a larger step (left by a run that went back to an older checkpoint) are removed.
    """
    pairs = _variables(trainer)
    arrays, bad = {}, []
    for i, (key, var) in enumerate(pairs):
        value = np.asarray(var.numpy() if hasattr(var, "numpy") else var)
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            bad.append(key)
        arrays[f"{i:05d}|{key}"] = value
    if bad:
        raise NonFiniteStateError(f"{len(bad)} variable(s) hold NaN/Inf, e.g. {bad[:3]}")
    arrays["__meta__"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    ckpt_dir = os.path.join(run_dir, CKPT_DIR)
    step = int(meta["step"])
    name = f"ckpt-{step:08d}.npz"
    path = os.path.join(ckpt_dir, name)
    record = {**meta, "file": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    with writing(path, "checkpoint"):
        os.makedirs(ckpt_dir, exist_ok=True)
        atomic_write_bytes(path, data)
    with writing(path[:-4] + ".json", "checkpoint record"):
        atomic_write_json(path[:-4] + ".json", record)
    with writing(os.path.join(ckpt_dir, LATEST), "checkpoint pointer"):
        atomic_write_json(os.path.join(ckpt_dir, LATEST), record)
    older = sorted(s for s in _steps_on_disk(ckpt_dir) if s < step)
    stale = [s for s in _steps_on_disk(ckpt_dir) if s > step]
    for s in (older[:max(0, len(older) - (keep - 1))] if keep else []) + stale:
        for ext in (".npz", ".json"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(ckpt_dir, f"ckpt-{s:08d}{ext}"))
    return path


def _steps_on_disk(ckpt_dir):
    names = os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []
    return [s for s in map(_step_of, names) if s is not None]


def read_latest(run_dir):
    """The record of ``checkpoints/latest.json`` (a dict), or None when there is none.
    A file that is not a JSON object naming a checkpoint raises :class:`CorruptCheckpointError`
    naming it."""
    latest = os.path.join(run_dir, CKPT_DIR, LATEST)
    if not os.path.exists(latest):
        return None
    try:
        with open(latest, "rb") as f:
            info = json.loads(f.read().decode("utf-8"))
        if not isinstance(info, dict) or _step_of(str(info.get("file"))) is None:
            raise ValueError("expected a JSON object with the checkpoint's \"file\"")
        int(info["step"])
    except (ValueError, KeyError, TypeError) as e:     # JSONDecodeError, UnicodeDecodeError
        raise CorruptCheckpointError(f"{latest} is damaged (not the JSON record of a "
                                     f"checkpoint: {e})") from e
    return info


def latest_checkpoint(run_dir):
    """Path of the checkpoint ``latest.json`` names, or None (not checked; see
    :func:`restore_latest`)."""
    info = read_latest(run_dir)
    if info is None:
        return None
    path = os.path.join(run_dir, CKPT_DIR, info["file"])
    if not os.path.exists(path):
        raise CheckpointError(f"{os.path.join(run_dir, CKPT_DIR, LATEST)} names {info['file']}, "
                              "which does not exist")
    return path


def verify(path, record):
    """Raise :class:`CorruptCheckpointError` unless ``path`` has the size and SHA-256 of its
    ``record`` (a record without them, from an older version, is not checked here)."""
    if not os.path.exists(path):
        raise CorruptCheckpointError(f"{path} is missing")
    if "sha256" not in record:
        return
    digest, size = file_digest(path)
    if size != record.get("size", size):
        raise CorruptCheckpointError(f"{path} is damaged: {size} bytes, its record says "
                                     f"{record['size']} (truncated or extended)")
    if digest != record["sha256"]:
        raise CorruptCheckpointError(f"{path} is damaged: its SHA-256 is not the one recorded "
                                     "when it was written")


def _record(ckpt_dir, step):
    """The record of checkpoint ``step`` (its ``.json``), or a bare one for a checkpoint from an
    older version; a damaged record raises :class:`CorruptCheckpointError`."""
    name = f"ckpt-{step:08d}.npz"
    rec_path = os.path.join(ckpt_dir, name[:-4] + ".json")
    if not os.path.exists(rec_path):
        return {"file": name, "step": step}
    try:
        with open(rec_path, "rb") as f:
            rec = json.loads(f.read().decode("utf-8"))
        if not isinstance(rec, dict) or rec.get("file") != name:
            raise ValueError(f"expected the JSON record of {name}")
    except ValueError as e:
        raise CorruptCheckpointError(f"{rec_path} is damaged ({e})") from e
    return rec


def restore_latest(run_dir, trainer, report=print):
    """Restore the newest good checkpoint of ``run_dir`` into ``trainer``.

    Candidates: the one ``latest.json`` names, then the older ones newest first (with a damaged
    ``latest.json``: all, newest first). Each is checked against its SHA-256 before it is read;
    every damaged one is reported (``report``, one line each) and skipped.

    Returns ``(meta, path, newest_step)``: the restored checkpoint's meta dict and path, and the
    step of the newest checkpoint there was (for what was lost), or ``(None, None, None)`` when
    the run has no checkpoint at all. Raises :class:`CorruptCheckpointError` when there are
    checkpoints but none is good, and :class:`CheckpointError` when one does not fit the model.
    """
    ckpt_dir = os.path.join(run_dir, CKPT_DIR)
    try:
        latest = read_latest(run_dir)
    except CorruptCheckpointError as e:
        report(f"{e}; looking for the newest good checkpoint")
        latest = None
    steps = sorted(set(_steps_on_disk(ckpt_dir)), reverse=True)
    if latest is not None:
        top = int(latest["step"])
        steps = [top] + [s for s in steps if s < top]
    if not steps:
        return None, None, None
    damaged = []
    for step in steps:
        path = os.path.join(ckpt_dir, f"ckpt-{step:08d}.npz")
        try:
            rec = latest if latest is not None and step == int(latest["step"]) else \
                _record(ckpt_dir, step)
            verify(path, rec)
            meta = load_checkpoint(path, trainer)
        except CorruptCheckpointError as e:
            report(f"{e}; skipped")
            damaged.append(os.path.basename(path))
            continue
        return meta, path, steps[0]
    raise CorruptCheckpointError(
        f"no good checkpoint in {ckpt_dir} (damaged: {', '.join(damaged)}); move that folder "
        "aside to train the run again from step 0")


def load_checkpoint(path, trainer):
    """Restore every variable of ``trainer`` from ``path``; returns the checkpoint's meta dict.
    Nothing is assigned unless the whole file reads and fits the model."""
    pairs = _variables(trainer)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        meta = json.loads(bytes(data.pop("__meta__")).decode())
        stored = {k.split("|", 1)[1]: v for k, v in data.items()}
    except Exception as e:  # zipfile.BadZipFile (bad CRC), ValueError, OSError, KeyError
        raise CorruptCheckpointError(f"Cannot read checkpoint {path}: "
                                     f"{type(e).__name__}: {e}") from e
    want = [k for k, _ in pairs]
    missing = [k for k in want if k not in stored]
    unexpected = [k for k in stored if k not in set(want)]
    if missing or unexpected:
        raise CheckpointError(
            f"Checkpoint {path} does not match this model: missing {missing[:8]}"
            f"{'...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
            f"{'...' if len(unexpected) > 8 else ''}")
    for key, var in pairs:
        if tuple(stored[key].shape) != tuple(var.shape):
            raise CheckpointError(f"Checkpoint {path}: {key} has shape {stored[key].shape}, "
                                  f"the model expects {tuple(var.shape)}")
    for key, var in pairs:
        var.assign(stored[key])
    return meta
