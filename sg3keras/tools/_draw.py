"""Shared helpers of the visual tools: image panels with caption strips, and generator calls.

Image panels use PIL only; the line/heat-map plots (spectra, layer schedule) use matplotlib
(imported lazily through :func:`pyplot`). Images handed around are numpy arrays:
float images in [-1, 1] ``[H, W, C]`` from the generator, uint8 ``[H, W, 3]`` panels for output.
"""

import contextlib
import io

import numpy as np

from sg3keras.inference.generate import check_class
from sg3keras.utils import atomic_write_bytes, save_png, z_from_seed

__all__ = ["panel", "display_range", "heat_panel", "upscale", "hstack", "vstack", "caption",
           "write_panels", "default_scale", "labels_for", "ws_from_seeds", "synthesize",
           "input_transform", "saved_transform", "pyplot", "save_figure"]

_BG = 255          # caption strip background (white)
_GAP = 200         # colour of the gaps between panels (light grey)
_FG = (0, 0, 0)    # caption text colour


# ---------------------------------------------------------------------------------------------
# Panels.

def panel(img, lo=-1.0, hi=1.0):
    """Float ``[H, W, C]`` image with values in ``[lo, hi]`` -> uint8 RGB ``[H, W, 3]``."""
    x = np.asarray(img, np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] not in (1, 3):
        raise ValueError(f"panel: expected an [H, W, 1|3] image, got shape {x.shape}")
    x = np.clip((x - lo) / (hi - lo) * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def display_range(img, auto=False):
    """``(lo, hi)`` mapped to black / white: ``(-1, 1)``, or the 1st/99th percentiles if ``auto``.

    ``auto`` helps with low-contrast (e.g. freshly initialised) networks; use the same range for
    every panel that is compared.
    """
    if not auto:
        return -1.0, 1.0
    lo, hi = np.percentile(np.asarray(img, np.float64), [1, 99])
    return float(lo), float(max(hi, lo + 1e-6))


def heat_panel(values, vmax):
    """Non-negative ``[H, W]`` map -> uint8 RGB heat colours (black, red, yellow, white at vmax)."""
    t = np.clip(np.asarray(values, np.float64) / max(float(vmax), 1e-12), 0, 1) * 3
    rgb = np.stack([np.clip(t, 0, 1), np.clip(t - 1, 0, 1), np.clip(t - 2, 0, 1)], axis=-1)
    return (rgb * 255 + 0.5).astype(np.uint8)


def default_scale(resolution, target=192):
    """Integer nearest-neighbour zoom so that a ``resolution`` image is about ``target`` px."""
    return max(1, int(target) // int(resolution))


def upscale(img, factor):
    """Nearest-neighbour zoom of an ``[H, W, C]`` array by an integer ``factor``."""
    factor = int(factor)
    if factor <= 1:
        return np.asarray(img)
    return np.repeat(np.repeat(np.asarray(img), factor, axis=0), factor, axis=1)


def _stack(images, axis, gap):
    """Concatenate uint8 RGB images along ``axis`` (0: rows, 1: columns), aligned at the start
    of the other axis, with ``gap`` grey pixels between."""
    other = 1 - axis
    size = [0, 0]
    size[other] = max(im.shape[other] for im in images)
    size[axis] = sum(im.shape[axis] for im in images) + gap * (len(images) - 1)
    out = np.full(size + [3], _GAP, np.uint8)
    pos = 0
    for im in images:
        idx = [slice(None), slice(None)]
        idx[axis] = slice(pos, pos + im.shape[axis])
        idx[other] = slice(0, im.shape[other])
        out[tuple(idx)] = im
        pos += im.shape[axis] + gap
    return out


def hstack(images, gap=4):
    """Place uint8 RGB images side by side (top-aligned) with ``gap`` grey px between."""
    return _stack(images, 1, gap)


def vstack(images, gap=4):
    """Stack uint8 RGB images vertically (left-aligned) with ``gap`` grey px between."""
    return _stack(images, 0, gap)


def _font(size):
    from PIL import ImageFont
    with contextlib.suppress(TypeError, OSError, AttributeError):
        return ImageFont.load_default(size=size)      # Pillow >= 10.1 (scalable font)
    return ImageFont.load_default()


def caption(img, lines, size=12, pad=3):
    """Append a white strip with ``lines`` of black text under a uint8 RGB image.

    Text wider than the image is allowed: the strip (and the image canvas) grows to fit it.
    """
    from PIL import Image, ImageDraw

    lines = [lines] if isinstance(lines, str) else list(lines)
    font = _font(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [probe.textbbox((0, 0), s, font=font) for s in lines]
    line_h = max([b[3] - b[1] for b in boxes] + [size]) + 2
    text_w = max([b[2] - b[0] for b in boxes] + [0]) + 2 * pad
    h, w = img.shape[:2]
    canvas = Image.new("RGB", (max(w, text_w), h + line_h * len(lines) + 2 * pad), (_BG,) * 3)
    canvas.paste(Image.fromarray(np.ascontiguousarray(img)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, s in enumerate(lines):
        draw.text((pad, h + pad + i * line_h), s, fill=_FG, font=font)
    return np.asarray(canvas)


def write_panels(path, panels, titles, lines=(), scale=1, gap=4):
    """Zoom each panel, caption it with its title, place them side by side, add ``lines``.

    Writes ``path`` (PNG, atomically) and returns the final uint8 image.
    """
    tiles = [caption(upscale(p, scale), t) for p, t in zip(panels, titles)]
    image = hstack(tiles, gap=gap)
    if lines:
        image = caption(image, lines)
    save_png(path, image)
    return image


def pyplot():
    """``matplotlib.pyplot`` with the non-interactive Agg backend, or one clear error."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("plots need matplotlib; install with `pip install matplotlib` "
                           "(or `pip install sg3keras[viz]`)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi=100):
    """Save a matplotlib figure as PNG atomically and close it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


# ---------------------------------------------------------------------------------------------
# Generator calls shared by the tools (official ``gen_images.py`` / ``gen_video.py`` semantics).

def labels_for(G, n, class_idx=None):
    """``None`` for unconditional ``G`` (``class_idx`` ignored); else ``n`` one-hot rows of
    ``class_idx`` (required, :func:`sg3keras.inference.generate.check_class`)."""
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    if c_dim == 0:
        return None
    class_idx = check_class(G, class_idx)
    c = np.zeros([n, c_dim], np.float32)
    c[:, int(class_idx)] = 1
    return c


def ws_from_seeds(G, seeds, truncation_psi=1.0, class_idx=None):
    """``ws [len(seeds), num_ws, w_dim]`` (numpy) of ``RandomState(seed).randn(z_dim)`` latents."""
    seeds = [int(s) for s in seeds]
    z = np.concatenate([z_from_seed(s, G.z_dim) for s in seeds])
    ws = G.mapping(z, labels_for(G, len(seeds), class_idx), truncation_psi=truncation_psi)
    return np.asarray(ws, np.float32)


def synthesize(G, ws, batch_size=8):
    """``G.synthesize(ws, batch_size)``: float32 numpy NHWC, ``noise_mode='const'``."""
    return G.synthesize(ws, batch_size=batch_size, noise_mode="const")


def input_transform(G, what="this tool"):
    """The input-transform variable (``[3, 3]``) of ``G``, or one clear error naming ``what``."""
    return G.require_input_transform(what)


@contextlib.contextmanager
def saved_transform(G, what="this tool"):
    """Yield the input-transform variable; restore its value on exit (also on error)."""
    var = input_transform(G, what)
    saved = np.array(var.numpy(), np.float32)
    try:
        yield var
    finally:
        var.assign(saved)
