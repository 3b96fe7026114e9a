"""Training benchmark: sec/kimg and peak RSS of a small StyleGAN3-T on CPU.

Runs the real training loop (``sg3keras.training.loop.train``) in a fresh process per variant:
single replica vs 2-replica MirroredStrategy (2 logical CPU devices), with the XLA-fused
filtered_lrelu on and off. sec/kimg is measured over the ticks after the first (which includes
tracing/compilation); the compile time is reported separately.

Usage: python bench/train.py [--res 32] [--batch 16] [--cbase 2048] [--cmax 64] [--kimg 0.64]
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


def child(a, gpus, fused, data, outdir):
    import resource

    from sg3keras.training.loop import TrainOptions, train
    lines = []
    opts = TrainOptions(outdir=outdir, cfg="stylegan3-t", data=data, gpus=gpus, batch=a.batch,
                        gamma=0.05, cbase=a.cbase, cmax=a.cmax, map_depth=2, aug="noaug",
                        kimg=a.kimg, tick=a.kimg / 4, snap=1000, fused_ops=fused, mirror=False)
    train(opts, log=lines.append)
    ticks = [ln for ln in lines if ln.startswith("tick")]
    sec_tick = [float(re.search(r"sec/tick (\S+)", t).group(1)) for t in ticks]
    sec_kimg = [float(re.search(r"sec/kimg (\S+)", t).group(1)) for t in ticks]
    print(json.dumps(dict(first_tick_s=sec_tick[0], sec_kimg=min(sec_kimg[1:] or sec_kimg),
                          rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--cbase", type=int, default=2048)
    ap.add_argument("--cmax", type=int, default=64)
    ap.add_argument("--kimg", type=float, default=0.64)
    ap.add_argument("--child", nargs=4, default=None)
    a = ap.parse_args()
    if a.child:
        gpus, fused, data, outdir = a.child
        return child(a, int(gpus), fused == "1", data, outdir)
    from sg3keras.demo_data import make_demo_dataset
    work = tempfile.mkdtemp(prefix="sg3keras-bench-")
    data = os.path.join(work, "data.zip")
    make_demo_dataset(data, resolution=a.res, num_images=500)
    print(f"stylegan3-t {a.res}px cbase {a.cbase} cmax {a.cmax}, batch {a.batch}, "
          f"{a.kimg} kimg per run")
    print(f"{'replicas':<10}{'fused ops':<11}{'sec/kimg':>10}{'first tick s':>14}{'RSS MB':>8}")
    for gpus in (1, 2):
        for fused in (True, False):
            args = [sys.executable, __file__, "--res", str(a.res), "--batch", str(a.batch),
                    "--cbase", str(a.cbase), "--cmax", str(a.cmax), "--kimg", str(a.kimg),
                    "--child", str(gpus), "1" if fused else "0", data,
                    os.path.join(work, f"runs-{gpus}-{int(fused)}")]
            r = subprocess.run(args, capture_output=True, text=True)
            if r.returncode:
                print(f"{gpus:<10}{str(fused):<11} FAILED: {r.stderr.strip()[-300:]}")
                continue
            m = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{gpus:<10}{str(fused):<11}{m['sec_kimg']:>10.1f}{m['first_tick_s']:>14.1f}"
                  f"{m['rss_mb']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
