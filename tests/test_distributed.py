"""tf.distribute: MirroredStrategy on 2 logical CPUs and MultiWorkerMirroredStrategy with 2
worker processes on 127.0.0.1 each match a single-replica run of the same global batch; a worker
whose peer never starts, dies or stalls ends with a clear error instead of hanging.

Each run is its own process (logical devices and collectives must be configured at start-up),
always under ``timeout -s KILL`` because a multi-worker process can block forever. The shims that
Keras ``fit`` needs under MultiWorkerMirroredStrategy are checked in test_training_compat.py.
"""

import os
import time

import numpy as np
import pytest
import tensorflow as tf

import multiworker as mw

pytestmark = pytest.mark.slow   # Multi-process / fresh-process / subprocess: `make test` only.

SCRIPT = os.path.join(mw.ROOT, "tests", "scripts", "dist_train.py")
ENV = mw.ENV


def _run(out, mode, env=None, timeout=600):
    return mw.start([SCRIPT, out, mode, "2"], env=env, timeout=timeout)


def _finish(proc):
    out, _ = proc.communicate()
    assert proc.returncode == 0, out[-4000:]
    return out


def _compare(a_path, b_path, atol):
    a, b = np.load(a_path), np.load(b_path)
    assert sorted(a.files) == sorted(b.files)
    assert int(a["step"]) == int(b["step"]) == 2
    worst = max(((float(np.abs(a[k] - b[k]).max()), k) for k in a.files))
    msg = f"max |diff| {worst[0]:.3g} in {worst[1]}"
    print(msg)
    assert worst[0] <= atol, msg
    return worst


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "single.npz"
    _finish(_run(out, "single"))
    return out


@pytest.mark.slow
def test_mirrored_two_logical_cpus_matches_single_replica(single, tmp_path):
    _finish(_run(tmp_path / "mirrored.npz", "mirrored"))
    # Float-level differences only (the batch-wide style RMS of modulated conv and the
    # reduction order differ); the script's Adam eps keeps them from being amplified.
    # Measured 5.0e-7 (AMD Zen 4, AVX-512).
    _compare(single, tmp_path / "mirrored.npz", atol=2e-5)


@pytest.mark.slow
def test_multiworker_two_processes_matches_single_replica(single, tmp_path):
    procs = mw.start_workers([SCRIPT, tmp_path / "mw.npz", "multiworker", "2"])
    outs = [_finish(p) for p in procs]
    assert all("OK multiworker 2" in o for o in outs)
    _compare(single, tmp_path / "mw.npz", atol=2e-5)


@pytest.mark.slow
def test_multiworker_missing_peer_is_an_error_not_a_hang(tmp_path):
    """Worker 0 of a 2-worker cluster whose peer never starts exits with a clear error."""
    env = dict(ENV, TF_CONFIG=mw.tf_config(mw.free_ports(2), 0), SG3KERAS_STARTUP_TIMEOUT="20")
    t0 = time.time()
    proc = _run(tmp_path / "never.npz", "multiworker", env=env, timeout=240)
    out, _ = proc.communicate()
    assert proc.returncode == 1, (proc.returncode, out[-2000:])   # not killed by `timeout`
    assert "Timeout" in out and "TF_CONFIG" in out
    assert time.time() - t0 < 200


def _faulty_run(tmp_path, *fault_args, step_timeout):
    """Both workers train 6 steps; after step 2 -- when every step function is traced --
    TF_CONFIG worker 1 runs ``--fault ...``. Returns the two processes and their outputs."""
    args = [SCRIPT, tmp_path / "mw.npz", "multiworker", "6", "--fault-at", "2",
            "--fault-worker", "1", *fault_args]
    procs = mw.start_workers(args, timeout=300, SG3KERAS_STEP_TIMEOUT=str(step_timeout))
    try:
        outs = [p.communicate()[0] for p in procs]
    finally:
        for p in procs:
            mw.kill_group(p)
    return procs, outs


@pytest.mark.slow
def test_multiworker_peer_killed_mid_run_is_an_error_not_a_hang(tmp_path):
    """Worker 1 SIGKILLs itself after step 2. TensorFlow's coordination service sees its
    heartbeats stop (~10 s) and aborts worker 0's collective; WorkerWatchdog re-raises that as
    PeerFailureError naming worker 1. Worker 0 exits with status 1 by itself (not killed by
    ``timeout``); the step watchdog (600 s, longer than ``timeout``) plays no part."""
    procs, outs = _faulty_run(tmp_path, "--fault", "die", step_timeout=600)
    assert "worker 1: SIGKILL myself" in outs[1], outs[1][-2000:]
    assert procs[0].returncode == 1, (procs[0].returncode, outs[0][-3000:])
    assert "step 2 done" in outs[0] and "step 3 done" not in outs[0], outs[0][-3000:]
    assert "PeerFailureError: multi-worker training stopped: a collective with the other " \
        "workers failed. The peer worker[1] (127.0.0.1:" in outs[0], outs[0][-3000:]
    assert "this process is TF_CONFIG task worker[0]" in outs[0]
    assert "TensorFlow: UnavailableError: Collective ops is aborted by: " in outs[0]


