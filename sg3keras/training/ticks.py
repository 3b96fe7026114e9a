"""What happens at the end of every tick (one Keras epoch): :class:`TickCallback`.

It prints the progress line, appends the tick's line to ``stats.jsonl`` (official names, each
``{"num", "mean", "std"}``; :mod:`sg3keras.runs.stats`), writes TensorBoard scalars under the
same names, checks the losses for NaN/Inf, and writes an atomic checkpoint (so a kill loses at
most one tick); every ``--snap`` ticks it also writes a ``.keras`` snapshot of G_ema, a PNG grid
of fixed seeds, runs the requested metrics (``metric-<name>.jsonl``, as official) and redraws
``curves.png``.

Order at a tick end: the ``stats.jsonl`` line, then the checkpoint, then the snapshot. A kill
between the first two leaves a line for a tick the checkpoint does not hold: the resume drops it
(:func:`prepare_resume`) and the tick runs again, so each tick is counted exactly once. A kill
between the checkpoint and the snapshot leaves the snapshot of that tick missing: the resumed
run writes it first, from the restored G_ema, which is exactly that tick's G_ema (and writes it
again when its SHA-256, kept in ``snapshots.sha256``, shows it damaged).

A signal (:mod:`.interrupt`) makes the callback end ``fit`` after the running step; a tick cut
short that way is abandoned (no line, no checkpoint). A write that fails on a full or read-only
disk raises :class:`~sg3keras.training.checkpoint.StorageError` naming the file.
"""

import glob
import json
import os
import re
import resource
import time

import keras
import numpy as np

from sg3keras.runs import stats as run_stats
from sg3keras.training.checkpoint import file_digest, writing
from sg3keras.utils import (atomic_write_bytes, format_time, make_grid, save_keras_atomic,
                            save_png, to_uint8)

__all__ = ["TickCallback", "TrainingDivergedError", "EtaRate", "tick_stats", "prepare_resume",
           "snapshot_sums", "record_snapshot", "snapshot_damaged", "SNAPSHOT_SUMS"]


