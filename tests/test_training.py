"""Training: the fit-based GAN step, checkpoints and exact resume, divergence, CLI, TensorBoard.

Distribution (mirrored / multi-worker) lives in test_distributed.py. Everything uses a 16-px
StyleGAN3-T with reference ops (fast to compile) and a 24-image synthetic data set.
"""

import glob
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from helpers import CLI, ROOT, run_cli_process
from train_fixtures import tiny_gan_config, tiny_options, write_tiny_dataset

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny16.zip", n=24)


def _batches(n_steps, batch, seed=0):
    import tensorflow as tf
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, size=(n_steps * batch, 16, 16, 3)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, np.zeros((len(x), 0), np.float32))).batch(batch)


def _build(**kw):
    import tensorflow as tf

    from sg3keras.training.loop import build_gan
    return build_gan(tiny_gan_config(batch=4, mbstd_group=2, **kw), None, tf.distribute.get_strategy(),
                     seed=1, impl="ref")


@pytest.mark.slow
def test_fit_runs_every_phase_and_updates_state():
    gan = _build()
    G0 = [np.array(v) for v in gan.G.trainable_variables]
    w_avg0 = np.array(gan.G.mapping.w_avg)
    gan.fit(_batches(2, 4), epochs=1, steps_per_epoch=2, verbose=0)
    assert int(gan.step.numpy()) == 2 and int(gan.cur_nimg.numpy()) == 8
    assert int(gan.g_optimizer.iterations.numpy()) == 2
    # Step 0 is a lazy-R1 step (interval 16): Dmain + Dreg = 2 D updates, step 1 only Dmain.
    assert int(gan.d_optimizer.iterations.numpy()) == 3
    assert gan.trackers["Loss/r1_penalty"].count.numpy() > 0
    assert any(not np.allclose(a, np.array(b)) for a, b in zip(G0, gan.G.trainable_variables))
    # w_avg moves in the D phase (update_emas=True), as the official loop does.
    assert not np.allclose(w_avg0, np.array(gan.G.mapping.w_avg))
    # G_ema: buffers are copied, parameters follow G (ramp-up makes beta ~0 at the start).
    for e, g in zip(gan.G_ema.non_trainable_variables, gan.G.non_trainable_variables):
        np.testing.assert_array_equal(np.array(e), np.array(g))
    for e, g in zip(gan.G_ema.trainable_variables, gan.G.trainable_variables):
        np.testing.assert_allclose(np.array(e), np.array(g), atol=1e-4)


def test_lazy_regularisation_optimizer_scaling():
    from sg3keras.config import TrainConfig
    from sg3keras.training.gan import StyleGAN
    g_opt, d_opt = StyleGAN.make_optimizers(TrainConfig(g_reg_interval=4, d_reg_interval=16))
    np.testing.assert_allclose(float(d_opt.learning_rate), 0.002 * 16 / 17, rtol=1e-6)
    np.testing.assert_allclose(float(d_opt.beta_2), 0.99 ** (16 / 17), rtol=1e-9)
    np.testing.assert_allclose(float(g_opt.learning_rate), 0.0025 * 4 / 5, rtol=1e-6)
    assert d_opt.beta_1 == 0.0 and d_opt.epsilon == 1e-8


def test_dynamic_blur_matches_fixed_kernel():
    """The -r D blur with a tensor sigma equals the official variable-size kernel."""
    import tensorflow as tf

    from sg3keras.losses import blur_images
    x = np.random.RandomState(0).randn(2, 16, 16, 3).astype(np.float32)
    for sigma in [0.0, 0.3, 1.7, 4.2]:
        got = blur_images(tf.constant(x), tf.constant(sigma), max_sigma=10.0)
        np.testing.assert_allclose(np.asarray(got), np.asarray(blur_images(x, sigma)), atol=1e-6)


@pytest.mark.slow
def test_stylegan2_path_length_and_style_mixing_step():
    gan = _build(cfg="stylegan2")
    assert gan.loss_config.pl_weight == 2 and gan.loss_config.style_mixing_prob == 0.9
    gan.fit(_batches(1, 4), epochs=1, steps_per_epoch=1, verbose=0)
    assert gan.trackers["Loss/pl_penalty"].count.numpy() > 0
    assert float(gan.pl_mean.numpy()) > 0
    assert int(gan.g_optimizer.iterations.numpy()) == 2     # Gmain + Greg at step 0


