"""Tiny configurations and data shared by the training tests."""

import dataclasses
import os

import numpy as np


def tiny_options(**kw):
    """TrainOptions for a 16-px StyleGAN3-T small enough for CPU tests."""
    from sg3keras.training.loop import TrainOptions
    base = dict(cfg="stylegan3-t", gpus=1, batch=4, gamma=1.0, cbase=256, cmax=16, map_depth=2,
                mbstd_group=2, aug="noaug", kimg=0.008, tick=0.004, snap=2, seed=0,
                fused_ops=False, grid_seeds=4)
    base.update(kw)
    return TrainOptions(**base)


def tiny_gan_config(batch=8, mbstd_group=1, **kw):
    """The resolved config dict of :func:`sg3keras.training.loop.resolve_options`, 16 px, z=w=16."""
    from sg3keras.config import generator_at_resolution
    from sg3keras.training.loop import resolve_options
    cfg = resolve_options(tiny_options(batch=batch, mbstd_group=mbstd_group, **kw))
    g = dataclasses.replace(generator_at_resolution(cfg["generator"], 16), z_dim=16, w_dim=16)
    d = dataclasses.replace(cfg["discriminator"], img_resolution=16)
    cfg.update(generator=g, discriminator=d)
    return cfg


def write_tiny_dataset(path, n=32, resolution=16, seed=0, labels=False):
    """An official-format zip of ``n`` smooth random RGB images (PNG) at ``resolution``."""
    import io
    import json
    import zipfile

    from PIL import Image
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        entries = []
        for i in range(n):
            fx, fy, ph = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 6.28, 3)
            img = np.stack([np.sin(2 * np.pi * (fx * xx + fy * yy) + ph[c]) for c in range(3)], -1)
            img = ((img * 0.5 + 0.5) * 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            name = f"00000/img{i:08d}.png"
            zf.writestr(name, buf.getvalue())
            entries.append([name, i % 3])
        zf.writestr("dataset.json", json.dumps({"labels": entries if labels else None}))
    return os.fspath(path)
