"""Equivariance maps: where does a generator fail to follow a translation / rotation?

For one latent, the StyleGAN3 input transform is set to an integer translation, a fractional
translation and a rotation in turn. Each transformed output is compared with the untransformed
output moved by the same amount in pixel space, with exactly the operators, masks and PSNR of
the EQ-T / EQ-T_frac / EQ-R metrics (:mod:`sg3keras.metrics.equivariance`, Appendix E). One
PNG per case shows, side by side: the original ``G(z)``; the output with the moved input (for
rotation: after the metric's band-limiting pseudo-rotation); the reference (the original moved
by the pixel-space operator); and the masked ``|error|`` as a heat map. An equivariant
generator makes the middle two identical and the error map black.
"""

import math
import os

import numpy as np

from sg3keras.tools._draw import (default_scale, display_range, heat_panel, panel,
                                  saved_transform, synthesize, vstack, write_panels, ws_from_seeds)
from sg3keras.utils import save_png

__all__ = ["equivariance_case", "equivariance_maps"]

_NAMES = {"int": "EQ-T (integer translation)", "frac": "EQ-T_frac (fractional translation)",
          "rot": "EQ-R (rotation)"}
_MASKED = np.array([70, 70, 110], np.uint8)     # colour of pixels outside the metric's mask


def equivariance_case(G, ws, kind, param):
    """Compare ``G`` under one input transform with the pixel-space operator; one latent batch.

    Args:
        G: StyleGAN3-like network (``synthesis.input.transform``); ws: ``[N, num_ws, w_dim]``.
        kind: ``"int"``, ``"frac"`` (``param = (tx, ty)`` in image widths; ``"int"`` rounds to
            whole pixels) or ``"rot"`` (``param`` = angle in degrees).

    Returns:
        dict ``orig``, ``img``, ``ref``, ``mask`` (``[N, H, W, C]`` float32), ``param`` as used
        by the metric (pixel-rounded shift, or radians), ``psnr`` (dB, peak 2, masked).
    """
    # The metric's operators import TensorFlow: imported here, so that importing this module
    # (the CLI reads its defaults) stays cheap.
    from sg3keras.metrics.equivariance import equivariance_terms, psnr_from_sums, rotation_matrix
    res = int(G.img_resolution)
    eye = np.eye(3, dtype=np.float32)
    with saved_transform(G, "eqmap") as var:
        var.assign(eye)
        orig = synthesize(G, ws)
        m = eye.copy()
        if kind in ("int", "frac"):
            t = np.asarray(param, np.float32).reshape(2)
            if kind == "int":
                t = (np.rint(t * np.float32(res)) / np.float32(res)).astype(np.float32)
            m[:2, 2] = -t
            used = (float(t[0]), float(t[1]))
        elif kind == "rot":
            used = float(np.float32(math.radians(float(param))))
            m = rotation_matrix(-used).astype(np.float32)
        else:
            raise ValueError(f"kind: expected 'int', 'frac' or 'rot', got {kind!r}")
        var.assign(m)
        img = synthesize(G, ws)
    terms = equivariance_terms(kind, orig, img, used)
    return dict(orig=orig, img=terms["img"], ref=terms["ref"], mask=terms["mask"], param=used,
                psnr=psnr_from_sums(terms["sq_sum"], terms["mask_sum"]))


def _describe(kind, param, res):
    if kind == "rot":
        return f"rotate {math.degrees(param):+.1f} deg"
    return f"translate ({param[0] * res:+.2f}, {param[1] * res:+.2f}) px"


def equivariance_maps(G, outdir, seed=0, translate_int=(0.125, -0.0625),
                      translate_frac=(0.0917, 0.0339), rotate_deg=30.0, truncation_psi=1.0,
                      class_idx=None, scale=None, err_max=0.25, cases=("int", "frac", "rot"),
                      auto_contrast=False):
    """Write ``eqmap-int.png``, ``eqmap-frac.png``, ``eqmap-rot.png`` and ``eqmap.png`` (all).

    Args:
        G: StyleGAN3 network; outdir: output folder; seed: latent ``RandomState(seed)``.
        translate_int, translate_frac: ``(tx, ty)`` in image widths (the integer case is rounded
            to whole pixels); rotate_deg: rotation angle in degrees.
        scale: integer zoom of the panels (default: about 192 px); err_max: ``|error|`` shown as
            white (errors are averaged over channels); cases: subset of the three;
            auto_contrast: stretch the image panels to the original's 1-99 % range (display
            only; the PSNR is unaffected).

    Returns:
        dict ``psnr`` ({kind: dB}) and ``paths``.
    """
    res = int(G.img_resolution)
    scale = default_scale(res) if scale is None else int(scale)
    params = {"int": translate_int, "frac": translate_frac, "rot": rotate_deg}
    ws = ws_from_seeds(G, [seed], truncation_psi, class_idx)
    psnrs, paths, rows = {}, [], []
    for kind in cases:
        if kind not in params:
            raise ValueError(f"cases: expected a subset of {tuple(params)}, got {kind!r}")
        r = equivariance_case(G, ws, kind, params[kind])
        mask = r["mask"][0].min(axis=-1) > 0
        err = np.abs(r["ref"][0] - r["img"][0]).mean(axis=-1) * mask
        heat = heat_panel(err, err_max)
        heat[~mask] = _MASKED
        lo, hi = display_range(r["orig"][0], auto_contrast)
        moved = "rotated" if kind == "rot" else "moved"
        second = "input rotated (+filter)" if kind == "rot" else "input moved"
        path = os.path.join(outdir, f"eqmap-{kind}.png")
        image = write_panels(
            path, [panel(r["orig"][0], lo, hi), panel(r["img"][0], lo, hi),
                   panel(r["ref"][0], lo, hi), heat],
            ["G(z)", second, f"G(z) {moved} in pixels", f"|error| (white={err_max:g})"],
            lines=[f"{_NAMES[kind]}: {_describe(kind, r['param'], res)}, seed {seed}",
                   f"PSNR {r['psnr']:.2f} dB (peak 2, masked; outside mask shaded)"],
            scale=scale)
        psnrs[kind] = r["psnr"]
        paths.append(path)
        rows.append(image)
    if rows:
        path = os.path.join(outdir, "eqmap.png")
        save_png(path, vstack(rows, gap=8))
        paths.append(path)
    return dict(psnr=psnrs, paths=paths)
