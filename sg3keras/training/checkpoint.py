"""Training checkpoints: every variable of the trainer in one ``.npz``, written atomically.

A checkpoint holds G, D, G_ema, both optimizers (moments and iteration counters), the trainer's
counters (step, images seen, ADA statistics, path-length mean), the augmentation probability, the
random-number generator states, and a JSON ``meta`` dict (kimg, tick, data position, options).

Layout of a run directory::

    checkpoints/ckpt-00000128.npz   one file per checkpoint (temp file + rename)
    checkpoints/latest.json         {"file": "ckpt-00000128.npz", "step": 128, ...}, replaced last

A kill at any moment leaves ``latest.json`` pointing at a complete file: the ``.npz`` is renamed
into place before ``latest.json`` is rewritten, and old checkpoints are removed only after that.
"""

import glob
import io
import json
import os

import numpy as np

from sg3keras.utils import atomic_write_bytes, atomic_write_json

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "CheckpointError",
           "NonFiniteStateError"]

CKPT_DIR = "checkpoints"


class CheckpointError(RuntimeError):
    pass


def _variables(trainer):
    """Ordered (key, variable) pairs of everything that must survive a resume."""
    return trainer.checkpoint_variables()


class NonFiniteStateError(CheckpointError):
    """The state to be saved holds NaN/Inf values (training diverged); nothing was written."""


def save_checkpoint(run_dir, trainer, meta, keep=2):
    """Write ``checkpoints/ckpt-<step>.npz`` and point ``latest.json`` at it. Returns its path.

    Refuses (:class:`NonFiniteStateError`) to save a state with NaN/Inf weights, so the latest
    checkpoint is always a usable one.
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
    ckpt_dir = os.path.join(run_dir, CKPT_DIR)
    os.makedirs(ckpt_dir, exist_ok=True)
    name = f"ckpt-{int(meta['step']):08d}.npz"
    path = os.path.join(ckpt_dir, name)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_json(os.path.join(ckpt_dir, "latest.json"), {"file": name, **meta})
    old = sorted(glob.glob(os.path.join(ckpt_dir, "ckpt-*.npz")))
    for p in old[:-keep] if keep else []:
        if os.path.basename(p) != name:
            os.remove(p)
    return path


def latest_checkpoint(run_dir):
    """Path of the newest complete checkpoint of ``run_dir``, or None."""
    latest = os.path.join(run_dir, CKPT_DIR, "latest.json")
    if not os.path.exists(latest):
        return None
    with open(latest) as f:
        info = json.load(f)
    path = os.path.join(run_dir, CKPT_DIR, info["file"])
    if not os.path.exists(path):
        raise CheckpointError(f"{latest} names {info['file']}, which does not exist")
    return path


def load_checkpoint(path, trainer):
    """Restore every variable of ``trainer`` from ``path``; returns the checkpoint's meta dict."""
    pairs = _variables(trainer)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError
        raise CheckpointError(f"Cannot read checkpoint {path}: {e}") from e
    meta = json.loads(bytes(data.pop("__meta__")).decode())
    stored = {}
    for k, v in data.items():
        idx, key = k.split("|", 1)
        stored[key] = v
    want = [k for k, _ in pairs]
    missing = [k for k in want if k not in stored]
    unexpected = [k for k in stored if k not in set(want)]
    if missing or unexpected:
        raise CheckpointError(
            f"Checkpoint {path} does not match this model: missing {missing[:8]}"
            f"{'...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
            f"{'...' if len(unexpected) > 8 else ''}")
    for key, var in pairs:
        value = stored[key]
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointError(f"Checkpoint {path}: {key} has shape {value.shape}, "
                                  f"the model expects {tuple(var.shape)}")
        var.assign(value)
    return meta