@pytest.mark.slow
def test_multiworker_stalled_peer_is_an_error_not_a_hang(tmp_path):
    """Worker 1 stops stepping for 20 s but stays alive (its heartbeats go on, so TensorFlow
    would wait forever): worker 0's step watchdog (8 s here) ends worker 0 with status 1, a
    message and a stack dump showing the step blocked in graph execution. When worker 1 resumes,
    its peer is gone -- worker 0, the coordination leader -- and its next step fails at once
    with PeerFailureError naming worker 0. Tracing steps 0 and 1 are exempt from the watchdog."""
    procs, outs = _faulty_run(tmp_path, "--fault", "stall", "--stall-seconds", "20",
                              step_timeout=8)
    assert procs[0].returncode == 1, (procs[0].returncode, outs[0][-3000:])
    assert "step 2 done" in outs[0] and "step 3 done" not in outs[0], outs[0][-3000:]
    assert "PeerFailureError: a training step has been running for more than 8 s " \
        "(SG3KERAS_STEP_TIMEOUT)" in outs[0], outs[0][-3000:]
    assert "this process is TF_CONFIG task worker[0]" in outs[0]
    assert "in quick_execute" in outs[0]

    assert procs[1].returncode == 1, (procs[1].returncode, outs[1][-3000:])
    assert "worker 1: resuming" in outs[1] and "step 3 done" not in outs[1], outs[1][-3000:]
    assert "PeerFailureError: multi-worker training stopped: a collective with the other " \
        "workers failed. The peer worker[0] (127.0.0.1:" in outs[1], outs[1][-3000:]
    assert "running for more than" not in outs[1]


# What TF 2.21 told the survivor (trimmed) when worker 1 died (the coordination service saw its
# heartbeats stop) and when worker 0 -- the coordination leader -- died during a collective.
_HEARTBEATS_STOPPED = (
    "Graph execution error:\n\nDetected at node CollectiveReduceV2 defined at (most recent call "
    "last):\n  File \"x.py\", line 15, in <module>\n\nCollective ops is aborted by: Error reported "
    "from /job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats):\n"
    "/job:worker/replica:0/task:1\nThe tasks have crashed. Check the task logs for an earlier "
    "error, or scheduler events (e.g. preemption, eviction) to debug further.\nThe error could be "
    "from a previous operation. Restart your program to reset.\n\t [[{{node CollectiveReduceV2}}]]"
    " [Op:__inference_step_31]")
_LEADER_GONE = (
    "Graph execution error:\n\nCollective ops is aborted by: recvmsg:Connection reset by peer\n"
    "Additional GRPC error information from remote target /job:worker/replica:0/task:0 while "
    "calling /tensorflow.WorkerService/CompleteInstance:\n:UNKNOWN:Error received from peer  "
    "{grpc_message:\"recvmsg:Connection reset by peer\", grpc_status:14}\nThe error could be from "
    "a previous operation. Restart your program to reset.\n\t [[{{node CollectiveReduceV2}}]]")


@pytest.mark.parametrize("message,me,who,reason", [
    (_HEARTBEATS_STOPPED, 0, "The peer worker[1] (127.0.0.1:5001)",
     "Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks "
     "are unhealthy (stopped sending heartbeats): /job:worker/replica:0/task:1 The tasks have"),
    (_LEADER_GONE, 1, "The peer worker[0] (127.0.0.1:5000)",
     "Collective ops is aborted by: recvmsg:Connection reset by peer Additional GRPC error"),
    ("Deadline Exceeded", 0, "A peer worker", "Deadline Exceeded"),
])
def test_peer_failure_message_names_the_peer_and_this_task(monkeypatch, message, me, who,
                                                           reason):
    from sg3keras.training.distribute import PeerFailureError, explain_peer_failure
    monkeypatch.setenv("TF_CONFIG", mw.tf_config([5000, 5001], me))
    err = tf.errors.UnavailableError(None, None, message)
    out = explain_peer_failure(err)
    assert isinstance(out, PeerFailureError) and out.tf_error is err
    assert str(out).startswith(
        f"multi-worker training stopped: a collective with the other workers failed. {who} "
        f"probably died, was stopped or is unreachable; this process is TF_CONFIG task "
        f"worker[{me}] of cluster worker[0]=127.0.0.1:5000, worker[1]=127.0.0.1:5001. ")
    assert f"TensorFlow: UnavailableError: {reason}" in str(out)
    assert "[[" not in str(out)
