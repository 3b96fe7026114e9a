"""Replay recorded iterations of the official training loop through the trainer's own step.

``python -m sg3keras.training.replay CASE_DIR --out OUT.npz`` reads a recorded case (the
format of ``tests/reference/train/README.md``: ``config.json``, ``init.npz``, ``inputs.npz``),
builds G, D and G_ema from the official state dicts and constructor kwargs, the loss and the
optimizers from the recorded train.py settings, and runs the recorded iterations with
:meth:`sg3keras.training.gan.StyleGAN.train_iteration` -- the step ``fit`` compiles -- on the
recorded reals, labels, latents and (where a case has them) per-layer noise and path-length
noise. Phases the official loop skipped are skipped by the trainer's own schedule; the replay
checks that the two agree.

The output uses the case's own key names and official (PyTorch) layouts:

* ``first_iter/<phase>/grad/<param>``: the gradient the optimizer saw in iteration 0;
* ``first_iter/<phase>/after_step/<param>``: the parameters right after that step;
* ``first_iter/<phase>/adam/<param>/{exp_avg,exp_avg_sq,step}``: optimizer state after it;
* ``first_iter/G_ema_after/<name>``: G_ema after iteration 0's EMA update;
* ``stats/it<i>/<phase>/<Loss/...>``: per-sample loss statistics;
* ``trace/it<i>/G/<...w_avg|...magnitude_ema>``: G's running statistics after every iteration;
* ``schedule/it<i>/{ema_beta,blur_sigma,cur_nimg}`` (float64) and ``schedule/it<i>/phases``;
* ``hparams/<phase>/{lr,beta1,beta2,eps}``: optimizer settings after lazy-regularisation scaling;
* ``final/{G,D,G_ema}/<name>``: every parameter and buffer after the last iteration.

:func:`compare` checks such an output against the case's ``expected.npz`` with the
tolerances the case recommends; ``tests/test_replay.py`` runs it on every case it finds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from .replay_check import compare

__all__ = ["ReplayCaseError", "load_case", "build_trainer", "replay", "compare", "main"]

# StyleGAN2Loss constructor defaults (official training/loss.py).
_LOSS_DEFAULTS = dict(r1_gamma=10.0, style_mixing_prob=0.0, pl_weight=0.0, pl_batch_shrink=2,
                      pl_decay=0.01, pl_no_weight_grad=False, blur_init_sigma=0.0,
                      blur_fade_kimg=0.0)


class ReplayCaseError(ValueError):
    """A case that cannot be replayed: names the file and the key."""


def _need(d, key, where):
    if not isinstance(d, dict) or key not in d:
        raise ReplayCaseError(f"{where}: missing key {key!r}")
    return d[key]


def load_case(case_dir):
    """Read ``config.json``, ``init.npz`` and ``inputs.npz`` of a case; one clear error each."""
    case_dir = os.fspath(case_dir)
    if not os.path.isdir(case_dir):
        raise ReplayCaseError(f"{case_dir}: not a directory (expected a recorded training case "
                              "with config.json, init.npz and inputs.npz)")
    path = os.path.join(case_dir, "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except FileNotFoundError:
        raise ReplayCaseError(f"{path}: missing (every case has config.json)") from None
    except json.JSONDecodeError as e:
        raise ReplayCaseError(f"{path}: not valid JSON ({e})") from None
    arrays = {}
    for name in ("init", "inputs"):
        p = os.path.join(case_dir, f"{name}.npz")
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays[name] = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise ReplayCaseError(f"{p}: missing (every case has {name}.npz)") from None
        except (ValueError, OSError) as e:
            raise ReplayCaseError(f"{p}: not a readable .npz file ({e})") from None
    return dict(dir=case_dir, config=config, init=arrays["init"], inputs=arrays["inputs"])


def _split_state(init, prefix, path):
    state = {k[len(prefix) + 1:]: v for k, v in init.items() if k.startswith(prefix + "/")}
    if not state:
        raise ReplayCaseError(f"{path}: no {prefix}/... entries")
    return state


def _class_kwargs(kwargs, where, allowed):
    kwargs = dict(kwargs)
    cls = kwargs.pop("class_name", None)
    if cls is not None and cls not in allowed:
        raise ReplayCaseError(f"{where}: class_name {cls!r} is not supported; expected one of "
                              f"{sorted(allowed)}")
    return cls, kwargs


def _configs(config, path):
    """LossConfig and TrainConfig from the recorded train.py settings."""
    from sg3keras.config import LossConfig, TrainConfig
    if config.get("augment_pipe") is not None:
        raise ReplayCaseError(f"{path}: key 'augment_pipe' is set; replaying augmentation needs "
                              "its random draws, which the case format does not record")
    if int(config.get("num_gpus", 1)) != 1:
        raise ReplayCaseError(f"{path}: key 'num_gpus' is {config['num_gpus']}; only "
                              "single-process recordings can be replayed")
    _, loss_kw = _class_kwargs(_need(config, "loss_kwargs", path), f"{path}: loss_kwargs",
                               {"training.loss.StyleGAN2Loss"})
    unknown = sorted(set(loss_kw) - set(_LOSS_DEFAULTS))
    if unknown:
        raise ReplayCaseError(f"{path}: loss_kwargs has unknown key(s) {unknown}")
    loss_kw = {**_LOSS_DEFAULTS, **loss_kw}
    loss = LossConfig(r1_gamma=float(loss_kw["r1_gamma"]),
                      style_mixing_prob=float(loss_kw["style_mixing_prob"]),
                      pl_weight=float(loss_kw["pl_weight"]),
                      pl_batch_shrink=int(loss_kw["pl_batch_shrink"]),
                      pl_decay=float(loss_kw["pl_decay"]),
                      pl_no_weight_grad=bool(loss_kw["pl_no_weight_grad"]),
                      blur_init_sigma=float(loss_kw["blur_init_sigma"]),
                      blur_fade_kimg=float(loss_kw["blur_fade_kimg"]))
    opts = {}
    for net in ("G", "D"):
        key = f"{net}_opt_kwargs_train_py"
        _, kw = _class_kwargs(_need(config, key, path), f"{path}: {key}", {"torch.optim.Adam"})
        opts[net] = dict(lr=float(_need(kw, "lr", f"{path}: {key}")),
                         betas=tuple(float(b) for b in kw.get("betas", (0.9, 0.999))),
                         eps=float(kw.get("eps", 1e-8)))
    if opts["G"]["betas"] != opts["D"]["betas"] or opts["G"]["eps"] != opts["D"]["eps"]:
        raise ReplayCaseError(f"{path}: G_opt_kwargs_train_py and D_opt_kwargs_train_py differ "
                              "in betas/eps; TrainConfig has one setting for both")
    ema = _need(config, "ema", path)
    batch = int(_need(config, "batch_size", path))
    d_reg = _need(config, "D_reg_interval", path)
    if d_reg is None:
        raise ReplayCaseError(f"{path}: key 'D_reg_interval' is null (the 'Dboth' schedule "
                              "is not supported)")
    train = TrainConfig(batch=batch, batch_gpu=int(config.get("batch_gpu") or batch),
                        g_lr=opts["G"]["lr"], d_lr=opts["D"]["lr"], betas=opts["G"]["betas"],
                        eps=opts["G"]["eps"], g_reg_interval=config.get("G_reg_interval"),
                        d_reg_interval=int(d_reg),
                        ema_kimg=float(_need(ema, "ema_kimg", f"{path}: ema")),
                        ema_rampup=ema.get("ema_rampup"), aug="noaug")
    return loss, train


def build_trainer(case, impl="fast"):
    """The :class:`~sg3keras.training.gan.StyleGAN` of a case, compiled, at its start step.

    Returns ``(gan, layouts)``; ``layouts[net]`` maps Keras weight paths of G / D / G_ema to
    ``(official name, to_official)`` (see :func:`sg3keras.convert._table.official_layout`).
    """
    from sg3keras.convert._table import official_layout
    from sg3keras.convert.discriminator import DISCRIMINATOR_RULES, discriminator_from_official
    from sg3keras.convert.generator import GENERATOR_RULES, generator_from_official
    from sg3keras.convert.stylegan2 import STYLEGAN2_RULES
    from sg3keras.training.gan import StyleGAN

    config, d = case["config"], case["dir"]
    cpath, ipath = os.path.join(d, "config.json"), os.path.join(d, "init.npz")
    loss, train = _configs(config, cpath)
    g_cls, g_kw = _class_kwargs(_need(config, "G_kwargs", cpath), f"{cpath}: G_kwargs",
                                {"training.networks_stylegan3.Generator",
                                 "training.networks_stylegan2.Generator"})
    _, d_kw = _class_kwargs(_need(config, "D_kwargs", cpath), f"{cpath}: D_kwargs",
                            {"training.networks_stylegan2.Discriminator"})
    states = {net: _split_state(case["init"], net, ipath) for net in ("G", "D", "G_ema")}
    nets = {}
    try:
        for net in ("G", "G_ema"):
            extra = {} if g_cls == "training.networks_stylegan2.Generator" else \
                dict(impl=impl, name=net)
            nets[net] = generator_from_official(states[net], g_kw, **extra)
        nets["D"] = discriminator_from_official(states["D"], d_kw)
    except (ValueError, TypeError) as e:
        raise ReplayCaseError(f"{ipath} / {cpath}: the networks do not build from the recorded "
                              f"kwargs and state dicts: {e}") from None
    g_rules = STYLEGAN2_RULES if "synthesis.b4" in " ".join(states["G"]) else GENERATOR_RULES
    layouts = {net: official_layout(nets[net], states[net],
                                    DISCRIMINATOR_RULES if net == "D" else g_rules, what=net)
               for net in ("G", "D", "G_ema")}
    gan = StyleGAN(nets["G"], nets["D"], nets["G_ema"], loss_config=loss, train_config=train)
    gan.compile(*StyleGAN.make_optimizers(train))
    start = config.get("start", {})
    gan.step.assign(int(start.get("batch_idx", 0)))
    gan.cur_nimg.assign(int(start.get("cur_nimg", 0)))
    gan.reset_phase_counter()
    ours = [(name, int(k)) for name, k in gan.phases()]
    theirs = [(_need(p, "name", f"{cpath}: phases[]"), int(_need(p, "interval", f"{cpath}: "
                                                                 "phases[]")))
              for p in _need(config, "phases", cpath)]
    if ours != theirs:
        raise ReplayCaseError(f"{cpath}: key 'phases' is {theirs}; these settings give {ours}")
    return gan, layouts


def _nhwc(a):
    return np.transpose(np.asarray(a, np.float32), (0, 2, 3, 1))


def _iteration_inputs(case, i, gan):
    """Reals, labels and ``{phase: {z, c, noise, pl_noise}}`` of recorded iteration ``i``."""
    cfg, inp = case["config"], case["inputs"]
    path = os.path.join(case["dir"], "inputs.npz")

    def get(key):
        if key not in inp:
            raise ReplayCaseError(f"{path}: missing key {key!r}")
        return inp[key]

    batch = gan.global_batch
    real = _nhwc(get(f"it{i}/real_img"))
    res, ch = gan.G.img_resolution, gan.G.img_channels
    if real.shape != (batch, res, res, ch):
        raise ReplayCaseError(f"{path}: it{i}/real_img has shape {list(get(f'it{i}/real_img').shape)}"
                              f", expected [{batch}, {ch}, {res}, {res}] (NCHW)")
    real_c = np.asarray(get(f"it{i}/real_c"), np.float32).reshape(batch, -1)
    gen_z, gen_c = get(f"it{i}/gen_z"), get(f"it{i}/gen_c")
    phases = [p["name"] for p in cfg["phases"]]
    if gen_z.shape != (len(phases), batch, gan.G.z_dim):
        raise ReplayCaseError(f"{path}: it{i}/gen_z has shape {list(gen_z.shape)}, expected "
                              f"[{len(phases)} phases, {batch}, {gan.G.z_dim}]")
    given = {}
    for j, name in enumerate(phases):
        given[name] = dict(z=gen_z[j], c=np.asarray(gen_c[j], np.float32).reshape(batch, -1))
    iters = cfg.get("iterations") or []
    draws = (iters[i].get("random_draws") if i < len(iters) else None) or {}
    layers = dict(gan.G.synthesis.noise_inputs()) if hasattr(gan.G.synthesis, "noise_inputs") \
        else {}
    for phase, consumers in draws.items():
        if phase not in given:
            raise ReplayCaseError(f"{case['dir']}/config.json: iterations[{i}].random_draws names "
                                  f"unknown phase {phase!r}")
        for k, consumer in enumerate(consumers):
            raw = _nhwc(get(f"it{i}/{phase}/rand{k:02d}"))
            if raw.shape[0] < batch:     # Greg's batch // pl_batch_shrink rows: pad, unused.
                raw = np.concatenate([raw, np.zeros((batch - raw.shape[0],) + raw.shape[1:],
                                                    np.float32)])
            if consumer == "pl_noise":
                given[phase]["pl_noise"] = raw
            elif consumer.startswith("synthesis_noise:"):
                layer = consumer.split(":", 1)[1].removeprefix("synthesis.")
                if layer not in layers:
                    raise ReplayCaseError(f"{case['dir']}/config.json: iterations[{i}]."
                                          f"random_draws[{phase!r}][{k}] names layer {layer!r}; "
                                          f"the generator's noise inputs are {sorted(layers)}")
                noise = given[phase].setdefault("noise", {})
                if layer in noise:
                    raise ReplayCaseError(f"{case['dir']}/config.json: layer {layer!r} draws "
                                          f"twice in phase {phase!r} of iteration {i}")
                noise[layer] = raw
            else:
                raise ReplayCaseError(f"{case['dir']}/config.json: iterations[{i}].random_draws"
                                      f"[{phase!r}][{k}] is {consumer!r}; expected "
                                      "'synthesis_noise:<layer>' or 'pl_noise'")
    return real, real_c, given


def _official(values, variables, layout, model):
    """``{official name: array}`` of ``values`` aligned with ``variables`` of ``model``."""
    from sg3keras.convert._table import keras_weight_paths
    path_of = {id(v): p for p, v in keras_weight_paths(model).items()}
    out = {}
    for v, value in zip(variables, values):
        name, to_official = layout[path_of[id(v)]]
        out[name] = np.asarray(to_official(np.asarray(value)))
    return out


def replay(case_dir, impl="fast", iterations=None, log=None):
    """Run a recorded case; returns ``{key: np.ndarray}`` in the case's key names and layouts."""
    case = load_case(case_dir)
    gan, layouts = build_trainer(case, impl=impl)
    cfg = case["config"]
    n_iter = int(iterations if iterations is not None
                 else _need(cfg.get("start", {}), "iterations",
                            f"{case['dir']}/config.json: start"))
    nets = {"G": gan.G, "D": gan.D, "G_ema": gan.G_ema}
    owner = {"G": "G", "Gboth": "G", "Gmain": "G", "Greg": "G", "Dmain": "D", "Dreg": "D"}
    out = {}
    hp = gan.optimizer_hparams(gan.train_config)
    for name, _ in gan.phases():
        net = owner[name]
        for k, v in hp[net].items():
            out[f"hparams/{name}/{k}"] = np.float64(v)
    for i in range(n_iter):
        real, real_c, given = _iteration_inputs(case, i, gan)
        _, rec = gan.train_iteration(real, real_c, inputs=given, record=True)
        rec = _to_numpy(rec)
        ran = [p for p, _ in gan.phases() if p in rec]
        out[f"schedule/it{i}/phases"] = np.array(ran)
        for k, v in rec["schedule"].items():
            out[f"schedule/it{i}/{k}"] = np.asarray(v, np.float64)
        for phase in ran:
            for stat, values in rec[phase]["stats"].items():
                out[f"stats/it{i}/{phase}/{stat}"] = values
            if i:
                continue
            model = nets[owner[phase]]
            tv = model.trainable_variables
            layout = layouts[owner[phase]]
            idx = sorted(rec[phase]["grads"])
            for k, v in _official([rec[phase]["grads"][j] for j in idx], [tv[j] for j in idx],
                                  layout, model).items():
                out[f"first_iter/{phase}/grad/{k}"] = v
            for k, v in _official(rec[phase]["after_step"], tv, layout, model).items():
                out[f"first_iter/{phase}/after_step/{k}"] = v
            if "optimizer" in rec[phase]:
                states = rec[phase]["optimizer"]
                for j, field in enumerate(("exp_avg", "exp_avg_sq")):
                    for k, v in _official([s[j] for s in states], tv, layout, model).items():
                        out[f"first_iter/{phase}/adam/{k}/{field}"] = v
                names = _official([s[0] for s in states], tv, layout, model)
                for k, s in zip(names, states):
                    out[f"first_iter/{phase}/adam/{k}/step"] = np.float32(s[2])
        if i == 0:
            for k, v in _official([v.numpy() for v in gan.G_ema.weights], gan.G_ema.weights,
                                  layouts["G_ema"], gan.G_ema).items():
                out[f"first_iter/G_ema_after/{k}"] = v
        for k, v in _official([v.numpy() for v in gan.G.weights], gan.G.weights,
                              layouts["G"], gan.G).items():
            if k.endswith("w_avg") or k.endswith("magnitude_ema"):
                out[f"trace/it{i}/G/{k}"] = v
        if log:
            log(f"iteration {i}: phases {', '.join(ran)}")
    for net, model in nets.items():
        for k, v in _official([v.numpy() for v in model.weights], model.weights, layouts[net],
                              model).items():
            out[f"final/{net}/{k}"] = v
    return out


