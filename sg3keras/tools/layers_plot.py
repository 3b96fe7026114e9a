"""The StyleGAN3 per-layer frequency schedule as a plot (paper Figure 4c) and a table.

Both read :func:`sg3keras.models.schedule.synthesis_schedule`, the single home of the formulas:
cutoff ``f_c``, minimum stopband ``f_t``, sampling rate ``s``, transition half-width ``f_h``
(the filters' actual stopband is ``f_c + f_h``), sizes, channels, taps and paddings.
"""

import numpy as np

from sg3keras.models.schedule import synthesis_schedule
from sg3keras.tools._draw import pyplot, save_figure

__all__ = ["resolve_config", "plot_layer_schedule", "schedule_table"]


def resolve_config(cfg, img_resolution=None):
    """A ``GeneratorConfig`` from a config, a generator (``.config``) or a preset name."""
    if isinstance(cfg, str):
        from sg3keras.config import resolve_preset
        cfg = resolve_preset(cfg, img_resolution=img_resolution).generator
    cfg = getattr(cfg, "config", cfg)
    if not cfg.has_layer_schedule:
        raise ValueError(f"the layer schedule exists for StyleGAN3 configs only (alias-free "
                         f"filtered layers), got family {cfg.family!r}")
    return cfg


def _title(cfg):
    from sg3keras.config import ladder_name
    name = ladder_name(cfg)
    if name is None:
        name = "stylegan3-r" if getattr(cfg, "conv_kernel", 3) == 1 else "stylegan3-t"
    return f"{name} {cfg.img_resolution}px: per-layer frequency schedule"


def plot_layer_schedule(cfg, path, title=None, dpi=100):
    """Plot ``f_c``, ``f_t``, ``f_c + f_h``, ``s / 2`` and ``f_h`` per layer (log2 y), as PNG.

    Args:
        cfg: ``GeneratorConfig``, generator or preset name (e.g. ``"stylegan3-t"``).
        path: output PNG.
    """
    cfg = resolve_config(cfg)
    sch = synthesis_schedule(cfg)
    plt = pyplot()
    idx = np.arange(len(sch.cutoffs))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.fill_between(idx, sch.cutoffs, sch.cutoffs + sch.half_widths, step=None, alpha=0.15,
                    color="tab:orange", label="transition band [f_c, f_c + f_h]")
    ax.step(idx, sch.sampling_rates / 2, where="mid", color="black", linewidth=1.5,
            label="Nyquist s/2 (sampling rate s)")
    ax.plot(idx, sch.cutoffs, "o-", color="tab:blue", label="cutoff f_c")
    ax.plot(idx, sch.stopbands, "s--", color="tab:red", markersize=4,
            label="minimum stopband f_t")
    ax.plot(idx, sch.cutoffs + sch.half_widths, "^:", color="tab:orange", markersize=4,
            label="stopband f_c + f_h")
    ax.plot(idx, sch.half_widths, "x-.", color="tab:green", markersize=4,
            label="half-width f_h")
    ax.set_yscale("log", base=2)
    ax.set_xticks(idx)
    ax.set_xticklabels([f"L{i}" for i in idx], fontsize=8)
    ax.set_xlabel("layer (L0 = after the Fourier input; last = ToRGB)")
    ax.set_ylabel("frequency (cycles / image width)")
    crit = cfg.num_layers - cfg.num_critical
    ax.axvspan(crit - 0.5, idx[-1] + 0.5, color="grey", alpha=0.1, label="critically sampled")
    ax.set_title(title or _title(cfg))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path, dpi)


def schedule_table(cfg):
    """The per-layer specification as a fixed-width text table (one row per layer)."""
    cfg = resolve_config(cfg)
    sch = synthesis_schedule(cfg)
    inp = sch.input
    head = ("layer", "size", "s", "tmp s", "f_c", "f_t", "f_h", "up/dn", "taps", "padding",
            "channels", "flags")
    rows = [("input", f"{inp.size}", f"{inp.sampling_rate:g}", "", f"{inp.bandwidth:.3f}", "",
             "", "", "", "", f"{inp.channels}", "fourier")]
    for s in sch.layers:
        flags = [f for f, on in (("critical", s.is_critically_sampled), ("torgb", s.is_torgb),
                                 ("radial", s.down_radial)) if on]
        rows.append((s.name, f"{s.in_size}->{s.out_size}",
                     f"{s.in_sampling_rate:g}->{s.out_sampling_rate:g}",
                     f"{s.tmp_sampling_rate:g}", f"{s.out_cutoff:.3f}", f"{s.out_stopband:.3f}",
                     f"{s.out_half_width:.3f}", f"{s.up_factor}/{s.down_factor}",
                     f"{s.up_taps}/{s.down_taps}", "[" + ",".join(map(str, s.padding)) + "]",
                     f"{s.in_channels}->{s.out_channels}", ",".join(flags)))
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

    def fmt(r):
        return "  ".join(v.ljust(w) if i in (0, 11) else v.rjust(w)
                         for i, (v, w) in enumerate(zip(r, widths))).rstrip()

    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines) + "\n"
