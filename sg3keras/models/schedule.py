"""The StyleGAN3 frequency / channel schedule (Alias-Free GAN, Section 3.2 "Flexible layer
specifications (config T)", Appendix F.1 "Flexible layer specifications" and Appendix F.2
"Generator capacity").

One pure function, :func:`synthesis_schedule`, turns a :class:`GeneratorConfig` into plain
numbers: the per-layer arrays and one :class:`LayerSpec` per synthesis layer. Layers only receive
these numbers, so the schedule formulas live here and nowhere else. No Keras, numpy only.

Symbols (per layer ``i = 0..N``, ``N = num_layers``, ``R = img_resolution``):

* ``e_i = min(i / (N - num_critical), 1)``  interpolation exponent;
* ``f_c[i]`` cutoff, geometric from ``first_cutoff`` to ``R/2``;
* ``f_t[i]`` minimum stopband, geometric from ``first_stopband`` to ``R/2 * last_stopband_rel``;
* ``s[i] = 2**ceil(log2(min(2 f_t[i], R)))`` sampling rate;
* ``f_h[i] = max(f_t[i], s[i]/2) - f_c[i]`` transition half-width;
* ``sizes[i] = s[i] + 2 margin`` (the last two layers: ``R``), channels
  ``rint(min(channel_base/2 / f_c[i], channel_max))`` (the last one: ``img_channels``).

``layer_schedule="octave"`` is the paper's configs E-H (Section 3.2, before "Flexible layer
specifications"): StyleGAN2's layout of one layer at 4x4 and two per octave up to ``R``
(``N = 2 log2(R) - 3``), ``s[i] = min(4 * 2**ceil(i/2), R)``; a critically sampled layer has
``f_c = s/2`` and ``f_h = (sqrt(2) - 1) s/2`` (Section 3.2 "Boundaries and upsampling",
config E), the others ``f_c = s/2 - f_h`` (so that ``f_c + f_h = s/2``: "Non-critical
sampling", config G); the minimum stopband is then ``f_t = f_c + f_h``. Sizes, channels and
geometry follow the same rules as above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from sg3keras.config import octave_num_layers

__all__ = ["InputSpec", "LayerSpec", "SynthesisSchedule", "synthesis_schedule",
           "parameter_counts", "octave_num_layers"]


@dataclass(frozen=True)
class InputSpec:
    """The Fourier-feature input layer: ``channels`` features on a ``size`` grid."""

    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


@dataclass(frozen=True)
class LayerSpec:
    """Everything one synthesis layer ``L{idx}_{out_size}_{out_channels}`` needs."""

    idx: int
    name: str
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool                 # Recorded only; fp16 ran on CUDA only.
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: float
    out_sampling_rate: float
    tmp_sampling_rate: float       # Rate at which the leaky ReLU runs.
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    out_stopband: float
    conv_kernel: int
    up_factor: int
    down_factor: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: Tuple[int, int, int, int]   # [x0, x1, y0, y1] w.r.t. the upsampled signal.
    conv_clamp: Optional[float]
    magnitude_ema_beta: float

    def layer_kwargs(self) -> dict:
        """The keyword arguments of :class:`sg3keras.layers.SynthesisLayer` for this layer."""
        keys = ("is_torgb", "in_channels", "out_channels", "in_size", "out_size",
                "tmp_sampling_rate", "in_cutoff", "out_cutoff", "in_half_width",
                "out_half_width", "conv_kernel", "up_factor", "down_factor", "up_taps",
                "down_taps", "down_radial", "padding", "conv_clamp", "magnitude_ema_beta")
        kw = {k: getattr(self, k) for k in keys}
        kw["padding"] = list(self.padding)
        return kw


@dataclass(frozen=True)
class SynthesisSchedule:
    """Per-layer arrays (length ``num_layers + 1``) plus the input and layer specs."""

    cutoffs: np.ndarray
    stopbands: np.ndarray
    sampling_rates: np.ndarray
    half_widths: np.ndarray
    sizes: np.ndarray
    channels: np.ndarray
    input: InputSpec
    layers: Tuple[LayerSpec, ...]
    num_ws: int


def _layer_geometry(in_size, out_size, in_s, out_s, is_torgb, conv_kernel, filter_size,
                    lrelu_upsampling):
    """Resampling factors, filter taps and padding of one layer (Appendix C.3, Appendix F.1)."""
    tmp_s = max(in_s, out_s) * (1 if is_torgb else lrelu_upsampling)
    kernel = 1 if is_torgb else conv_kernel
    up = int(np.rint(tmp_s / in_s))
    down = int(np.rint(tmp_s / out_s))
    if up * in_s != tmp_s or down * out_s != tmp_s:
        raise ValueError(f"sampling rates {in_s}->{tmp_s}->{out_s} are not integer multiples")
    up_taps = filter_size * up if up > 1 and not is_torgb else 1
    down_taps = filter_size * down if down > 1 and not is_torgb else 1
    # Pad the upsampled signal so that the two FIR filters produce exactly out_size samples.
    total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
    lo = (total + up) // 2     # Python floor division, like numpy's, also for negative totals.
    hi = total - lo
    return dict(tmp_sampling_rate=float(tmp_s), conv_kernel=kernel, up_factor=up,
                down_factor=down, up_taps=up_taps, down_taps=down_taps,
                padding=(int(lo), int(hi), int(lo), int(hi)))


def _flexible_frequencies(cfg, n, res):
    """Config T/R: geometric ``f_c`` / ``f_t`` progressions, ``s`` from the stopband."""
    if n <= cfg.num_critical:
        raise ValueError(f"num_layers ({n}) must exceed num_critical ({cfg.num_critical})")
    last_cutoff = res / 2
    last_stopband = last_cutoff * cfg.last_stopband_rel
    exponents = np.minimum(np.arange(n + 1) / (n - cfg.num_critical), 1)
    cutoffs = cfg.first_cutoff * (last_cutoff / cfg.first_cutoff) ** exponents
    stopbands = cfg.first_stopband * (last_stopband / cfg.first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
    return cutoffs, stopbands, rates


def _octave_frequencies(cfg, n, res):
    """Configs E-H: ``s`` doubles every second layer; ``f_c`` critical or ``s/2 - f_h``."""
    if res < 8:
        raise ValueError(f"layer_schedule 'octave' (configs E-H) needs img_resolution >= 8, "
                         f"got {res}")
    if n != octave_num_layers(res):
        raise ValueError(f"layer_schedule 'octave' at img_resolution {res} needs num_layers = "
                         f"2 log2(R) - 3 = {octave_num_layers(res)}, got num_layers {n}")
    if not 0 <= cfg.num_critical <= n:
        raise ValueError(f"num_critical must be in [0, num_layers = {n}], got "
                         f"{cfg.num_critical}")
    idx = np.arange(n + 1)
    rates = np.minimum(4.0 * np.exp2(np.ceil(idx / 2)), res)
    half_widths = (np.sqrt(2) - 1) * rates / 2
    critical = idx >= n - cfg.num_critical
    cutoffs = np.where(critical, rates / 2, rates / 2 - half_widths)
    return cutoffs, cutoffs + half_widths, rates


def synthesis_schedule(cfg) -> SynthesisSchedule:
    """Compute the synthesis schedule of ``cfg`` (a ``GeneratorConfig`` of the stylegan3
    family, ``layer_schedule`` "flexible" or "octave")."""
    n, res = int(cfg.num_layers), int(cfg.img_resolution)
    kind = getattr(cfg, "layer_schedule", "flexible")
    if kind == "flexible":
        cutoffs, stopbands, rates = _flexible_frequencies(cfg, n, res)
    elif kind == "octave":
        cutoffs, stopbands, rates = _octave_frequencies(cfg, n, res)
    else:
        raise ValueError(f"layer_schedule: expected 'flexible' or 'octave', got {kind!r}")
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + cfg.margin_size * 2
    sizes[-2:] = res
    channels = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
    channels[-1] = cfg.img_channels
    sizes, channels = sizes.astype(np.int64), channels.astype(np.int64)

    layers = []
    for idx in range(n + 1):
        prev = max(idx - 1, 0)
        is_torgb = idx == n
        geo = _layer_geometry(int(sizes[prev]), int(sizes[idx]), int(rates[prev]),
                              int(rates[idx]), is_torgb, int(cfg.conv_kernel),
                              int(cfg.filter_size), int(cfg.lrelu_upsampling))
        critical = idx >= n - cfg.num_critical
        layers.append(LayerSpec(
            idx=idx, name=f"L{idx}_{sizes[idx]}_{channels[idx]}", is_torgb=is_torgb,
            is_critically_sampled=bool(critical),
            use_fp16=bool(rates[idx] * 2 ** cfg.num_fp16_res > res),
            in_channels=int(channels[prev]), out_channels=int(channels[idx]),
            in_size=int(sizes[prev]), out_size=int(sizes[idx]),
            in_sampling_rate=float(rates[prev]), out_sampling_rate=float(rates[idx]),
            in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]),
            in_half_width=float(half_widths[prev]), out_half_width=float(half_widths[idx]),
            out_stopband=float(stopbands[idx]),
            down_radial=bool(cfg.use_radial_filters and not critical),
            conv_clamp=None if cfg.conv_clamp is None else float(cfg.conv_clamp),
            magnitude_ema_beta=float(cfg.magnitude_ema_beta), **geo))
    inp = InputSpec(channels=int(channels[0]), size=int(sizes[0]),
                    sampling_rate=float(rates[0]), bandwidth=float(cutoffs[0]))
    return SynthesisSchedule(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=rates,
                             half_widths=half_widths, sizes=sizes, channels=channels,
                             input=inp, layers=tuple(layers), num_ws=n + 2)


def parameter_counts(cfg) -> dict:
    """Analytic parameter / buffer element counts of the StyleGAN3 generator for ``cfg``.

    Returns ``dict(mapping, synthesis, total, buffers)``: trainable parameter counts of the
    mapping and synthesis networks, their sum, and the number of buffer elements (``w_avg``,
    Fourier ``freqs``/``phases``/``transform``, per layer ``magnitude_ema`` and filter taps).
    """
    w, c_dim = int(cfg.w_dim), int(cfg.c_dim)
    mapping = 0
    in_features = cfg.z_dim + (w if c_dim > 0 else 0)
    if c_dim > 0:
        mapping += c_dim * w + w                              # embed
    for _ in range(cfg.mapping_layers):
        mapping += in_features * w + w
        in_features = w
    sched = synthesis_schedule(cfg)
    c0 = sched.input.channels
    synthesis = c0 * c0                                       # channel mixing weight
    if cfg.has_learned_input_transform:
        synthesis += w * 4 + 4                                # affine (config H on)
    buffers = w + 9 + 3 * c0                                  # w_avg, transform, freqs, phases
    for spec in sched.layers:
        k = spec.conv_kernel
        synthesis += (w * spec.in_channels + spec.in_channels            # affine
                      + spec.out_channels * spec.in_channels * k * k     # weight
                      + spec.out_channels)                               # bias
        buffers += 1                                                     # magnitude_ema
        buffers += spec.up_taps if spec.up_taps > 1 else 0
        if spec.down_taps > 1:
            buffers += spec.down_taps ** 2 if spec.down_radial else spec.down_taps
    return dict(mapping=mapping, synthesis=synthesis, total=mapping + synthesis,
                buffers=buffers)
