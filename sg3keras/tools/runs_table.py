"""``sg3keras runs``: one line per training run of an output folder, read from the run's files.

A run directory (``train --outdir``) holds ``training_options.json`` (its options),
``run_info.json`` (dataset), ``checkpoints/latest.json`` (step, kimg, tick, total_sec of the
newest checkpoint), ``status.json`` (state, pid, host; :mod:`sg3keras.training.run_status`),
``stats.jsonl`` (one JSON object per tick, ``{"Progress/kimg": {"num", "mean", "std"}, ...,
"timestamp"}``) and ``metric-<name>.jsonl`` (one record per snapshot). Nothing here imports
TensorFlow or the training code: the files are read as plain JSON, and a damaged one is named
in the run's ``problems`` while the rest of the listing is shown.

States: ``running`` (its process is alive; on another host: its last tick is recent),
``finished`` (its checkpoint reached ``--kimg``), ``error`` (training raised; ``message``),
``resumable`` (stopped or killed before its length, with a checkpoint: ``train --resume``
continues it), ``stopped`` (stopped with nothing to resume from).
"""

import json
import math
import os
import socket
import time

from sg3keras.utils import format_time

__all__ = ["list_runs", "read_run", "format_table", "read_stats_lines"]

OPTIONS, STATUS, STATS = "training_options.json", "status.json", "stats.jsonl"
LATEST = os.path.join("checkpoints", "latest.json")
# Metrics where smaller is better (the rest: precision/recall, IS, EQ-T/EQ-R PSNR).
_LOWER_IS_BETTER = ("fid", "kid", "ppl")


def is_run(path):
    return os.path.isfile(os.path.join(path, OPTIONS))


def _run_dirs(outdir):
    """Run directories in ``outdir``: itself, its children, or its grandchildren (``out`` of
    ``sg3keras demo`` holds ``out/runs``)."""
    if is_run(outdir):
        return [outdir]
    children = sorted(os.path.join(outdir, d) for d in os.listdir(outdir)
                      if os.path.isdir(os.path.join(outdir, d)))
    runs = [c for c in children if is_run(c)]
    if runs:
        return runs
    return [os.path.join(c, d) for c in children for d in sorted(os.listdir(c))
            if is_run(os.path.join(c, d))]


def list_runs(outdir, now=None):
    """Every run in ``outdir`` as a dict (:func:`read_run`), sorted by path.

    Raises:
        ValueError: ``outdir`` is missing, not a directory, or holds no run.
    """
    outdir = os.fspath(outdir)
    if not os.path.exists(outdir):
        raise ValueError(f"OUTDIR {outdir}: no such directory (expected the --outdir of "
                         "`sg3keras train`)")
    if not os.path.isdir(outdir):
        raise ValueError(f"OUTDIR {outdir}: a file, expected a directory of training runs")
    dirs = _run_dirs(outdir)
    if not dirs:
        raise ValueError(f"OUTDIR {outdir}: no training runs in it (a run directory holds "
                         f"{OPTIONS}; expected the --outdir of `sg3keras train`)")
    now = time.time() if now is None else now
    base = outdir if dirs != [outdir] else os.path.dirname(os.path.abspath(outdir))
    return [read_run(d, now=now, name=os.path.relpath(d, base)) for d in dirs]


def _json(run_dir, rel, problems):
    path = os.path.join(run_dir, rel)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
    except (OSError, ValueError, UnicodeDecodeError) as e:
        problems.append(f"{rel}: damaged, skipped ({type(e).__name__}: {_short(e)})")
        return None


def _short(e):
    return str(e).splitlines()[0][:80] if str(e) else ""


def read_stats_lines(path, problems=None, rel=STATS):
    """The JSON objects of a ``.jsonl`` file; a damaged line is skipped and named in
    ``problems`` (an unfinished last line, being written, is skipped silently)."""
    out = []
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        if problems is not None:
            problems.append(f"{rel}: unreadable ({e.strerror or e})")
        return out
    lines = data.split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            out.append(value)
        except ValueError:
            if i == len(lines):         # no newline yet: a line being appended
                continue
            if problems is not None:
                problems.append(f"{rel} line {i}: damaged, skipped")
    return out


def _stat(record, name):
    """``record[name]``: a ``{"num", "mean", "std"}`` statistic (or a plain number)."""
    v = record.get(name)
    if isinstance(v, dict):
        v = v.get("mean")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _num(d, key):
    v = (d or {}).get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _metrics(run_dir, first, problems):
    """``({metric: {key: latest value}}, best)``; best: the snapshot with the best value of
    the first metric's first result."""
    files = sorted(f for f in os.listdir(run_dir)
                   if f.startswith("metric-") and f.endswith(".jsonl"))
    latest, records = {}, {}
    for f in files:
        name = f[len("metric-"):-len(".jsonl")]
        recs = [r for r in read_stats_lines(os.path.join(run_dir, f), problems, rel=f)
                if isinstance(r.get("results"), dict)]
        if recs:
            records[name] = recs
            latest[name] = {k: v for k, v in recs[-1]["results"].items()
                            if isinstance(v, (int, float))}
    names = [first] if first in records else sorted(records)
    best = None
    if names and latest.get(names[0]):
        name = names[0]
        key = next(iter(latest[name]))
        lower = name.startswith(_LOWER_IS_BETTER)
        scored = [r for r in records[name] if isinstance(r["results"].get(key), (int, float))]
        pick = (min if lower else max)(scored, key=lambda r: r["results"][key])
        best = dict(metric=key, value=pick["results"][key], snapshot=pick.get("snapshot_pkl"))
    return latest, best


