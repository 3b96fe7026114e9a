"""Equivariance metrics EQ-T, EQ-T_frac and EQ-R (Karras et al. 2021, Appendix E).

The image operators compare a generator output ``G(M)`` (input transform ``M``) with the
same transformation applied to the untransformed output in *pixel space*, measured as a PSNR
over the valid pixels (peak-to-peak 2 for images in [-1, 1]). All images are NHWC.

Operators (each returns ``(y, mask)``, both ``[N, H, W, C]`` float32; mask 1 = valid pixel):

- :func:`apply_integer_translation` -- whole-pixel shift with zero fill (Appendix E.1, EQ-T).
- :func:`apply_fractional_translation` -- sub-pixel shift with a separable Lanczos-a kernel
  (Appendix E.2, EQ-T_frac).
- :func:`apply_fractional_rotation` -- rotation by resampling a 4x upsampled, band-limited
  image bilinearly (Appendix E.3, EQ-R reference).
- :func:`apply_fractional_pseudo_rotation` -- the same band-limit filter without rotating,
  applied to ``G``'s rotated output so both sides see the same low-pass.

Filtering uses ``keras.ops`` (depthwise convolutions built from batch-folded channels); the
filter design and sampling plans are NumPy constants. No TensorFlow-only APIs.
"""

import math

import keras
import numpy as np

from sg3keras.ops.grid_sample import bilinear_sample

__all__ = [
    "rotation_matrix", "lanczos_window", "construct_affine_bandlimit_filter",
    "apply_integer_translation", "apply_fractional_translation",
    "apply_fractional_rotation", "apply_fractional_pseudo_rotation",
    "equivariance_terms", "psnr_from_sums", "compute_equivariance",
]


# ---------------------------------------------------------------------------------------------
# Helpers and filter design.

def _as_nhwc(x, name="x"):
    x = keras.ops.convert_to_tensor(x, dtype="float32")
    if len(x.shape) != 4:
        raise ValueError(f"{name}: expected an NHWC image batch [N, H, W, C], got shape {x.shape}")
    return x


def rotation_matrix(angle):
    """3x3 float64 matrix ``[[cos a, sin a, 0], [-sin a, cos a, 0], [0, 0, 1]]``.

    Acting on (x, y) image coordinates (y pointing down) this is the metric's
    ``rotation_matrix(angle)``; the generator's input transform for a rotation by ``angle`` is
    ``rotation_matrix(-angle)`` (the transform buffer stores the inverse mapping).
    """
    a = float(np.float32(angle))
    c, s = np.cos(np.float32(a)), np.sin(np.float32(a))
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], dtype=np.float64)


def lanczos_window(x, a):
    """Lanczos window ``sinc(x / a)`` for ``|x| < a``, zero elsewhere."""
    x = np.abs(np.asarray(x, dtype=np.float64)) / a
    return np.where(x < 1, np.sinc(x), 0.0)