def _to_numpy(x):
    if isinstance(x, dict):
        return {k: _to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_numpy(v) for v in x)
    return np.asarray(x)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sg3keras.training.replay",
        description="Replay recorded iterations of the official StyleGAN training loop through "
                    "sg3keras's own training step and write the results under the case's key "
                    "names (official layouts).")
    parser.add_argument("case_dir", help="case folder with config.json, init.npz, inputs.npz")
    parser.add_argument("--out", required=True, help="output .npz file (written atomically)")
    parser.add_argument("--impl", choices=("fast", "ref"), default="fast",
                        help="filtered_lrelu implementation of StyleGAN3 generators "
                             "(default: %(default)s)")
    parser.add_argument("--compare", action="store_true",
                        help="also check the result against the case's expected.npz with its "
                             "recommended tolerances (exit 1 on a difference)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".npz"):
        parser.error(f"--out {args.out!r}: expected a file name ending in .npz")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        out = replay(args.case_dir, impl=args.impl, log=lambda m: print(m, file=sys.stderr))
    except ReplayCaseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from sg3keras.utils import atomic_write_bytes
    import io
    buf = io.BytesIO()
    np.savez(buf, **out)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {len(out)} arrays to {args.out}", file=sys.stderr)
    if args.compare:
        if not os.path.exists(os.path.join(args.case_dir, "expected.npz")):
            print(f"error: {args.case_dir}/expected.npz: missing (needed by --compare)",
                  file=sys.stderr)
            return 2
        problems, measured = compare(out, args.case_dir)
        print(json.dumps(measured, indent=1, default=float))
        for p in problems:
            print(f"DIFF {p}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
