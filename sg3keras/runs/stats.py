"""``stats.jsonl``: one JSON object per tick in the official layout.

Each line maps every statistic's official name (``Progress/tick``, ``Timing/sec_per_kimg``,
``Loss/G/loss``, ...) to ``{"num": n, "mean": m, "std": s}`` over what was reported during the
tick (``std`` is the population standard deviation, ``sqrt(max(E[x^2] - E[x]^2, 0))``, as the
official statistics collector computes it), plus a top-level ``"timestamp"`` (``time.time()``).
Statistics with no report during the tick are left out (the official writes ``NaN`` there).

Lines are appended atomically (one ``os.write`` on an ``O_APPEND`` file, then ``fsync``), so a
kill leaves at most one partial last line; :func:`truncate_after` makes a resumed run continue
after the checkpointed tick with no tick twice and none missing.
"""

import glob
import json
import math
import os

from sg3keras.utils import append_bytes, atomic_write_bytes

__all__ = ["STATS_FILE", "stat", "stat_from_moments", "append_line", "format_line",
           "read_stats", "truncate_after", "read_metrics", "tick_of"]

STATS_FILE = "stats.jsonl"


def stat(value):
    """One value reported once: ``{"num": 1, "mean": value, "std": 0}``."""
    return {"num": 1, "mean": float(value), "std": 0.0}


def stat_from_moments(num, mean, mean_sq):
    """``{"num", "mean", "std"}`` from a count, the mean and the mean of squares."""
    num, mean, mean_sq = int(round(num)), float(mean), float(mean_sq)
    return {"num": num, "mean": mean, "std": math.sqrt(max(mean_sq - mean * mean, 0.0))}


def format_line(stats, timestamp):
    """The bytes of one line: the stats (sorted by name, as the official) and ``timestamp``."""
    fields = {k: stats[k] for k in sorted(stats)}
    fields["timestamp"] = float(timestamp)
    return (json.dumps(fields) + "\n").encode("utf-8")


def append_line(path, stats, timestamp):
    """Append one tick's line to ``path`` in a single write on an ``O_APPEND`` file, fsynced."""
    append_bytes(path, format_line(stats, timestamp))


def _stats_path(run_dir):
    return run_dir if os.path.isfile(run_dir) else os.path.join(run_dir, STATS_FILE)


def _parse_lines(path, text):
    """``(records, n_good_bytes)``: the complete lines before a damaged last line."""
    records, good = [], 0
    lines = text.split("\n")
    complete = lines[:-1]          # the part after the last newline is not a complete line
    for i, line in enumerate(complete):
        if not line.strip():
            good += len(line) + 1
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if i == len(complete) - 1 and not lines[-1].strip():
                return records, good       # a damaged last line: a write cut short
            raise ValueError(f"{path}: line {i + 1} is not a JSON object of statistics "
                             f"({e}); expected one object per line") from None
        records.append(rec)
        good += len(line.encode("utf-8")) + 1
    try:                            # a whole object without its newline (an edited file)
        last = json.loads(lines[-1]) if lines[-1].strip() else None
    except ValueError:
        last = None                 # a write cut short
    if isinstance(last, dict):
        records.append(last)
    return records, good


def read_stats(run_dir):
    """The tick records of ``run_dir``'s ``stats.jsonl`` (or of that file itself) as a list of
    dicts, oldest first; ``[]`` when there is none.

    A damaged or partial last line (a run killed mid-write) is ignored; a damaged line
    elsewhere raises one ``ValueError`` naming the file and the line.
    """
    path = _stats_path(run_dir)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return _parse_lines(path, text)[0]


def tick_of(record):
    """The ``Progress/tick`` of a record (an int), or None."""
    t = record.get("Progress/tick")
    if isinstance(t, dict):
        t = t.get("mean")
    return None if t is None else int(round(float(t)))


def truncate_after(run_dir, tick):
    """Keep the lines of ticks ``<= tick`` and drop a damaged or partial last line, rewriting
    the file atomically if anything goes; returns the number of lines dropped."""
    path = _stats_path(run_dir)
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8", "replace")
    records, _ = _parse_lines(path, text)
    keep = [r for r in records if tick_of(r) is None or tick_of(r) <= tick]
    body = b"".join((json.dumps(r) + "\n").encode("utf-8") for r in keep)
    if body == raw:
        return 0
    atomic_write_bytes(path, body)
    return sum(1 for line in text.split("\n") if line.strip()) - len(keep)


def read_metrics(run_dir):
    """``{metric name: [record, ...]}`` from ``run_dir``'s ``metric-<name>.jsonl`` files (the
    official layout: one object per evaluation with ``results``, ``metric``,
    ``snapshot_pkl``, ``timestamp``); damaged lines are skipped."""
    out = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "metric-*.jsonl"))):
        name = os.path.basename(path)[len("metric-"):-len(".jsonl")]
        rows = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    rows.append(rec)
        out[name] = rows
    return out
