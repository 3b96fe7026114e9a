"""Regenerate the pictures of README.md and docs/GUIDE.md in docs/images (not part of the package).

Usage: python docs/make_readme_images.py [--network NET] [--outdir docs/images]
(the demo's before/after grids come from ``make demo``).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_readme_images(outdir="docs/images", network=None, resolution=32, seed=0):
    """Write the documentation pictures: layer schedules (-t/-r 1024), an equivariance map, a
    texture-sticking average and spectrum slices (demo dataset vs generator).

    ``network``: a ``.keras`` / ``.pkl`` / run directory; default a freshly initialised
    ``resolution``-px stylegan3-t whose magnitude EMAs are calibrated by one update (its images
    are low-contrast, so the image panels are contrast-stretched). Returns the written paths.
    """
    import os
    import shutil
    import tempfile

    import numpy as np

    from sg3keras.tools import eqmap, layers_plot, spectra, sticking

    os.makedirs(outdir, exist_ok=True)
    paths = []
    for name in ("stylegan3-t", "stylegan3-r"):
        cfg = layers_plot.resolve_config(name, img_resolution=1024)
        paths.append(layers_plot.plot_layer_schedule(
            cfg, os.path.join(outdir, f"layers-{name}-1024.png"), dpi=80))
    if network is not None:
        from sg3keras.networks.loading import load_network
        G, auto, label = load_network(network), False, "generator"
    else:
        from sg3keras.models.generator import Generator
        G = Generator.from_preset("stylegan3-t", img_resolution=resolution, channel_base=1024,
                                  channel_max=64, z_dim=32, w_dim=32, seed=seed,
                                  magnitude_ema_beta=0.0)
        G(np.random.RandomState(123).randn(16, 32).astype(np.float32), update_emas=True)
        auto, label = True, "random-init G"
    tmp = tempfile.mkdtemp()
    try:
        res = eqmap.equivariance_maps(G, tmp, seed=seed, auto_contrast=auto)
        shutil.copyfile(res["paths"][-1], os.path.join(outdir, "eqmap.png"))
        res = sticking.write_sticking(G, tmp, seed=seed, num=64, auto_contrast=auto)
        shutil.copyfile(res["paths"][0], os.path.join(outdir, "sticking-average.png"))
        paths += [os.path.join(outdir, "eqmap.png"), os.path.join(outdir, "sticking-average.png")]
        curves = {}
        from sg3keras.data.demo import make_demo_dataset
        data = os.path.join(tmp, "demo.zip")
        make_demo_dataset(data, resolution=int(G.img_resolution), num_images=256, seed=seed)
        curves["demo dataset"] = spectra.write_spectra(data, tmp, "data")["paths"][0]
        curves[label] = spectra.write_spectra(G, tmp, "gen", num=64)["paths"][0]
        paths.append(spectra.plot_slices(curves, os.path.join(outdir, "spectrum-slices.png"),
                                         dpi=80))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for path in paths:
        os.chmod(path, 0o644)             # atomic writes create 0600 files; docs are public
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default=None, help=".keras / .pkl / run directory "
                    "(default: a fresh 32-px stylegan3-t)")
    ap.add_argument("--outdir", default="docs/images")
    a = ap.parse_args()
    for path in make_readme_images(a.outdir, a.network):
        print(path)
