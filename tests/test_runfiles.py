"""The files a run leaves beside its snapshots, in the official layout: ``stats.jsonl`` (format,
atomic lines, the reader, the cut back on resume), ``log.txt`` (the tee), ``curves.png`` /
``sg3keras plot`` (from our runs and from a hand-made official-format run), the official
``training_options.json`` keys, and the ETA that leaves tracing out.
"""

import glob
import json
import math
import os

import numpy as np
import pytest

from helpers import run_cli
from train_fixtures import tiny_options, write_tiny_dataset

# The names the official training loop writes to stats.jsonl at every tick (StyleGAN3, one GPU,
# no path-length regularisation) that apply here.
OFFICIAL_NAMES = ["Progress/tick", "Progress/kimg", "Progress/augment", "Timing/total_sec",
                  "Timing/sec_per_tick", "Timing/sec_per_kimg", "Timing/maintenance_sec",
                  "Timing/total_hours", "Timing/total_days", "Resources/cpu_mem_gb",
                  "Loss/G/loss", "Loss/D/loss", "Loss/scores/real", "Loss/scores/fake",
                  "Loss/signs/real", "Loss/signs/fake"]


def _official_line(tick, kimg, g_loss):
    """One line as the official training loop writes it (json.dumps of the collector's dict,
    names sorted, ``timestamp`` last)."""
    entry = lambda v: {"num": 1, "mean": v, "std": 0.0}   # noqa: E731
    d = {"Loss/D/loss": {"num": 256, "mean": 1.2 - 0.01 * tick, "std": 0.3},
         "Loss/G/loss": {"num": 256, "mean": g_loss, "std": 0.2},
         "Loss/r1_penalty": {"num": 64, "mean": 0.05, "std": 0.01},
         "Progress/augment": entry(0.01 * tick), "Progress/kimg": entry(kimg),
         "Progress/tick": entry(tick), "Timing/sec_per_kimg": entry(12.5),
         "Timing/sec_per_tick": entry(50.0), "Timing/total_sec": entry(50.0 * tick)}
    return json.dumps(dict(d, timestamp=1700000000.0 + tick)) + "\n"


def _official_run(path, ticks=4):
    os.makedirs(path)
    with open(os.path.join(path, "stats.jsonl"), "w") as f:
        for t in range(ticks + 1):
            f.write(_official_line(t, 4.0 * t, 1.0 + 0.1 * t))
    with open(os.path.join(path, "metric-fid50k_full.jsonl"), "w") as f:
        for kimg, fid in [(0, 300.0), (8, 150.0), (16, 90.0)]:
            f.write(json.dumps({"results": {"fid50k_full": fid}, "metric": "fid50k_full",
                                "total_time": 10.0, "total_time_str": "10s",
                                "num_gpus": 1, "snapshot_pkl": f"network-snapshot-{kimg:06d}.pkl",
                                "timestamp": 1700000000.0}) + "\n")
    return str(path)


# ------------------------------------------------------------------------------- stats.jsonl

def test_stats_lines_round_trip_and_std_is_the_population_std(tmp_path):
    from sg3keras.runs.stats import append_line, read_stats, stat, stat_from_moments
    x = np.array([1.0, 2.0, 4.0, 7.0])
    s = stat_from_moments(len(x), x.mean(), (x ** 2).mean())
    assert s["num"] == 4 and s["mean"] == pytest.approx(3.5)
    assert s["std"] == pytest.approx(float(np.std(x)))           # numpy's population std
    assert stat_from_moments(3, 2.0, 4.0 - 1e-9)["std"] == 0.0   # rounding below zero: 0
    path = tmp_path / "stats.jsonl"
    append_line(str(path), {"Progress/tick": stat(1), "Loss/G/loss": s}, 123.5)
    append_line(str(path), {"Progress/tick": stat(2)}, 124.5)
    text = path.read_text()
    assert text.count("\n") == 2 and text.endswith("\n")
    first = json.loads(text.splitlines()[0])
    assert list(first) == ["Loss/G/loss", "Progress/tick", "timestamp"]   # sorted, stamp last
    recs = read_stats(str(tmp_path))
    assert [r["Progress/tick"] for r in recs] == [{"num": 1, "mean": 1.0, "std": 0.0},
                                                  {"num": 1, "mean": 2.0, "std": 0.0}]
    assert recs[1]["timestamp"] == 124.5


