"""Images from a generator with the official ``gen_images.py`` semantics."""

import os
import sys

import numpy as np

from sg3keras.utils import make_grid, save_png, to_uint8, z_from_seed

__all__ = ["generate_images", "write_images", "check_class", "default_batch_size"]


def check_class(G, class_idx):
    """The ``--class`` for ``G``: required and in ``0..c_dim-1`` for a conditional network;
    ignored (with a warning on stderr, returns None) for an unconditional one."""
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    if c_dim > 0:
        if class_idx is None:
            raise ValueError(f"--class is required: the network is conditional (c_dim={c_dim}); "
                             f"expected --class 0..{c_dim - 1}")
        if not 0 <= int(class_idx) < c_dim:
            raise ValueError(f"--class={class_idx}: expected 0..{c_dim - 1} (the network has "
                             f"c_dim={c_dim})")
        return int(class_idx)
    if class_idx is not None:
        print(f"warning: --class={class_idx} ignored, the network is unconditional",
              file=sys.stderr)
    return None


def default_batch_size(resolution):
    """Images per generator call: 8 at 256 px and below, scaled by the pixel count above
    (2 at 512, 1 at 1024). A 1024-px stylegan3-r image peaks at ~7 GB of activations in eager
    mode, so batching them would not fit a 16 GB machine; at 256 px 8 images need ~6 GB."""
    return max(1, min(8, (8 * 256 * 256) // (int(resolution) ** 2)))


def generate_images(G, seeds, truncation_psi=1.0, class_idx=None, translate=(0.0, 0.0),
                    rotate=0.0, noise_mode="const", batch_size=None):
    """uint8 ``[len(seeds), H, W, C]`` images, one per seed, ``batch_size`` per call (default:
    :func:`default_batch_size` of the network's resolution).

    ``z = RandomState(seed).randn(1, z_dim)`` as the official tool; the input transform is set to
    the inverse of ``[[cos a, sin a, tx], [-sin a, cos a, ty], [0, 0, 1]]`` (a in degrees) and
    restored afterwards; conditional networks need ``class_idx`` (one-hot label).
    """
    class_idx = check_class(G, class_idx)
    has_transform = G.has_input_transform
    if not has_transform and (tuple(translate) != (0.0, 0.0) or rotate != 0):
        raise ValueError("--translate/--rotate need a StyleGAN3 network (it has an input transform)")
    saved = np.asarray(G.input_transform.numpy()) if has_transform else None
    try:
        if has_transform:
            G.set_transform(translate=translate, rotate=rotate)
        seeds = list(seeds)
        z = np.concatenate([z_from_seed(s, G.z_dim) for s in seeds]) if seeds else \
            np.zeros([0, G.z_dim], np.float32)
        c = None
        if G.c_dim > 0:
            c = np.zeros([len(seeds), G.c_dim], np.float32)
            c[:, int(class_idx)] = 1
        images = G.generate(z, c, batch_size=batch_size or default_batch_size(G.img_resolution),
                            truncation_psi=float(truncation_psi), noise_mode=noise_mode)
    finally:
        if saved is not None:
            G.input_transform.assign(saved)
    return to_uint8(images)


def write_images(images, seeds, outdir, grid=False):
    """``seed%04d.png`` per image (official names), or one ``grid.png``. Returns the paths."""
    os.makedirs(outdir, exist_ok=True)
    if grid:
        path = os.path.join(outdir, "grid.png")
        save_png(path, make_grid(images))
        return [path]
    paths = []
    for img, seed in zip(images, seeds):
        path = os.path.join(outdir, f"seed{seed:04d}.png")
        save_png(path, img)
        paths.append(path)
    return paths
