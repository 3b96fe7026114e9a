"""``sg3keras runs``: run directories built by hand (no training), a run's ``status.json``, and
one real tiny fine-tuning run listed afterwards."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from helpers import run_cli, run_cli_process

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PKL = os.path.join(HERE, "reference", "pickle", "network-snapshot-tiny.pkl")
NOW = 1_800_000_000.0


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _stat(v):
    return {"num": 1, "mean": v, "std": 0.0}


def _run(outdir, name, kimg_total=0.04, step=None, status=None, stats=(), metrics=None,
         tick_time=NOW - 30):
    """A run directory as train() leaves it: options, run info, checkpoint, status, stats."""
    d = os.path.join(outdir, name)
    _write(os.path.join(d, "training_options.json"),
           dict(cfg="stylegan3-t", batch=4, kimg=kimg_total, data="/data/faces.zip",
                metrics=list(metrics or {})))
    _write(os.path.join(d, "run_info.json"), {"dataset": {"name": "faces", "size": 16}})
    if step is not None:
        latest = os.path.join(d, "checkpoints", "latest.json")
        _write(latest, dict(file=f"ckpt-{step:08d}.npz", step=step, tick=step, kimg=step * 0.004,
                            total_sec=step * 10.0))
        os.utime(latest, (tick_time, tick_time))
    if status is not None:
        _write(os.path.join(d, "status.json"), dict(dict(host=socket.gethostname(),
                                                         started=NOW - 100), **status))
    if stats:
        _write(os.path.join(d, "stats.jsonl"), "".join(
            (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in stats))
    for name_, values in (metrics or {}).items():
        _write(os.path.join(d, f"metric-{name_}.jsonl"), "".join(
            json.dumps(dict(results={name_: v}, metric=name_,
                            snapshot_pkl=f"network-snapshot-{i:06d}.keras")) + "\n"
            for i, v in enumerate(values)))
    return d


def _by_name(outdir):
    from sg3keras.tools.runs_table import list_runs
    return {r["name"]: r for r in list_runs(outdir, now=NOW)}


def test_states_from_the_files(tmp_path):
    _run(tmp_path, "00000-running", step=2, status=dict(state="running", pid=os.getpid()),
         stats=[{"Progress/kimg": _stat(0.008), "Timing/sec_per_kimg": _stat(500.0),
                 "Timing/sec_per_tick": _stat(2.0), "timestamp": NOW - 5}])
    _run(tmp_path, "00001-finished", kimg_total=0.008, step=2,
         status=dict(state="finished", pid=_dead_pid()))
    _run(tmp_path, "00002-failed", step=1, status=dict(
        state="error", pid=_dead_pid(), message="TrainingDivergedError: Loss became NaN/Inf"))
    _run(tmp_path, "00003-killed", step=3, status=dict(state="running", pid=_dead_pid()))
    _run(tmp_path, "00004-killed-first-tick", status=dict(state="running", pid=_dead_pid()))
    _run(tmp_path, "00005-time-limit", step=1, status=dict(state="stopped", pid=_dead_pid()))
    # Another host: its heartbeat decides (recent: running; old: stopped there).
    _run(tmp_path, "00006-elsewhere-recent", step=1, tick_time=NOW - 60, status=dict(
        state="running", pid=1, host="another-host", updated=NOW - 60))
    _run(tmp_path, "00007-elsewhere-old", step=1, tick_time=NOW - 7200, status=dict(
        state="running", pid=1, host="another-host", updated=NOW - 7200))
    # Runs from before status.json: the checkpoint and its time.
    _run(tmp_path, "00008-old-finished", kimg_total=0.004, step=1, tick_time=NOW - 86400)
    _run(tmp_path, "00009-old-stopped", step=1, tick_time=NOW - 86400)
    runs = _by_name(tmp_path)
    assert {k: v["state"] for k, v in runs.items()} == {
        "00000-running": "running", "00001-finished": "finished", "00002-failed": "error",
        "00003-killed": "resumable", "00004-killed-first-tick": "stopped",
        "00005-time-limit": "resumable", "00006-elsewhere-recent": "running",
        "00007-elsewhere-old": "resumable", "00008-old-finished": "finished",
        "00009-old-stopped": "resumable"}
    r = runs["00000-running"]
    assert (r["config"], r["dataset"], r["kimg"], r["kimg_total"]) == ("stylegan3-t", "faces",
                                                                      0.008, 0.04)
    assert r["last_tick"] == NOW - 5 and r["sec_per_kimg"] == 500.0
    assert r["eta_sec"] == pytest.approx((0.04 - 0.008) * 500.0)
    assert runs["00002-failed"]["message"] == "TrainingDivergedError: Loss became NaN/Inf"
    assert runs["00003-killed"]["eta_sec"] is None
    # Without stats.jsonl: the checkpoint's kimg, its file time and the average speed.
    r = runs["00003-killed"]
    assert r["kimg"] == pytest.approx(0.012) and r["last_tick"] == NOW - 30
    assert r["sec_per_kimg"] == pytest.approx(30.0 / 0.012)
    assert all(not r["problems"] for r in runs.values())


def test_metrics_latest_and_best_snapshot(tmp_path):
    _run(tmp_path, "00000-fid", step=3, metrics={"fid50k_full": [40.0, 12.5, 20.0],
                                                  "is50k": [2.0, 3.0, 4.0]})
    _run(tmp_path, "00001-pr", step=3, metrics={"pr50k3_full": [0.2, 0.7, 0.5]})
    runs = _by_name(tmp_path)
    r = runs["00000-fid"]
    assert r["metrics"] == {"fid50k_full": {"fid50k_full": 20.0}, "is50k": {"is50k": 4.0}}
    assert r["best"] == dict(metric="fid50k_full", value=12.5,
                             snapshot="network-snapshot-000001.keras")
    assert runs["00001-pr"]["best"]["value"] == 0.7        # higher is better


def test_cli_table_json_and_damaged_files(tmp_path):
    top, tmp_path = tmp_path, tmp_path / "runs"
    _run(tmp_path, "00000-a", step=2, status=dict(state="running", pid=_dead_pid()),
         stats=[{"Progress/kimg": _stat(0.004), "timestamp": NOW - 9}, "{damaged",
                {"Progress/kimg": _stat(0.008), "timestamp": NOW - 5}],
         metrics={"fid50k_full": [30.0]})
    d = _run(tmp_path, "00001-b", kimg_total=0.008, step=2)
    _write(os.path.join(d, "run_info.json"), "{not json")
    os.makedirs(tmp_path / "not-a-run")
    r = run_cli("runs", tmp_path)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[0].split()[:3] == ["RUN", "CONFIG", "DATASET"]
    assert lines[1].startswith("00000-a") and "resumable" in lines[1] and "0.008/0.04" in lines[1]
    assert "fid50k_full 30" in lines[1] and "network-snapshot-000000.keras" in lines[1]
    assert lines[2].startswith("00001-b") and "finished" in lines[2]
    assert "faces" in lines[2]          # the dataset from training_options.json instead
    warnings = r.stderr.splitlines()
    assert warnings == ["Warning: 00000-a/stats.jsonl line 2: damaged, skipped",
                        f"Warning: 00001-b/run_info.json: damaged, skipped "
                        f"(JSONDecodeError: {warnings[1].split('JSONDecodeError: ')[1]}"], warnings
    r = run_cli("runs", "--json", tmp_path)
    runs = json.loads(r.stdout)
    assert [x["name"] for x in runs] == ["00000-a", "00001-b"]
    assert runs[0]["kimg"] == 0.008 and runs[1]["problems"][0].startswith("run_info.json")
    # A run directory itself, and an output folder one level up (out/ of `sg3keras demo`).
    assert json.loads(run_cli("runs", "--json", d).stdout)[0]["name"] == "00001-b"
    names = [x["name"] for x in json.loads(run_cli("runs", "--json", top).stdout)]
    assert names == ["runs/00000-a", "runs/00001-b"]


def test_default_outdir_is_runs(tmp_path, monkeypatch):
    _run(tmp_path / "runs", "00000-a", step=1)
    monkeypatch.chdir(tmp_path)
    r = run_cli("runs")
    assert r.exit_code == 0 and r.stdout.splitlines()[1].startswith("00000-a"), r.output


def test_status_json_of_a_run_that_raises_or_ends(tmp_path):
    from sg3keras.training import run_status

    @run_status.tracked
    def fails(run_dir):
        run_status.started(run_dir, True, total_steps=4)
        raise ValueError("--data x.zip: damaged image\nsecond line")

    @run_status.tracked
    def ends(run_dir, step):
        run_status.started(run_dir, True, total_steps=4)
        _write(os.path.join(run_dir, "checkpoints", "latest.json"), dict(step=step))
        return run_dir

    os.makedirs(tmp_path / "a")
    with pytest.raises(ValueError):
        fails(str(tmp_path / "a"))
    s = json.load(open(tmp_path / "a" / "status.json"))
    assert s["state"] == "error" and s["message"] == "ValueError: --data x.zip: damaged image"
    assert s["pid"] == os.getpid() and s["host"] == socket.gethostname()
    for step, state in ((4, "finished"), (2, "stopped")):
        ends(str(tmp_path / f"s{step}"), step)
        assert json.load(open(tmp_path / f"s{step}" / "status.json"))["state"] == state


@pytest.mark.slow
def test_real_tiny_fine_tuning_run_is_listed(tmp_path):
    """A 1-tick fine-tuning run from the official 2-layer 256/16 pickle: its options record the
    network's architecture and source, its status is finished, `runs` lists it."""
    from train_fixtures import write_tiny_dataset
    data = write_tiny_dataset(tmp_path / "tiny16.zip", n=8)
    out = tmp_path / "runs"
    r = run_cli_process("train", "--outdir", out, "--data", data, "--resume", PKL, "--gpus", "1",
                        "--batch", "4", "--gamma", "1", "--mbstd-group", "2", "--aug", "noaug",
                        "--tick", "0.004", "--kimg", "0.004", "--no-fused-ops",
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT),
                        timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "shuffle=True was passed" not in r.stderr
    (run,) = os.listdir(out)
    opts = json.load(open(out / run / "training_options.json"))
    assert (opts["cfg"], opts["cbase"], opts["cmax"], opts["map_depth"], opts["resume"]) == (
        "stylegan3-t", 256, 16, 2, PKL)
    status = json.load(open(out / run / "status.json"))
    assert status["state"] == "finished" and status["kimg"] == 0.004
    t0 = time.time()
    (listed,) = json.loads(run_cli("runs", "--json", out).stdout)
    assert listed["state"] == "finished" and listed["kimg"] == listed["kimg_total"] == 0.004
    assert t0 - 600 < listed["last_tick"] <= t0 and listed["resumed_from"] == PKL