class TrainingDivergedError(RuntimeError):
    pass


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_mem_gb():
    """The process's resident memory now (official ``Resources/cpu_mem_gb``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (OSError, ValueError, IndexError):
        return _peak_rss_mb() / 1024.0


def _peak_gpu_mem_gb():
    """Peak memory of the first GPU since the last call (official ``Resources/peak_gpu_mem_gb``,
    reset every tick as there), or None without a GPU."""
    import tensorflow as tf
    if not tf.config.list_logical_devices("GPU"):
        return None
    try:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 30
        tf.config.experimental.reset_memory_stats("GPU:0")
    except (ValueError, RuntimeError):
        return None
    return peak


def _kimg_tag(kimg):
    """``000123`` as official for whole kimg; ``000000.128`` for sub-kimg ticks (tiny runs)."""
    if abs(kimg - round(kimg)) < 1e-9:
        return f"{int(round(kimg)):06d}"
    return f"{int(kimg):06d}.{int(round(kimg * 1000)) % 1000:03d}"


def snapshot_path(run_dir, kimg):
    return os.path.join(run_dir, f"network-snapshot-{_kimg_tag(kimg)}.keras")


SNAPSHOT_SUMS = "snapshots.sha256"


def snapshot_sums(run_dir):
    """``{snapshot file name: sha256 hex}`` from ``RUN_DIR/snapshots.sha256`` (the format of
    ``sha256sum``, so ``cd RUN_DIR && sha256sum -c snapshots.sha256`` checks them too)."""
    try:
        with open(os.path.join(run_dir, SNAPSHOT_SUMS), "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) == 64 and name:
            out[name] = digest
    return out


def record_snapshot(run_dir, path):
    """Add (or replace) the SHA-256 of the snapshot ``path`` in ``snapshots.sha256``."""
    sums = snapshot_sums(run_dir)
    sums[os.path.basename(path)] = file_digest(path)[0]
    body = "".join(f"{d}  {n}\n" for n, d in sorted(sums.items()))
    atomic_write_bytes(os.path.join(run_dir, SNAPSHOT_SUMS), body.encode("utf-8"))


def snapshot_damaged(run_dir, path):
    """Whether the snapshot ``path`` differs from the SHA-256 recorded when it was written
    (False for one with no record)."""
    want = snapshot_sums(run_dir).get(os.path.basename(path))
    return want is not None and file_digest(path)[0] != want


class EtaRate:
    """Seconds per kimg for the ETA, leaving graph tracing out: the iterations that ran a
    compiled phase for the first time in this process (tracing, XLA compilation) are taken
    out of both the time and the kimg, over all ticks of this process."""

    def __init__(self):
        self.seen, self.sec, self.kimg = set(), 0.0, 0.0
        self.traced_sec, self.traced_kimg = 0.0, 0.0
        self._traced_start = None

    def batch_begin(self, phase):
        """``phase``: the key of the compiled step the next iteration runs."""
        if phase not in self.seen:
            self.seen.add(phase)
            self._traced_start = time.time()

    def batch_end(self, kimg):
        if self._traced_start is not None:
            self.traced_sec += time.time() - self._traced_start
            self.traced_kimg += kimg
            self._traced_start = None

    def add_tick(self, sec, kimg):
        """A tick of ``sec`` seconds and ``kimg`` kimg (tracing included) has ended."""
        self.sec += sec - self.traced_sec
        self.kimg += kimg - self.traced_kimg
        self.traced_sec = self.traced_kimg = 0.0

    def sec_per_kimg(self, fallback):
        return self.sec / self.kimg if self.kimg > 1e-9 and self.sec > 0 else fallback


def tick_stats(logs, tick, kimg, timing):
    """The ``stats.jsonl`` entries of one tick: progress, timing, resources, augment p, and
    every ``Loss/...`` statistic reported during the tick (num/mean/std from the trackers'
    means, mean squares and counts; a statistic with no report is left out)."""
    out = {"Progress/tick": run_stats.stat(tick), "Progress/kimg": run_stats.stat(kimg),
           "Progress/augment": run_stats.stat(logs.get("augment_p", 0.0)),
           "Timing/total_sec": run_stats.stat(timing["total_sec"]),
           "Timing/sec_per_tick": run_stats.stat(timing["sec_tick"]),
           "Timing/sec_per_kimg": run_stats.stat(timing["sec_kimg"]),
           "Timing/maintenance_sec": run_stats.stat(timing["maintenance_sec"]),
           "Timing/total_hours": run_stats.stat(timing["total_sec"] / 3600.0),
           "Timing/total_days": run_stats.stat(timing["total_sec"] / 86400.0),
           "Resources/cpu_mem_gb": run_stats.stat(_cpu_mem_gb())}
    gpu = _peak_gpu_mem_gb()
    if gpu is not None:
        out["Resources/peak_gpu_mem_gb"] = run_stats.stat(gpu)
    for name, mean in logs.items():
        num = logs.get("_num:" + name, 0.0)
        if name.startswith("Loss/") and num > 0:
            out[name] = run_stats.stat_from_moments(num, mean, logs.get("_sq:" + name, mean ** 2))
    return out


def prepare_resume(run_dir, meta, log):
    """Before a resumed run trains: drop ``stats.jsonl`` lines after the checkpoint's tick
    (and a partial last line), and the metric records of snapshots after its kimg (there are
    some when a damaged checkpoint made the run go back further)."""
    dropped = run_stats.truncate_after(run_dir, int(meta.get("tick", 0)))
    if dropped:
        log(f"stats.jsonl: dropped {dropped} line(s) after the checkpoint's tick "
            f"{meta.get('tick')} (written before the run stopped; those ticks run again)")
    for path in sorted(glob.glob(os.path.join(run_dir, "metric-*.jsonl"))):
        dropped = drop_metric_records_after(path, float(meta.get("kimg", 0.0)))
        if dropped:
            log(f"{os.path.basename(path)}: dropped {dropped} record(s) of snapshots after kimg "
                f"{float(meta.get('kimg', 0.0)):.3f} (those ticks run again)")


_SNAPSHOT_KIMG = re.compile(r"network-snapshot-(\d+(?:\.\d+)?)")


def drop_metric_records_after(path, kimg):
    """Rewrite the ``metric-<name>.jsonl`` file ``path`` (atomically) without the records of
    snapshots after ``kimg`` and without damaged lines; returns how many lines went."""
    with open(path, "rb") as f:
        raw = f.read()
    lines = [ln for ln in raw.split(b"\n") if ln.strip()]
    keep = []
    for line in lines:
        try:
            rec = json.loads(line.decode("utf-8"))
            m = _SNAPSHOT_KIMG.search(str(rec.get("snapshot_pkl", "")))
        except (ValueError, AttributeError):        # damaged, or not an object
            continue
        if m is None or float(m.group(1)) <= kimg + 1e-9:
            keep.append(line + b"\n")
    if len(keep) == len(lines) and raw.endswith(b"\n") or not lines:
        return 0
    atomic_write_bytes(path, b"".join(keep))
    return len(lines) - len(keep)


class TickCallback(keras.callbacks.Callback):
    """Progress line, stats.jsonl, TensorBoard, NaN guard, checkpoints and snapshots."""

    def __init__(self, gan, run_dir, opts, cfg, chief=True, log=print,
                 start_time_offset=0.0, deadline=None, resume_meta=None, stop=None):
        super().__init__()
        import tensorflow as tf
        self.gan, self.run_dir, self.opts, self.cfg = gan, run_dir, opts, cfg
        self.chief, self.log = chief, log
        self.error = None
        self.deadline = deadline
        self.resume_meta = resume_meta
        self.stop = stop        # an interrupt.StopRequest: a signal asked the run to end
        self.start_offset = float(start_time_offset)
        self.eta = EtaRate()
        self.maintenance_sec = 0.0
        self._curves_note = False
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs")) \
            if chief else None
        g = gan.G_ema
        rng = np.random.RandomState(opts.seed + 123)
        self.grid_z = rng.randn(opts.grid_seeds, g.z_dim).astype(np.float32)
        self.grid_c = None
        if g.c_dim > 0 and gan.label_table is not None:
            idx = rng.randint(len(gan.label_table), size=opts.grid_seeds)
            self.grid_c = gan.label_table[idx]

    def on_train_begin(self, logs=None):
        self.t0 = time.time()
        self.tick_start = time.time()
        self.nimg_start = int(self.gan.cur_nimg.numpy())
        if self.chief and self.nimg_start == 0:
            self._save_grid("fakes_init.png")
        if self.chief and self.resume_meta is not None:
            self._missing_snapshot(self.resume_meta)

    def on_train_batch_begin(self, batch, logs=None):
        step = self.gan._py_step
        self.eta.batch_begin(self.gan._due(int(self.gan.step.numpy()) if step is None else step))

    def on_train_batch_end(self, batch, logs=None):
        self.eta.batch_end(self.opts.batch / 1000.0)
        if self._stopping():
            self.model.stop_training = True     # fit ends after this step

    def _stopping(self):
        return self.stop is not None and self.stop.requested

    def _missing_snapshot(self, meta):
        """The snapshot due at the checkpointed tick, if the run stopped before writing it."""
        tick = int(meta.get("tick", 0))
        due = meta.get("snapshot", bool(self.opts.snap) and tick % self.opts.snap == 0)
        path = snapshot_path(self.run_dir, float(meta["kimg"]))
        if not due:
            return
        if os.path.exists(path):
            if not snapshot_damaged(self.run_dir, path):
                # A kill between the .keras and its grid: the grid again (same G_ema).
                grid = f"fakes{_kimg_tag(float(meta['kimg']))}.png"
                if not os.path.exists(os.path.join(self.run_dir, grid)):
                    self._save_grid(grid)
                    self.log(f"{grid} was missing: written after the resume")
                return
            self.log(f"{path} is damaged (its SHA-256 is not the one in {SNAPSHOT_SUMS}); "
                     "writing it again from the checkpoint of the same tick")
        self._snapshot(path, float(meta["kimg"]), int(meta["nimg"]),
                       note=f" (due at tick {tick}, written after the resume)")

    def _save_grid(self, name):
        imgs = np.asarray(self.gan.G_ema(self.grid_z, c=self.grid_c))
        grid = make_grid(to_uint8(imgs))
        with writing(os.path.join(self.run_dir, name), "image"):
            save_png(os.path.join(self.run_dir, name), grid)
        return grid

    def on_epoch_end(self, epoch, logs=None):
        from sg3keras.training.checkpoint import NonFiniteStateError, save_checkpoint

        if self._stopping() and int(self.gan.step.numpy()) % self.cfg["steps_per_tick"]:
            return      # a signal cut this tick short: it is abandoned (the resume redoes it)
        logs = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in (logs or {}).items()}
        tick, now = epoch + 1, time.time()
        nimg = int(self.gan.cur_nimg.numpy())
        kimg = nimg / 1000.0
        tick_kimg = max((nimg - self.nimg_start) / 1e3, 1e-9)
        timing = dict(sec_tick=now - self.tick_start, sec_kimg=(now - self.tick_start) / tick_kimg,
                      total_sec=self.start_offset + now - self.t0,
                      maintenance_sec=self.maintenance_sec)
        self.eta.add_tick(timing["sec_tick"], tick_kimg)
        remaining = self.cfg["total_steps"] * self.opts.batch / 1000.0 - kimg
        eta = max(remaining, 0) * self.eta.sec_per_kimg(timing["sec_kimg"])
        self.log(f"tick {tick:<5d} kimg {kimg:<8.3f} time {format_time(timing['total_sec']):<9s} "
                 f"sec/tick {timing['sec_tick']:<7.1f} sec/kimg {timing['sec_kimg']:<7.2f} "
                 f"eta {format_time(eta):<9s} "
                 f"augment {logs.get('augment_p', 0.0):.3f} "
                 f"G {logs.get('Loss/G/loss', float('nan')):.4f} "
                 f"D {logs.get('Loss/D/loss', float('nan')):.4f} "
                 f"R1 {logs.get('Loss/r1_penalty', float('nan')):.4f}")
        bad = [k for k, v in logs.items() if k.startswith("Loss/") and not np.isfinite(v)]
        if bad:
            self._diverged(f"Loss became NaN/Inf at tick {tick} (kimg {kimg:.3f}): {bad}")
            return
        final = int(self.gan.step.numpy()) >= self.cfg["total_steps"]
        out_of_time = self.deadline is not None and now >= self.deadline and not final
        snapshot = (bool(self.opts.snap) and tick % self.opts.snap == 0) or final or out_of_time
        meta = dict(step=int(self.gan.step.numpy()), tick=tick, kimg=kimg, nimg=nimg,
                    total_sec=timing["total_sec"], augment_p=logs.get("augment_p", 0.0),
                    snapshot=snapshot)
        if self.chief:
            stats = tick_stats(logs, tick, kimg, timing)
            stats_path = os.path.join(self.run_dir, run_stats.STATS_FILE)
            with writing(stats_path, "training statistics"):
                run_stats.append_line(stats_path, stats, time.time())
            try:
                save_checkpoint(self.run_dir, self.gan, meta)
            except NonFiniteStateError as e:
                self._diverged(f"Weights became NaN/Inf at tick {tick} (kimg {kimg:.3f}): {e}")
                return
            self._write_summaries(stats, nimg)
            if snapshot and not self._stopping():   # else written when the run resumes
                self._snapshot(snapshot_path(self.run_dir, kimg), kimg, nimg)
        if self._stopping():
            self.model.stop_training = True
        if out_of_time:
            self.log(f"Time limit reached at tick {tick} (kimg {kimg:.3f}); stopping")
            self.model.stop_training = True
        self.tick_start = time.time()
        self.maintenance_sec = self.tick_start - now
        self.nimg_start = nimg

    def _snapshot(self, path, kimg, nimg, note=""):
        """The ``.keras`` snapshot of G_ema, its grid, the metrics, the curves picture."""
        import tensorflow as tf
        with writing(path, "snapshot"):
            save_keras_atomic(self.gan.G_ema, path)
            record_snapshot(self.run_dir, path)
        self.log(f"snapshot {path}{note}")
        grid = self._save_grid(f"fakes{_kimg_tag(kimg)}.png")
        with self.writer.as_default(step=nimg):
            tf.summary.image("fakes", grid[None], max_outputs=1)
        self.writer.flush()
        self._run_metrics(path, kimg, nimg)
        self._refresh_curves()

    def _write_summaries(self, stats, nimg):
        """TensorBoard scalars: every ``stats.jsonl`` mean under its name (step = images
        seen), as official, and our ``Resources/peak_rss_mb``."""
        import tensorflow as tf
        with self.writer.as_default(step=nimg):
            for k, v in stats.items():
                tf.summary.scalar(k, v["mean"])
            tf.summary.scalar("Resources/peak_rss_mb", _peak_rss_mb())
        self.writer.flush()

    def _refresh_curves(self):
        """``curves.png`` in the run directory (only with matplotlib; otherwise one line)."""
        from sg3keras.runs import curves
        if not curves.have_matplotlib():
            if not self._curves_note:
                self.log("curves.png: not drawn (matplotlib is not installed)")
            self._curves_note = True
            return
        try:
            curves.plot_runs([self.run_dir], os.path.join(self.run_dir, "curves.png"))
        except Exception as e:    # a picture never stops a run
            if not self._curves_note:
                self.log(f"curves.png: not drawn ({type(e).__name__}: {e})")
            self._curves_note = True

    def _diverged(self, what):
        self.error = TrainingDivergedError(
            f"{what}. Stopping; the last good checkpoint in {self.run_dir}/checkpoints is kept.")
        self.log(str(self.error))
        self.model.stop_training = True

    def _run_metrics(self, snapshot_path, kimg, nimg):
        if not self.opts.metrics:
            return
        import tensorflow as tf
        from sg3keras.data import ImageDataset
        from sg3keras.metrics.registry import append_jsonl, calc_metric
        dataset = ImageDataset(self.opts.data, use_labels=self.opts.cond)
        for name in self.opts.metrics:
            result = calc_metric(name, self.gan.G_ema, dataset=dataset,
                                 num_samples=self.opts.metrics_num_samples,
                                 strategy=self.gan.distribute_strategy)
            result["snapshot_pkl"] = os.path.basename(snapshot_path)
            record = os.path.join(self.run_dir, f"metric-{name}.jsonl")
            with writing(record, "metric record"):
                append_jsonl(record, result)
            with self.writer.as_default(step=nimg):
                for k, v in result["results"].items():
                    if np.isscalar(v):
                        tf.summary.scalar(f"Metrics/{k}", v)
            self.log(f"metric {name}: {result['results']}")
