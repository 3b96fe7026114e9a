"""``make demo``: train a tiny StyleGAN3-T on a bundled image set for a few minutes.

The data are random 32x32 crops of photographs that ship inside the scikit-image wheel (see
:mod:`sg3keras.data.demo` for the images and their licences), written in the official dataset
format. The run uses the real training loop (``sg3keras train``) with a small network, then writes
a before/after sample grid, a ``.keras`` snapshot and TensorBoard logs.
"""

import glob
import os
import time

__all__ = ["run_demo", "DEMO_OPTIONS"]

# A small network that visibly learns colours and coarse structure within minutes on 2 cores.
DEMO_OPTIONS = dict(cfg="stylegan3-t", gpus=1, batch=16, gamma=0.05, cbase=2048, cmax=64,
                    map_depth=2, mbstd_group=4, aug="noaug", glr=0.0025, dlr=0.002,
                    seed=0, mirror=True)


def run_demo(outdir="out", minutes=4.0, resolution=32, kimg_per_minute=None, log=print):
    """Build the demo data set, train for about ``minutes``, report through ``log``.

    Returns the run directory."""
    from sg3keras.data.demo import make_demo_dataset
    from sg3keras.training.loop import TrainOptions, train

    os.makedirs(outdir, exist_ok=True)
    data = os.path.join(outdir, f"demo-crops-{resolution}.zip")
    if not os.path.exists(data):
        make_demo_dataset(data, resolution=resolution)
        log(f"Wrote the demo dataset {data}")
    # ~80 s per kimg on 2 CPU cores after ~1 min of tracing and XLA compilation (bench/train.py).
    rate = kimg_per_minute or float(os.environ.get("SG3KERAS_DEMO_KIMG_PER_MIN", 0.6))
    kimg = max(0.2, round(minutes * rate, 1))
    tick = max(0.1, round(kimg / 8, 2))
    opts = TrainOptions(outdir=os.path.join(outdir, "runs"), data=data, kimg=kimg, tick=tick,
                        snap=4, **DEMO_OPTIONS)
    t0 = time.time()
    run_dir = train(opts, log=log)
    grids = sorted(glob.glob(os.path.join(run_dir, "fakes0*.png")))
    snaps = sorted(glob.glob(os.path.join(run_dir, "network-snapshot-*.keras")))
    log(f"Trained {kimg} kimg in {time.time() - t0:.0f} s")
    log(f"Run directory:      {run_dir}")
    log(f"Training images:    {os.path.join(run_dir, 'reals.png')}")
    log(f"Samples before:     {os.path.join(run_dir, 'fakes_init.png')}")
    log(f"Samples after:      {grids[-1] if grids else '-'}")
    log(f"G_ema snapshot:     {snaps[-1] if snaps else '-'}")
    log(f"TensorBoard logs:   tensorboard --logdir {os.path.join(run_dir, 'logs')}")
    log(f"Generate more:      sg3keras generate --network {run_dir} --seeds 0-15 --grid "
        f"--outdir {os.path.join(outdir, 'generated')}")
    return run_dir
