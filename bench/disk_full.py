"""A training run on a disk that fills up, then becomes read-only, then has space again.

Mounts a small tmpfs (root only: where ``mount`` fails this prints why and exits 0 without a
result), trains a tiny 16-px StyleGAN3-T into it (ticks of 10 steps, an 11-MB checkpoint each), and
checks:

1. the disk has room for one checkpoint but not two: the run ends with ONE line (status 1)
   naming the checkpoint it could not write (ENOSPC), the last good checkpoint is byte for
   byte what it was, and no temporary file is left;
2. the disk is then remounted read-only: the resume ends with one line naming the file (EROFS);
3. the disk is remounted with room: the printed resume command trains the run to its end.

Prints each step's result and the machine. Usage: ``sudo python bench/disk_full.py``.
"""

import glob
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(ROOT, "tests")]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
CLI = [sys.executable, "-m", "sg3keras.cli"]


def _train_args(outdir, data):
    return ["train", "--outdir", outdir, "--cfg", "stylegan3-t", "--data", data, "--gpus", "1",
            "--batch", "4", "--gamma", "1", "--cbase", "256", "--cmax", "16", "--map-depth", "2",
            "--mbstd-group", "2", "--aug", "noaug", "--kimg", "0.12", "--tick", "0.04",
            "--snap", "2", "--no-fused-ops"]


def _run(args):
    t = time.time()
    r = subprocess.run(CLI + args, cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=1800)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    return r, lines, time.time() - t


def _snapshot_files(ckpt_dir):
    return {p: open(p, "rb").read() for p in sorted(glob.glob(os.path.join(ckpt_dir, "*")))}


def _mount(mnt, opts):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", mnt], capture_output=True,
                       text=True)
    return r.returncode == 0, r.stderr.strip()


def _remount(mnt, opts):
    subprocess.run(["mount", "-o", "remount," + opts, mnt], check=True)


def main():
    from machine import cpu_summary
    from train_fixtures import write_tiny_dataset
    print(f"machine: {cpu_summary(probe=False)}")
    work = tempfile.mkdtemp(prefix="sg3keras-diskfull-")
    data = write_tiny_dataset(os.path.join(work, "tiny16.zip"), n=24)
    mnt = os.path.join(work, "disk")
    os.makedirs(mnt)
    ok, why = _mount(mnt, "size=18m")    # one 11-MB checkpoint fits, a second does not
    if not ok:
        print(f"SKIPPED: cannot mount a tmpfs here ({why or 'mount failed'}); run as root")
        return 0
    failures = 0
    try:
        r, lines, sec = _run(_train_args(mnt, data))
        run_dir = glob.glob(os.path.join(mnt, "0*"))[0]
        ckpt_dir = os.path.join(run_dir, "checkpoints")
        kept = _snapshot_files(ckpt_dir)
        good = (r.returncode == 1 and len(lines) == 1 and "(ENOSPC)" in lines[0]
                and "cannot write checkpoint" in lines[0] and "kept checkpoint" in lines[0])
        failures += not good
        print(f"1. disk full:   status {r.returncode}, {len(lines)} line(s) on stderr, "
              f"{sec:.0f} s: {lines[-1] if lines else ''}  [{'OK' if good else 'FAILED'}]")
        _remount(mnt, "ro")
        r, lines, sec = _run(["train", "--resume", run_dir])
        good = (r.returncode == 1 and len(lines) == 1 and "(EROFS)" in lines[0]
                and "kept checkpoint" in lines[0] and _snapshot_files(ckpt_dir) == kept)
        failures += not good
        print(f"2. read-only:   status {r.returncode}, {len(lines)} line(s) on stderr, "
              f"{sec:.0f} s: {lines[-1] if lines else ''}  [{'OK' if good else 'FAILED'}]")
        _remount(mnt, "rw,size=64m")
        temp = [p for p in glob.glob(os.path.join(run_dir, "**", ".*"), recursive=True)]
        r, lines, sec = _run(["train", "--resume", run_dir])
        good = r.returncode == 0 and not temp and "tick 3 " in r.stdout
        failures += not good
        print(f"3. space again: status {r.returncode}, temporary files left before it: "
              f"{len(temp)}, {sec:.0f} s: {r.stdout.strip().splitlines()[-1]}  "
              f"[{'OK' if good else 'FAILED'}]")
    finally:
        subprocess.run(["umount", mnt])
    print(f"{3 - failures} of 3 steps as promised")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