def construct_affine_bandlimit_filter(mat, a=3, amax=16, aflt=64, up=4, cutoff_in=1, cutoff_out=1):
    """2-D FIR filter band-limiting to both the input grid and the affinely mapped output grid.

    Steps (Appendix E.3, the filters h_R / h*_R):
        1. Sample positions ``u = k / up`` on a ``(2 aflt up - 1)``-point symmetric grid, for
           both axes; ``(xo, yo) = mat[:2, :2] @ (xi, yi)``.
        2. Ideal filter: circular convolution (FFT) of the input-aligned 2-D sinc
           ``sinc(xi c_in) sinc(yi c_in)`` with the output-aligned one ``sinc(xo c_out)
           sinc(yo c_out)``.
        3. Window: the same convolution of the two oriented separable Lanczos-a windows.
        4. Multiply, keep the central ``2 amax up - 1`` taps per axis.
        5. Normalise each of the ``up x up`` polyphase components to sum ``1 / up^2``.

    Args:
        mat: ``[3, 3]`` (or ``[2, 2]``) transform; only the linear part is used.
        a: Lanczos window size; amax: half-size of the kept support (input pixels);
        aflt: half-size of the design grid; up: upsampling factor of the filter;
        cutoff_in, cutoff_out: sinc cutoffs (1 = Nyquist of the unit grid).

    Returns:
        float32 ``[2 amax up - 1, 2 amax up - 1]`` filter (row = y, column = x).
    """
    if not a <= amax < aflt:
        raise ValueError(f"construct_affine_bandlimit_filter: need a <= amax < aflt, got "
                         f"{a}, {amax}, {aflt}")
    m = np.asarray(mat, dtype=np.float64)[:2, :2]
    n = 2 * aflt * up - 1
    centre = aflt * up - 1                       # index of position 0 on the design grid
    taps = (np.arange(n) - centre) / up          # symmetric grid in input-pixel units
    taps = np.roll(taps, -centre)                # FFT order: position 0 first
    yi, xi = np.meshgrid(taps, taps, indexing="ij")
    xo = m[0, 0] * xi + m[0, 1] * yi
    yo = m[1, 0] * xi + m[1, 1] * yi

    def circ_conv(p, q):
        return np.real(np.fft.ifft2(np.fft.fft2(p) * np.fft.fft2(q)))

    f = circ_conv(np.sinc(xi * cutoff_in) * np.sinc(yi * cutoff_in),
                  np.sinc(xo * cutoff_out) * np.sinc(yo * cutoff_out))
    w = circ_conv(lanczos_window(xi, a) * lanczos_window(yi, a),
                  lanczos_window(xo, a) * lanczos_window(yo, a))
    f = np.roll(f * w, (centre, centre), axis=(0, 1))
    half = amax * up - 1
    f = f[centre - half:centre + half + 1, centre - half:centre + half + 1]
    # Polyphase normalisation: pad to 2*amax*up, group by phase.
    k = 2 * amax
    g = np.pad(f, [(0, 1), (0, 1)]).reshape(k, up, k, up)
    g = g / g.sum(axis=(0, 2), keepdims=True) / up ** 2
    return g.reshape(k * up, k * up)[:-1, :-1].astype(np.float32)


def _depthwise(fn, x):
    """Apply a single-channel op ``fn([B, H, W, 1]) -> [B, H', W', 1]`` to every channel."""
    n, h, w, c = x.shape
    y = keras.ops.reshape(keras.ops.transpose(x, (0, 3, 1, 2)), (-1, h, w, 1))
    y = fn(y)
    y = keras.ops.reshape(y, (-1, c, y.shape[1], y.shape[2]))
    return keras.ops.transpose(y, (0, 2, 3, 1))


def _filter_same(x, f):
    """``'same'`` 2-D filtering of every channel with the odd, point-symmetric filter ``f``."""
    k = keras.ops.convert_to_tensor(np.asarray(f, np.float32)[:, :, None, None])
    return _depthwise(lambda y: keras.ops.conv(y, k, padding="same"), x)


def _upsample_filter(x, f, up):
    """Zero-insert upsampling by ``up`` and filtering with gain ``up^2``, margin ``p = K // 2``.

    Output index ``n`` (per axis, length ``up H + 2 p``) lies at input-pixel position
    ``(n - (K + up - 1) // 2) / up``, i.e. input pixel ``i`` is output sample
    ``up i + (K + up - 1) // 2``. Implemented as a strided transposed convolution (which places
    ``f`` at ``up i``), then shifted by ``(K + up - 1) // 2 - p`` with zero rows/columns.
    """
    kk = f.shape[0]
    p = kk // 2
    lead = (kk + up - 1) // 2 - p
    k = keras.ops.convert_to_tensor((np.asarray(f, np.float32) * up * up)[:, :, None, None])

    def op(y):
        h, w = y.shape[1], y.shape[2]
        z = keras.ops.conv_transpose(y, k, strides=up, padding="valid")
        th, tw = up * h + 2 * p, up * w + 2 * p
        z = keras.ops.pad(z, [(0, 0), (lead, max(th - lead - z.shape[1], 0)),
                              (lead, max(tw - lead - z.shape[2], 0)), (0, 0)])
        return z[:, :th, :tw, :]

    return _depthwise(op, x)


def _box_mask(shape, y0, y1, x0, x1):
    m = np.zeros(shape, np.float32)
    if y0 < y1 and x0 < x1:
        m[:, y0:y1, x0:x1, :] = 1
    return m


