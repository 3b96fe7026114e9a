"""Fine-tuning (``train --resume <network>``) and a ``--resume RUN_DIR`` that never surprises,
through the CLI."""

import dataclasses
import functools
import glob
import http.server
import json
import os
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from helpers import run_cli, run_cli_process
from train_fixtures import write_tiny_dataset

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PKL = os.path.join(HERE, "reference", "pickle", "network-snapshot-tiny.pkl")  # official, 16 px
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
FT = ["--gpus", "1", "--batch", "4", "--gamma", "1", "--mbstd-group", "2", "--aug", "noaug",
      "--tick", "0.004", "--snap", "1", "--no-fused-ops"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("ftdata")
    return dict(tiny16=write_tiny_dataset(d / "tiny16.zip", n=16),
                tiny32=write_tiny_dataset(d / "tiny32.zip", n=8, resolution=32),
                labels16=write_tiny_dataset(d / "labels16.zip", n=8, labels=True))


def _cli(args, cwd=ROOT):
    return run_cli_process(*args, env=ENV, cwd=cwd, timeout=600)


def _dry(args):
    result = run_cli("train", "--dry-run", *args)
    return result.exit_code, result.output


def _state(run_dir):
    latest = json.load(open(os.path.join(run_dir, "checkpoints", "latest.json")))
    with np.load(os.path.join(run_dir, "checkpoints", latest["file"])) as f:
        return latest, {k.split("|", 1)[1]: f[k] for k in f.files if k != "__meta__"}


def _tiles(png, n, res):
    img = np.asarray(Image.open(png))
    g = int(np.ceil(np.sqrt(n)))
    return np.stack([img[y * res:(y + 1) * res, x * res:(x + 1) * res]
                     for y in range(g) for x in range(g)][:n])


def _d_by_path(state, D):
    """Checkpoint arrays of D (keyed ``D/<index>/<name>``) by variable path, through the order of
    ``D``'s variables (the same architecture)."""
    out = {}
    for i, v in enumerate(D.variables):
        out[v.path.split("/", 1)[1]] = state[f"D/{i:04d}/{v.name}"]
    return out


# ------------------------------------------------------------------------------------------
# Refused before anything trains (dry run: in-process)

@pytest.mark.parametrize("extra, match", [
    (["--cfg", "stylegan3-r"], r"--cfg=stylegan3-r contradicts --resume .*which is "
                               r"--cfg=stylegan3-t"),
    (["--cbase", "512"], r"--cbase=512 contradicts .* which is --cbase=256"),
    (["--map-depth", "8"], r"--map-depth=8 contradicts .* which is --map-depth=2"),
    (["--cond", "1"], r"--cond=True, but --resume .* is unconditional"),
    (["--metrics", "fid50k_fulll"], r"--metrics: unknown or unsupported metric\(s\) "
                                    r"\['fid50k_fulll'\]"),
])
def test_fine_tune_refuses_contradicting_flags(data, tmp_path, extra, match):
    import re
    src = data["labels16"] if "--cond" in extra else data["tiny16"]
    code, out = _dry(["--outdir", str(tmp_path), "--data", src, "--resume", PKL] + FT + extra)
    assert code == 1 and re.search(match, out), out
    assert out.count("\n") == 1 and "Traceback" not in out
    assert not os.listdir(tmp_path)


def test_fine_tune_refuses_a_dataset_that_does_not_fit(data, tmp_path):
    code, out = _dry(["--outdir", str(tmp_path), "--data", data["tiny32"], "--resume", PKL] + FT)
    assert code == 1 and "32x32 images, but --resume" in out and "makes 16x16" in out, out


def test_fine_tune_dry_run_takes_the_architecture_from_the_network(data, tmp_path):
    code, out = _dry(["--outdir", str(tmp_path), "--data", data["tiny16"], "--resume", PKL,
                      "--freezed", "3"] + FT)
    assert code == 0, out
    d = json.loads(out)
    assert d["resume"] == "fine-tune" and d["options"]["cfg"] == "stylegan3-t"
    g, disc = d["generator"], d["discriminator"]
    # The official snapshot's G: z/w 32, channel_base 256 / max 16 (not the preset's 32768 / 512).
    assert (g["z_dim"], g["w_dim"], g["channel_base"], g["channel_max"]) == (32, 32, 256, 16)
    assert (disc["channel_base"], disc["freeze_layers"], disc["mbstd_group_size"]) == (256, 3, 2)
    # train.py --resume: ADA speed 100 kimg, no EMA ramp-up, no blur.
    assert d["train"]["ada_kimg"] == 100 and d["train"]["ema_rampup"] is None
    assert d["loss"]["blur_init_sigma"] == 0


def test_metrics_none_and_cpu_replicas(data, tmp_path):
    base = ["--outdir", str(tmp_path), "--cfg", "stylegan3-t", "--data", data["tiny16"],
            "--gpus", "1", "--batch", "4", "--gamma", "1"]
    code, out = _dry(base + ["--metrics", "none"])
    assert code == 0 and json.loads(out)["options"]["metrics"] == [], out
    code, out = _dry(base + ["--metrics", "fid50k_full,eqt50k_int"])
    assert code == 0 and json.loads(out)["options"]["metrics"] == ["fid50k_full", "eqt50k_int"]


def test_gpus_beyond_visible_is_an_error_naming_cpu_replicas(monkeypatch):
    import tensorflow as tf

    from sg3keras.training.distribute import make_strategy
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [] if kind == "GPU" else ["cpu"])
    with pytest.raises(ValueError, match=r"--gpus=8 but TensorFlow sees no GPU; .* add "
                                         r"--cpu-replicas"):
        make_strategy(8)


