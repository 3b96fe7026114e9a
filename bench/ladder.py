"""The paper's ladder of configurations side by side: A (StyleGAN2) -> B ... H -> T -> R.

One table, every configuration (``sg3keras.config.LADDER``) in a row:

* at the paper's scale (``--res``, default 256, the presets' channels): parameters, synthesis
  FLOPs per image (counted from the layers: convolutions at 2 FLOPs per MAC plus the FIR
  filters' taps) and the measured time per image (batch ``--time-batch``, best of ``--reps``);
* at a scale that fits a CPU (``--train-res`` px, ``--cbase``/``--cmax`` channels, the bundled
  demo photographs of ``make demo``): EQ-T, EQ-T_frac and EQ-R of the *initialised* network,
  then, per seed, ``--kimg`` of training with the same data, options and seed for every
  configuration, and FID / KID (``--fid-samples`` generated images against the whole data
  set; the Inception file of ``make test``) and the EQ metrics of the trained G_ema;
* the paper's Figure 3 numbers (FFHQ-U 256, full training) beside them.

Results are cached per configuration, stage and seed in ``--out`` (JSON, written atomically)
so an interrupted run continues where it stopped; ``--fresh`` starts over. A has no input
transform, so no EQ metric (the paper has none either).

Usage: python bench/ladder.py [--configs a,b,...,r] [--res 256] [--train-res 32] [--kimg 1]
       [--seeds 0] [--eq-samples 256] [--fid-samples 1000] [--skip-train] [--out FILE]
"""

import argparse
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Alias-Free GAN, Figure 3 (FFHQ-U 256x256): FID, EQ-T, EQ-R (dB); A has no EQ numbers.
PAPER = {"a": (5.14, None, None), "b": (4.79, 16.23, 10.81), "c": (4.54, 15.81, 10.84),
         "d": (5.21, 19.47, 10.41), "e": (6.02, 24.62, 10.97), "f": (6.35, 30.60, 10.81),
         "g": (4.78, 43.90, 10.84), "h": (4.64, 45.20, 10.61), "t": (4.62, 63.01, 13.12),
         "r": (4.50, 66.65, 40.48)}
TRAIN = dict(gpus=1, batch=16, gamma=0.05, mbstd_group=4, aug="noaug", mirror=True)