# ---------------------------------------------------------------------------------------------
# The four image operators.

def apply_integer_translation(x, tx, ty):
    """Shift ``x`` by ``(tx W, ty H)`` rounded to whole pixels (half to even), zero fill.

    Args:
        x: ``[N, H, W, C]``; tx, ty: translation in units of image width / height.

    Returns:
        ``(z, mask)`` -- shifted image and the mask of pixels that came from inside ``x``.
    """
    x = _as_nhwc(x)
    _, h, w, _ = x.shape
    ix = int(np.rint(np.float32(tx) * np.float32(w)))
    iy = int(np.rint(np.float32(ty) * np.float32(h)))
    if abs(ix) >= w or abs(iy) >= h:
        z = keras.ops.zeros_like(x)
        return z, keras.ops.zeros_like(x)
    # Content moves by +ix/+iy: take the source window and pad zeros on the vacated side.
    src = x[:, max(-iy, 0):h + min(-iy, 0), max(-ix, 0):w + min(-ix, 0), :]
    z = keras.ops.pad(src, [(0, 0), (max(iy, 0), max(-iy, 0)), (max(ix, 0), max(-ix, 0)), (0, 0)])
    mask = _box_mask(tuple(x.shape), max(iy, 0), h + min(iy, 0), max(ix, 0), w + min(ix, 0))
    return z, keras.ops.convert_to_tensor(mask)


def _lanczos_shift_matrix(n, t, a):
    """``[n, n]`` matrix ``T`` with ``z = T @ x`` shifting a length-``n`` signal by ``t n`` pixels.

    ``z[j] = sum_k w_k x[j - i - k]`` for ``k = -(a-1)..a``, ``i = floor(t n)``, ``f = t n - i``,
    ``w_k ~ sinc(k - f) sinc((k - f) / a)`` normalised to sum 1; ``x`` is zero outside. Also
    returns the valid range ``[i + a, i - (a - 1) + n)`` (clipped), where every tap lies inside.
    """
    tn = np.float32(t) * np.float32(n)
    i = int(np.floor(tn))
    frac = float(tn - np.float32(i))
    k = np.arange(-(a - 1), a + 1)
    wk = np.sinc(k - frac) * np.sinc((k - frac) / a)
    wk = (wk / wk.sum()).astype(np.float32)
    mat = np.zeros([n, n], np.float32)
    for kk, wv in zip(k, wk):
        mat += np.eye(n, k=-(i + kk), dtype=np.float32) * wv
    return mat, (max(i + a, 0), min(i - (a - 1), 0) + n)


def apply_fractional_translation(x, tx, ty, a=3):
    """Shift ``x`` by ``(tx W, ty H)`` sub-pixel amounts with separable Lanczos-``a`` kernels.

    Steps: per axis split the shift into ``floor`` and fraction ``f``; build the ``2a``-tap
    kernel ``sinc(k - f) sinc((k - f)/a)`` (normalised), shift+filter (zeros outside ``x``);
    mask the pixels whose whole footprint lies inside ``x``.

    Args:
        x: ``[N, H, W, C]``; tx, ty: shift in units of image width / height; a: kernel size.

    Returns:
        ``(z, mask)``.
    """
    x = _as_nhwc(x)
    _, h, w, _ = x.shape
    my, (y0, y1) = _lanczos_shift_matrix(h, ty, a)
    mx, (x0, x1) = _lanczos_shift_matrix(w, tx, a)
    z = keras.ops.einsum("yh,nhwc->nywc", keras.ops.convert_to_tensor(my), x)
    z = keras.ops.einsum("xw,nywc->nyxc", keras.ops.convert_to_tensor(mx), z)
    return z, keras.ops.convert_to_tensor(_box_mask(tuple(x.shape), y0, y1, x0, x1))


