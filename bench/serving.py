"""Serving benchmark: the exported SavedModel in a bare-TensorFlow process vs the in-process
generator.

For each config (stylegan3-t / -r at 256 px, official default channels, batch 4, fp32):

* ``in-process`` -- ``Generator`` with ``--impl`` (default ``auto``: per stage the
  ``filtered_lrelu`` implementation measured fastest on this machine, cached; printed per
  stage; ``--no-autotune`` keeps the fixed ``fast``) inside a ``tf.function``:
  ``G(z, truncation_psi=1)`` then the uint8 conversion, as ``serving_default``;
* ``served``     -- ``sg3keras export`` (the default, XLA-free graph: ``impl="conv"``) loaded with
  ``tf.saved_model.load`` in a fresh process that imports only TensorFlow and numpy, calling
  ``serving_default``;
* ``served-xla`` -- ``sg3keras export --xla`` (XLA-compiled stages), same process kind;
* ``served-ref`` -- the graph exported before the ``conv`` path existed (the reference
  ``filtered_lrelu``), for comparison.

Each variant runs in its own process: one warm-up call (tracing / loading / compiling), then the
best of ``--reps`` timed calls. With ``--rounds K`` every variant (in-process included) is timed
in K fresh processes, taking turns, and the best is kept: on a shared machine the speed drifts
by 10-20 % over minutes, and taking turns lets the drift hit every variant alike. Prints
s/batch, the ratio to in-process, peak RSS and the largest pixel difference from the
in-process images (uint8); with rounds, also every round's ratios.

Usage: python bench/serving.py [--configs t,r] [--res 256] [--batch 4] [--reps 2] [--rounds 1]
       [--variants served,served-xla,served-ref] [--impl auto] [--no-autotune]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_BARE = r"""
import json, resource, sys, time
import numpy as np
import tensorflow as tf
export_dir, z_file, out_file, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t0 = time.perf_counter()
fn = tf.saved_model.load(export_dir).signatures["serving_default"]
load = time.perf_counter() - t0
z = tf.constant(np.load(z_file))
psi = tf.constant(1.0)
t0 = time.perf_counter()
img = fn(z=z, truncation_psi=psi)["images"].numpy()
first = time.perf_counter() - t0
times = []
for _ in range(reps):
    t0 = time.perf_counter()
    fn(z=z, truncation_psi=psi)["images"].numpy()
    times.append(time.perf_counter() - t0)
