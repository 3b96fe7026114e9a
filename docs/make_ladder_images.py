"""The ladder's pictures in docs/images (not part of the package): the layer schedules of
configs E, G and T side by side, and one equivariance-map row pair (fractional translation,
rotation) per step B ... R.

Usage: python docs/make_ladder_images.py [--runs DIR] [--outdir docs/images]

``--runs``: the ``--workdir`` of ``bench/ladder.py``; each step's maps then show its trained
G_ema (``runs-<letter>-seed0``). Without it, freshly initialised 32-px networks are used.
"""

import argparse
import glob
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _hstack(paths, out):
    from PIL import Image
    ims = [Image.open(p).convert("RGB") for p in paths]
    h = max(i.height for i in ims)
    canvas = Image.new("RGB", (sum(i.width for i in ims), h), "white")
    x = 0
    for im in ims:
        canvas.paste(im, (x, 0))
        x += im.width
    canvas.save(out)
    return out


def _labelled(path, label):
    """The picture at ``path`` with ``label`` in a strip on its left."""
    from PIL import Image, ImageDraw
    im = Image.open(path).convert("RGB")
    canvas = Image.new("RGB", (im.width + 90, im.height), "white")
    canvas.paste(im, (90, 0))
    ImageDraw.Draw(canvas).text((8, im.height // 2 - 6), label, fill="black")
    return canvas


def schedules(outdir, resolution=256):
    from sg3keras.tools import layers_plot
    tmp = tempfile.mkdtemp()
    try:
        parts = [layers_plot.plot_layer_schedule(
            layers_plot.resolve_config(f"config-{x}", img_resolution=resolution),
            os.path.join(tmp, f"{x}.png"), dpi=60) for x in "egt"]
        return _hstack(parts, os.path.join(outdir, "ladder-schedules-e-g-t.png"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _network(letter, runs):
    if runs:
        snaps = sorted(glob.glob(os.path.join(runs, f"runs-{letter}-seed0", "*",
                                              "network-snapshot-*.keras")))
        if snaps:
            from sg3keras.networks.loading import load_network
            return load_network(snaps[-1]), "trained"
    from sg3keras.models.base import GeneratorBase
    return GeneratorBase.from_preset(f"config-{letter}", img_resolution=32, cbase=2048,
                                     cmax=64), "initialised"


def eqmaps(outdir, runs=None, seed=0):
    from PIL import Image

    from sg3keras.tools.eqmap import equivariance_maps
    tmp = tempfile.mkdtemp()
    rows = []
    try:
        for x in "bcdefghtr":
            G, how = _network(x, runs)
            res = equivariance_maps(G, tmp, seed=seed, cases=("frac", "rot"), scale=3,
                                    auto_contrast=True)
            rows.append(_labelled(res["paths"][-1], f"config-{x.upper()}\n({how})"))
        out = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 6 for r in rows)),
                        "white")
        y = 0
        for r in rows:
            out.paste(r, (0, y))
            y += r.height + 6
        path = os.path.join(outdir, "ladder-eqmaps.png")
        out.save(path)
        return path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=None)
    ap.add_argument("--outdir", default="docs/images")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    for p in (schedules(a.outdir), eqmaps(a.outdir, a.runs)):
        os.chmod(p, 0o644)
        print(p)