def apply_fractional_rotation(x, angle, a=3, up=4):
    """Rotate ``x`` by ``angle`` radians about the image centre (EQ-R reference).

    Steps:
        1. ``f = construct_affine_bandlimit_filter(rotation_matrix(angle), a, amax=2a, up)``.
        2. Upsample ``x`` by ``up`` with ``f`` (margin ``p = K // 2`` samples per side).
        3. Sample the upsampled image bilinearly (zero padding) at the rotated positions of the
           output pixel centres: output normalised coords ``(X, Y)`` map to input coords
           ``rotation_matrix(angle)^-1 (X, Y)``, i.e. upsampled index ``up (X + 1) W / 2 + p``.
        4. Mask: 1 inside the upsampled image minus a ``2 p + 1`` border, sampled with
           nearest-neighbour at the same positions.

    Args:
        x: ``[N, H, W, C]``; angle: radians; a: Lanczos size; up: upsampling factor.

    Returns:
        ``(z, mask)``.
    """
    x = _as_nhwc(x)
    n, h, w, c = x.shape
    mat = rotation_matrix(angle)
    f = construct_affine_bandlimit_filter(mat, a=a, amax=2 * a, up=up)
    p = f.shape[0] // 2
    y = _upsample_filter(x, f, up)
    inv = np.linalg.inv(mat.astype(np.float32).astype(np.float64))
    gy, gx = np.meshgrid((2 * np.arange(h) + 1) / h - 1, (2 * np.arange(w) + 1) / w - 1,
                         indexing="ij")
    sx = inv[0, 0] * gx + inv[0, 1] * gy + 2 * inv[0, 2]
    sy = inv[1, 0] * gx + inv[1, 1] * gy + 2 * inv[1, 2]
    ix, iy = up * (sx + 1) * w / 2 + p, up * (sy + 1) * h / 2 + p
    z = bilinear_sample(y, ix, iy)
    # Nearest-neighbour mask (round half to even, like grid_sample 'nearest').
    hy, wy = up * h + 2 * p, up * w + 2 * p
    brd = 2 * p + 1
    ry, rx = np.rint(iy), np.rint(ix)
    valid = (ry >= brd) & (ry < hy - brd) & (rx >= brd) & (rx < wy - brd)
    mask = np.broadcast_to(valid[None, :, :, None], (n, h, w, c)).astype(np.float32)
    return z, keras.ops.convert_to_tensor(mask)


def apply_fractional_pseudo_rotation(x, angle, a=3, up=4):
    """Band-limit ``x`` like :func:`apply_fractional_rotation` would, but without rotating.

    Steps: ``f = construct_affine_bandlimit_filter(rotation_matrix(-angle), a, amax=2a, up=1)``
    (the rotated image's view of the band limit), ``'same'`` filtering, mask = 1 except a
    ``K // 2`` border. ``up`` is accepted for signature symmetry and unused (the official
    pseudo-rotation designs its filter with ``up=1``).

    Returns:
        ``(y, mask)``.
    """
    del up
    x = _as_nhwc(x)
    _, h, w, _ = x.shape
    f = construct_affine_bandlimit_filter(rotation_matrix(-float(np.float32(angle))),
                                          a=a, amax=2 * a, up=1)
    c = f.shape[0] // 2
    y = _filter_same(x, f)
    return y, keras.ops.convert_to_tensor(_box_mask(tuple(x.shape), c, h - c, c, w - c))


# ---------------------------------------------------------------------------------------------
# The metric.

def psnr_from_sums(sq_sum, mask_sum):
    """``PSNR = 20 log10(2) - 10 log10(sq_sum / mask_sum)`` (peak-to-peak 2; ``inf`` if exact)."""
    with np.errstate(divide="ignore"):
        return float(20 * np.log10(2.0) - 10 * np.log10(np.float64(sq_sum) / np.float64(mask_sum)))