def _alive(status):
    """True / False when the status's process is on this host, else None."""
    pid = status.get("pid")
    if status.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


def _state(status, finished, has_ckpt, recent):
    """The run's state and message (see the module docstring)."""
    if status is not None and status.get("state") == "error":
        return "error", status.get("message")
    if finished or (status is not None and status.get("state") == "finished"):
        return "finished", None
    if status is not None and status.get("state") == "running":
        alive = _alive(status)
        if alive or (alive is None and recent):
            return "running", None
    elif status is None and recent:
        return "running", None
    message = (status or {}).get("message") or ("killed" if status is not None else None)
    return ("resumable" if has_ckpt else "stopped"), message


def read_run(run_dir, now=None, name=None):
    """One run as plain data (see :func:`list_runs`); ``problems`` names damaged files."""
    now = time.time() if now is None else now
    problems = []
    opts = _json(run_dir, OPTIONS, problems) or {}
    info = _json(run_dir, "run_info.json", problems) or {}
    status = _json(run_dir, STATUS, problems)
    ckpt = _json(run_dir, LATEST, problems)
    stats = (read_stats_lines(os.path.join(run_dir, STATS), problems)
             if os.path.exists(os.path.join(run_dir, STATS)) else [])
    last = stats[-1] if stats else {}
    batch, kimg_total = _num(opts, "batch"), _num(opts, "kimg")
    total_steps = (max(1, math.ceil(kimg_total * 1000 / batch))
                   if batch and kimg_total is not None else None)
    step = _num(ckpt, "step")
    kimg = max([v for v in (_num(ckpt, "kimg"), _stat(last, "Progress/kimg")) if v is not None],
               default=0.0)
    tick_times = [t for t in (_stat(last, "timestamp"), _num(status, "updated"),
                              _mtime(run_dir, LATEST) if ckpt is not None else None) if t]
    last_tick = max(tick_times, default=None)
    sec_kimg = _stat(last, "Timing/sec_per_kimg")
    total_sec = _stat(last, "Timing/total_sec") or _num(ckpt, "total_sec")
    if sec_kimg is None and total_sec and kimg > 0:
        sec_kimg = total_sec / kimg
    sec_tick = _stat(last, "Timing/sec_per_tick") or (
        total_sec / _num(ckpt, "tick") if total_sec and _num(ckpt, "tick") else None)
    # A run whose last tick is recent (within three ticks, at least 10 minutes) counts as running
    # when no process can be checked.
    recent = last_tick is not None and now - last_tick < max(3 * (sec_tick or 0), 600)
    finished = step is not None and total_steps is not None and step >= total_steps
    state, message = _state(status, finished, ckpt is not None, recent)
    metrics, best = _metrics(run_dir, (opts.get("metrics") or [None])[0], problems)
    kimg_end = total_steps * batch / 1000 if total_steps else kimg_total
    eta = (max(kimg_end - kimg, 0) * sec_kimg if state == "running" and sec_kimg is not None
           and kimg_end is not None else None)
    dataset = (info.get("dataset") or {}).get("name") or (
        os.path.splitext(os.path.basename(opts["data"]))[0] if opts.get("data") else None)
    return dict(name=name or os.path.basename(os.path.abspath(run_dir)),
                path=os.path.abspath(run_dir), config=opts.get("cfg"), dataset=dataset,
                kimg=kimg, kimg_total=kimg_end, last_tick=last_tick, sec_per_kimg=sec_kimg,
                eta_sec=eta, state=state, message=message, metrics=metrics, best=best,
                resumed_from=opts.get("resume"), problems=problems)


def _mtime(run_dir, rel):
    try:
        return os.path.getmtime(os.path.join(run_dir, rel))
    except OSError:
        return None


def _cells(run, now):
    total = "?" if run["kimg_total"] is None else f"{run['kimg_total']:g}"
    metrics = " ".join(f"{k} {v:.4g}" for m in run["metrics"].values() for k, v in m.items())
    best = run["best"]
    state = run["state"] + (f" ({run['message']})" if run["message"] else "")
    return [run["name"], run["config"] or "?", run["dataset"] or "?",
            f"{run['kimg']:.3f}/{total}",
            "-" if run["last_tick"] is None else format_time(now - run["last_tick"]) + " ago",
            "-" if run["sec_per_kimg"] is None else f"{run['sec_per_kimg']:.1f}",
            "-" if run["eta_sec"] is None else format_time(run["eta_sec"]),
            state, metrics or "-",
            "-" if best is None else f"{best['snapshot']} ({best['metric']} {best['value']:.4g})"]


def format_table(runs, now=None):
    """The listing as text lines: a header, then one aligned line per run."""
    now = time.time() if now is None else now
    rows = [["RUN", "CONFIG", "DATASET", "KIMG", "LAST TICK", "SEC/KIMG", "ETA", "STATE",
             "METRICS", "BEST"]] + [_cells(r, now) for r in runs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
