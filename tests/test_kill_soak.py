"""The kill soak (bench/kill_soak.py), short: a tiny single-process training run SIGKILLed
twice and a two-worker MultiWorkerMirroredStrategy run SIGKILLed once (one worker; all
restarted), each resumed to the end, end bit-identical to an uninterrupted run of their own:
every parameter, optimizer moment and counter, ADA p and statistics, G_ema, RNG state.

The kills are drawn with a fixed seed from the phases the bench knows (a checkpoint write step,
a snapshot write, a stats line, right after an ADA adjustment); the bench checks
after each kill that the run directory names a complete checkpoint and holds only complete
snapshots, and at the end that ``stats.jsonl`` holds each tick once.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow     # fresh training processes, a two-process cluster


def _soak(tmp_path, *args, timeout=2600):
    cmd = ["timeout", "-s", "KILL", str(timeout), sys.executable,
           os.path.join(ROOT, "bench", "kill_soak.py"), "--workdir", str(tmp_path),
           "--timeout", "900", *args]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    out = r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, out[-4000:]
    return r.returncode, json.loads(lines[-1][len("RESULT "):]), out


# 4 launches of one process (single) or 3 of two (two-worker), each bounded by --timeout; about
# 5 and 8 minutes on a loaded 2-core machine, more than the suite's 900 s default when the
# machine is busier still.
@pytest.mark.timeout(2700)
@pytest.mark.parametrize("soak, args, kills", [
    # Fault-point kills only: a timer kill may find the launch ended (then the run is over).
    ("single", ["--only", "single", "--kills", "2", "--ticks", "4", "--seed", "3",
                "--phases", "checkpoint,snapshot,stats,ada"], 2),
    # A kill right after a step that adjusted ADA's p (step 4, tick 2): the run resumes from
    # tick 1's checkpoint on both workers (a kill before any checkpoint would only restart).
    ("two-worker", ["--only", "two-worker", "--kills", "1", "--ticks", "4", "--seed", "1",
                    "--phases", "ada"], 1),
])
def test_kill_soak_short(tmp_path, soak, args, kills):
    rc, results, out = _soak(tmp_path, *args)
    (r,) = results
    assert r["soak"] == soak and r["workers"] == (2 if soak == "two-worker" else 1)
    # Status 2: bit-identical, but a snapshot or grid the uninterrupted run wrote is lacking
    # (printed; docs/RELIABILITY.md names the two known cases).
    assert r["problems"] == [] and r["identical"] and rc in (0, 2), out[-4000:]
    assert r["kills_made"] == kills and sum(r["phases"].values()) == kills, r
    # One launch after each kill, and after each launch that failed by itself (a multi-worker
    # heartbeat timeout on a busy machine; it is resumed the same way, then the kill retried).
    assert r["resumes"] + r["restarts"] == kills + len(r["spontaneous"]), r
    g = r["compared"]["groups"]
    assert min(g["G"], g["D"], g["G_ema"], g["g_opt"], g["d_opt"], g["augment_pipe"]) > 0, g
    assert r["compared"]["ada_p"][0] > 0, r              # ADA moved p, and it was compared
    assert "verdict: BIT-IDENTICAL" in out