def equivariance_terms(kind, orig, img, param, a=3, up=4):
    """Per-batch EQ terms for one transformation.

    Args:
        kind: ``"int"`` / ``"frac"`` (``param = (tx, ty)``) or ``"rot"`` (``param = angle``).
        orig: ``G`` output with the identity transform; img: ``G`` output with the transform.

    Returns:
        dict with ``ref`` (transformed ``orig``), ``img`` (the compared image: ``img``, or its
        pseudo-rotation for ``"rot"``), ``mask`` and float64 ``sq_sum = sum((ref-img)^2 mask)``,
        ``mask_sum = sum(mask)`` (numpy arrays).
    """
    if kind == "int":
        ref, mask = apply_integer_translation(orig, param[0], param[1])
        cmp = _as_nhwc(img, "img")
    elif kind == "frac":
        ref, mask = apply_fractional_translation(orig, param[0], param[1], a=a)
        cmp = _as_nhwc(img, "img")
    elif kind == "rot":
        ref, ref_mask = apply_fractional_rotation(orig, param, a=a, up=up)
        cmp, cmp_mask = apply_fractional_pseudo_rotation(img, param, a=a, up=up)
        mask = ref_mask * cmp_mask
    else:
        raise ValueError(f"equivariance_terms: kind must be 'int', 'frac' or 'rot', got {kind!r}")
    ref, cmp, mask = (np.asarray(keras.ops.convert_to_numpy(v)) for v in (ref, cmp, mask))
    if ref.shape != cmp.shape:
        raise ValueError(f"equivariance_terms: orig {ref.shape} and img {cmp.shape} differ")
    diff = ref.astype(np.float64) - cmp.astype(np.float64)
    return dict(ref=ref, img=cmp, mask=mask, sq_sum=np.sum(diff * diff * mask),
                mask_sum=np.sum(mask, dtype=np.float64))


def _draw_labels(G, n, rng, dataset):
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    if c_dim == 0:
        return np.zeros([n, 0], np.float32)
    if dataset is not None:
        return np.asarray(dataset.sample_labels(n, rng), np.float32)
    return np.eye(c_dim, dtype=np.float32)[rng.integers(0, c_dim, size=n)]


def _synth(G, ws, runner=None, per_replica=None):
    if runner is None:
        return np.asarray(keras.ops.convert_to_numpy(G.synthesis(ws)), np.float32)
    return np.asarray(runner.map("synthesis", G.synthesis, np.asarray(ws, np.float32),
                                 per_replica=per_replica), np.float32)


def _map(G, z, c, runner=None):
    if runner is None:
        return G.mapping(z, c)
    return runner.map("mapping", G.mapping, z, c)


def _draw_transform(kind, rng, translate_max, rotate_max):
    """The raw random parameter of one batch: an angle, or an unrounded ``t`` (float32 [2])."""
    if kind == "rot":
        return float(np.float32((rng.uniform() * 2 - 1) * (rotate_max * math.pi)))
    return ((rng.uniform(size=2) * 2 - 1) * translate_max).astype(np.float32)


def _transform_matrix(kind, raw, res):
    """``(matrix [3, 3] float32, param)`` for :func:`equivariance_terms` from a raw draw."""
    m = np.eye(3, dtype=np.float32)
    if kind == "rot":
        return rotation_matrix(-raw).astype(np.float32), raw
    t = raw
    if kind == "int":
        t = (np.rint(t * np.float32(res)) / np.float32(res)).astype(np.float32)
    m[:2, 2] = -t
    return m, (float(t[0]), float(t[1]))


def _eq_group(G, var, batches, kinds, runner, group, sums, a=3, up=4):
    """Evaluate a group of batches ``[(z, c, {kind: raw})]``: one batch per replica when
    ``group > 1`` (each replica's copy of ``var`` gets its batch's transform), else one batch
    (split over the replicas when a runner is given). Adds to ``sums[kind]``."""
    bs = batches[0][0].shape[0]
    per = bs if group > 1 else None
    ws = _map(G, np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]),
              runner)
    var.assign(np.eye(3, dtype=np.float32))
    orig = _synth(G, ws, runner, per)
    res = G.img_resolution
    for kind in kinds:
        mats, params = zip(*[_transform_matrix(kind, b[2][kind], res) for b in batches])
        if group > 1:
            runner.assign_per_replica(var, mats)
        else:
            var.assign(mats[0])
        img = _synth(G, ws, runner, per)
        for i, param in enumerate(params):
            sl = slice(i * bs, (i + 1) * bs)
            terms = equivariance_terms(kind, orig[sl], img[sl], param, a=a, up=up)
            sums[kind][0] += terms["sq_sum"]
            sums[kind][1] += terms["mask_sum"]