@pytest.mark.parametrize("tail", ['{"Progress/tick": {"num"', '{"Progress/tick": {"num"\n',
                                  "\x00\x00\x00"])
def test_read_stats_ignores_a_damaged_last_line(tmp_path, tail):
    from sg3keras.runs.stats import read_stats
    (tmp_path / "stats.jsonl").write_text(_official_line(0, 0.0, 1.0) + _official_line(1, 4, 1)
                                          + tail)
    assert [r["Progress/kimg"]["mean"] for r in read_stats(str(tmp_path))] == [0.0, 4]
    (tmp_path / "stats.jsonl").write_text(_official_line(0, 0.0, 1.0) + _official_line(1, 4, 1)
                                          .rstrip("\n"))       # whole, without its newline
    assert [r["Progress/kimg"]["mean"] for r in read_stats(str(tmp_path))] == [0.0, 4]


def test_read_stats_names_the_file_and_line_of_a_damaged_middle_line(tmp_path):
    from sg3keras.runs.stats import read_stats
    (tmp_path / "stats.jsonl").write_text(_official_line(0, 0.0, 1.0) + "[1, 2]\n"
                                          + _official_line(1, 4, 1))
    with pytest.raises(ValueError, match=r"stats\.jsonl: line 2 is not a JSON object"):
        read_stats(str(tmp_path))
    assert read_stats(str(tmp_path / "elsewhere")) == []       # no file: no ticks


def test_truncate_keeps_the_checkpointed_ticks_and_drops_a_partial_line(tmp_path):
    from sg3keras.runs.stats import read_stats, tick_of, truncate_after
    path = tmp_path / "stats.jsonl"
    whole = "".join(_official_line(t, 4.0 * t, 1.0) for t in range(1, 4))
    path.write_text(whole)
    assert truncate_after(str(tmp_path), 3) == 0 and path.read_text() == whole   # untouched
    path.write_text(whole + _official_line(4, 16.0, 1.0) + _official_line(5, 20.0, 1.0)[:40])
    assert truncate_after(str(tmp_path), 3) == 2
    assert path.read_text() == whole                       # the kept lines byte for byte
    assert [tick_of(r) for r in read_stats(str(tmp_path))] == [1, 2, 3]
    assert not glob.glob(str(tmp_path / ".*"))             # no temporary file left


# ------------------------------------------------------------------------------------ log.txt

def test_run_log_keeps_python_warnings(tmp_path):
    import warnings

    from sg3keras.runs.logfile import RunLog
    log = RunLog(lambda m: None)
    log.open(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with log.warnings_too():
            warnings.warn("a warning the run printed", UserWarning)
        warnings.warn("after the run", UserWarning)
    text = (tmp_path / "log.txt").read_text()
    assert "UserWarning: a warning the run printed" in text and "after the run" not in text


def test_run_log_tees_into_log_txt(tmp_path):
    from sg3keras.runs.logfile import RunLog
    printed = []
    log = RunLog(printed.append)
    log("before the run directory")
    log.open(str(tmp_path))
    log("tick 1")
    log.file_only("Training options:\n{\n}")
    log.error(ValueError("boom"))
    assert printed == ["before the run directory", "tick 1"]      # the file-only lines too
    assert (tmp_path / "log.txt").read_text().splitlines() == [
        "before the run directory", "tick 1", "Training options:", "{", "}",
        "Error: ValueError: boom"]
    resumed = RunLog(printed.append)
    resumed("Resuming")
    resumed.open(str(tmp_path), resumed_kimg=0.016)
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[-2].startswith("---- resumed at kimg 0.016 (") and lines[-1] == "Resuming"
    other = RunLog(printed.append)            # a worker other than the chief
    other.discard()
    other("tick 1")
    other.error(ValueError("x"))
    assert len((tmp_path / "log.txt").read_text().splitlines()) == len(lines)


# ---------------------------------------------------------------------------- curves / plot

def test_plot_draws_an_official_run_and_overlays_runs(tmp_path):
    from PIL import Image

    from sg3keras.runs.curves import load_curves
    a = _official_run(tmp_path / "00000-official")
    b = _official_run(tmp_path / "00001-other", ticks=2)
    series = load_curves(a)
    assert series["Loss/G/loss"] == ([0.0, 4.0, 8.0, 12.0, 16.0],
                                     pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4]))
    assert series["Metrics/fid50k_full"] == ([0.0, 8.0, 16.0], [300.0, 150.0, 90.0])
    r = run_cli("plot", a, b, "--output", str(tmp_path / "pics" / "both.png"))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "pics" / "both.png")
    with Image.open(tmp_path / "pics" / "both.png") as im:
        assert im.format == "PNG" and im.size[0] > 200
    r = run_cli("plot", a)                                # default: curves.png in the run
    assert r.exit_code == 0, r.stderr
    assert os.path.isfile(os.path.join(a, "curves.png"))