def _accum_gan(batch_gpu, cfg="stylegan3-t", magnitude_ema_beta=None, **train):
    import dataclasses

    import tensorflow as tf

    from sg3keras.training.loop import build_gan
    # mbstd group 1: D's minibatch-stddev layer mixes the samples of one forward pass, so with
    # groups > 1 splitting the batch into rounds legitimately changes D (official too).
    c = tiny_gan_config(batch=8, mbstd_group=1, cfg=cfg)
    c["train"] = dataclasses.replace(c["train"], batch_gpu=batch_gpu, **train)
    if magnitude_ema_beta is not None:
        c["generator"] = dataclasses.replace(c["generator"],
                                             magnitude_ema_beta=magnitude_ema_beta)
    return build_gan(c, None, tf.distribute.get_strategy(), seed=1, impl="ref")


def _max_diff(a_vars, b_vars):
    return max(float(np.abs(np.array(a) - np.array(b)).max()) for a, b in zip(a_vars, b_vars))


@pytest.mark.slow
def test_batch_gpu_accumulation_matches_one_pass():
    """Global batch 8 in 2 rounds of 4 == one pass of 8, up to float rounding, after 2 steps
    with every phase (d_reg_interval 1: Dreg runs at both steps, one compiled step function
    per model keeps the test short). Two things are set so that only the accumulation is
    compared:
    * the stylegan3 ``magnitude_ema`` moves once per round (official) and feeds the next G
      forward: beta = 1 freezes it;
    * Adam's first steps are ``g / (|g| + eps)``: with eps = 1e-8 the rounding of a near-zero
      gradient element becomes a visible fraction of lr (measured 1.9e-4 after 2 steps, vs
      2.4e-7 with eps = 1e-3), so a larger eps keeps the check tight."""
    runs = {}
    for bg in (8, 4):
        gan = _accum_gan(bg, magnitude_ema_beta=1.0, eps=1e-3, d_reg_interval=1)
        D0 = [np.array(v) for v in gan.D.trainable_variables]
        gan.fit(_batches(2, 8), epochs=1, steps_per_epoch=2, verbose=0)
        assert int(gan.g_optimizer.iterations.numpy()) == 2           # one step per phase
        assert int(gan.d_optimizer.iterations.numpy()) == 4           # (Dmain + Dreg) x 2
        # Every sample reaches the trackers: 2 steps x 8.
        for name in ["Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty"]:
            assert gan.trackers[name].count.numpy() == 16, name
        runs[bg] = gan
    one, acc = runs[8], runs[4]
    for name in ["G", "D", "G_ema"]:
        a, b = getattr(one, name).trainable_variables, getattr(acc, name).trainable_variables
        diff = _max_diff(a, b)
        print(f"{name}: max |one pass - 2 rounds| = {diff:.3g}")
        assert diff < 5e-6, (name, diff)
    # The steps really moved the weights (the comparison is not of two untouched models).
    assert _max_diff(D0, acc.D.trainable_variables) > 1e-3