def compute_equivariance(G, num_samples, batch_size=4, translate_max=0.125, rotate_max=1.0,
                         compute_eqt_int=False, compute_eqt_frac=False, compute_eqr=False,
                         seed=0, dataset=None, progress=None, runner=None):
    """EQ-T / EQ-T_frac / EQ-R PSNRs of a generator (official protocol, Appendix E).

    Per batch of ``batch_size`` latents (one transform shared by the batch):
        1. ``ws = G.mapping(z, c)``; ``orig = G.synthesis(ws)`` with the identity input transform.
        2. EQ-T: ``t ~ U[-translate_max, translate_max]^2`` rounded to whole pixels; transform
           ``[:2, 2] = -t``; compare with :func:`apply_integer_translation` of ``orig``.
        3. EQ-T_frac: the same without rounding, :func:`apply_fractional_translation`.
        4. EQ-R: ``angle ~ U[-pi, pi] * rotate_max``, transform ``rotation_matrix(-angle)``;
           compare :func:`apply_fractional_rotation` of ``orig`` with
           :func:`apply_fractional_pseudo_rotation` of the output; masks multiplied.
        5. Accumulate float64 ``sum(sq * mask)`` and ``sum(mask)`` over all batches; PSNR of
           the ratio (peak 2). ``ceil(num_samples / batch_size)`` batches are drawn.

    ``G.input_transform`` (a ``[3, 3]`` Keras variable) is restored afterwards, also on error.
    Images are not clamped or quantised.

    With a ``runner`` (:class:`sg3keras.metrics.distributed.ReplicaRunner`, TensorFlow only) the
    ``G`` evaluations run on its replicas: ``num_replicas`` batches at a time, one per replica,
    when the transform variable is mirrored (``G`` built in the strategy's scope), else each
    batch split over the replicas. Latents and transforms are drawn in the same order either
    way, so the result equals the in-process one up to float rounding.

    Args:
        G: a generator with an input transform (:class:`sg3keras.models.GeneratorBase`:
            ``z_dim``, ``c_dim``, ``mapping(z, c)``, ``synthesis(ws)`` NHWC,
            ``require_input_transform``).
        num_samples: number of latents; batch_size: latents per batch (default 4).
        translate_max, rotate_max: ranges (image widths; fraction of pi).
        compute_eqt_int, compute_eqt_frac, compute_eqr: which metrics.
        seed: NumPy seed; dataset: optional, labels for conditional G (``sample_labels``).
        progress: optional ``callable(done, total)``; runner: optional replica runner.

    Returns:
        dict with the enabled keys among ``eqt_int``, ``eqt_frac``, ``eqr`` (PSNR in dB).
    """
    kinds = [k for k, on in (("int", compute_eqt_int), ("frac", compute_eqt_frac),
                             ("rot", compute_eqr)) if on]
    if not kinds:
        raise ValueError("compute_equivariance: enable at least one of compute_eqt_int, "
                         "compute_eqt_frac, compute_eqr")
    if int(num_samples) < 1 or int(batch_size) < 1:
        raise ValueError(f"compute_equivariance: num_samples and batch_size must be >= 1, "
                         f"got {num_samples}, {batch_size}")
    rng = np.random.default_rng(seed)
    var = G.require_input_transform("compute_equivariance")
    saved = np.array(keras.ops.convert_to_numpy(var), np.float32)
    group = 1
    if runner is not None and runner.replica_variables(var) is not None:
        group = runner.num_replicas
    sums = {k: [0.0, 0.0] for k in kinds}
    done = 0
    try:
        while done < num_samples:
            batches = []
            while len(batches) < group and done < num_samples:
                z = rng.standard_normal([batch_size, int(G.z_dim)]).astype(np.float32)
                c = _draw_labels(G, batch_size, rng, dataset)
                raw = {k: _draw_transform(k, rng, translate_max, rotate_max) for k in kinds}
                batches.append((z, c, raw))
                done += batch_size
            _eq_group(G, var, batches, kinds, runner, group, sums)
            if progress is not None:
                progress(min(done, num_samples), num_samples)
    finally:
        var.assign(saved)
    names = {"int": "eqt_int", "frac": "eqt_frac", "rot": "eqr"}
    return {names[k]: psnr_from_sums(*sums[k]) for k in kinds}
