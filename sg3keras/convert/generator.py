"""Official StyleGAN3 generator state dicts -> :class:`sg3keras.models.Generator`.

The name table below is data: each rule maps an official ``state_dict`` name (regex) to the
dotted Keras weight path and a layout transform. :func:`sg3keras.convert._table.apply_table`
checks that every Keras weight is written exactly once with the right shape.
"""

from __future__ import annotations

import dataclasses

from sg3keras.config import GeneratorConfig
from sg3keras.convert._table import (apply_table, conv_oikk_to_kkio, flatten_init_kwargs, identity,
                                     transpose_fc)

__all__ = ["GENERATOR_RULES", "config_from_official_kwargs", "generator_from_official"]

_L = r"(L\d+_\d+_\d+)"
GENERATOR_RULES = [
    # Mapping network: FC weights [out, in] -> [in, out]; w_avg buffer as is.
    (r"mapping\.(embed|fc\d+)\.weight", r"mapping.\1.weight", transpose_fc),
    (r"mapping\.(embed|fc\d+)\.bias", r"mapping.\1.bias", identity),
    (r"mapping\.w_avg", r"mapping.w_avg", identity),
    # Fourier-feature input: mixing weight [C_out, C_in] -> [C_in, C_out]; buffers as is.
    (r"synthesis\.input\.(weight|affine\.weight)", r"synthesis.input.\1", transpose_fc),
    (r"synthesis\.input\.(affine\.bias|freqs|phases|transform)", r"synthesis.input.\1",
     identity),
    # Synthesis layers: conv [O, I, k, k] -> [k, k, I, O]; affine FC; bias and buffers as is.
    (rf"synthesis\.{_L}\.weight", r"synthesis.\1.weight", conv_oikk_to_kkio),
    (rf"synthesis\.{_L}\.affine\.weight", r"synthesis.\1.affine.weight", transpose_fc),
    (rf"synthesis\.{_L}\.(bias|affine\.bias|magnitude_ema|up_filter|down_filter)",
     r"synthesis.\1.\2", identity),
]

_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_MAPPING = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier",
            "w_avg_beta": "w_avg_beta"}
_SYNTHESIS = ("channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff",
              "first_stopband", "last_stopband_rel", "margin_size", "output_scale",
              "num_fp16_res", "conv_kernel", "filter_size", "lrelu_upsampling",
              "use_radial_filters", "conv_clamp", "magnitude_ema_beta")


def config_from_official_kwargs(init_kwargs: dict) -> GeneratorConfig:
    """Official ``Generator`` constructor kwargs -> :class:`GeneratorConfig` (StyleGAN3).

    ``mapping_kwargs`` is flattened into ``mapping_*`` fields; ``synthesis_kwargs`` (nested)
    is accepted as well as flat synthesis/layer kwargs. Unknown keys raise one error naming them.
    """
    out = flatten_init_kwargs(init_kwargs, tuple(_TOP) + tuple(_SYNTHESIS), _MAPPING,
                              "generator")
    missing = [k for k in _TOP[:3] + ("img_resolution", "img_channels") if k not in out]
    if missing:
        raise ValueError(f"generator init_kwargs: missing required key(s) {missing}")
    for key in ("first_cutoff", "first_stopband", "last_stopband_rel", "output_scale",
                "magnitude_ema_beta"):
        if key in out:
            out[key] = float(out[key])
    if out.get("conv_clamp") is not None:
        out["conv_clamp"] = float(out["conv_clamp"])
    return dataclasses.replace(GeneratorConfig(family="stylegan3"), **out)


def generator_from_official(state: dict, init_kwargs: dict, **generator_kwargs):
    """Build a :class:`Generator` from an official ``state_dict`` and its constructor kwargs.

    Args:
        state: ``{official_name: np.ndarray}`` (e.g. ``params.npz`` or a decoded pickle).
        init_kwargs: the official ``Generator`` constructor kwargs (``config.json`` →
            ``constructor_kwargs``, or a pickle's ``init_kwargs``).
        **generator_kwargs: passed to :class:`Generator` (``impl="fast"|"ref"``, ``name``).
    Returns:
        A built :class:`sg3keras.models.Generator` (or a StyleGAN2 generator when the state
        is a StyleGAN2 network, recognised by ``synthesis.b4.*`` entries).
    """
    if any(k.startswith("synthesis.b4.") for k in state):
        from sg3keras.convert.stylegan2 import stylegan2_generator_from_official
        return stylegan2_generator_from_official(state, init_kwargs, **generator_kwargs)
    from sg3keras.models import build_generator
    cfg = config_from_official_kwargs(init_kwargs)
    g = build_generator(cfg, **generator_kwargs)   # Builds every weight; no forward pass.
    apply_table(g, state, GENERATOR_RULES, what="generator")
    return g
