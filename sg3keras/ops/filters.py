"""Host-side (NumPy/SciPy) filter construction, run once at layer construction time.

- :func:`design_lowpass_filter` -- the Kaiser-windowed sinc (separable) or jinc (radial) low-pass
  filters of the alias-free generator (Alias-Free GAN, Appendix C "Filter details", Eq. 4-12;
  docs/PAPER.md).
- :func:`setup_filter` -- normalise / flip / scale a user filter for :mod:`sg3keras.ops.upfirdn2d`.

All outputs are float32 numpy arrays; 1-D = separable, 2-D ``[fh, fw]`` = full.
"""

import numpy as np
import scipy.signal
import scipy.special

__all__ = ["design_lowpass_filter", "setup_filter"]


def design_lowpass_filter(numtaps, cutoff, width, fs, radial=False):
    """Design a windowed low-pass FIR filter.

    Steps:
    1. ``numtaps == 1`` -> ``None`` (identity, no filtering).
    2. Separable: ``scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)`` -- a sinc with a
       Kaiser window whose beta follows from the transition ``width``; DC gain 1.
    3. Radial: jinc ``J1(2*pi*cutoff*r) / (pi*r)`` on the 2-D tap grid (``r`` in units of 1/fs
       from the centre), times the outer product of two 1-D Kaiser windows with the same beta,
       normalised to sum 1.

    Args:
        numtaps: number of taps per axis (int >= 1).
        cutoff: cutoff frequency (same units as ``fs``).
        width: transition band width (same units as ``fs``).
        fs: sampling rate.
        radial: return a 2-D ``[numtaps, numtaps]`` radially symmetric filter.
    Returns:
        float32 array ``[numtaps]`` or ``[numtaps, numtaps]``, or None for one tap.
    """
    numtaps = int(numtaps)
    if numtaps < 1:
        raise ValueError(f"design_lowpass_filter: numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    if not radial:
        taps = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return np.asarray(taps, dtype=np.float32)
    coords = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    radius = np.hypot(*np.meshgrid(coords, coords))
    jinc = scipy.special.j1(2 * cutoff * (np.pi * radius)) / (np.pi * radius)
    atten = scipy.signal.kaiser_atten(numtaps, width / (fs / 2))
    beta = scipy.signal.kaiser_beta(atten)
    window = np.kaiser(numtaps, beta)
    taps = jinc * np.outer(window, window)
    taps = taps / np.sum(taps)
    return np.asarray(taps, dtype=np.float32)


def setup_filter(f, normalize=True, flip_filter=False, gain=1, separable=None):
    """Turn a filter spec into the float32 array the resampling ops expect.

    Steps:
    1. ``None`` -> the 1-tap identity; scalars become 1-tap filters.
    2. 1-D filters with fewer than 8 taps become the 2-D outer product ``f f^T``, unless
       ``separable`` says otherwise (``separable=True`` keeps them 1-D).
    3. ``normalize``: divide by the sum of all taps (so the DC gain is 1).
    4. ``flip_filter``: reverse along every axis.
    5. Multiply by ``gain ** (ndim / 2)`` (a separable filter is applied twice).

    Args:
        f: None, scalar, 1-D or 2-D array-like.
        normalize, flip_filter, gain, separable: see steps.
    Returns:
        float32 numpy array, 1-D ``[taps]`` or 2-D ``[fh, fw]``.
    """
    f = np.ones([1], dtype=np.float32) if f is None else np.asarray(f, dtype=np.float32)
    if f.ndim == 0:
        f = f[np.newaxis]
    if f.ndim not in (1, 2) or f.size == 0:
        raise ValueError(f"setup_filter: f must be a non-empty 1-D or 2-D filter, "
                         f"got shape {f.shape}")
    if separable is None:
        separable = f.ndim == 1 and f.size >= 8
    if f.ndim == 1 and not separable:
        f = np.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f"setup_filter: separable={separable} needs a "
                         f"{'1-D' if separable else '2-D'} filter, got shape {f.shape}")
    if normalize:
        f = f / np.sum(f, dtype=np.float64)
    if flip_filter:
        f = np.flip(f, axis=tuple(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return np.ascontiguousarray(f, dtype=np.float32)
