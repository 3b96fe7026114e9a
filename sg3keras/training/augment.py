"""ADA augmentation pipeline (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data", §2.1-2.2; docs/PAPER.md), NHWC, with parity to the official ``AugmentPipe``.

Per sample, every enabled augmentation fires with probability ``multiplier * p`` (``p`` is a
non-trainable weight the ADA controller adjusts). Groups, in order:
1. pixel blitting + general geometric: composed into one 3x3 *inverse* matrix, executed once by
   reflect-padding, 2x upsampling with the sym6 wavelet, bilinear sampling and 2x downsampling.
   If any geometric op is enabled this resampling runs even when nothing fires (as officially);
2. colour: one 4x4 matrix on the RGB values (1-channel images use the mean of its RGB rows);
3. image-space filtering (4-band filter bank from sym2), additive noise, cutout.

All tensor work is ``keras.ops`` with static shapes (the data-dependent reflect-pad margin is
emulated by masking a maximally padded image), so it runs under ``tf.function``/XLA and JAX.
"""


import keras
import numpy as np
from keras import ops

from sg3keras.ops.grid_sample import bilinear_sample
from sg3keras.ops.upfirdn2d import downsample2d, upsample2d

__all__ = ["AugmentPipe", "AUGPIPE_SPECS", "WAVELETS", "wavelet_filter_bank"]

# Orthonormal low-pass (decomposition) filters of the Daubechies least-asymmetric wavelets
# ("symlets"), sum sqrt(2). Public-domain mathematical constants: I. Daubechies, "Ten Lectures on
# Wavelets" (SIAM 1992), §8.1, in the tap order of PyWavelets' ``Wavelet('symN').dec_lo``.
# sym6 re-derived here by spectral factorisation of the Daubechies polynomial (roots chosen for the
# most linear phase): agrees to 1.5e-12; tests check orthonormality and vanishing moments.
WAVELETS = {
    "sym2": [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025],
    "sym6": [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
             0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
             -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036,
             -0.007800708325034148],
}

_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
# Named op sets of the official ADA code (train.py --augpipe); StyleGAN3 train.py uses "bgc".
AUGPIPE_SPECS = {
    "blit": dict(_BLIT), "geom": dict(_GEOM), "color": dict(_COLOR),
    "filter": dict(imgfilter=1), "noise": dict(noise=1), "cutout": dict(cutout=1),
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1, "cutout": 1},
}
_GEOM_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
_COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
_EXPECTED_BAND_POWER = np.array([10, 1, 1, 1], np.float32) / 13  # ~1/f image spectrum


def wavelet_filter_bank(lowpass, num_bands=4):
    """Zero-phase octave filter bank ``[num_bands, taps]`` built from an orthonormal wavelet.

    Steps: ``lo2 = lo * reverse(lo) / 2`` and ``hi2`` likewise for the quadrature mirror
    ``hi[n] = (-1)^n lo[n]`` (both symmetric, ``lo2 + hi2`` = unit impulse). Start from the unit
    impulse in band 0; for octave ``i = 1 .. num_bands-1``: stretch every band by 2 (zero insertion),
    convolve every band with ``lo2`` and add ``hi2`` (centred) to band ``i``. Band 0 ends as the
    lowest octave, band ``num_bands-1`` as the highest; the bands sum to the unit impulse.
    """
    lo = np.asarray(lowpass, np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo2 = np.convolve(lo, lo[::-1]) / 2
    hi2 = np.convolve(hi, hi[::-1]) / 2
    bank = np.zeros([num_bands, 1])
    bank[0, 0] = 1
    for i in range(1, num_bands):
        stretched = np.zeros([num_bands, bank.shape[1] * 2 - 1])
        stretched[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo2) for row in stretched])
        start = (bank.shape[1] - hi2.size) // 2
        bank[i, start:start + hi2.size] += hi2
    return bank.astype(np.float32)


def _mat(rows):
    """Rows of per-sample ``[N]`` tensors -> ``[N, R, C]`` matrices."""
    return ops.stack([ops.stack(r, axis=-1) for r in rows], axis=-2)


def _translate2d(tx, ty):
    o, z = ops.ones_like(tx), ops.zeros_like(tx)
    return _mat([[o, z, tx], [z, o, ty], [z, z, o]])