def stylegan2_flops(cfg, batch):
    """Forward FLOPs of a StyleGAN2-family synthesis network (configs A-D)."""
    total, res = 0.0, 4
    ch = lambda r: min(cfg.channel_base // r, cfg.channel_max)  # noqa: E731
    while res <= cfg.img_resolution:
        c_in, c = (ch(res // 2) if res > 4 else ch(4)), ch(res)
        convs = [(c_in, c)] if res == 4 else [(c_in, c), (c, c)]
        for a, b in convs:
            total += 2.0 * batch * res * res * 9 * a * b
        if res > 4:                                    # the [1,3,3,1] blur of the up conv
            total += 2.0 * batch * c_in * (res + 3) ** 2 * 16 / 4
        if cfg.architecture == "skip" or res == cfg.img_resolution:
            total += 2.0 * batch * res * res * c * cfg.img_channels
        res *= 2
    return total


def flops(cfg, batch=1):
    if cfg.has_layer_schedule:
        from generator import schedule_flops
        return schedule_flops(cfg, batch)
    return stylegan2_flops(cfg, batch)


def _build(name, **kw):
    import keras

    from sg3keras.models.base import GeneratorBase
    keras.utils.set_random_seed(0)
    return GeneratorBase.from_preset(name, **kw)


def stage_paper_scale(letter, a):
    """Parameters, FLOPs and the time per image of the full-size network."""
    import numpy as np
    import tensorflow as tf
    G = _build(f"config-{letter}", img_resolution=a.res)
    z = tf.constant(np.random.RandomState(0).randn(a.time_batch, G.z_dim).astype(np.float32))
    kw = dict(noise_mode="const") if G.has_noise else {}
    fwd = tf.function(lambda z: G(z, **kw))
    fwd(z).numpy()
    best = float("inf")
    for _ in range(a.reps):
        t0 = time.perf_counter()
        fwd(z).numpy()
        best = min(best, time.perf_counter() - t0)
    return dict(params=int(G.count_params()), gflops=flops(G.config) / 1e9,
                s_per_img=best / a.time_batch)


def _eq(G, n, seed=0):
    if not G.has_input_transform:
        return dict(eqt=None, eqt_frac=None, eqr=None)
    from sg3keras.metrics.equivariance import compute_equivariance
    r = compute_equivariance(G, n, compute_eqt_int=True, compute_eqt_frac=True,
                             compute_eqr=True, seed=seed)
    return dict(eqt=float(r["eqt_int"]), eqt_frac=float(r["eqt_frac"]), eqr=float(r["eqr"]))


def stage_init_eq(letter, a):
    """EQ metrics of the initialised small network (the one training starts from)."""
    G = _build(f"config-{letter}", img_resolution=a.train_res, cbase=a.cbase, cmax=a.cmax)
    return _eq(G, a.eq_samples)


def _data(a):
    path = os.path.join(a.workdir, f"demo-crops-{a.train_res}.zip")
    if not os.path.exists(path):
        from sg3keras.data.demo import make_demo_dataset
        make_demo_dataset(path, resolution=a.train_res)
    return path


def stage_train(letter, a, seed):
    """Train ``--kimg`` and measure FID / KID / EQ of the final G_ema."""
    import glob

    from sg3keras.data import ImageDataset
    from sg3keras.metrics import calc_metric
    from sg3keras.networks.loading import load_network
    from sg3keras.training.loop import TrainOptions, train
    data = _data(a)
    outdir = os.path.join(a.workdir, f"runs-{letter}-seed{seed}")
    t0 = time.time()
    run_dir = train(TrainOptions(outdir=outdir, cfg=f"config-{letter}", data=data, kimg=a.kimg,
                                 tick=a.kimg, snap=1, seed=seed, cbase=a.cbase, cmax=a.cmax,
                                 **TRAIN), log=lambda s: None)
    took = time.time() - t0
    snap = sorted(glob.glob(os.path.join(run_dir, "network-snapshot-*.keras")))[-1]
    G = load_network(snap)
    ds = ImageDataset(data)
    out = dict(train_s=took, snapshot=snap)
    for name, key in (("fid50k_full", "fid"), ("kid50k_full", "kid")):
        rec = calc_metric(name, G, ds, num_samples=a.fid_samples, seed=seed)
        out[key] = float(rec["results"][name])
    out.update(_eq(G, a.eq_samples, seed=seed))
    return out


def _cached(results, key, fn, path):
    if key not in results:
        results[key] = fn()
        from sg3keras.utils import atomic_write_json
        atomic_write_json(path, results)
        print(f"  {key}: {json.dumps(results[key])}", flush=True)
    return results[key]


def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def table(results, a, letters):
    """The Markdown table of everything measured so far."""
    seeds = [int(s) for s in a.seeds.split(",")] if not a.skip_train else []
    head = ("| cfg | params (M) | GFLOP/img | s/img | init EQ-T | init EQ-T frac | init EQ-R |"
            + (" FID | KID×10³ | EQ-T | EQ-T frac | EQ-R |" if seeds else "")
            + " paper FID / EQ-T / EQ-R |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for x in letters:
        p, e = results.get(f"{x}/paper-scale"), results.get(f"{x}/init-eq", {})
        row = [x.upper(), _fmt(p and p["params"] / 1e6, ".1f"), _fmt(p and p["gflops"], ".0f"),
               _fmt(p and p["s_per_img"], ".2f"), _fmt(e.get("eqt"), ".2f"),
               _fmt(e.get("eqt_frac"), ".2f"), _fmt(e.get("eqr"), ".2f")]
        if seeds:
            runs = [results[k] for k in (f"{x}/train-seed{s}" for s in seeds) if k in results]
            avg = lambda k: (None if not runs or runs[0][k] is None  # noqa: E731
                             else sum(r[k] for r in runs) / len(runs))
            row += [_fmt(avg("fid"), ".1f"), _fmt(avg("kid") and avg("kid") * 1e3, ".1f"),
                    _fmt(avg("eqt"), ".2f"), _fmt(avg("eqt_frac"), ".2f"),
                    _fmt(avg("eqr"), ".2f")]
        fid, eqt, eqr = PAPER[x]
        row.append(f"{fid:.2f} / {_fmt(eqt, '.2f')} / {_fmt(eqr, '.2f')}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="a,b,c,d,e,f,g,h,t,r")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--time-batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--train-res", type=int, default=32)
    ap.add_argument("--cbase", type=int, default=2048)
    ap.add_argument("--cmax", type=int, default=64)
    ap.add_argument("--kimg", type=float, default=1.0)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--eq-samples", type=int, default=256)
    ap.add_argument("--fid-samples", type=int, default=1000)
    ap.add_argument("--skip-paper-scale", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-ladder.json"))
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench-ladder"))
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--table", action="store_true",
                    help="only print the table of the results cached in --out")
    a = ap.parse_args(argv)
    from machine import cpu_summary
    print(cpu_summary(probe=False), flush=True)
    letters = [x.strip().lower().removeprefix("config-") for x in a.configs.split(",")]
    bad = [x for x in letters if x not in PAPER]
    if bad:
        ap.error(f"--configs: unknown {bad}; expected letters from {sorted(PAPER)}")
    os.makedirs(a.workdir, exist_ok=True)
    results = {}
    if os.path.exists(a.out) and not a.fresh:
        with open(a.out) as f:
            results = json.load(f)
    settings = {k: v for k, v in vars(a).items()
                if k not in ("configs", "fresh", "out", "table")}
    if a.table:
        print(table(results, argparse.Namespace(**results.get("settings", settings)), letters))
        return
    if results.get("settings", settings) != settings:
        sys.exit(f"{a.out} holds results for other settings; pass --fresh or another --out")
    results["settings"] = settings
    for x in letters:
        print(f"config-{x}", flush=True)
        if not a.skip_paper_scale:
            _cached(results, f"{x}/paper-scale", lambda: stage_paper_scale(x, a), a.out)
        _cached(results, f"{x}/init-eq", lambda: stage_init_eq(x, a), a.out)
        if not a.skip_train:
            for s in (int(v) for v in a.seeds.split(",")):
                _cached(results, f"{x}/train-seed{s}", lambda: stage_train(x, a, s), a.out)
    print(table(results, a, letters))


if __name__ == "__main__":
    main()
