"""Runs that are stopped and resumed through the CLI, in real processes: SIGTERM in the first
tick, SIGINT in the middle of a run, a file-size limit (EFBIG, as a full disk) at a checkpoint
and a bit-flipped latest checkpoint. Each ends with one line and the run, resumed, ends with the
same parameters as a run that was never stopped (--deterministic).

A tiny 16-px StyleGAN3-T, 4 ticks of 10 steps; every wait is bounded (a run that hangs fails).
"""

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import CLI, ROOT
from train_fixtures import write_tiny_dataset

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
KIMG, TIMEOUT = "0.16", 900
# Runs a command with RLIMIT_FSIZE set: a write past it fails with EFBIG (Python ignores
# SIGXFSZ), as a write to a full disk fails with ENOSPC.
_FSIZE = ("import os, resource, sys; n = int(sys.argv[1]); "
          "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); os.execv(sys.executable, "
          "[sys.executable, '-m', 'sg3keras.cli'] + sys.argv[2:])")


def _args(outdir, data, kimg):
    return ["train", "--outdir", str(outdir), "--cfg", "stylegan3-t", "--data", data, "--gpus",
            "1", "--batch", "4", "--gamma", "1", "--cbase", "256", "--cmax", "16", "--map-depth",
            "2", "--mbstd-group", "2", "--aug", "noaug", "--kimg", kimg, "--tick", "0.04",
            "--snap", "2", "--no-fused-ops", "--deterministic"]


def _run(args, fsize=None):
    cmd = CLI if fsize is None else [sys.executable, "-c", _FSIZE, str(fsize)]
    return subprocess.run(cmd + [str(a) for a in args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=TIMEOUT)


def _stop_when(args, signum, ready):
    """Start ``sg3keras ARGS`` and send it ``signum`` once ``ready(stdout lines so far)`` (asked
    every 50 ms); returns ``(returncode, stdout, stderr)``. The process is killed after
    TIMEOUT seconds whatever happens."""
    proc = subprocess.Popen(CLI + [str(a) for a in args], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killer = threading.Timer(TIMEOUT, proc.kill)
    killer.start()
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        while proc.poll() is None and not ready(list(lines)):
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signum)
        err = proc.stderr.read()
        proc.wait()
        reader.join(timeout=60)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(lines), err


def _state(run_dir):
    latest = json.load(open(os.path.join(run_dir, "checkpoints", "latest.json")))
    with np.load(os.path.join(run_dir, "checkpoints", latest["file"])) as f:
        return latest["step"], {k: f[k] for k in f.files if k != "__meta__"}


def _same(a, b):
    assert a[0] == b[0] and sorted(a[1]) == sorted(b[1])
    bad = [k for k in a[1] if not np.array_equal(a[1][k], b[1][k])]
    assert not bad, f"{len(bad)} arrays differ, e.g. {bad[:5]}"


def _one_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err and "Aborted" not in err, err[-3000:]
    return lines[0]


def _no_temp_files(run_dir):
    left = [p for p in glob.glob(os.path.join(run_dir, "**", ".*"), recursive=True)]
    assert not left, left


@pytest.mark.slow
def test_signals_full_disk_and_damaged_checkpoint_leave_a_resumable_run(tmp_path):
    data = write_tiny_dataset(tmp_path / "tiny16.zip", n=24)

    # A: SIGTERM during the first tick (the first step is compiling): no checkpoint yet; the
    # printed command trains the run again from step 0, to its end.
    rc, out, err = _stop_when(_args(tmp_path / "a", data, KIMG), signal.SIGTERM,
                              lambda lines: glob.glob(str(tmp_path / "a" / "*" / "fakes_init.png")))
    line = _one_line(err)
    run_a = glob.glob(str(tmp_path / "a" / "0*"))[0]
    assert rc == 143 and "(SIGTERM)" in line and "no checkpoint yet" in line, (rc, line)
    assert not glob.glob(os.path.join(run_a, "checkpoints", "ckpt-*"))
    command = line.split("with: ", 1)[1]
    assert command == f"sg3keras train --resume {run_a}"
    r = _run(command.split()[1:])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "no checkpoint yet" in r.stdout and "tick 4 " in r.stdout, r.stdout
    final = _state(run_a)
    assert final[0] == 40
    assert json.load(open(os.path.join(run_a, "status.json")))["state"] == "finished"

    # B: SIGINT after tick 2: the step running finishes, the tick it is in is abandoned.
    rc, out, err = _stop_when(_args(tmp_path / "b", data, "10"), signal.SIGINT,
                              lambda lines: any(ln.startswith("tick 2 ") for ln in lines))
    line = _one_line(err)
    run_b = glob.glob(str(tmp_path / "b" / "0*"))[0]
    latest = json.load(open(os.path.join(run_b, "checkpoints", "latest.json")))
    assert rc == 130 and "(SIGINT)" in line, (rc, line)
    assert f"kept checkpoint {run_b}/checkpoints/{latest['file']}" in line, line
    assert line.endswith(f"resume with: sg3keras train --resume {run_b}"), line
    assert latest["tick"] in (2, 3), latest      # 3 if the signal came at its last step
    assert json.load(open(os.path.join(run_b, "status.json")))["state"] == "stopped"
    _no_temp_files(run_b)

    # The disk fills (a file-size limit below a checkpoint's size): one line naming the
    # checkpoint that could not be written; the kept one is untouched.
    kept = os.path.join(run_b, "checkpoints", latest["file"])
    before = {p: open(p, "rb").read() for p in glob.glob(os.path.join(run_b, "checkpoints", "*"))}
    r = _run(["train", "--resume", run_b, "--kimg", KIMG], fsize=os.path.getsize(kept) // 2)
    line = _one_line(r.stderr)
    want = os.path.join(run_b, "checkpoints", f"ckpt-{latest['step'] + 10:08d}.npz")
    assert r.returncode == 1 and line.startswith(f"Error: cannot write checkpoint {want}: "), line
    assert "(EFBIG)" in line and f"kept checkpoint {kept}" in line, line
    assert line.endswith(f"resume with: sg3keras train --resume {run_b} once there is space "
                         "(or the disk is writable)"), line
    after = {p: open(p, "rb").read() for p in glob.glob(os.path.join(run_b, "checkpoints", "*"))}
    assert after == before
    _no_temp_files(run_b)

    # The kept checkpoint is then damaged (one bit): the resume says so, goes back to the one
    # before it (kimg lost: one tick) and ends where A ended, bit for bit.
    data_b = bytearray(before[kept])
    data_b[len(data_b) // 2] ^= 0x10
    with open(kept, "wb") as f:
        f.write(bytes(data_b))
    r = _run(["train", "--resume", run_b, "--kimg", KIMG])
    assert r.returncode == 0, r.stderr[-3000:]
    lost = [ln for ln in r.stdout.splitlines() if "is damaged" in ln]
    assert len(lost) == 1 and kept in lost[0], r.stdout
    prev = latest["step"] - 10
    assert (f"from step {prev} (kimg {prev * 4 / 1000:.3f}) (the newest good checkpoint, "
            f"ckpt-{prev:08d}.npz; 0.040 kimg lost, trained again)") in r.stdout, r.stdout
    _same(final, _state(run_b))
    assert r.stdout.count("tick 4 ") == 1
