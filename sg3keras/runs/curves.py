"""The curves of one or more runs as one PNG: losses, augment p, sec/kimg and every metric over
kimg, several runs overlaid and labelled by run name.

Reads only ``stats.jsonl`` and ``metric-<name>.jsonl`` (:mod:`sg3keras.runs.stats`), so runs of
the official code draw too. Needs matplotlib (``sg3keras[viz]``).
"""

import io
import os
import re

from sg3keras.runs.stats import STATS_FILE, read_metrics, read_stats
from sg3keras.utils import atomic_write_bytes

__all__ = ["PANELS", "load_curves", "plot_runs", "have_matplotlib"]

# (title, [stats.jsonl names]) of the fixed panels; a panel with no data is left out.
PANELS = [
    ("G loss", ["Loss/G/loss"]),
    ("D loss", ["Loss/D/loss"]),
    ("R1 penalty", ["Loss/r1_penalty"]),
    ("D scores", ["Loss/scores/real", "Loss/scores/fake"]),
    ("path length penalty", ["Loss/pl_penalty"]),
    ("augment p", ["Progress/augment"]),
    ("sec/kimg", ["Timing/sec_per_kimg"]),
]
_SNAPSHOT_KIMG = re.compile(r"network-snapshot-(\d+(?:\.\d+)?)")


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _mean(v):
    return v.get("mean") if isinstance(v, dict) else v


def load_curves(run_dir):
    """``{series name: (kimg list, value list)}`` of one run: every stats.jsonl name with a
    numeric mean, and ``Metrics/<result key>`` for each metric result."""
    is_run = os.path.isfile(os.path.join(run_dir, STATS_FILE)) or any(
        f.startswith("metric-") and f.endswith(".jsonl") for f in os.listdir(run_dir))
    if not is_run:
        raise ValueError(f"{run_dir}: not a run directory (no {STATS_FILE} and no "
                         "metric-*.jsonl)")
    series = {}
    for rec in read_stats(run_dir):
        kimg = _mean(rec.get("Progress/kimg", {}))
        if kimg is None:
            continue
        for name, v in rec.items():
            m = _mean(v)
            if name != "timestamp" and isinstance(m, (int, float)):
                xs, ys = series.setdefault(name, ([], []))
                xs.append(float(kimg))
                ys.append(float(m))
    for rows in read_metrics(run_dir).values():
        for rec in rows:
            match = _SNAPSHOT_KIMG.search(str(rec.get("snapshot_pkl", "")))
            results = rec.get("results")
            if match is None or not isinstance(results, dict):
                continue
            for key, v in results.items():
                if isinstance(v, (int, float)):
                    xs, ys = series.setdefault(f"Metrics/{key}", ([], []))
                    xs.append(float(match.group(1)))
                    ys.append(float(v))
    return series


def _panels(runs):
    panels = [(t, names) for t, names in PANELS
              if any(n in s for _, s in runs for n in names)]
    metric_names = sorted({n for _, s in runs for n in s if n.startswith("Metrics/")})
    return panels + [(n[len("Metrics/"):], [n]) for n in metric_names]


def plot_runs(run_dirs, output):
    """Draw the curves of ``run_dirs`` into ``output`` (PNG, written atomically)."""
    runs = [(os.path.basename(os.path.normpath(d)), load_curves(d)) for d in run_dirs]
    panels = _panels(runs)
    if not panels:
        raise ValueError(f"{', '.join(run_dirs)}: nothing to plot yet (no tick in "
                         f"{STATS_FILE}, no metric result)")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    try:
        for ax, (title, names) in zip(axes.flat, panels):
            for run_name, series in runs:
                for n in names:
                    if n in series:
                        label = run_name if len(names) == 1 else f"{run_name} {n.split('/')[-1]}"
                        ax.plot(*series[n], marker="." if len(series[n][0]) < 50 else None,
                                label=label)
            ax.set_title(title)
            ax.set_xlabel("kimg")
            ax.grid(alpha=0.3)
            if len(runs) > 1 or len(names) > 1:
                ax.legend(fontsize="small")
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
    finally:
        plt.close(fig)
    atomic_write_bytes(output, buf.getvalue())
    return output