def _scale2d(sx, sy):
    o, z = ops.ones_like(sx), ops.zeros_like(sx)
    return _mat([[sx, z, z], [z, sy, z], [z, z, o]])


def _rotate2d(theta):
    c, s = ops.cos(theta), ops.sin(theta)
    o, z = ops.ones_like(theta), ops.zeros_like(theta)
    return _mat([[c, -s, z], [s, c, z], [z, z, o]])


def _translate3d(t):
    o, z = ops.ones_like(t), ops.zeros_like(t)
    return _mat([[o, z, z, t], [z, o, z, t], [z, z, o, t], [z, z, z, o]])


def _scale3d(s):
    o, z = ops.ones_like(s), ops.zeros_like(s)
    return _mat([[s, z, z, z], [z, s, z, z], [z, z, s, z], [z, z, z, o]])


def _rotate3d(v, theta):
    """Rotation by ``theta`` about the unit axis ``v`` (Rodrigues), homogeneous 4x4."""
    vx, vy, vz = (float(a) for a in v[:3])
    c, s = ops.cos(theta), ops.sin(theta)
    cc = 1 - c
    o, z = ops.ones_like(theta), ops.zeros_like(theta)
    return _mat([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, z],
                 [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, z],
                 [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, z],
                 [z, z, z, o]])


def _replica_context():
    """``(replica id, number of replicas)`` of the enclosing ``tf.distribute`` replica context;
    ``(0, 1)`` outside one or on other backends."""
    if keras.backend.backend() != "tensorflow":
        return 0, 1
    import tensorflow as tf  # noqa: PLC0415 -- TF backend only
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return 0, 1
    return ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync


@keras.saving.register_keras_serializable(package="sg3keras")
class AugmentPipe(keras.layers.Layer):
    """The official ADA ``AugmentPipe`` (same op names, multipliers and strengths), NHWC.

    Args (all op multipliers default 0 = disabled; fire probability = multiplier * ``p``):
        xflip, rotate90, xint: pixel blitting; ``xint_max`` (fraction of the image size).
        scale, rotate, aniso, xfrac: general geometric; ``scale_std``, ``rotate_max`` (x pi),
            ``aniso_std``, ``xfrac_std`` (log2 / fraction-of-size units).
        brightness, contrast, lumaflip, hue, saturation: colour; ``*_std`` / ``hue_max`` (x pi).
        imgfilter, imgfilter_bands (4 band multipliers), imgfilter_std: band gains 2^N(0, std^2).
        noise, noise_std: additive Gaussian noise with |N(0, 1)| * std per-image sigma.
        cutout, cutout_size: zero a square of ``cutout_size`` x image size at a uniform centre.
        seed: seed of the layer's ``keras.random.SeedGenerator`` (None = random).
    Weights: ``p`` (scalar, non-trainable; set with ``layer.p.assign(v)``), constant buffers
    ``Hz_geom`` (sym6, 12 taps, sum 1) and ``Hz_fbank`` (``[4, 43]``).
    Call: ``layer(images, debug_percentile=None)``; images ``[N, H, W, C]`` float, C in {1, 3}.
    ``debug_percentile`` in [0, 1) replaces every random draw (and ``p``) by a deterministic value:
    uniforms become the percentile, normals its Gaussian quantile, all enabled ops fire.
    """

    def __init__(self, xflip=0, rotate90=0, xint=0, xint_max=0.125,
                 scale=0, rotate=0, aniso=0, xfrac=0, scale_std=0.2, rotate_max=1, aniso_std=0.2,
                 xfrac_std=0.125, brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0,
                 brightness_std=0.2, contrast_std=0.5, hue_max=1, saturation_std=1,
                 imgfilter=0, imgfilter_bands=(1, 1, 1, 1), imgfilter_std=1,
                 noise=0, cutout=0, noise_std=0.1, cutout_size=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.xflip, self.rotate90, self.xint, self.xint_max = xflip, rotate90, xint, xint_max
        self.scale, self.rotate, self.aniso, self.xfrac = scale, rotate, aniso, xfrac
        self.scale_std, self.rotate_max, self.aniso_std = scale_std, rotate_max, aniso_std
        self.xfrac_std = xfrac_std
        self.brightness, self.contrast, self.lumaflip = brightness, contrast, lumaflip
        self.hue, self.saturation = hue, saturation
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        self.imgfilter, self.imgfilter_bands = imgfilter, list(imgfilter_bands)
        self.imgfilter_std = imgfilter_std
        self.noise, self.cutout, self.noise_std, self.cutout_size = noise, cutout, noise_std, cutout_size
        self.seed = seed
        if len(self.imgfilter_bands) != 4:
            raise ValueError(f"AugmentPipe: imgfilter_bands must have 4 entries, got {imgfilter_bands!r}")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.p = self.add_weight(name="p", shape=(), initializer="zeros", trainable=False)
        hz_geom = np.asarray(WAVELETS["sym6"], np.float32)
        self.Hz_geom = self._buffer("Hz_geom", hz_geom / hz_geom.sum())
        self.Hz_fbank = self._buffer("Hz_fbank", wavelet_filter_bank(WAVELETS["sym2"], 4))

    def _buffer(self, name, value):
        return self.add_weight(name=name, shape=value.shape, trainable=False,
                               initializer=keras.initializers.Constant(value))

    def get_config(self):
        config = super().get_config()
        for key in ("xflip", "rotate90", "xint", "xint_max", "scale", "rotate", "aniso", "xfrac",
                    "scale_std", "rotate_max", "aniso_std", "xfrac_std", "brightness", "contrast",
                    "lumaflip", "hue", "saturation", "brightness_std", "contrast_std", "hue_max",
                    "saturation_std", "imgfilter", "imgfilter_bands", "imgfilter_std", "noise",
                    "cutout", "noise_std", "cutout_size", "seed"):
            config[key] = getattr(self, key)
        return config

    def compute_output_shape(self, input_shape):
        return input_shape

    # ---- random parameters -----------------------------------------------------------------
    def _draw(self, kind, shape, prob, neutral, debug_value, dp):
        """One augmentation parameter of ``shape`` (leading dim = batch).

        Random mode: ``uniform`` or ``normal`` draw, kept with probability ``prob`` (one Bernoulli
        per sample) else ``neutral``. Debug mode: ``debug_value(dp)`` for every sample.
        """
        if dp is not None:
            return ops.zeros(shape) + debug_value(dp)
        value = self._random(kind, shape)
        gate_shape = [shape[0]] + [1] * (len(shape) - 1)
        fire = self._random("uniform", gate_shape) < prob
        return ops.where(fire, value, ops.full_like(value, neutral))

    def _random(self, kind, shape):
        """``uniform [0, 1)`` or standard ``normal`` draw from the layer's seed generator.

        Under a ``tf.distribute`` strategy every replica sees the same generator state, so one
        draw is made for all replicas and each replica takes its own slice (independent
        augmentations per replica, as with one RNG per GPU officially).
        """
        draw = keras.random.uniform if kind == "uniform" else keras.random.normal
        replica, num_replicas = _replica_context()
        if num_replicas == 1:
            return draw(shape, seed=self.seed_generator)
        return ops.take(draw([num_replicas] + list(shape), seed=self.seed_generator), replica, axis=0)

    @staticmethod
    def _gauss(dp):
        return ops.erfinv(dp * 2 - 1)

    def _geometric_matrix(self, n, w, h, dp):
        """Compose the ``[N, 3, 3]`` inverse geometric transform (pixel units, centred)."""
        p = ops.cast(self.p, "float32")
        g_inv = _scale2d(ops.ones([n]), ops.ones([n]))
        if self.xflip > 0:
            i = self._draw("uniform", [n], self.xflip * p, 0.0, lambda d: ops.floor(d * 2), dp)
            i = ops.floor(i * 2) if dp is None else i
            g_inv = g_inv @ _scale2d(1 - 2 * i, ops.ones_like(i))
        if self.rotate90 > 0:
            i = self._draw("uniform", [n], self.rotate90 * p, 0.0, lambda d: ops.floor(d * 4), dp)
            i = ops.floor(i * 4) if dp is None else i
            g_inv = g_inv @ _rotate2d(np.pi / 2 * i)
        if self.xint > 0:
            t = self._draw("uniform", [n, 2], self.xint * p, 0.5, lambda d: d, dp)
            t = (t * 2 - 1) * self.xint_max
            g_inv = g_inv @ _translate2d(-ops.round(t[:, 0] * w), -ops.round(t[:, 1] * h))
        if self.scale > 0:
            s = self._draw("normal", [n], self.scale * p, 0.0, self._gauss, dp)
            s = ops.exp2(s * self.scale_std)
            g_inv = g_inv @ _scale2d(1 / s, 1 / s)
        p_rot = 1 - ops.sqrt(ops.clip(1 - self.rotate * p, 0, 1))
        if self.rotate > 0:  # pre-rotation, before the anisotropic scaling
            t = self._draw("uniform", [n], p_rot, 0.5, lambda d: d, dp)
            g_inv = g_inv @ _rotate2d((t * 2 - 1) * np.pi * self.rotate_max)
        if self.aniso > 0:
            s = self._draw("normal", [n], self.aniso * p, 0.0, self._gauss, dp)
            s = ops.exp2(s * self.aniso_std)
            g_inv = g_inv @ _scale2d(1 / s, s)
        if self.rotate > 0:  # post-rotation; angle 0 in debug mode
            t = self._draw("uniform", [n], p_rot, 0.5, lambda d: 0.5 + 0 * d, dp)
            g_inv = g_inv @ _rotate2d((t * 2 - 1) * np.pi * self.rotate_max)
        if self.xfrac > 0:
            t = self._draw("normal", [n, 2], self.xfrac * p, 0.0, self._gauss, dp)
            t = t * self.xfrac_std
            g_inv = g_inv @ _translate2d(-t[:, 0] * w, -t[:, 1] * h)
        return g_inv

    def _color_matrix(self, n, num_channels, dp):
        """Compose the ``[N, 4, 4]`` colour transform (homogeneous RGB)."""
        p = ops.cast(self.p, "float32")
        c_mat = _scale3d(ops.ones([n]))
        if self.brightness > 0:
            b = self._draw("normal", [n], self.brightness * p, 0.0, self._gauss, dp)
            c_mat = _translate3d(b * self.brightness_std) @ c_mat
        if self.contrast > 0:
            c = self._draw("normal", [n], self.contrast * p, 0.0, self._gauss, dp)
            c_mat = _scale3d(ops.exp2(c * self.contrast_std)) @ c_mat
        v = np.array([1, 1, 1, 0], np.float32) / np.sqrt(3)  # luma axis
        vv = ops.convert_to_tensor(np.outer(v, v).astype(np.float32))
        eye = ops.eye(4)
        if self.lumaflip > 0:
            i = self._draw("uniform", [n], self.lumaflip * p, 0.0, lambda d: ops.floor(d * 2), dp)
            i = ops.floor(i * 2) if dp is None else i
            c_mat = (eye - 2 * vv * ops.reshape(i, [-1, 1, 1])) @ c_mat
        if self.hue > 0 and num_channels > 1:
            t = self._draw("uniform", [n], self.hue * p, 0.5, lambda d: d, dp)
            c_mat = _rotate3d(v, (t * 2 - 1) * np.pi * self.hue_max) @ c_mat
        if self.saturation > 0 and num_channels > 1:
            s = self._draw("normal", [n], self.saturation * p, 0.0, self._gauss, dp)
            s = ops.reshape(ops.exp2(s * self.saturation_std), [-1, 1, 1])
            c_mat = (vv + (eye - vv) * s) @ c_mat
        return c_mat

    # ---- execution ---------------------------------------------------------------------------
    def _resample(self, images, g_inv):
        """Apply the inverse transform ``g_inv`` ``[N, 3, 3]`` (centred pixel units) to NHWC images.

        Steps (official order): (1) reflect-pad margin = how far the transformed image corners
        (plus 2 * Hz_pad slack) reach outside, max over the batch, clipped to ``[0, size - 1]``;
        (2) 2x upsample with ``Hz_geom``; (3) bilinear sampling (zeros outside the padded image)
        of a ``2 * (size + 2 * Hz_pad)`` grid; (4) 2x downsample with ``Hz_geom`` (flip_filter)
        cropping ``Hz_pad`` pixels. The margin is data-dependent, so the image is padded by the
        largest possible margin (``size - 1``) and everything outside the margin is zeroed --
        identical values with static shapes.
        """
        n, h, w = ops.shape(images)[0], int(images.shape[1]), int(images.shape[2])
        hz_pad = int(self.Hz_geom.shape[0]) // 4
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = np.array([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], np.float32).T
        cp = g_inv @ ops.convert_to_tensor(corners)  # [N, xyz, 4]
        lo_x, hi_x = ops.max(-cp[:, 0, :]), ops.max(cp[:, 0, :])
        lo_y, hi_y = ops.max(-cp[:, 1, :]), ops.max(cp[:, 1, :])
        mx0, mx1 = (ops.ceil(ops.clip(m + 2 * hz_pad - cx, 0, w - 1)) for m in (lo_x, hi_x))
        my0, my1 = (ops.ceil(ops.clip(m + 2 * hz_pad - cy, 0, h - 1)) for m in (lo_y, hi_y))
        big_x, big_y = w - 1, h - 1
        x = ops.pad(images, [[0, 0], [big_y, big_y], [big_x, big_x], [0, 0]], mode="reflect")
        x = x * self._window(h + 2 * big_y, w + 2 * big_x, big_y - my0, big_y + h + my1,
                             big_x - mx0, big_x + w + mx1, 1)
        x = upsample2d(x, self.Hz_geom, up=2)
        x = x * self._window(2 * (h + 2 * big_y), 2 * (w + 2 * big_x), big_y - my0,
                             big_y + h + my1, big_x - mx0, big_x + w + mx1, 2)
        # Output pixel (i, j) of the 2x grid, centred: j + 0.5 - wo / 2; mapped to the 2x input by
        # T(-1/2) S(2) G_inv S(1/2) T(1/2); the padded 2x input is centred on the original image.
        ho, wo = 2 * (h + 2 * hz_pad), 2 * (w + 2 * hz_pad)
        g2 = (_translate2d(ops.full([n], -0.5), ops.full([n], -0.5)) @ _scale2d(
            ops.full([n], 2.0), ops.full([n], 2.0)) @ g_inv @ _scale2d(
            ops.full([n], 0.5), ops.full([n], 0.5)) @ _translate2d(ops.full([n], 0.5),
                                                                   ops.full([n], 0.5)))
        xo = ops.reshape(ops.arange(wo, dtype="float32") + 0.5 - wo / 2, [1, 1, wo])
        yo = ops.reshape(ops.arange(ho, dtype="float32") + 0.5 - ho / 2, [1, ho, 1])
        row = lambda k: [ops.reshape(g2[:, k, m], [-1, 1, 1]) for m in range(3)]  # noqa: E731
        (a, b, c), (d, e, f) = row(0), row(1)
        px = a * xo + b * yo + c + (2 * (w + 2 * big_x) - 1) / 2
        py = d * xo + e * yo + f + (2 * (h + 2 * big_y) - 1) / 2
        x = bilinear_sample(x, px, py)
        return downsample2d(x, self.Hz_geom, down=2, padding=-hz_pad * 2, flip_filter=True)

    @staticmethod
    def _window(h, w, y0, y1, x0, x1, up):
        """``[1, h, w, 1]`` mask: 1 on rows ``[up*y0, up*y1)`` and columns ``[up*x0, up*x1)``."""
        rows = ops.arange(h, dtype="float32")
        cols = ops.arange(w, dtype="float32")
        in_r = ops.cast((rows >= up * y0) & (rows < up * y1), "float32")
        in_c = ops.cast((cols >= up * x0) & (cols < up * x1), "float32")
        return ops.reshape(in_r, [1, h, 1, 1]) * ops.reshape(in_c, [1, 1, w, 1])

    @staticmethod
    def _apply_color(images, c_mat):
        c = int(images.shape[-1])
        if c == 3:
            y = ops.einsum("nij,nhwj->nhwi", c_mat[:, :3, :3], images)
            return y + ops.reshape(c_mat[:, :3, 3], [-1, 1, 1, 3])
        if c == 1:
            m = ops.mean(c_mat[:, :3, :], axis=1)  # [N, 4]: mean of the RGB rows
            gain = ops.reshape(ops.sum(m[:, :3], axis=1), [-1, 1, 1, 1])
            return images * gain + ops.reshape(m[:, 3], [-1, 1, 1, 1])
        raise ValueError(f"AugmentPipe: colour ops need images with 1 or 3 channels, got {c}")

    def _imgfilter(self, images, n, dp):
        """Random per-image gains of the 4 octave bands, total expected power kept at 1."""
        p = ops.cast(self.p, "float32")
        power = ops.convert_to_tensor(_EXPECTED_BAND_POWER)
        num_bands = len(self.imgfilter_bands)
        g = ops.ones([n, num_bands])
        for i, strength in enumerate(self.imgfilter_bands):
            if dp is not None and strength <= 0:
                t_i = ops.ones([n])
            else:
                t_i = self._draw("normal", [n], self.imgfilter * p * strength, 0.0, self._gauss, dp)
                t_i = ops.exp2(t_i * self.imgfilter_std)
            t = ops.where(ops.arange(num_bands)[None, :] == i, t_i[:, None], ops.ones([n, num_bands]))
            t = t / ops.sqrt(ops.sum(power * t * t, axis=-1, keepdims=True))
            g = g * t
        taps = g @ ops.convert_to_tensor(self.Hz_fbank)  # [N, K], symmetric
        k = int(self.Hz_fbank.shape[1])
        h, w = int(images.shape[1]), int(images.shape[2])
        x = ops.pad(images, [[0, 0], [k // 2, k // 2], [k // 2, k // 2], [0, 0]], mode="reflect")
        tap = lambda j: ops.reshape(taps[:, j], [-1, 1, 1, 1])  # noqa: E731
        x = sum(x[:, :, j:j + w, :] * tap(j) for j in range(k))
        return sum(x[:, j:j + h, :, :] * tap(j) for j in range(k))

    def _noise(self, images, n, dp):
        p = ops.cast(self.p, "float32")
        if dp is None:
            sigma = ops.abs(self._draw("normal", [n], self.noise * p, 0.0, None, None))
        else:
            sigma = ops.zeros([n]) + ops.erfinv(dp)
        sigma = ops.reshape(sigma * self.noise_std, [-1, 1, 1, 1])
        return images + self._random("normal", ops.shape(images)) * sigma

    def _cutout(self, images, n, dp):
        p = ops.cast(self.p, "float32")
        h, w = int(images.shape[1]), int(images.shape[2])
        if dp is None:
            fire = self._random("uniform", [n]) < self.cutout * p
            size = ops.where(fire, ops.full([n], self.cutout_size), ops.zeros([n]))
            center = self._random("uniform", [n, 2])
        else:
            size = ops.full([n], self.cutout_size)
            center = ops.zeros([n, 2]) + dp
        size = ops.reshape(size, [-1, 1, 1, 1])
        cx = ops.reshape(center[:, 0], [-1, 1, 1, 1])
        cy = ops.reshape(center[:, 1], [-1, 1, 1, 1])
        gx = ops.reshape((ops.arange(w, dtype="float32") + 0.5) / w, [1, 1, w, 1])
        gy = ops.reshape((ops.arange(h, dtype="float32") + 0.5) / h, [1, h, 1, 1])
        keep = (ops.abs(gx - cx) >= size / 2) | (ops.abs(gy - cy) >= size / 2)
        return images * ops.cast(keep, images.dtype)

    def call(self, images, debug_percentile=None):
        """Steps: geometric resampling (if any geometric op is enabled), colour matrix (if any
        colour op is enabled), image-space filter, noise, cutout. ``images`` ``[N, H, W, C]``
        (N may be dynamic); returns the same shape and dtype (computed in float32)."""
        if len(images.shape) != 4 or any(s is None for s in images.shape[1:]):
            raise ValueError(f"AugmentPipe: images must be NHWC [N, H, W, C] with static H, W, C, "
                             f"got shape {list(images.shape)}")
        in_dtype = images.dtype
        x = ops.cast(images, "float32")
        n, h, w, c = ops.shape(x)[0], int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
        dp = None if debug_percentile is None else ops.cast(debug_percentile, "float32")
        if any(getattr(self, k) > 0 for k in _GEOM_OPS):
            x = self._resample(x, self._geometric_matrix(n, w, h, dp))
        if any(getattr(self, k) > 0 for k in _COLOR_OPS):
            x = self._apply_color(x, self._color_matrix(n, c, dp))
        if self.imgfilter > 0:
            x = self._imgfilter(x, n, dp)
        if self.noise > 0:
            x = self._noise(x, n, dp)
        if self.cutout > 0:
            x = self._cutout(x, n, dp)
        return ops.cast(x, in_dtype)