# ------------------------------------------------------------------------------------------
# Fine-tuning runs

@pytest.mark.slow
def test_fine_tune_from_official_pickle(data, tmp_path):
    """G_ema images at the start are the pickle's; with --glr 0 the snapshots' G_ema is exactly the
    pickle's G_ema moved by the EMA steps towards G; frozen D layers stay bit-identical."""
    from sg3keras.networks.loading import load_networks
    from sg3keras.utils import to_uint8

    out = tmp_path / "runs"
    r = _cli(["train", "--outdir", str(out), "--data", data["tiny16"], "--resume", PKL,
              "--kimg", "0.008", "--glr", "0", "--freezed", "2", "--desc", "ft", "--nobench",
              "1"] + FT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = glob.glob(str(out / "*"))
    assert [os.path.basename(p) for p in run] == ["00000-stylegan3-t-tiny16-gpus1-batch4-gamma1-ft"]
    run = run[0]
    assert "Fine-tuning" in r.stdout

    nets = load_networks(PKL, ("G", "D", "G_ema"))
    G0, D0, E0 = nets["G"], nets["D"], nets["G_ema"]
    # fakes_init: the pickle's G_ema on the run's fixed grid latents (seed 0 + 123, 16 seeds).
    z = np.random.RandomState(0 + 123).randn(16, G0.z_dim).astype(np.float32)
    want = to_uint8(np.asarray(E0(z)))
    got = _tiles(os.path.join(run, "fakes_init.png"), 16, 16)
    assert np.abs(got.astype(int) - want).max() <= 1

    # Snapshot G_ema = G + beta^k (G_ema0 - G) for the official EMA (batch 4: ema_kimg 1.25,
    # no ramp-up on resume), G unchanged (lr 0).
    beta = 0.5 ** (4 / (4 * 10 / 32 * 1000))
    from sg3keras.models import Generator  # noqa: F401  (registers classes for load_model)
    import keras
    for k, tag in ((1, "000000.004"), (2, "000000.008")):
        snap = keras.saving.load_model(os.path.join(run, f"network-snapshot-{tag}.keras"))
        e0 = {v.path.split("/", 1)[1]: v.numpy() for v in E0.trainable_variables}
        g0 = {v.path.split("/", 1)[1]: v.numpy() for v in G0.trainable_variables}
        for v in snap.trainable_variables:
            name = v.path.split("/", 1)[1]
            expect = g0[name] + beta ** k * (e0[name] - g0[name])
            np.testing.assert_allclose(v.numpy(), expect, rtol=1e-5, atol=1e-7, err_msg=name)

    meta, state = _state(run)
    assert meta["step"] == 2
    d0 = {v.path.split("/", 1)[1]: v.numpy() for v in D0.variables}
    state = _d_by_path(state, D0)
    frozen = [k for k in d0 if k.startswith(("b16/fromrgb/", "b16/conv0/"))
              and k.endswith(("weight", "bias"))]
    trained = [k for k in d0 if k.startswith(("b16/conv1/", "b8/conv0/"))
               and k.endswith("weight")]
    assert len(frozen) == 4 and len(trained) == 2
    for k in frozen:
        np.testing.assert_array_equal(state[k], d0[k], err_msg=k)
    for k in trained:
        assert np.abs(state[k] - d0[k]).max() > 0, k

    # --resume RUN_DIR without --kimg: the run is finished; says so, exit 0, nothing written.
    before = sorted(os.listdir(run))
    r = _cli(["train", "--resume", run])
    assert r.returncode == 0 and "is finished: step 2 of 2" in r.stdout, r.stdout + r.stderr
    assert sorted(os.listdir(run)) == before

    # From another working directory, with the dataset moved: continued, a third tick.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = shutil.copy(data["tiny16"], elsewhere / "moved.zip")
    r = _cli(["train", "--resume", run, "--data", "moved.zip", "--kimg", "0.012"], cwd=elsewhere)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Resuming" in r.stdout and "from step 2" in r.stdout
    assert _state(run)[0]["step"] == 3
    opts = json.load(open(os.path.join(run, "training_options.json")))
    assert opts["data"] == str(moved) and opts["kimg"] == 0.012
    # The frozen layers are still the pickle's after the continuation.
    state = _d_by_path(_state(run)[1], D0)
    for k in frozen:
        np.testing.assert_array_equal(state[k], d0[k], err_msg=k)
    # Another dataset is refused.
    r = _cli(["train", "--resume", run, "--data", data["labels16"], "--kimg", "0.016"])
    assert r.returncode == 1 and "is not the dataset of run" in r.stderr, r.stderr


@pytest.mark.slow
def test_fine_tune_from_keras_over_http(data, tmp_path):
    """A .keras generator served over 127.0.0.1: G and G_ema start from it, D is fresh."""
    from sg3keras.networks.loading import load_network
    from sg3keras.utils import save_keras_atomic, to_uint8

    served = tmp_path / "served"
    served.mkdir()
    save_keras_atomic(load_network(PKL), served / "g.keras")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/g.keras"
        env = dict(ENV, SG3KERAS_CACHE=str(tmp_path / "cache"))
        r = run_cli_process("train", "--outdir", tmp_path / "runs", "--data", data["tiny16"],
                            "--resume", url, "--kimg", "0.004", *FT, env=env, timeout=600)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "D is freshly initialised" in r.stdout
    # The cache keys by the whole URL: <cache>/networks/<16 hex digits>/g.keras.
    assert [os.path.basename(p) for p in glob.glob(str(tmp_path / "cache" / "networks" / "*" /
                                                       "*"))] == ["g.keras"]
    run = glob.glob(str(tmp_path / "runs" / "*"))[0]
    G = load_network(str(served / "g.keras"))
    z = np.random.RandomState(123).randn(16, G.z_dim).astype(np.float32)
    got = _tiles(os.path.join(run, "fakes_init.png"), 16, 16)
    assert np.abs(got.astype(int) - to_uint8(np.asarray(G(z)))).max() <= 1


# ------------------------------------------------------------------------------------------
# What a fine-tuned run records, and --resume RUN_DIR with the command line typed again

def test_fine_tune_records_the_networks_architecture_and_source(data, tmp_path, monkeypatch):
    """Not the defaults of the flags left out (cbase 32768, cmax 512) but the pickle's 256 / 16,
    and where it came from (an absolute path)."""
    monkeypatch.chdir(os.path.dirname(PKL))
    code, out = _dry(["--outdir", str(tmp_path), "--data", data["tiny16"], "--resume",
                      os.path.basename(PKL)] + FT)
    assert code == 0, out
    o = json.loads(out)["options"]
    assert (o["cfg"], o["cbase"], o["cmax"], o["map_depth"], o["resume"]) == (
        "stylegan3-t", 256, 16, 2, PKL)


def test_continuing_a_fine_tuned_run_keeps_its_source(tmp_path):
    from sg3keras.training.loop import TrainOptions, _write_options
    run = tmp_path / "00000-ft"
    run.mkdir()
    opts = TrainOptions(outdir=str(tmp_path), data="d.zip", cfg="stylegan3-t", gpus=1, batch=4,
                        gamma=1.0, cbase=256, cmax=16, resume=PKL)
    _write_options(str(run), opts)
    _write_options(str(run), dataclasses.replace(opts, resume=str(run), kimg=2.0))
    stored = json.load(open(run / "training_options.json"))
    assert stored["resume"] == PKL and stored["kimg"] == 2.0


def test_explicit_cond_0_on_a_conditional_network_is_refused(data, tmp_path):
    from sg3keras.models import Generator
    net = tmp_path / "G16c.keras"
    Generator.from_preset("stylegan3-t", img_resolution=16, c_dim=3, channel_base=256,
                          channel_max=16, z_dim=16, w_dim=16, impl="ref").save(net)
    out = tmp_path / "runs"
    code, text = _dry(["--outdir", str(out), "--data", data["labels16"], "--resume", str(net),
                       "--cond", "0"] + FT)
    assert code == 1 and text.count("\n") == 1, text
    assert "--cond=False, but --resume" in text and "is conditional (3 classes)" in text, text
    assert not out.exists()


def test_resume_run_dir_with_the_same_command_line_again(data, tmp_path, monkeypatch):
    """`--outdir runs` (relative) against the stored absolute path, `--gamma 1` against 1.0, the
    dataset by another relative path: the same run, continued; a real change is refused."""
    from sg3keras.training.loop import TrainOptions, _write_options
    monkeypatch.chdir(tmp_path)
    shutil.copy(data["tiny16"], "tiny16.zip")
    run = tmp_path / "runs" / "00000-stylegan3-t-tiny16-gpus1-batch4-gamma1"
    run.mkdir(parents=True)
    _write_options(str(run), TrainOptions(outdir="runs", data="tiny16.zip", cfg="stylegan3-t",
                                          gpus=1, batch=4, gamma=1.0, mirror=True, kimg=1.0))
    typed = ["--outdir", "runs", "--cfg", "stylegan3-t", "--data", "./tiny16.zip", "--gpus", "1",
             "--batch", "4", "--gamma", "1", "--mirror", "1", "--batch-gpu", "4",
             "--resume", os.path.relpath(run)]
    code, out = _dry(typed)
    assert code == 0, out
    d = json.loads(out)
    assert d["resume"] == "continue" and d["options"]["outdir"] == str(tmp_path / "runs")
    code, out = _dry(typed + ["--gamma", "2", "--outdir", "elsewhere"])
    assert code == 1 and "--gamma=2.0 (the run's: 1.0)" in out, out
    assert "--outdir=elsewhere (the run's: " in out and "--cfg" not in out, out


def test_train_help_says_when_each_flag_is_required():
    r = run_cli("train", "--help")
    text = " ".join(r.output.split())
    assert "[required]" not in text
    for flag in ("--outdir", "--data", "--gpus", "--batch", "--gamma"):
        assert f"{flag} " in text
    assert text.count("[required unless --resume RUN_DIR]") == 5, text
    assert "[required unless --resume: a run directory or a network has its own]" in text
