"""Average power spectra of datasets and generators (official ``avg_spectra.py`` maths).

Images are taken in the uint8 value range: dataset pixels as stored, generator outputs as
``img * 127.5 + 128`` (float, not clamped or quantised). ``z`` of generated image ``idx`` is
``RandomState(seed + idx).randn(z_dim)`` (then, for conditional networks, a random class from
the same stream, or the fixed ``class_idx``).

Spectrum (:func:`calc_spectrum`): whiten with the global mean/std, multiply by a 2-D Kaiser
window normalised to unit energy, zero-pad to ``interp * size``, average ``|FFT|^2`` over
images and channels. Index ``k`` of the result is ``k / (interp size)`` cycles per pixel.
"""

import io
import os

import numpy as np

from sg3keras.inference.generate import check_class
from sg3keras.tools._draw import pyplot, save_figure, synthesize
from sg3keras.utils import atomic_write_bytes

__all__ = ["generator_batches", "dataset_batches", "image_batches", "compute_stats",
           "kaiser_window", "calc_spectrum", "save_spectrum", "load_spectrum", "spectrum_db",
           "spectrum_slices", "plot_heatmap", "plot_slices", "write_spectra"]


def generator_batches(G, num, seed=0, batch_size=8, truncation_psi=1.0, class_idx=None):
    """Yield float64 NHWC batches of ``num`` generated images in the uint8 value range.

    A conditional network gets a random class per image, or ``class_idx`` for all."""
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    if c_dim > 0 and class_idx is not None:
        class_idx = check_class(G, class_idx)
    for start in range(0, int(num), int(batch_size)):
        idx = range(start, min(start + int(batch_size), int(num)))
        rnds = [np.random.RandomState(int(seed) + i) for i in idx]
        z = np.stack([r.randn(int(G.z_dim)) for r in rnds]).astype(np.float32)
        c = None
        if c_dim > 0:
            c = np.zeros([len(rnds), c_dim], np.float32)
            classes = [r.randint(c_dim) for r in rnds]
            c[np.arange(len(rnds)), classes if class_idx is None else class_idx] = 1
        ws = G.mapping(z, c, truncation_psi=truncation_psi)
        yield synthesize(G, ws, batch_size).astype(np.float64) * 127.5 + 128


def dataset_batches(dataset, num=None, batch_size=64):
    """Yield float64 NHWC batches (uint8 values) of the first ``num`` dataset images."""
    for batch in dataset.iter_uint8(int(batch_size), max_items=num):
        yield batch.astype(np.float64)


def image_batches(source, num=None, seed=0, batch_size=8, class_idx=None):
    """Batches from a dataset path / ``ImageDataset`` or a generator (``num`` required;
    ``class_idx``: see :func:`generator_batches`)."""
    if isinstance(source, (str, os.PathLike)):
        from sg3keras.data import ImageDataset
        source = ImageDataset(source, use_labels=False)
    if hasattr(source, "iter_uint8"):
        return dataset_batches(source, num, max(int(batch_size), 1))
    if num is None:
        raise ValueError("num: the number of generated images is required for a generator")
    return generator_batches(source, num, seed, batch_size, class_idx=class_idx)


def compute_stats(batches):
    """Mean and standard deviation over all pixels and channels of all batches (float64)."""
    total = total_sq = 0.0
    count = 0
    for x in batches:
        x = np.asarray(x, np.float64)
        total += x.sum()
        total_sq += np.square(x).sum()
        count += x.size
    if count == 0:
        raise ValueError("compute_stats: no images")
    mean = total / count
    return float(mean), float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))


def kaiser_window(size, beta=8):
    """Separable 2-D Kaiser window ``[size, size]`` scaled to unit sum of squares."""
    w1 = np.kaiser(int(size), float(beta))
    w = np.outer(w1, w1)
    return w / np.sqrt(np.square(w).sum())


def calc_spectrum(batches, mean, std, beta=8, interp=4):
    """Average power spectrum ``[interp R, interp R]`` (float64) of square NHWC batches.

    Steps per batch: ``(x - mean) / std``; multiply by :func:`kaiser_window`; zero-pad each
    image at the bottom/right to ``interp R``; ``|fft2|^2``; sum over images and channels.
    Finally divide by the number of (image, channel) pairs.

    Returns:
        ``(spectrum, image_size)``; the zero frequency is at ``[0, 0]`` (not shifted).
    """
    spectrum, count, size = None, 0, None
    for x in batches:
        x = np.asarray(x, np.float64)
        if x.ndim != 4 or x.shape[1] != x.shape[2]:
            raise ValueError(f"calc_spectrum: expected square NHWC batches, got {x.shape}")
        if size is None:
            size = x.shape[1]
            window = kaiser_window(size, beta)[None, :, :, None]
            spectrum = np.zeros([size * interp] * 2)
        elif x.shape[1] != size:
            raise ValueError(f"calc_spectrum: image size changed from {size} to {x.shape[1]}")
        y = (x - mean) / std * window
        f = np.fft.fft2(y, s=(size * interp, size * interp), axes=(1, 2))
        spectrum += np.square(np.abs(f)).sum(axis=(0, 3))
        count += x.shape[0] * x.shape[3]
    if not count:
        raise ValueError("calc_spectrum: no images")
    return spectrum / count, int(size)