# ----------------------------------------------------------------------- training_options.json

def test_training_options_hold_the_official_keys_and_still_resume(tmp_path):
    from sg3keras.training.loop import _options_from_json, _write_options, resolve_options
    opts = tiny_options(data=str(tmp_path / "d.zip"), outdir=str(tmp_path), aug="ada",
                        kimg=0.016, tick=0.004, snap=2)
    _write_options(str(tmp_path), opts, resolve_options(opts))
    stored = json.load(open(tmp_path / "training_options.json"))
    for key in ["G_kwargs", "D_kwargs", "loss_kwargs", "G_opt_kwargs", "D_opt_kwargs",
                "augment_kwargs", "ema_kimg", "batch_size", "batch_gpu", "total_kimg",
                "kimg_per_tick", "image_snapshot_ticks", "network_snapshot_ticks",
                "random_seed", "num_gpus", "metrics", "ema_rampup", "G_reg_interval",
                "D_reg_interval", "augment_p", "ada_target", "ada_kimg", "run_dir",
                "training_set_kwargs"]:
        assert key in stored, key
    assert stored["batch_size"] == 4 and stored["kimg_per_tick"] == 0.004
    assert stored["G_kwargs"]["channel_base"] == 256 and stored["G_kwargs"]["channel_max"] == 16
    assert stored["G_kwargs"]["mapping_kwargs"] == {"num_layers": 2}
    assert stored["loss_kwargs"]["r1_gamma"] == 1.0
    assert stored["D_kwargs"]["epilogue_kwargs"] == {"mbstd_group_size": 2}
    assert stored["image_snapshot_ticks"] == stored["network_snapshot_ticks"] == 2
    assert stored["training_set_kwargs"]["path"] == str(tmp_path / "d.zip")
    assert stored["batch_gpu"] is None                   # ours: --batch-gpu not given
    back = _options_from_json(stored)
    assert back == _options_from_json(json.load(open(tmp_path / "training_options.json")))
    assert back.batch == 4 and back.tick == 0.004 and back.batch_gpu is None


# --------------------------------------------------------------------------------------- ETA

def test_eta_rate_leaves_the_first_call_of_each_phase_out(monkeypatch):
    from sg3keras.training import ticks
    clock = [0.0]
    monkeypatch.setattr(ticks.time, "time", lambda: clock[0])
    rate = ticks.EtaRate()

    def batch(phase, sec):
        rate.batch_begin(phase)
        clock[0] += sec
        rate.batch_end(0.004)

    batch((True, False), 60.0)                 # tick 1: both phases traced (first calls)
    batch((False, False), 40.0)
    rate.add_tick(100.0, 0.008)
    assert rate.sec_per_kimg(12500.0) == 12500.0    # nothing measured yet: the raw rate
    batch((False, False), 1.0)                 # tick 2: one ordinary iteration ...
    batch((False, True), 80.0)                 # ... and a first lazy-regularisation call
    rate.add_tick(81.0, 0.008)
    assert rate.sec_per_kimg(10125.0) == pytest.approx(1.0 / 0.004)
    batch((False, True), 3.0)                  # the same phase again: counted
    batch((False, False), 1.0)
    rate.add_tick(4.0, 0.008)
    assert rate.sec_per_kimg(500.0) == pytest.approx(5.0 / 0.012)


def test_tick_stats_official_names_from_the_tracker_moments():
    from sg3keras.training.ticks import tick_stats
    logs = {"Loss/G/loss": 0.5, "_sq:Loss/G/loss": 0.5 ** 2 + 0.04, "_num:Loss/G/loss": 8.0,
            "Loss/pl_penalty": 0.0, "_sq:Loss/pl_penalty": 0.0, "_num:Loss/pl_penalty": 0.0,
            "augment_p": 0.25}
    timing = dict(sec_tick=10.0, sec_kimg=2.5, total_sec=7200.0, maintenance_sec=1.5)
    s = tick_stats(logs, 3, 12.0, timing)
    assert s["Loss/G/loss"] == {"num": 8, "mean": 0.5, "std": pytest.approx(0.2)}
    assert "Loss/pl_penalty" not in s                      # not reported during the tick
    assert not any(k.startswith("_") for k in s)
    assert s["Progress/tick"] == {"num": 1, "mean": 3.0, "std": 0.0}
    assert s["Progress/augment"]["mean"] == 0.25
    assert s["Timing/total_hours"]["mean"] == 2.0
    assert s["Timing/total_days"]["mean"] == pytest.approx(1 / 12)
    assert s["Timing/maintenance_sec"]["mean"] == 1.5
    assert 0 < s["Resources/cpu_mem_gb"]["mean"] < 1024


