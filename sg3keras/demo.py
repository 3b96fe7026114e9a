"""``make demo``: train a tiny StyleGAN3-T on a bundled image set, bounded by kimg and time.

The data are random 32x32 crops of photographs that ship inside the scikit-image wheel (see
:mod:`sg3keras.data.demo` for the images and their licences), written in the official dataset
format. The run uses the real training loop (``sg3keras train``) with a small network, then writes
a before/after sample grid, a ``.keras`` snapshot and TensorBoard logs.
"""

import glob
import os
import time

__all__ = ["run_demo", "DEMO_OPTIONS", "DEMO_KIMG", "DEMO_MINUTES"]

# A small network that visibly learns colours and coarse structure within minutes on 2 cores.
DEMO_OPTIONS = dict(cfg="stylegan3-t", gpus=1, batch=16, gamma=0.05, cbase=2048, cmax=64,
                    map_depth=2, mbstd_group=4, aug="noaug", glr=0.0025, dlr=0.002,
                    seed=0, mirror=True)
DEMO_KIMG = 2.4       # Training length: the "after" grid of the README.
DEMO_MINUTES = 10.0   # Time bound, from the start of the demo: whichever comes first ends it.
DEMO_TICK = 0.16      # kimg per tick (10 steps): the time bound is checked at tick ends.


def run_demo(outdir="out", minutes=DEMO_MINUTES, kimg=DEMO_KIMG, resolution=32, log=print):
    """Build the demo data set, train until ``kimg`` or ``minutes``, report through ``log``.

    ``minutes`` counts from the call (data set, tracing and compilation included); training
    stops at the first tick end past it, so a run may overshoot by one tick (0.16 kimg) and the
    final snapshot. The demo computes no metrics (no FID, no Inception file needed).
    Returns the run directory."""
    from sg3keras.data.demo import make_demo_dataset
    from sg3keras.training.loop import TrainOptions, train

    t0 = time.time()
    deadline = t0 + 60.0 * minutes
    os.makedirs(outdir, exist_ok=True)
    data = os.path.join(outdir, f"demo-crops-{resolution}.zip")
    if not os.path.exists(data):
        make_demo_dataset(data, resolution=resolution)
        log(f"Wrote the demo dataset {data}")
    log(f"Training {kimg:g} kimg or {minutes:g} minutes, whichever comes first")
    opts = TrainOptions(outdir=os.path.join(outdir, "runs"), data=data, kimg=kimg,
                        tick=min(DEMO_TICK, kimg), snap=5, **DEMO_OPTIONS)
    run_dir = train(opts, log=log, deadline=deadline)
    done = _trained_kimg(run_dir)
    grids = sorted(glob.glob(os.path.join(run_dir, "fakes0*.png")))
    snaps = sorted(glob.glob(os.path.join(run_dir, "network-snapshot-*.keras")))
    took = time.time() - t0
    if done + 1e-9 >= kimg:
        log(f"Stopped at the kimg bound: trained all {done:g} kimg; the demo took {took:.0f} s "
            f"(time bound {minutes:g} min)")
    else:
        log(f"Stopped at the time bound ({minutes:g} min): trained {done:g} of {kimg:g} kimg; "
            f"the demo took {took:.0f} s (--minutes raises the bound)")
    log(f"Run directory:      {run_dir}")
    log(f"Training images:    {os.path.join(run_dir, 'reals.png')}")
    log(f"Samples before:     {os.path.join(run_dir, 'fakes_init.png')}")
    log(f"Samples after:      {grids[-1] if grids else '-'}")
    log(f"G_ema snapshot:     {snaps[-1] if snaps else '-'}")
    log(f"TensorBoard logs:   tensorboard --logdir {os.path.join(run_dir, 'logs')}")
    log(f"Generate more:      sg3keras generate --network {run_dir} --seeds 0-15 --grid "
        f"--outdir {os.path.join(outdir, 'generated')}")
    return run_dir


def _trained_kimg(run_dir):
    """kimg of the run's newest checkpoint (its last tick end)."""
    import json
    with open(os.path.join(run_dir, "checkpoints", "latest.json")) as f:
        return round(float(json.load(f)["kimg"]), 3)