@pytest.mark.slow
def test_batch_gpu_stylegan2_path_length_per_round():
    """Greg in rounds of batch_gpu // pl_batch_shrink samples; pl_mean moves once per round."""
    gan = _accum_gan(4, cfg="stylegan2")
    gan.fit(_batches(1, 8), epochs=1, steps_per_epoch=1, verbose=0)
    assert int(gan.g_optimizer.iterations.numpy()) == 2               # Gmain + Greg at step 0
    assert gan.trackers["Loss/pl_penalty"].count.numpy() == 2 * (4 // 2)
    assert gan.trackers["Loss/G/loss"].count.numpy() == 8
    assert 0 < float(gan.pl_mean.numpy()) < np.inf
    assert all(np.all(np.isfinite(np.array(v))) for v in gan.G.trainable_variables)


@pytest.mark.slow
def test_ada_raises_p_and_resume_keeps_it(data, tmp_path):
    """ADA: a tiny model on a small set sees p rise; a resumed run continues with that p."""
    from sg3keras.training.checkpoint import latest_checkpoint
    from sg3keras.training.loop import train
    opts = tiny_options(data=data, outdir=str(tmp_path), aug="ada", ada_kimg=0.05, target=0.0,
                        kimg=0.032, tick=0.016, snap=10)
    run_dir = train(opts, log=lambda s: None)
    meta = json.load(open(os.path.join(run_dir, "checkpoints", "latest.json")))
    assert meta["augment_p"] > 0.0, meta         # sign(D(real)) mean > target 0 => p rises
    gan = _resume_gan(run_dir, data)
    assert abs(float(gan.augment_pipe.p.numpy()) - meta["augment_p"]) < 1e-6
    assert latest_checkpoint(run_dir).endswith(f"ckpt-{meta['step']:08d}.npz")


def _resume_gan(run_dir, data):
    import tensorflow as tf

    from sg3keras.data import ImageDataset
    from sg3keras.training.checkpoint import latest_checkpoint, load_checkpoint
    from sg3keras.training.loop import _options_from_json, build_gan, resolve_options
    opts = _options_from_json(json.load(open(os.path.join(run_dir, "training_options.json"))))
    ds = ImageDataset(data)
    gan = build_gan(resolve_options(opts, ds), ds, tf.distribute.get_strategy(), impl="ref")
    load_checkpoint(latest_checkpoint(run_dir), gan)
    return gan


def _cli_train(outdir, data, kimg, extra=(), resume=None, wait=True):
    args = ["train"]
    if resume:
        args += ["--resume", resume, "--kimg", str(kimg)]
    else:
        args += ["--outdir", str(outdir), "--cfg", "stylegan3-t", "--data", data, "--gpus", "1",
                 "--batch", "4", "--gamma", "1", "--cbase", "256", "--cmax", "16",
                 "--map-depth", "2", "--mbstd-group", "2", "--aug", "noaug", "--kimg", str(kimg),
                 "--tick", "0.008", "--snap", "2", "--no-fused-ops", "--deterministic"]
    args += list(extra)
    if not wait:
        return subprocess.Popen(CLI + args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    r = run_cli_process(*args, env=ENV, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def _final_state(run_dir):
    ckpt = json.load(open(os.path.join(run_dir, "checkpoints", "latest.json")))
    with np.load(os.path.join(run_dir, "checkpoints", ckpt["file"])) as f:
        return ckpt, {k.split("|", 1)[1]: f[k] for k in f.files if k != "__meta__"}


def _assert_same_state(a, b):
    (ma, sa), (mb, sb) = a, b
    assert ma["step"] == mb["step"] and ma["kimg"] == mb["kimg"]
    assert sorted(sa) == sorted(sb)
    diff = {k: float(np.abs(sa[k].astype(np.float64) - sb[k]).max()) for k in sa}
    bad = {k: v for k, v in diff.items() if v != 0}
    assert not bad, f"{len(bad)} arrays differ, e.g. {list(bad.items())[:5]}"


@pytest.mark.slow
def test_exact_resume_and_sigkill(data, tmp_path):
    """N steps in one go == k steps + resume; a SIGKILLed run resumes to the same state."""
    out = _cli_train(tmp_path / "a", data, kimg=0.024)
    assert "tick 3" in out
    run_a = glob.glob(str(tmp_path / "a" / "00000-*"))[0]
    assert os.path.basename(run_a) == "00000-stylegan3-t-tiny16-gpus1-batch4-gamma1"
    state_a = _final_state(run_a)
    assert state_a[0]["step"] == 6

    _cli_train(tmp_path / "c", data, kimg=0.008)                  # 1 tick, then resume to 3
    run_c = glob.glob(str(tmp_path / "c" / "00000-*"))[0]
    out = _cli_train(None, data, kimg=0.024, resume=run_c)
    assert "Resuming" in out and "from step 2" in out
    _assert_same_state(state_a, _final_state(run_c))

    proc = _cli_train(tmp_path / "b", data, kimg=0.024, wait=False)
    deadline = time.time() + 500
    latest = None
    while time.time() < deadline and proc.poll() is None:
        latest = glob.glob(str(tmp_path / "b" / "*" / "checkpoints" / "latest.json"))
        if latest:
            break
        time.sleep(0.05)
    assert latest and proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run_b = os.path.dirname(os.path.dirname(latest[0]))
    assert json.load(open(latest[0]))["step"] < 6
    _cli_train(None, data, kimg=0.024, resume=run_b)
    _assert_same_state(state_a, _final_state(run_b))
    # log.txt and stats.jsonl after the SIGKILL and the resume: each tick exactly once.
    from test_runfiles import _check_run_files
    for run in (run_a, run_b, run_c):
        _check_run_files(run, 3)
    assert "---- resumed at kimg" in open(os.path.join(run_b, "log.txt")).read()
    # Snapshots, grids and TensorBoard logs under the official names.
    assert glob.glob(os.path.join(run_a, "network-snapshot-*.keras"))
    assert os.path.exists(os.path.join(run_a, "fakes_init.png"))
    assert os.path.exists(os.path.join(run_a, "reals.png"))
    tags = _tensorboard_tags(os.path.join(run_a, "logs"))
    for tag in ["Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Progress/kimg",
                "Progress/augment", "Timing/sec_per_kimg", "fakes"]:
        assert tag in tags, (tag, sorted(tags))


def _tensorboard_tags(logdir):
    import tensorflow as tf
    tags = set()
    for f in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for e in tf.compat.v1.train.summary_iterator(f):
            for v in e.summary.value:
                tags.add(v.tag)
    return tags


@pytest.mark.slow
def test_snapshot_loads_and_generates(data, tmp_path):
    """A snapshot written by training is a .keras G_ema that `sg3keras generate` can use."""
    from sg3keras.training.loop import train
    run_dir = train(tiny_options(data=data, outdir=str(tmp_path), kimg=0.004, tick=0.004),
                    log=lambda s: None)
    r = run_cli_process("generate", "--network", run_dir, "--seeds", "0-2", "--outdir",
                        tmp_path / "gen", env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    from PIL import Image
    for s in range(3):
        assert Image.open(tmp_path / "gen" / f"seed{s:04d}.png").size == (16, 16)


@pytest.mark.slow
def test_divergence_stops_and_keeps_last_good_checkpoint(data, tmp_path):
    """Through the CLI: a NaN/Inf loss ends the run with one clear line (no traceback), and
    whatever checkpoint was saved is finite."""
    r = run_cli_process("train", "--outdir", tmp_path, "--cfg", "stylegan3-t", "--data", data,
                        "--gpus", "1", "--batch", "4", "--gamma", "1", "--cbase", "256",
                        "--cmax", "16", "--map-depth", "2", "--mbstd-group", "2", "--aug",
                        "noaug", "--kimg", "0.016", "--tick", "0.004", "--glr", "1e38", "--dlr",
                        "1e38", "--no-fused-ops", env=ENV, timeout=600)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "NaN/Inf" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    run_dir = glob.glob(str(tmp_path / "00000-*"))[0]
    latest = os.path.join(run_dir, "checkpoints", "latest.json")
    # log.txt ends with the error that ended the run.
    last = open(os.path.join(run_dir, "log.txt")).read().splitlines()[-1]
    assert last.startswith("Error: TrainingDivergedError: ") and "NaN/Inf" in last, last
    if os.path.exists(latest):    # Whatever was saved is finite.
        _, state = _final_state(run_dir)
        assert all(np.all(np.isfinite(v)) for v in state.values() if v.dtype.kind == "f")


def test_cli_dry_run_prints_resolved_config(data):
    r = run_cli_process("train", "--outdir", "/nonexistent/never-created", "--cfg",
                        "stylegan3-r", "--data", data, "--gpus", "1", "--batch", "32",
                        "--gamma", "8.2", "--dry-run", env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads(r.stdout)
    g = cfg["generator"]
    assert (g["channel_base"], g["channel_max"], g["conv_kernel"]) == (65536, 1024, 1)
    assert g["use_radial_filters"] and g["img_resolution"] == 16
    assert cfg["discriminator"]["channel_base"] == 32768
    assert cfg["loss"]["r1_gamma"] == 8.2 and cfg["loss"]["blur_init_sigma"] == 10
    assert cfg["loss"]["blur_fade_kimg"] == 200
    assert not os.path.exists("/nonexistent/never-created")


@pytest.mark.slow
def test_cli_batch_gpu_dry_run_and_errors(data):
    base = ["train", "--outdir", "/nonexistent/never-created", "--cfg", "stylegan3-t",
            "--data", data, "--gpus", "1", "--batch", "8", "--gamma", "1", "--dry-run"]
    r = run_cli_process(*base, "--batch-gpu", "4", env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads(r.stdout)
    assert cfg["train"]["batch_gpu"] == 4 and cfg["options"]["batch_gpu"] == 4
    r = run_cli_process(*base, env=ENV)
    assert r.returncode == 0 and json.loads(r.stdout)["train"]["batch_gpu"] == 8  # batch/gpus
    r = run_cli_process(*base, "--batch-gpu", "3", env=ENV)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--batch-gpu=3" in r.stderr and "--batch=8" in r.stderr, r.stderr[-2000:]


@pytest.mark.slow
def test_cli_train_errors(data, tmp_path):
    r = run_cli_process("train", "--outdir", tmp_path, "--cfg", "stylegan3-t", env=ENV,
                        timeout=120)
    assert r.returncode != 0 and "--data" in r.stderr and "--batch" in r.stderr
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    r = run_cli_process("train", "--outdir", tmp_path, "--cfg", "stylegan3-t", "--data", bad,
                        "--gpus", "1", "--batch", "4", "--gamma", "1", env=ENV, timeout=120)
    assert r.returncode != 0 and "bad.zip" in r.stderr
