"""Projector benchmark: seconds per optimisation step of ``sg3keras project`` on this machine.

A freshly initialised network of the official default channels (stylegan3-t: channel_base 32768,
channel_max 512) at ``--res`` px projects a target for ``--steps`` steps. The LPIPS distance uses a
full-width VGG16 (64 .. 512 channels) with random weights: the same computation as NVIDIA's
``vgg16.pkl``, which timing does not need. Reported: network build, the w statistics (10 000
mapped latents), the first step (tracing + compilation), the mean of the later steps, and the
peak RSS of the process.

Usage: python bench/project.py [--cfg stylegan3-t] [--res 256] [--steps 4] [--loss lpips]
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cfg", default="stylegan3-t")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--loss", default="lpips", choices=["lpips", "mse"])
    args = ap.parse_args()

    import numpy as np

    from sg3keras.inference import projector
    from sg3keras.detectors.vgg16 import build_vgg16_lpips
    from sg3keras.models import Generator

    out = {"cfg": args.cfg, "res": args.res, "loss": args.loss, "steps": args.steps}
    t0 = time.time()
    G = Generator.from_preset(args.cfg, img_resolution=args.res)
    out["params"] = int(sum(np.prod(v.shape) for v in G.weights))
    out["build_s"] = round(time.time() - t0, 1)
    t0 = time.time()
    projector.w_statistics(G)
    out["w_statistics_s"] = round(time.time() - t0, 1)
    vgg = build_vgg16_lpips() if args.loss == "lpips" else None
    target = np.random.RandomState(0).randint(0, 256, (args.res, args.res, 3), dtype=np.uint8)
    stamps = []
    t0 = time.time()
    projector.project(G, target, num_steps=args.steps, loss=args.loss, vgg16=vgg,
                      progress=lambda i, n, d: stamps.append(time.time()))
    out["first_step_s"] = round(stamps[0] - t0, 1)
    if len(stamps) > 1:
        out["s_per_step"] = round((stamps[-1] - stamps[0]) / (len(stamps) - 1), 2)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    out["cpus"] = os.cpu_count()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
