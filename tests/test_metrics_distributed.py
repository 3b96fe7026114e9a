"""Metrics over the replicas of a tf.distribute strategy (evaluation uses all replicas).

A 2-replica MirroredStrategy on 2 logical CPUs must give the numbers of a single-replica run with
the same seed (same samples, float rounding only), with uneven last batches, record
``num_gpus: 2``, and be used by ``sg3keras metrics --gpus 2`` and by the training snapshots.
Logical devices must be configured at process start, so those runs are subprocesses under
``timeout -s KILL``.
"""

import json
import os
import subprocess
import sys

import pytest

from helpers import CLI

pytestmark = pytest.mark.slow   # Multi-process / fresh-process / subprocess: `make test` only.

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "dist_metrics.py")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", SG3KERAS_CACHE_DIR="")
EQ_TOL_DB = 1e-3          # observed 1-vs-2-replica differences: <= 1.4e-4 dB
FEATURE_RTOL = 1e-4       # observed: bit-identical (quantised images, same detector inputs)


def _run(cmd, timeout=240):
    r = subprocess.run(["timeout", "-s", "KILL", str(timeout)] + cmd, cwd=ROOT, env=ENV,
                       capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return r


def _script(tmp_path, group):
    out = tmp_path / "out.json"
    _run([sys.executable, SCRIPT, str(out), group])
    return json.loads(out.read_text())


def _check_case(case, tol_abs=None, rtol=None):
    single, mirrored = case["single"], case["mirrored"]
    assert single["num_gpus"] == 1 and mirrored["num_gpus"] == 2
    assert case["traced"] == [0, 1] and case["calls"]       # both replicas did the work
    assert set(single["results"]) == set(mirrored["results"])
    for key, a in single["results"].items():
        b = mirrored["results"][key]
        assert b == pytest.approx(a, abs=tol_abs, rel=rtol), (key, a, b)
        if "seed1" in case:   # the tolerance is far below the spread between sample sets
            assert abs(case["seed1"]["results"][key] - a) > 20 * (tol_abs or rtol * abs(a))


@pytest.mark.slow
def test_eq_metrics_two_replicas_match_one_and_training_uses_its_strategy(tmp_path):
    out = _script(tmp_path, "eq")
    # Mirrored G: one batch (4) per replica; 10 samples = 3 batches, the last group padded.
    eqt = out["eqt50k_frac-mirrored-b4"]
    _check_case(eqt, tol_abs=EQ_TOL_DB)
    assert [c[1] for c in eqt["calls"] if c[0] == "synthesis"] == [8, 8, 4, 4]
    # Plain G: each batch of 3 split 2 + 1 over the replicas (4 batches).
    eqr = out["eqr50k-plain-b3"]
    _check_case(eqr, tol_abs=EQ_TOL_DB)
    assert [c[1] for c in eqr["calls"] if c[0] == "mapping"] == [3, 3, 3, 3]
    # TickCallback evaluates snapshots under the training strategy.
    tr = out["training"]
    assert tr["record"]["num_gpus"] == 2 and tr["calls"] > 0
    assert tr["record"]["snapshot_pkl"] == "network-snapshot-000001.keras"
    assert tr["record"]["results"]["eqt50k_int"] == pytest.approx(
        tr["single"]["results"]["eqt50k_int"], abs=EQ_TOL_DB)


@pytest.mark.slow
def test_feature_metrics_two_replicas_match_one(tmp_path):
    out = _script(tmp_path, "features")
    for tag in ("fid50k_full-mirrored-b4", "kid50k_full-plain-b4", "is50k-mirrored-b4"):
        _check_case(out[tag], rtol=FEATURE_RTOL)
    calls = out["fid50k_full-mirrored-b4"]["calls"]
    # 20 real images on the detector; 12 generated (3 chunks of 4: a full replica group and
    # a padded one) for 10 samples; both through the replicas.
    assert [c[:2] for c in calls] == [["('detect', 'features')", 20], ["generate", 8],
                                      ["generate", 4], ["('detect', 'features')", 12]]
    assert ["('detect', 'probabilities')", 24, 24] in out["is50k-mirrored-b4"]["calls"]


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    script = ("import keras, sys; from sg3keras.models import Generator; "
              "keras.utils.set_random_seed(0); "
              "Generator.from_preset('stylegan3-t', img_resolution=16, channel_base=256, "
              "channel_max=16, z_dim=16, w_dim=16, impl='ref').save(sys.argv[1])")
    path = tmp_path_factory.mktemp("net") / "G.keras"
    _run([sys.executable, "-c", script, str(path)])
    return path


@pytest.mark.slow
def test_cli_gpus_two_records_replicas_and_matches_one(network):
    def metrics(gpus):
        r = _run(CLI + ["metrics", "--network", str(network), "--metrics", "eqt50k_int",
                        "--num-samples", "6", "--gpus", str(gpus), "--cpu-replicas"])
        (line,) = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        return line

    one, two = metrics(1), metrics(2)
    assert one["num_gpus"] == 1 and two["num_gpus"] == 2 and two["num_samples"] == 6
    assert two["results"]["eqt50k_int"] == pytest.approx(one["results"]["eqt50k_int"],
                                                         abs=EQ_TOL_DB)
    lines = (network.parent / "metric-eqt50k_int.jsonl").read_text().splitlines()
    assert [json.loads(x)["num_gpus"] for x in lines[-2:]] == [1, 2]


def test_more_gpus_than_visible_is_one_clear_error(monkeypatch):
    tf = pytest.importorskip("tensorflow")
    from sg3keras.metrics.distributed import make_eval_strategy

    real = tf.config.list_physical_devices
    fake_gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [fake_gpu] if kind == "GPU" else real(kind))
    with pytest.raises(ValueError, match=r"--gpus=3 but only 1 GPU"):
        make_eval_strategy(3)


def test_gpus_after_tensorflow_started_is_a_clear_error():
    tf = pytest.importorskip("tensorflow")
    from sg3keras.metrics.distributed import make_eval_strategy

    cpus = tf.config.list_logical_devices("CPU")    # initialises the runtime
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("checks the CPU fallback; this machine has GPUs")
    with pytest.raises(ValueError, match=rf"--gpus={len(cpus) + 1}: cannot create"):
        make_eval_strategy(len(cpus) + 1, cpu_replicas=True)
