"""tf.distribute: MirroredStrategy on 2 logical CPUs and MultiWorkerMirroredStrategy with 2
worker processes on 127.0.0.1 each match a single-replica run of the same global batch.

Each run is its own process (logical devices and collectives must be configured at start-up),
always under ``timeout -s KILL`` because a multi-worker process can block forever.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "dist_train.py")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
pytestmark = pytest.mark.slow


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _run(out, mode, env=None, timeout=600):
    cmd = ["timeout", "-s", "KILL", str(timeout), sys.executable, SCRIPT, str(out), mode, "2"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env or ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc):
    out, _ = proc.communicate()
    assert proc.returncode == 0, out[-4000:]
    return out


def _compare(a_path, b_path, atol):
    a, b = np.load(a_path), np.load(b_path)
    assert sorted(a.files) == sorted(b.files)
    assert int(a["step"]) == int(b["step"]) == 2
    worst = max(((float(np.abs(a[k] - b[k]).max()), k) for k in a.files))
    assert worst[0] <= atol, f"max |diff| {worst[0]:.3g} in {worst[1]}"
    return worst


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "single.npz"
    _finish(_run(out, "single"))
    return out


def test_mirrored_two_logical_cpus_matches_single_replica(single, tmp_path):
    _finish(_run(tmp_path / "mirrored.npz", "mirrored"))
    # Float-level differences only (the batch-wide style RMS of modulated conv and the
    # reduction order differ); GAN dynamics over 2 Adam steps keep them small.
    _compare(single, tmp_path / "mirrored.npz", atol=2e-4)


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def test_multiworker_two_processes_matches_single_replica(single, tmp_path):
    ports = _free_ports(2)
    procs = [_run(tmp_path / "mw.npz", "multiworker",
                  env=dict(ENV, TF_CONFIG=_tf_config(ports, i))) for i in range(2)]
    outs = [_finish(p) for p in procs]
    assert all("OK multiworker 2" in o for o in outs)
    _compare(single, tmp_path / "mw.npz", atol=2e-4)


def test_multiworker_missing_peer_is_an_error_not_a_hang(tmp_path):
    """Worker 0 of a 2-worker cluster whose peer never starts exits with a clear error."""
    ports = _free_ports(2)
    env = dict(ENV, TF_CONFIG=_tf_config(ports, 0), SG3KERAS_STARTUP_TIMEOUT="20")
    t0 = time.time()
    proc = _run(tmp_path / "never.npz", "multiworker", env=env, timeout=240)
    out, _ = proc.communicate()
    assert proc.returncode == 1, (proc.returncode, out[-2000:])   # not killed by `timeout`
    assert "Timeout" in out and "TF_CONFIG" in out
    assert time.time() - t0 < 200