def save_spectrum(path, spectrum, image_size):
    """Write ``spectrum`` and ``image_size`` to an ``.npz`` file atomically."""
    buf = io.BytesIO()
    np.savez(buf, spectrum=np.asarray(spectrum, np.float64), image_size=int(image_size))
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_spectrum(path):
    """``(spectrum, image_size)`` from :func:`save_spectrum`'s file."""
    with np.load(path) as data:
        return data["spectrum"], int(data["image_size"])


def spectrum_db(spectrum, floor=1e-12):
    """``10 log10(spectrum)`` (decibels), values clipped below at ``floor``."""
    return 10 * np.log10(np.maximum(np.asarray(spectrum, np.float64), floor))


def spectrum_slices(spectrum, image_size):
    """0 and 45 degree slices from DC outwards, with frequency in units of Nyquist.

    Returns ``dict(deg0=(f, power), deg45=(f, power))``; ``deg0`` runs along the image x axis
    (``spectrum[0, k]``), ``deg45`` along the diagonal (``spectrum[k, k]``, radius
    ``sqrt(2) k``). ``f = 1`` is the Nyquist frequency 0.5 cycles/pixel.
    """
    n = spectrum.shape[0]
    k = np.arange(n // 2 + 1)
    to_nyq = 2.0 / n                       # bin k is k / n cycles/pixel; Nyquist = 0.5
    return dict(deg0=(k * to_nyq, spectrum[0, k]),
                deg45=(np.sqrt(2) * k * to_nyq, spectrum[k, k]))


def plot_heatmap(spectrum, path, image_size=None, smooth=1.25, dpi=100, title=None):
    """Heat map of ``spectrum`` in dB, zero frequency in the centre (fftshift), as PNG."""
    import scipy.ndimage

    plt = pyplot()
    n = spectrum.shape[0]
    size = n if image_size is None else int(image_size)
    db = np.fft.fftshift(spectrum_db(spectrum))
    if smooth > 0:
        db = scipy.ndimage.gaussian_filter(db, float(smooth), mode="wrap")
    half = size / 2                        # axes in cycles per image
    fig, ax = plt.subplots(figsize=(5, 4.2))
    im = ax.imshow(db, extent=(-half, half, half, -half), cmap="inferno",
                   vmin=np.percentile(db, 1), vmax=db.max())
    fig.colorbar(im, ax=ax, label="power (dB)")
    ax.set_xlabel("horizontal frequency (cycles / image)")
    ax.set_ylabel("vertical frequency (cycles / image)")
    ax.set_title(title or f"average power spectrum ({size}x{size})")
    return save_figure(fig, path, dpi)


def plot_slices(spectra, path, smooth=0.0, dpi=100):
    """Plot the 0 and 45 degree slices of several spectra on shared axes, as PNG.

    Args:
        spectra: ``{name: (spectrum, image_size)}`` or ``{name: npz_path}``.
        smooth: Gaussian smoothing (in spectrum bins) of each slice's dB values.
    """
    import scipy.ndimage

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for name, value in spectra.items():
        spectrum, size = load_spectrum(value) if isinstance(value, (str, os.PathLike)) else value
        for ax, (key, (f, p)) in zip(axes, spectrum_slices(spectrum, size).items()):
            db = spectrum_db(p)
            if smooth > 0:
                db = scipy.ndimage.gaussian_filter1d(db, float(smooth))
            ax.plot(f, db, label=name, linewidth=1)
    for ax, angle in zip(axes, ("0", "45")):
        ax.set_title(f"{angle} degree slice")
        ax.set_xlabel("frequency (1 = Nyquist)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("power (dB)")
    axes[1].legend(fontsize=8)
    return save_figure(fig, path, dpi)


def write_spectra(source, outdir, name="spectrum", num=None, seed=0, beta=8, interp=4,
                  batch_size=8, mean=None, std=None, class_idx=None):
    """Stats, spectrum, ``{name}.npz``, ``{name}-heatmap.png`` and ``{name}-slices.png``.

    ``source``: dataset path / ``ImageDataset`` (``num`` = None: all images) or generator
    (``num`` required; ``class_idx``: see :func:`generator_batches`). ``mean``/``std`` default to the source's own statistics (the official
    tool lets you pass another source's, e.g. the dataset's for a generator).

    Returns:
        dict ``mean``, ``std``, ``image_size``, ``paths``, ``spectrum``.
    """
    if mean is None or std is None:
        mean, std = compute_stats(image_batches(source, num, seed, batch_size, class_idx))
    spectrum, size = calc_spectrum(image_batches(source, num, seed, batch_size, class_idx), mean,
                                   std, beta, interp)
    base = os.path.join(outdir, name)
    paths = [save_spectrum(base + ".npz", spectrum, size),
             plot_heatmap(spectrum, base + "-heatmap.png", size, title=f"{name} ({size}px)"),
             plot_slices({name: (spectrum, size)}, base + "-slices.png")]
    return dict(mean=mean, std=std, image_size=size, paths=paths, spectrum=spectrum)
