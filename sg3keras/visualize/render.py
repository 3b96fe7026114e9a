"""What ``sg3keras visualize`` draws: one validated request -> one picture and its numbers.

A request (:func:`parse_request`) names a network by its id and every view setting; anything
else, out of range or of the wrong type is a :class:`RequestError` (HTTP 400). :func:`render`
maps the latent (a position on the official visualizer's 2-D seed lattice, dragged
continuously: the w's of the four neighbouring seeds blended bilinearly; truncation psi /
cutoff, style mixing), sets the StyleGAN3 input
transform, runs the synthesis one layer at a time (:meth:`GeneratorBase.layer_outputs`, timing
each) and draws the chosen layer: its channels, their FFT magnitude, or the equivariance map of
the current latent (the EQ-T / EQ-R metric's own operators and PSNR, through
:func:`sg3keras.tools.eqmap.equivariance_case`). The output layer in RGB at zoom 1 is exactly
the image ``sg3keras generate`` writes for the same seed / psi / class / translate / rotate.
"""

import base64
import io
import math
import time

import numpy as np

from sg3keras.utils import to_uint8, z_from_seed

__all__ = ["RequestError", "parse_request", "render", "layer_table", "network_info",
           "seed_weights", "MAX_SIDE", "SELECTIONS", "STEP_Y"]

MAX_SIDE = 2048          # largest picture side a request may ask for (zoom x layer size)
MAX_SEED = 2 ** 31 - 2   # largest x of a latent position (seed_x + 1 is still a seed)
MAX_SEED_Y = 2 ** 24     # largest y: x + 1 + STEP_Y * (y + 1) stays below 2**32 (RandomState)
STEP_Y = 100             # the lattice point (x, y) is seed x + STEP_Y * y (as the official one)
SELECTIONS = ("rgb", "one", "range", "energy")
EQ_KINDS = ("", "int", "frac", "rot")


class RequestError(ValueError):
    """A request the page (or a client) got wrong: its text is the one-line HTTP 400 reply."""


def _number(q, key, kind, lo, hi, default):
    raw = q.get(key, default)
    if isinstance(raw, (list, tuple)):
        raise RequestError(f"{key}: given more than once")
    try:
        value = kind(raw) if kind is not int else int(str(raw), 10)
    except (TypeError, ValueError):
        raise RequestError(f"{key}: expected {'an integer' if kind is int else 'a number'}, "
                           f"got {str(raw)[:40]!r}") from None
    if not (isinstance(value, int) or math.isfinite(value)) or not lo <= value <= hi:
        raise RequestError(f"{key}: expected {lo}..{hi}, got {str(raw)[:40]!r}")
    return value


def _choice(q, key, choices, default):
    raw = q.get(key, default)
    if raw not in choices:
        raise RequestError(f"{key}: expected one of {list(choices)}, got {str(raw)[:40]!r}")
    return raw


KNOWN = {"net", "seed", "seed_y", "psi", "cutoff", "class", "mix_seed", "mix_lo", "mix_hi", "noise", "tx",
         "ty", "rot", "layer", "sel", "ch", "ch_end", "zoom", "fft", "eq", "eq_tx", "eq_ty",
         "eq_rot", "untransform", "client"}