# ------------------------------------------------------------------------- a run and a resume

def _check_run_files(run_dir, ticks):
    """stats.jsonl: one line per tick, 1..ticks, each parsing, official names and structure;
    log.txt: each tick's progress line."""
    from sg3keras.runs.stats import read_stats, tick_of
    text = open(os.path.join(run_dir, "stats.jsonl")).read()
    assert text.endswith("\n")
    recs = [json.loads(line) for line in text.splitlines()]    # every line parses
    assert [tick_of(r) for r in recs] == list(range(1, ticks + 1))
    assert read_stats(run_dir) == recs
    for r in recs:
        assert isinstance(r["timestamp"], float)
        for name in OFFICIAL_NAMES:
            assert set(r[name]) == {"num", "mean", "std"}, (name, r[name])
            assert r[name]["num"] >= 1 and math.isfinite(r[name]["mean"])
            assert r[name]["std"] >= 0
        assert r["Loss/G/loss"]["num"] == 2 * 4             # 2 steps x batch 4 per tick
    kimgs = [r["Progress/kimg"]["mean"] for r in recs]
    assert kimgs == sorted(kimgs) and len(set(kimgs)) == len(kimgs)
    log = open(os.path.join(run_dir, "log.txt")).read()
    for t in range(1, ticks + 1):
        assert len([ln for ln in log.splitlines() if ln.startswith(f"tick {t} ")]) >= 1
    return recs, log


@pytest.mark.slow
def test_run_and_resume_write_log_stats_curves_and_the_missing_snapshot(tmp_path):
    """A run of 4 ticks, then what a kill after the last checkpoint leaves (a stats line of the
    next tick, half a line, the snapshot of the checkpointed tick not yet written), then the
    resume to 6 ticks: each tick once in stats.jsonl, the snapshot written after the resume."""
    from sg3keras.training.loop import train
    data = write_tiny_dataset(tmp_path / "tiny16.zip", n=24)
    opts = tiny_options(data=data, outdir=str(tmp_path / "runs"), kimg=0.016, tick=0.008, snap=2,
                        aug="ada", batch=4)
    printed = []
    run_dir = train(opts, log=printed.append)
    recs, log = _check_run_files(run_dir, 2)
    assert log.startswith("Training options:\n{")
    assert [ln for ln in log.splitlines() if ln.startswith(("tick", "snapshot"))] == \
        [ln for ln in printed if ln.startswith(("tick", "snapshot"))]
    assert os.path.isfile(os.path.join(run_dir, "curves.png"))
    snap = os.path.join(run_dir, "network-snapshot-000000.016.keras")
    assert os.path.isfile(snap) and os.path.isfile(os.path.join(run_dir, "fakes000000.016.png"))
    os.remove(snap)                                   # killed after the checkpoint, before ...
    with open(os.path.join(run_dir, "stats.jsonl"), "a") as f:   # ... and a tick later
        later = dict(recs[-1], **{"Progress/tick": {"num": 1, "mean": 3.0, "std": 0.0}})
        f.write(json.dumps(later) + "\n" + json.dumps(later)[:30])
    resumed = train(tiny_options(resume=run_dir, kimg=0.032), log=printed.append,
                    given={"resume", "kimg"})
    assert resumed == run_dir and os.path.isfile(snap)
    assert any("written after the resume" in ln for ln in printed)
    recs2, log = _check_run_files(run_dir, 4)
    assert recs2[:2] == recs                           # the first ticks' lines kept as they were
    assert "---- resumed at kimg 0.016 (" in log
    assert log.index("---- resumed at kimg") < log.index("tick 3 ")
    for kimg in ["000000.016", "000000.032"]:
        assert os.path.isfile(os.path.join(run_dir, f"network-snapshot-{kimg}.keras"))
