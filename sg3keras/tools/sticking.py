"""Texture-sticking diagnostics of the Alias-Free GAN paper (Karras et al. 2021, Figure 1).

(a) Neighbourhood average: the mean of many images whose latents are small perturbations of a
central latent. Details that move with the latent (as they should) blur out; details glued to
pixel coordinates stay sharp. :func:`high_frequency_energy` turns "sharp" into a number.
(b) Interpolation strip: a short vertical column of pixels from every frame of a latent
interpolation, placed side by side. Content that moves gives slanted / wavy structures;
content stuck to the pixel grid gives horizontal streaks.
"""

import os

import numpy as np

from sg3keras.tools._draw import (caption, default_scale, display_range, labels_for, panel,
                                  synthesize, upscale, write_panels, ws_from_seeds)
from sg3keras.utils import save_png, z_from_seed

__all__ = ["neighbourhood_average", "high_frequency_energy", "interpolation_strip",
           "write_sticking"]


def neighbourhood_average(G, seed, num=64, radius=0.2, space="z", truncation_psi=1.0,
                          class_idx=None, batch_size=8):
    """Average of ``num`` images generated from a small neighbourhood of a central latent.

    Steps:
        1. Central ``z_c = RandomState(seed).randn(z_dim)``; ``num`` Gaussian draws ``n_i``
           (stream ``default_rng([seed, 1])``, independent of ``z_c``).
        2. ``space="z"``: ``z_i = z_c + radius n_i`` and ``w_i = mapping(z_i, psi)``;
           ``space="w"``: ``w_i = lerp(w_c, mapping(n_i, psi), radius)`` (a step of ``radius``
           from ``w_c`` towards a random ``w``).
        3. ``G.synthesis(w_i)`` and the mean over ``i`` (float, no quantisation).

    Returns:
        ``(average, central)`` float32 ``[H, W, C]`` images in the generator's range.
    """
    if int(num) < 1:
        raise ValueError(f"num: expected >= 1, got {num}")
    if space not in ("z", "w"):
        raise ValueError(f"space: expected 'z' or 'w', got {space!r}")
    z_c = z_from_seed(seed, G.z_dim)
    noise = np.random.default_rng([int(seed), 1]).standard_normal(
        [int(num), int(G.z_dim)]).astype(np.float32)
    c = labels_for(G, int(num), class_idx)
    w_c = ws_from_seeds(G, [seed], truncation_psi, class_idx)
    if space == "z":
        ws = np.asarray(G.mapping(z_c + radius * noise, c, truncation_psi=truncation_psi))
    else:
        w_rand = np.asarray(G.mapping(noise, c, truncation_psi=truncation_psi))
        ws = w_c + radius * (w_rand - w_c)
    total = None
    for start in range(0, int(num), int(batch_size)):
        imgs = synthesize(G, ws[start:start + batch_size], batch_size).astype(np.float64)
        total = imgs.sum(axis=0) if total is None else total + imgs.sum(axis=0)
    central = synthesize(G, w_c, 1)[0]
    return (total / int(num)).astype(np.float32), central


def high_frequency_energy(image, cutoff=0.25):
    """Mean squared value of ``image`` high-passed above ``cutoff`` cycles/pixel (radial).

    Steps: remove each channel's mean; 2-D FFT per channel; keep the frequencies with
    ``sqrt(fx^2 + fy^2) > cutoff`` (Nyquist = 0.5); by Parseval, return
    ``sum |X|^2 / (H W)^2`` averaged over channels, i.e. the energy per pixel of that band.

    Args:
        image: ``[H, W]`` or ``[H, W, C]`` float array; cutoff: in cycles per pixel.
    """
    x = np.asarray(image, np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"high_frequency_energy: expected [H, W(, C)], got shape {x.shape}")
    h, w, _ = x.shape
    x = x - x.mean(axis=(0, 1), keepdims=True)
    power = np.abs(np.fft.fft2(x, axes=(0, 1))) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    keep = np.sqrt(fx ** 2 + fy ** 2) > cutoff
    return float((power * keep[:, :, None]).sum(axis=(0, 1)).mean() / (h * w) ** 2)