@pytest.mark.slow
def test_real_runs_that_fail_and_that_are_killed(tmp_path):
    """A run whose losses become NaN leaves status "error" with the message; a SIGKILLed run
    with a checkpoint is resumable."""
    import signal

    from train_fixtures import write_tiny_dataset
    data = write_tiny_dataset(tmp_path / "tiny16.zip", n=8)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    common = ["train", "--cfg", "stylegan3-t", "--data", str(data), "--gpus", "1", "--batch", "4",
              "--gamma", "1", "--cbase", "256", "--cmax", "16", "--map-depth", "2",
              "--mbstd-group", "2", "--aug", "noaug", "--tick", "0.004", "--snap", "100",
              "--no-fused-ops"]
    r = run_cli_process(*common, "--outdir", tmp_path / "bad", "--kimg", "0.008", "--glr",
                        "1e38", "--dlr", "1e38", env=env, timeout=600)
    assert r.returncode == 1 and "NaN/Inf" in r.stderr, r.stderr[-2000:]
    (bad,) = json.loads(run_cli("runs", "--json", tmp_path / "bad").stdout)
    assert bad["state"] == "error", bad
    assert bad["message"].startswith("TrainingDivergedError: ") and "NaN/Inf" in bad["message"]

    proc = subprocess.Popen([sys.executable, "-m", "sg3keras.cli", *common, "--outdir",
                             str(tmp_path / "killed"), "--kimg", "0.4"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 500
        while time.time() < deadline and proc.poll() is None:
            listed = (json.loads(run_cli("runs", "--json", tmp_path / "killed").stdout)
                      if (tmp_path / "killed").exists() and any(
                          (tmp_path / "killed").glob("*/checkpoints/latest.json")) else [])
            if listed:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be listed running"
        assert listed[0]["state"] == "running" and listed[0]["eta_sec"] > 0, listed
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    (killed,) = json.loads(run_cli("runs", "--json", tmp_path / "killed").stdout)
    assert killed["state"] == "resumable" and killed["kimg"] < killed["kimg_total"] == 0.4
