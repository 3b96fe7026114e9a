"""Training benchmark: the official training step's case, and sec/kimg of a small StyleGAN3-T.

Part 1 (``replay``): the configuration of the recorded official training case
(``tests/reference/train/sg3t_32``: stylegan3-t, 32 px, batch 4, cbase 256, cmax 16, z/w 32) run
through ``StyleGAN.train_iteration`` (the step ``fit`` compiles) at 1 and 2 threads, in a fresh
process each, next to the official CPU step time recorded in the case (``official_cpu_step_s``).
sec/iteration is the mean over iterations without the R1 phase after tracing; the R1 iteration
(every 16th) is timed on its own and compared with the official iteration 0 (which has R1).

Part 2 (``loop``): the real training loop (``sg3keras.training.loop.train``) in a fresh process
per variant: single replica vs 2-replica MirroredStrategy (2 logical CPU devices), with the
XLA-fused filtered_lrelu on and off, and (``--mixed-precision``) one replica with the Keras
``mixed_bfloat16`` policy against float32 on the same configuration. sec/kimg is measured over
the ticks after the first (which includes tracing/compilation); the compile time is reported
separately. ``--only mixed`` runs just the float32 / mixed_bfloat16 pair.

Usage: python bench/train.py [--only replay|loop|mixed] [--res 32] [--batch 16] [--cbase 2048]
       [--cmax 64] [--kimg 0.64]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def child(a, gpus, fused, precision, data, outdir):
    import resource

    from sg3keras.training.loop import TrainOptions, train
    lines = []
    opts = TrainOptions(outdir=outdir, cfg="stylegan3-t", data=data, gpus=gpus, batch=a.batch,
                        gamma=0.05, cbase=a.cbase, cmax=a.cmax, map_depth=2, aug="noaug",
                        kimg=a.kimg, tick=a.kimg / 4, snap=1000, fused_ops=fused, mirror=False,
                        mixed_precision=None if precision == "float32" else precision,
                        cpu_replicas=gpus > 1)
    train(opts, log=lines.append)
    ticks = [ln for ln in lines if ln.startswith("tick")]
    sec_tick = [float(re.search(r"sec/tick (\S+)", t).group(1)) for t in ticks]
    sec_kimg = [float(re.search(r"sec/kimg (\S+)", t).group(1)) for t in ticks]
    print(json.dumps(dict(first_tick_s=sec_tick[0], sec_kimg=min(sec_kimg[1:] or sec_kimg),
                          rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


CASE = os.path.join(ROOT, "tests", "reference", "train", "sg3t_32")


def replay_child(threads, impl):
    """Time train_iteration on the recorded case at ``threads`` threads; print JSON."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import time

    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from sg3keras.training.replay import _iteration_inputs, build_trainer, load_case
    case = load_case(CASE)
    gan, _ = build_trainer(case, impl=impl)
    n_rec = int(case["config"]["start"]["iterations"])
    inputs = [_iteration_inputs(case, i, gan) for i in range(n_rec)]

    def run(step):
        real, real_c, given = inputs[step % n_rec]
        t0 = time.perf_counter()
        logs = gan.train_iteration(real, real_c, inputs=given)
        float(np.asarray(logs["Loss/G/loss"]))        # Wait for the step to finish.
        return time.perf_counter() - t0

    t_trace = run(0) + run(1)                         # Traces the R1 and the plain step.
    plain = [run(s) for s in range(2, 16)]
    r1 = run(16)
    print(json.dumps(dict(threads=threads, impl=impl, trace_s=t_trace,
                          sec_iter=float(np.mean(plain)), sec_iter_min=float(np.min(plain)),
                          sec_iter_r1=r1)))


def bench_replay():
    cfg = json.load(open(os.path.join(CASE, "config.json")))
    official = cfg["official_cpu_step_s"]
    print("Official case stylegan3-t 32 px, batch 4, cbase 256, cmax 16 (tests/reference/train/"
          "sg3t_32); official numbers: official_cpu_step_s of the case")
    print(f"{'threads':<9}{'ops':<6}{'s/iter':>8}{'official':>10}{'speed-up':>10}"
          f"{'s/iter R1':>11}{'official':>10}{'speed-up':>10}{'trace s':>9}")
    for threads in (1, 2):
        off = official.get(f"threads_{threads}")
        for impl in ("fast", "ref"):
            r = subprocess.run([sys.executable, __file__, "--replay-child", str(threads), impl],
                               capture_output=True, text=True)
            if r.returncode:
                print(f"{threads:<9}{impl:<6} FAILED: {r.stderr.strip()[-300:]}")
                continue
            m = json.loads(r.stdout.strip().splitlines()[-1])
            plain_off = sum(off[1:]) / len(off[1:]) if off else float("nan")
            r1_off = off[0] if off else float("nan")
            print(f"{threads:<9}{impl:<6}{m['sec_iter']:>8.3f}{plain_off:>10.3f}"
                  f"{plain_off / m['sec_iter']:>9.1f}x{m['sec_iter_r1']:>11.3f}{r1_off:>10.3f}"
                  f"{r1_off / m['sec_iter_r1']:>9.1f}x{m['trace_s']:>9.1f}", flush=True)
    if "threads_2" in official:
        print("(the case notes that its 2-thread official numbers were taken on an overloaded "
              "machine; compare the 1-thread rows)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--cbase", type=int, default=2048)
    ap.add_argument("--cmax", type=int, default=64)
    ap.add_argument("--kimg", type=float, default=0.64)
    ap.add_argument("--only", choices=("replay", "loop", "mixed"), default=None)
    ap.add_argument("--child", nargs=5, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--replay-child", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        gpus, fused, precision, data, outdir = a.child
        return child(a, int(gpus), fused == "1", precision, data, outdir)
    if a.replay_child:
        return replay_child(int(a.replay_child[0]), a.replay_child[1])
    from machine import cpu_summary
    print(f"CPU: {cpu_summary()}")
    if a.only in (None, "replay"):
        bench_replay()
    if a.only == "replay":
        return
    from sg3keras.data.demo import make_demo_dataset
    work = tempfile.mkdtemp(prefix="sg3keras-bench-")
    data = os.path.join(work, "data.zip")
    make_demo_dataset(data, resolution=a.res, num_images=500)
    print(f"stylegan3-t {a.res}px cbase {a.cbase} cmax {a.cmax}, batch {a.batch}, "
          f"{a.kimg} kimg per run")
    print(f"{'replicas':<10}{'fused ops':<11}{'precision':<16}{'sec/kimg':>10}"
          f"{'first tick s':>14}{'RSS MB':>8}")
    variants = [(1, True, "float32"), (1, True, "mixed_bfloat16")]
    if a.only != "mixed":
        variants += [(1, False, "float32"), (2, True, "float32"), (2, False, "float32")]
    for gpus, fused, precision in variants:
        args = [sys.executable, __file__, "--res", str(a.res), "--batch", str(a.batch),
                "--cbase", str(a.cbase), "--cmax", str(a.cmax), "--kimg", str(a.kimg),
                "--child", str(gpus), "1" if fused else "0", precision, data,
                os.path.join(work, f"runs-{gpus}-{int(fused)}-{precision}")]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode:
            print(f"{gpus:<10}{str(fused):<11}{precision:<16} FAILED: {r.stderr.strip()[-300:]}")
            continue
        m = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{gpus:<10}{str(fused):<11}{precision:<16}{m['sec_kimg']:>10.1f}"
              f"{m['first_tick_s']:>14.1f}{m['rss_mb']:>8.0f}", flush=True)

if __name__ == "__main__":
    main()