def parse_request(q, nets):
    """The validated settings of query ``q`` (``{key: str}``) for the networks ``nets`` (a list
    of :func:`network_info` dicts); raises :class:`RequestError` naming the bad key."""
    unknown = sorted(set(q) - KNOWN)
    if unknown:
        raise RequestError(f"unknown parameter {unknown[0][:40]!r}; expected some of "
                           f"{sorted(KNOWN)}")
    p = {"net": _number(q, "net", int, 0, len(nets) - 1, 0)}
    info = nets[p["net"]]
    num_ws = info["num_ws"]
    p.update(seed=_number(q, "seed", float, 0, MAX_SEED, 0),
             seed_y=_number(q, "seed_y", float, 0, MAX_SEED_Y, 0),
             psi=_number(q, "psi", float, -2.0, 2.0, 1.0),
             cutoff=_number(q, "cutoff", int, 0, num_ws, num_ws),
             mix_seed=_number(q, "mix_seed", int, 0, MAX_SEED, 0),
             mix_lo=_number(q, "mix_lo", int, 0, num_ws, 0),
             mix_hi=_number(q, "mix_hi", int, 0, num_ws, 0),
             noise=_choice(q, "noise", ("const", "random", "none"), "const"),
             tx=_number(q, "tx", float, -4.0, 4.0, 0.0), ty=_number(q, "ty", float, -4.0, 4.0, 0.0),
             rot=_number(q, "rot", float, -360.0, 360.0, 0.0),
             layer=_choice(q, "layer", [row["name"] for row in info["layers"]], "output"),
             sel=_choice(q, "sel", SELECTIONS, "rgb"), fft=_choice(q, "fft", ("0", "1"), "0"),
             eq=_choice(q, "eq", EQ_KINDS, ""),
             eq_tx=_number(q, "eq_tx", float, -0.5, 0.5, 0.125),
             eq_ty=_number(q, "eq_ty", float, -0.5, 0.5, -0.0625),
             eq_rot=_number(q, "eq_rot", float, -180.0, 180.0, 30.0))
    c_dim = info["c_dim"]
    p["class"] = _number(q, "class", int, 0, c_dim - 1, 0) if c_dim else None
    if c_dim == 0 and "class" in q:
        raise RequestError("class: the network is unconditional (c_dim=0)")
    if not info["has_input_transform"] and (p["tx"], p["ty"], p["rot"]) != (0.0, 0.0, 0.0):
        raise RequestError("tx/ty/rot: the network has no input transform (not StyleGAN3)")
    p["untransform"] = _choice(q, "untransform", ("0", "1"), "0") == "1"
    if p["untransform"] and (p["layer"] != "output" or p["eq"] or p["fft"] == "1"):
        raise RequestError("untransform: applies to the output image only (layer=output, "
                           "no eq, no fft)")
    if (p["eq"] or p["untransform"]) and not info["has_input_transform"]:
        raise RequestError("eq/untransform: need a network with an input transform")
    row = next(r for r in info["layers"] if r["name"] == p["layer"])
    channels = row["channels"]
    p["ch"] = _number(q, "ch", int, 0, channels - 1, 0)
    p["ch_end"] = _number(q, "ch_end", int, p["ch"], channels - 1, p["ch"])
    side = max(row["size"], info["resolution"]) * (3 if p["eq"] else 1)
    p["zoom"] = _number(q, "zoom", int, 1, max(1, MAX_SIDE // side), 1)
    p["fft"] = p["fft"] == "1"
    return p


# ---------------------------------------------------------------------------------------------
# The network's description.

def layer_table(G):
    """One row per stage of the synthesis (``name``, ``size``, ``channels``, and where the
    layer schedule has them ``cutoff``, ``stopband``, ``sampling_rate``), in forward order."""
    schedule = getattr(G.synthesis, "schedule", None)
    res = int(G.img_resolution)
    rows = []
    if schedule is not None:
        s = schedule.input
        rows.append(dict(name="input", size=s.size, channels=s.channels, cutoff=s.bandwidth,
                         stopband=None, sampling_rate=s.sampling_rate))
        for spec in schedule.layers:
            rows.append(dict(name=spec.name, size=spec.out_size, channels=spec.out_channels,
                             cutoff=spec.out_cutoff, stopband=spec.out_stopband,
                             sampling_rate=spec.out_sampling_rate))
    else:
        z = np.zeros([1, G.num_ws, G.w_dim], np.float32)
        for name, x in G.layer_outputs(z):
            if name != "output":
                rows.append(dict(name=name, size=int(x.shape[1]), channels=int(x.shape[-1]),
                                 cutoff=None, stopband=None, sampling_rate=None))
    rows.append(dict(name="output", size=res, channels=int(G.img_channels), cutoff=None,
                     stopband=None, sampling_rate=None))
    return rows


def network_info(G, ref):
    """What the page needs to know of ``G`` (loaded from ``ref``) to build its controls."""
    return dict(ref=str(ref), resolution=int(G.img_resolution), num_ws=int(G.num_ws),
                c_dim=int(G.c_dim), has_noise=bool(G.has_noise),
                has_input_transform=bool(G.has_input_transform), layers=layer_table(G))


# ---------------------------------------------------------------------------------------------
# Rendering.

def _ws(G, seed, psi, cutoff, class_idx):
    c = None
    if G.c_dim:
        c = np.zeros([1, G.c_dim], np.float32)
        c[0, class_idx] = 1
    cutoff = None if cutoff >= G.num_ws else cutoff
    return np.array(G.mapping(z_from_seed(seed, G.z_dim), c, truncation_psi=psi,
                              truncation_cutoff=cutoff), np.float32)


def seed_weights(x, y=0.0):
    """``[(seed, weight)]``: the lattice points around latent position ``(x, y)`` with a
    nonzero bilinear weight; the point ``(i, j)`` is seed ``i + STEP_Y * j``. An integer
    position is one seed with weight 1."""
    i, j = math.floor(x), math.floor(y)
    fx, fy = x - i, y - j
    out = []
    for di, wx in ((0, 1.0 - fx), (1, fx)):
        for dj, wy in ((0, 1.0 - fy), (1, fy)):
            if wx * wy > 0:
                out.append((int(i + di + STEP_Y * (j + dj)), wx * wy))
    return out


def position_seed(p):
    """The seed of the request's latent position, or None between lattice points."""
    if p["seed"] != int(p["seed"]) or p["seed_y"] != int(p["seed_y"]):
        return None
    return int(p["seed"]) + STEP_Y * int(p["seed_y"])


def latent_ws(G, p):
    """The ws of the request: the w's of the seeds around its latent position blended
    bilinearly (:func:`seed_weights`; truncation is linear, so blending truncated w's is
    truncating the blend), with the mixing seed's ws at ``mix_lo:mix_hi``."""
    parts = [(_ws(G, s, p["psi"], p["cutoff"], p["class"]), wt)
             for s, wt in seed_weights(p["seed"], p["seed_y"])]
    if len(parts) == 1:
        ws = parts[0][0]
    else:
        ws = sum(w.astype(np.float64) * wt for w, wt in parts).astype(np.float32)
    if p["mix_hi"] > p["mix_lo"]:
        mix = _ws(G, p["mix_seed"], p["psi"], p["cutoff"], p["class"])
        ws[:, p["mix_lo"]:p["mix_hi"]] = mix[:, p["mix_lo"]:p["mix_hi"]]
    return ws


def _run_layers(G, ws, noise, want):
    """``(outputs of layer ``want`` and of "output" as numpy, {name: ms})``."""
    times, picked, t0 = {}, None, time.perf_counter()
    for name, x in G.layer_outputs(ws, noise_mode=noise):
        x = np.asarray(x, np.float32)
        t1 = time.perf_counter()
        times[name], t0 = round((t1 - t0) * 1000, 2), t1
        if name == want:
            picked = x
        last = x
    return picked, last, times


def _heat(values, vmax):
    t = np.clip(np.asarray(values, np.float64) / max(float(vmax), 1e-12), 0, 1) * 3
    rgb = np.stack([np.clip(t, 0, 1), np.clip(t - 1, 0, 1), np.clip(t - 2, 0, 1)], axis=-1)
    return (rgb * 255 + 0.5).astype(np.uint8)


def _gray(x):
    return np.repeat(np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def channel_view(x, p, is_output):
    """uint8 RGB ``[H, W, 3]`` of one layer's ``[H, W, C]`` activations: ``rgb`` (the output's
    official quantisation; inside: channels ch..ch+2 scaled by their largest magnitude),
    ``one`` (channel ch), ``range`` (mean of ch..ch_end), ``energy`` (RMS of all channels)."""
    c = x.shape[-1]
    if p["sel"] == "rgb":
        if is_output and c == 3 and p["ch"] == 0:
            return to_uint8(x)
        idx = [min(p["ch"] + k, c - 1) for k in range(3)]
        y = x[:, :, idx]
        return np.clip(y / max(float(np.abs(y).max()), 1e-8) * 127.5 + 128, 0, 255).astype(np.uint8)
    if p["sel"] == "energy":
        e = np.sqrt(np.mean(np.square(x), axis=-1))
        return _heat(e, max(float(e.max()), 1e-8))
    y = x[:, :, p["ch"]] if p["sel"] == "one" else x[:, :, p["ch"]:p["ch_end"] + 1].mean(-1)
    return _gray(y / max(float(np.abs(y).max()), 1e-8) * 0.5 + 0.5)


def fft_view(x, p, db_range=80.0):
    """The FFT magnitude (dB, centred, ``db_range`` dB below the peak is black) of the selected
    channels of ``[H, W, C]`` activations, averaged over those channels."""
    c = x.shape[-1]
    if p["sel"] == "one":
        sel = x[:, :, p["ch"]:p["ch"] + 1]
    elif p["sel"] == "range":
        sel = x[:, :, p["ch"]:p["ch_end"] + 1]
    elif p["sel"] == "rgb":
        sel = x[:, :, p["ch"]:min(p["ch"] + 3, c)]
    else:
        sel = x
    mag = np.abs(np.fft.fftshift(np.fft.fft2(sel, axes=(0, 1)), axes=(0, 1))).mean(-1)
    db = 20 * np.log10(np.maximum(mag, 1e-12))
    return _heat(db - (db.max() - db_range), db_range)


def _equivariance(G, ws, p):
    """``(picture, psnr)``: transformed output, reference and masked |error| side by side."""
    from sg3keras.tools.eqmap import equivariance_case
    param = p["eq_rot"] if p["eq"] == "rot" else (p["eq_tx"], p["eq_ty"])
    r = equivariance_case(G, ws, p["eq"], param)
    mask = r["mask"][0].min(axis=-1) > 0
    err = np.abs(r["ref"][0] - r["img"][0]).mean(axis=-1) * mask
    heat = _heat(err, 0.25)
    heat[~mask] = (70, 70, 110)
    gap = np.full([heat.shape[0], 4, 3], 200, np.uint8)
    pic = np.concatenate([to_uint8(r["img"][0]), gap, to_uint8(r["ref"][0]), gap, heat], axis=1)
    return pic, float(r["psnr"])


def untransform(img, p):
    """Move the output ``[H, W, C]`` back by the input transform (undo the translation, then
    the rotation) with the EQ metric's band-limited operators, so that an equivariant generator
    shows a still image while the input moves; pixels from outside the image are zero."""
    from sg3keras.metrics.equivariance import (apply_fractional_rotation,
                                               apply_fractional_translation)
    x = img[None]
    if (p["tx"], p["ty"]) != (0.0, 0.0):
        x = np.asarray(apply_fractional_translation(x, -p["tx"], -p["ty"])[0], np.float32)
    if p["rot"]:
        x = np.asarray(apply_fractional_rotation(x, -math.radians(p["rot"]))[0], np.float32)
    return x[0]


def png_bytes(img):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def generate_command(ref, p):
    """The ``sg3keras generate`` command line of the request, or None where it has none
    (between seeds, style mixing, truncation cutoff, untransform)."""
    seed = position_seed(p)
    if seed is None or p["mix_hi"] > p["mix_lo"] or p["cutoff"] < p["_num_ws"] or \
            p["untransform"]:
        return None
    parts = ["sg3keras generate", f"--network {ref}", f"--seeds {seed}",
             f"--trunc {p['psi']:g}"]
    if p["class"] is not None:
        parts.append(f"--class {p['class']}")
    if p["noise"] != "const":
        parts.append(f"--noise-mode {p['noise']}")
    if (p["tx"], p["ty"]) != (0.0, 0.0):
        parts.append(f"--translate {p['tx']:g},{p['ty']:g}")
    if p["rot"]:
        parts.append(f"--rotate {p['rot']:g}")
    return " ".join(parts + ["--outdir out"])


def render(G, ref, p):
    """Render request ``p`` (from :func:`parse_request`) with ``G``: a dict with the picture
    (``png`` bytes, ``width``, ``height``), ``ms`` (the whole render), per-layer ``times``,
    the layer's ``shape``, ``psnr`` (with ``eq``), ``seed`` (the position's seed, None between
    seeds) and ``command`` (:func:`generate_command`)."""
    t0 = time.perf_counter()
    ws = latent_ws(G, p)
    transform = G.has_input_transform
    saved = np.asarray(G.input_transform.numpy()) if transform else None
    try:
        if transform:
            G.set_transform(translate=(p["tx"], p["ty"]), rotate=p["rot"])
        x, _, times = _run_layers(G, ws, p["noise"], p["layer"])
    finally:
        if saved is not None:
            G.input_transform.assign(saved)
    x = x[0]
    if p["untransform"]:
        x = untransform(x, p)
    psnr = None
    if p["eq"]:
        img, psnr = _equivariance(G, ws, p)
    elif p["fft"]:
        img = fft_view(x, p)
    else:
        img = channel_view(x, p, p["layer"] == "output")
    if p["zoom"] > 1:
        img = np.repeat(np.repeat(img, p["zoom"], axis=0), p["zoom"], axis=1)
    return dict(png=png_bytes(img), width=int(img.shape[1]), height=int(img.shape[0]),
                ms=round((time.perf_counter() - t0) * 1000, 1), times=times,
                shape=[int(v) for v in x.shape], psnr=psnr, seed=position_seed(p),
                command=generate_command(ref, dict(p, _num_ws=int(G.num_ws))))


def as_json(result):
    """``result`` of :func:`render` as JSON-ready data (the PNG as a data URL)."""
    out = {k: v for k, v in result.items() if k != "png"}
    out["image"] = "data:image/png;base64," + base64.b64encode(result["png"]).decode("ascii")
    return out
