"""Training parity: recorded iterations of the official training loop, replayed through the
trainer's own step (``sg3keras.training.replay``), and ``TorchAdam`` against ``torch.optim.Adam``.

Every case folder under ``tests/reference/train/`` (and in an optional extra fixture folder beside
the clone, when one is there: see ``_case_dirs``) is replayed and compared with its ``expected.npz`` using the case's recommended
tolerances. Synthetic cases made here from the network fixtures exercise the parts of the case
format the bundled case does not use (StyleGAN2 noise and path-length draws, a start mid-way
through the -R blur fade and the EMA ramp-up) and the errors for broken cases.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import refdata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _case_dirs():
    """The bundled cases, then any further ones in an optional extra fixture folder beside the
    clone (a machine that has one runs them too; nothing needs it)."""
    found = {}
    for base in (refdata.path("train"), os.path.join(ROOT, "..", "shared", "reference", "train")):
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            d = os.path.join(base, name)
            if os.path.isfile(os.path.join(d, "expected.npz")) and name not in found:
                found[name] = d
    return found


CASES = _case_dirs()


def test_bundled_case_is_present():
    assert "sg3t_32" in CASES, "tests/reference/train/sg3t_32 is missing from the clone"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_replay_matches_official_training_loop(name):
    from sg3keras.training.replay import compare, replay
    out = replay(CASES[name])
    problems, measured = compare(out, CASES[name])
    assert not problems, "\n".join(problems[:30]) + f"\nmeasured: {measured}"
    # The bug threshold of the case: far inside it.
    assert max(measured["first_iter_grad_max_rel_err"].values()) < 1e-4
    assert measured["loss_mean_max_abs_diff_iteration0"] < 1e-6


@pytest.mark.slow
def test_replay_cli_with_reference_ops(tmp_path):
    """The documented entry point, with the reference filtered_lrelu, exits 0 under --compare."""
    out = tmp_path / "out.npz"
    r = subprocess.run([sys.executable, "-m", "sg3keras.training.replay", CASES["sg3t_32"],
                        "--out", str(out), "--impl", "ref", "--compare"],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    measured = json.loads(r.stdout)
    assert measured["final_G"]["frac_within_1e-4"] >= 0.99
    with np.load(out) as z:
        keys = set(z.files)
    assert "first_iter/Dreg/adam/b4.out.bias/step" in keys
    assert not [p for p in os.listdir(tmp_path) if p != "out.npz"], "temp files left behind"


# ---------------------------------------------------------------------------------------------
# Synthetic cases in the recorded format.

def _networks(g_fixture, d_fixture):
    """Configs of two network fixtures and an ``init.npz`` dict (G_ema starts equal to G)."""
    g_cfg, d_cfg = refdata.load_json(g_fixture, "config"), refdata.load_json(d_fixture, "config")
    g_state, d_state = refdata.load_npz(g_fixture, "params"), refdata.load_npz(d_fixture, "params")
    init = {f"{net}/{k}": v for net in ("G", "G_ema") for k, v in g_state.items()}
    init.update({f"D/{k}": v for k, v in d_state.items()})
    return g_cfg, d_cfg, init


def _write_case(d, config, init, inputs):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
    np.savez(os.path.join(d, "init.npz"), **init)
    np.savez(os.path.join(d, "inputs.npz"), **inputs)
    return str(d)


def _sg2_case(d, iterations=1, seed=0):
    """StyleGAN2 with path length: Gmain, Greg, Dmain, Dreg with recorded noise draws."""
    g_cfg, d_cfg, init = _networks("g_sg2_32", "d_sg2_32")
    batch, z_dim = 4, g_cfg["constructor_kwargs"]["z_dim"]
    phases = [("Gmain", 1, 1.0), ("Greg", 4, 0.8), ("Dmain", 1, 16 / 17), ("Dreg", 16, 16 / 17)]
    rng = np.random.RandomState(seed)
    layers = [("b4.conv1", 4)] + [(f"b{r}.conv{k}", r) for r in (8, 16, 32) for k in (0, 1)]
    inputs, iters = {}, []
    for i in range(iterations):
        inputs[f"it{i}/real_img"] = np.tanh(rng.randn(batch, 3, 32, 32)).astype(np.float32)
        inputs[f"it{i}/real_c"] = np.zeros([batch, 0], np.float32)
        inputs[f"it{i}/gen_z"] = rng.randn(len(phases), batch, z_dim).astype(np.float32)
        inputs[f"it{i}/gen_c"] = np.zeros([len(phases), batch, 0], np.float32)
        draws = {}
        for phase, interval, _ in phases:
            if phase == "Dreg" or i % interval:
                continue
            n = batch // 2 if phase == "Greg" else batch
            names = [f"synthesis_noise:{name}" for name, _ in layers]
            for k, (name, r) in enumerate(layers):
                inputs[f"it{i}/{phase}/rand{k:02d}"] = rng.randn(n, 1, r, r).astype(np.float32)
            if phase == "Greg":
                names.append("pl_noise")
                inputs[f"it{i}/{phase}/rand{len(layers):02d}"] = \
                    rng.randn(n, 3, 32, 32).astype(np.float32)
            draws[phase] = names
        iters.append(dict(it=i, random_draws=draws))
    config = dict(
        G_kwargs=dict(class_name=g_cfg["class_name"], **g_cfg["constructor_kwargs"]),
        D_kwargs=dict(class_name=d_cfg["class_name"], **d_cfg["constructor_kwargs"]),
        loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=1.0,
                         pl_weight=2.0, pl_no_weight_grad=True),
        augment_pipe=None, batch_size=batch, batch_gpu=batch, num_gpus=1,
        G_opt_kwargs_train_py=dict(class_name="torch.optim.Adam", lr=0.002, betas=[0, 0.99],
                                   eps=1e-8),
        D_opt_kwargs_train_py=dict(class_name="torch.optim.Adam", lr=0.002, betas=[0, 0.99],
                                   eps=1e-8),
        G_reg_interval=4, D_reg_interval=16, ema=dict(ema_kimg=batch * 10 / 32, ema_rampup=0.05),
        phases=[dict(name=n, interval=k) for n, k, _ in phases],
        start=dict(cur_nimg=0, batch_idx=0, iterations=iterations), iterations=iters)
    return _write_case(d, config, init, inputs)


@pytest.fixture(scope="module")
def sg2_case(tmp_path_factory):
    return _sg2_case(tmp_path_factory.mktemp("sg2") / "case")


@pytest.fixture(scope="module")
def sg2_replayed(sg2_case):
    from sg3keras.training.replay import replay
    return replay(sg2_case)


@pytest.mark.slow
def test_stylegan2_case_runs_every_phase_with_recorded_draws(sg2_case, sg2_replayed):
    out = sg2_replayed
    assert list(out["schedule/it0/phases"]) == ["Gmain", "Greg", "Dmain", "Dreg"]
    for key in ["stats/it0/Greg/Loss/pl_penalty", "stats/it0/Greg/Loss/G/reg"]:
        assert out[key].shape == (2,), key       # batch // pl_batch_shrink samples
    np.testing.assert_allclose(out["stats/it0/Greg/Loss/G/reg"],
                               2.0 * out["stats/it0/Greg/Loss/pl_penalty"], rtol=1e-6)
    # Lazy regularisation of G: lr * 4/5, beta2 ** (4/5).
    assert float(out["hparams/Greg/lr"]) == pytest.approx(0.002 * 4 / 5, rel=1e-12)
    assert float(out["hparams/Greg/beta2"]) == pytest.approx(0.99 ** 0.8, rel=1e-12)
    # G stepped twice (Gmain, Greg) in iteration 0: every G parameter with a gradient in both.
    steps = {k: float(v) for k, v in out.items()
             if k.startswith("first_iter/Greg/adam/") and k.endswith("/step")}
    assert steps and max(steps.values()) == 2.0
    # The recorded noise is what the layers used: another draw for one layer changes the loss.
    from sg3keras.training.replay import replay
    inputs = dict(np.load(os.path.join(sg2_case, "inputs.npz")))
    inputs["it0/Gmain/rand06"] = inputs["it0/Gmain/rand06"] * -1.0
    other = os.path.join(os.path.dirname(sg2_case), "case_other_noise")
    shutil.copytree(sg2_case, other)
    np.savez(os.path.join(other, "inputs.npz"), **inputs)
    out2 = replay(other)
    assert not np.allclose(out2["stats/it0/Gmain/Loss/G/loss"], out["stats/it0/Gmain/Loss/G/loss"])
    np.testing.assert_array_equal(out2["stats/it0/Dmain/Loss/scores/real"],
                                  out["stats/it0/Dmain/Loss/scores/real"])


@pytest.mark.slow
def test_stylegan2_case_is_deterministic(sg2_case, sg2_replayed):
    from sg3keras.training.replay import replay
    again = replay(sg2_case)
    for key in ("final/G/synthesis.b8.conv0.weight", "final/D/b4.out.weight",
                "stats/it0/Greg/Loss/pl_penalty"):
        np.testing.assert_array_equal(again[key], sg2_replayed[key])


def _sg3r_case(d, cur_nimg, iterations=2):
    """-R (blur on) starting mid-fade with the EMA ramp-up active: the schedules move."""
    g_cfg, d_cfg, init = _networks("g_sg3r_32", "d_sg2_32")
    batch, z_dim = 4, g_cfg["constructor_kwargs"]["z_dim"]
    rng = np.random.RandomState(1)
    inputs = {}
    for i in range(iterations):
        inputs[f"it{i}/real_img"] = np.tanh(rng.randn(batch, 3, 32, 32)).astype(np.float32)
        inputs[f"it{i}/real_c"] = np.zeros([batch, 0], np.float32)
        inputs[f"it{i}/gen_z"] = rng.randn(3, batch, z_dim).astype(np.float32)
        inputs[f"it{i}/gen_c"] = np.zeros([3, batch, 0], np.float32)
    config = dict(
        G_kwargs=dict(class_name=g_cfg["class_name"], **g_cfg["constructor_kwargs"]),
        D_kwargs=dict(class_name=d_cfg["class_name"], **d_cfg["constructor_kwargs"]),
        loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=0.5,
                         blur_init_sigma=10, blur_fade_kimg=batch * 200 / 32),
        augment_pipe=None, batch_size=batch, batch_gpu=batch, num_gpus=1,
        G_opt_kwargs_train_py=dict(lr=0.0025, betas=[0, 0.99], eps=1e-8),
        D_opt_kwargs_train_py=dict(lr=0.002, betas=[0, 0.99], eps=1e-8),
        G_reg_interval=None, D_reg_interval=16, ema=dict(ema_kimg=batch * 10 / 32,
                                                         ema_rampup=0.05),
        phases=[dict(name="Gboth", interval=1), dict(name="Dmain", interval=1),
                dict(name="Dreg", interval=16)],
        start=dict(cur_nimg=cur_nimg, batch_idx=cur_nimg // batch, iterations=iterations))
    return _write_case(d, config, init, inputs)


@pytest.mark.slow
def test_stylegan3r_case_mid_fade_schedules(tmp_path):
    """blur_sigma and ema_beta follow the official formulas (computed here in float64) from a
    start in the middle of the fade; Dreg runs exactly when batch_idx % 16 == 0."""
    from sg3keras.training.replay import replay
    start = 4 * 16 * 47          # batch_idx 752 = 47 * 16: Dreg at the first iteration only.
    out = replay(_sg3r_case(tmp_path / "r", start))
    for i in range(2):
        nimg = start + 4 * i
        sigma = max(1 - nimg / (25 * 1e3), 0) * 10
        ema_nimg = min(1.25 * 1000, nimg * 0.05)
        beta = 0.5 ** (4 / max(ema_nimg, 1e-8))
        assert float(out[f"schedule/it{i}/blur_sigma"]) == pytest.approx(sigma, rel=1e-12)
        assert float(out[f"schedule/it{i}/ema_beta"]) == pytest.approx(beta, rel=1e-12)
        assert int(out[f"schedule/it{i}/cur_nimg"]) == nimg + 4
    assert list(out["schedule/it0/phases"]) == ["Gboth", "Dmain", "Dreg"]
    assert list(out["schedule/it1/phases"]) == ["Gboth", "Dmain"]
    assert 0 < float(out["schedule/it1/ema_beta"]) < 1
    # G_ema after iteration 0 is the lerp of G and the old G_ema with that beta.
    beta0 = float(out["schedule/it0/ema_beta"])
    key = next(k for k in out if k.startswith("first_iter/G_ema_after/") and
               k.endswith("affine.weight"))
    name = key.split("/", 2)[2]
    g_after = out[f"first_iter/Gboth/after_step/{name}"]
    g_ema_before = refdata.load_npz("g_sg3r_32", "params")[name]
    np.testing.assert_allclose(out[key], g_after + beta0 * (g_ema_before - g_after),
                               rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Broken cases: one clear error naming the file and key.

def _copy_case(tmp_path):
    dst = tmp_path / "case"
    shutil.copytree(CASES["sg3t_32"], dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def test_missing_and_unreadable_files(tmp_path):
    from sg3keras.training.replay import ReplayCaseError, load_case
    case = _copy_case(tmp_path)
    with pytest.raises(ReplayCaseError, match=r"nope: not a directory"):
        load_case(tmp_path / "nope")
    (case / "inputs.npz").unlink()
    with pytest.raises(ReplayCaseError, match=r"inputs\.npz: missing"):
        load_case(case)
    (case / "config.json").write_text("{not json")
    with pytest.raises(ReplayCaseError, match=r"config\.json: not valid JSON"):
        load_case(case)


def test_unknown_config_and_missing_keys(tmp_path):
    from sg3keras.training.replay import ReplayCaseError, build_trainer, load_case
    case = _copy_case(tmp_path)
    cfg = json.loads((case / "config.json").read_text())
    bad = dict(cfg, loss_kwargs=dict(cfg["loss_kwargs"], warp_factor=9))
    (case / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ReplayCaseError, match=r"config\.json: loss_kwargs has unknown key.*"
                                              r"warp_factor"):
        build_trainer(load_case(case))
    bad = dict(cfg, G_kwargs=dict(cfg["G_kwargs"], class_name="training.networks_foo.G"))
    (case / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ReplayCaseError, match=r"G_kwargs: class_name 'training.networks_foo.G'"):
        build_trainer(load_case(case))
    bad = {k: v for k, v in cfg.items() if k != "D_reg_interval"}
    (case / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ReplayCaseError, match=r"config\.json: missing key 'D_reg_interval'"):
        build_trainer(load_case(case))


def test_wrong_shapes_name_the_key(tmp_path):
    from sg3keras.training.replay import ReplayCaseError, replay
    case = _copy_case(tmp_path)
    inputs = dict(np.load(case / "inputs.npz"))
    inputs["it0/gen_z"] = inputs["it0/gen_z"][:, :, :16]
    np.savez(case / "inputs.npz", **inputs)
    with pytest.raises(ReplayCaseError, match=r"inputs\.npz: it0/gen_z has shape \[3, 4, 16\], "
                                              r"expected \[3 phases, 4, 32\]"):
        replay(case, iterations=1)
    del inputs["it0/gen_z"]
    np.savez(case / "inputs.npz", **inputs)
    with pytest.raises(ReplayCaseError, match=r"inputs\.npz: missing key 'it0/gen_z'"):
        replay(case, iterations=1)


def test_cli_error_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sg3keras.training.replay", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "o.npz")], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines == [f"error: {tmp_path / 'nope'}: not a directory (expected a recorded training "
                     "case with config.json, init.npz and inputs.npz)"], r.stderr
    assert not (tmp_path / "o.npz").exists()


# ---------------------------------------------------------------------------------------------
# The optimizer.

def test_torch_adam_matches_torch_optim_adam():
    """Three parameters, five steps, one parameter without a gradient in some steps (skipped
    by both: no moment decay, no step count); gradients spanning 1e-9 .. 1."""
    torch = pytest.importorskip("torch")
    import keras

    from sg3keras.runtime.optimizers import TorchAdam
    rng = np.random.RandomState(0)
    shapes = [(3, 4), (5,), (2, 2)]
    init = [rng.randn(*s).astype(np.float32) for s in shapes]
    tp = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    topt = torch.optim.Adam(tp, lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
    kv = [keras.Variable(a) for a in init]
    kopt = TorchAdam(learning_rate=0.0025, beta_1=0.0, beta_2=0.99, epsilon=1e-8)
    kopt.build(kv)
    for step in range(5):
        grads = [(rng.randn(*s) * 10.0 ** rng.uniform(-9, 0, size=s)).astype(np.float32)
                 for s in shapes]
        active = [True, step % 2 == 0, True]
        topt.zero_grad(set_to_none=True)
        for p, g, a in zip(tp, grads, active):
            if a:
                p.grad = torch.tensor(g)
        topt.step()
        kopt.apply([g for g, a in zip(grads, active) if a], [v for v, a in zip(kv, active) if a])
        for p, v in zip(tp, kv):
            np.testing.assert_array_max_ulp(np.asarray(v), p.detach().numpy(), maxulp=2)
    for p, v in zip(tp, kv):
        m, s, t = kopt.state_of(v)
        st = topt.state[p]
        assert int(np.asarray(t)) == int(st["step"])
        np.testing.assert_allclose(np.asarray(s), st["exp_avg_sq"].numpy(), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(m), st["exp_avg"].numpy())
    assert int(np.asarray(kopt.state_of(kv[1])[2])) == 3


def test_keras_adam_differs_where_torch_adam_is_needed():
    """The reason TorchAdam exists: a 1e-7 gradient element with beta_1 = 0 at t = 1 moves by
    about lr * 0.9 under PyTorch's eps placement and by about lr * 0.5 under Keras's."""
    import keras

    from sg3keras.runtime.optimizers import TorchAdam
    g = np.array([1e-7], np.float32)
    moved = {}
    for name, opt in [("torch", TorchAdam(learning_rate=1.0, beta_1=0.0, beta_2=0.99)),
                      ("keras", keras.optimizers.Adam(learning_rate=1.0, beta_1=0.0,
                                                      beta_2=0.99, epsilon=1e-8))]:
        v = keras.Variable(np.zeros(1, np.float32))
        opt.build([v])
        opt.apply([g], [v])
        moved[name] = -float(np.asarray(v)[0])
    # torch: 1e-7 / (1e-7 + 1e-8) = 0.909; keras: 1e-8 / (1e-8 + 1e-8) = 0.5.
    assert moved["torch"] == pytest.approx(1e-7 / (1e-7 + 1e-8), rel=1e-4)
    assert moved["keras"] == pytest.approx(0.5, rel=1e-3)