def interpolation_strip(G, seeds, frames=64, column=None, width=1, truncation_psi=1.0,
                        class_idx=None, batch_size=8):
    """Columns ``[column, column + width)`` of each frame of a latent interpolation, side by side.

    The ``frames`` frames interpolate linearly in W through the seeds' latents in order
    (``len(seeds) >= 2``); ``column`` defaults to the image centre.

    Returns:
        float32 ``[H, frames * width, C]``.
    """
    seeds = list(seeds)
    if len(seeds) < 2 or int(frames) < 2:
        raise ValueError(f"interpolation_strip: need >= 2 seeds and frames, got {seeds!r}, "
                         f"{frames}")
    res = int(G.img_resolution)
    width = int(width)
    column = (res - width) // 2 if column is None else int(column)
    if width < 1 or column < 0 or column + width > res:
        raise ValueError(f"column={column}, width={width}: must lie inside 0..{res}")
    keys = ws_from_seeds(G, seeds, truncation_psi, class_idx).astype(np.float64)
    t = np.linspace(0, len(seeds) - 1, int(frames))
    i0 = np.minimum(np.floor(t).astype(int), len(seeds) - 2)
    frac = (t - i0)[:, None, None]
    ws = ((1 - frac) * keys[i0] + frac * keys[i0 + 1]).astype(np.float32)
    cols = synthesize(G, ws, batch_size)[:, :, column:column + width, :]   # [F, H, width, C]
    return np.concatenate(list(cols), axis=1)


def write_sticking(G, outdir, seed=0, seeds=None, num=64, radius=0.2, space="z", frames=64,
                   width=2, truncation_psi=1.0, class_idx=None, scale=None, cutoff=0.25,
                   auto_contrast=False):
    """Write ``sticking-average.png`` and ``sticking-strip.png`` into ``outdir``.

    The first shows the central image beside the neighbourhood average (with the
    high-frequency energy of both in the caption), the second the interpolation strip through
    ``seeds`` (default ``[seed, seed + 1, seed + 2]``). ``auto_contrast`` stretches the
    display to the central image's 1-99 % range (the energies are unaffected).

    Returns:
        dict with ``paths``, ``hf_average``, ``hf_central`` (see :func:`high_frequency_energy`).
    """
    res = int(G.img_resolution)
    scale = default_scale(res) if scale is None else int(scale)
    avg, central = neighbourhood_average(G, seed, num, radius, space, truncation_psi, class_idx)
    hf_avg, hf_c = high_frequency_energy(avg, cutoff), high_frequency_energy(central, cutoff)
    p_avg = os.path.join(outdir, "sticking-average.png")
    lo, hi = display_range(central, auto_contrast)
    write_panels(p_avg, [panel(central, lo, hi), panel(avg, lo, hi)],
                 [f"seed {seed}", f"average of {num} ({space}, r={radius:g})"],
                 lines=[f"high-freq energy (>{cutoff:g} cyc/px): central {hf_c:.2e}, "
                        f"average {hf_avg:.2e}, ratio {hf_avg / max(hf_c, 1e-30):.3f}",
                        "sharp average = details stick to pixel coordinates"], scale=scale)
    seeds = [seed, seed + 1, seed + 2] if seeds is None else list(seeds)
    strip = interpolation_strip(G, seeds, frames, None, width, truncation_psi, class_idx)
    zoom = max(1, min(192 // res, 1024 // strip.shape[1]))
    p_strip = os.path.join(outdir, "sticking-strip.png")
    save_png(p_strip, caption(upscale(panel(strip, lo, hi), zoom),
                              [f"centre columns ({width} px) over {frames} frames, seeds "
                               f"{','.join(map(str, seeds))}",
                               "horizontal streaks = texture sticking"]))
    return dict(paths=[p_avg, p_strip], hf_average=hf_avg, hf_central=hf_c)