np.save(out_file, img)
ours = sorted(m for m in sys.modules if m.split(".")[0] == "sg3keras")
print(json.dumps(dict(load_s=load, first_s=first, best_s=min(times), project_modules=ours,
                      rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def in_process(cfg_name, res, batch, reps, work, save=True, impl="auto"):
    """Child: build the network (seed 0, ``impl``), save it and z (``save``), time the
    in-process generator."""
    sys.path.insert(0, ROOT)
    import numpy as np
    import tensorflow as tf

    from sg3keras.models.generator import Generator
    from sg3keras.utils import to_uint8
    G = Generator.from_preset(cfg_name, img_resolution=res, seed=0, impl=impl)
    z = np.random.RandomState(0).randn(batch, G.z_dim).astype(np.float32)
    if save:
        np.save(os.path.join(work, "z.npy"), z)
    fwd = tf.function(lambda z: to_uint8(G(z, truncation_psi=1.0)))
    zt = tf.constant(z)
    t0 = time.perf_counter()
    img = fwd(zt).numpy()
    first = time.perf_counter() - t0
    best = min(_timed(lambda: fwd(zt).numpy()) for _ in range(reps))
    if save:
        np.save(os.path.join(work, "in-process.npy"), img)
        G.save(os.path.join(work, "G.keras"))
    from machine import stage_choices
    print(json.dumps(dict(first_s=first, best_s=best, stages=stage_choices(G),
                          rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


def export(work, variant):
    """Child: export ``work/G.keras`` as the SavedModel of ``variant``."""
    sys.path.insert(0, ROOT)
    import keras

    import sg3keras
    from sg3keras import export as ex
    G = keras.saving.load_model(os.path.join(work, "G.keras"), compile=False)
    assert isinstance(G, sg3keras.models.Generator)
    if variant == "served-ref":          # what the export built before impl="conv"
        ex.serving_copy = lambda G, xla=False: G.with_impl("ref")
    t0 = time.perf_counter()
    d = ex.export_savedmodel(G, os.path.join(work, "models"), variant.replace("-", "_"),
                             xla=variant == "served-xla")
    print(json.dumps(dict(dir=d, export_s=time.perf_counter() - t0)))


def _child(args, timeout=3600):
    r = subprocess.run([sys.executable] + args, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(r.stderr.strip()[-800:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--configs", default="t,r")
    ap.add_argument("--variants", default="served,served-xla,served-ref")
    ap.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    from machine import add_impl_options, apply_impl_options, format_choices
    add_impl_options(ap)
    a = ap.parse_args()
    apply_impl_options(a)
    if a.rounds < 1 or a.reps < 1:
        ap.error(f"--rounds and --reps must be >= 1 (got --rounds {a.rounds}, --reps {a.reps})")
    if a.child:
        kind, *rest = a.child
        if kind in ("in-process", "in-process-again"):
            return in_process(rest[0], a.res, a.batch, a.reps, rest[1],
                              save=kind == "in-process", impl=a.impl)
        return export(rest[0], rest[1])

    import numpy as np
    from machine import cpu_summary
    print(f"machine: {cpu_summary(probe=False)}")
    print(f"{'config':<14}{'variant':<12}{'s/batch':>9}{'x in-proc':>10}{'first s':>9}"
          f"{'export s':>9}{'RSS MB':>8}{'max |diff|':>11}")
    for c in a.configs.split(","):
        cfg_name = f"stylegan3-{c}"
        with tempfile.TemporaryDirectory(prefix="sg3-serving-") as work:
            try:
                base = _child([__file__, "--res", str(a.res), "--batch", str(a.batch), "--reps",
                               str(a.reps), "--impl", a.impl, "--child", "in-process", cfg_name,
                               work])
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"{cfg_name:<14}in-process  FAILED: {e}")
                continue
            ref = np.load(os.path.join(work, "in-process.npy"))
            exports, runs = {}, {"in-process": [base]}
            for v in a.variants.split(","):
                try:
                    exports[v] = _child([__file__, "--child", "export", work, v])
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    print(f"{cfg_name:<14}{v:<12} FAILED: {e}")
            for k in range(a.rounds):
                if k:
                    runs["in-process"].append(_child(
                        [__file__, "--res", str(a.res), "--batch", str(a.batch), "--reps",
                         str(a.reps), "--impl", a.impl, "--child", "in-process-again", cfg_name,
                         work]))
                for v, ex in list(exports.items()):
                    out = os.path.join(work, f"{v}.npy")
                    try:
                        m = _child(["-c", _BARE, ex["dir"], os.path.join(work, "z.npy"), out,
                                    str(a.reps)])
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        print(f"{cfg_name:<14}{v:<12} FAILED: {e}")
                        del exports[v]
                        continue
                    assert not m["project_modules"], m["project_modules"]
                    m["diff"] = int(np.abs(np.load(out).astype(int) - ref).max())
                    runs.setdefault(v, []).append(m)
            best = {v: min(r["best_s"] for r in rs) for v, rs in runs.items()}
            b = runs["in-process"][0]
            print(f"{cfg_name:<14}{'in-process':<12}{best['in-process']:>9.2f}{1:>10.2f}"
                  f"{b['first_s']:>9.1f}{'':>9}{b['rss_mb']:>8.0f}{'':>11}", flush=True)
            print(f"{'':<14}in-process stages (impl={a.impl}): {format_choices(b['stages'])}",
                  flush=True)
            for v, rs in runs.items():
                if v == "in-process":
                    continue
                m = rs[0]
                print(f"{cfg_name:<14}{v:<12}{best[v]:>9.2f}"
                      f"{best[v] / best['in-process']:>10.2f}{m['first_s']:>9.1f}"
                      f"{exports[v]['export_s']:>9.1f}{m['rss_mb']:>8.0f}"
                      f"{max(r['diff'] for r in rs):>11}", flush=True)
                if a.rounds > 1:
                    each = [r["best_s"] / i["best_s"] for r, i in zip(rs, runs["in-process"])]
                    print(f"{'':<14}{'':<12}rounds: x in-proc " +
                          " ".join(f"{x:.2f}" for x in each))


if __name__ == "__main__":
    main()
