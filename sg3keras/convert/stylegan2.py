"""Official StyleGAN2 generator state dicts -> :class:`sg3keras.models.StyleGAN2Generator`.

Keras weight paths equal the official names (``synthesis.b8.conv0.affine.weight``); the table
only changes layouts (conv ``[O, I, k, k]`` -> ``[k, k, I, O]``, FC ``[out, in]`` -> ``[in, out]``,
``const [C, R, R]`` -> ``[R, R, C]``). ``noise_const`` and ``resample_filter`` buffers are loaded.
"""

from __future__ import annotations

import dataclasses

from sg3keras.config import GeneratorConfig
from sg3keras.convert._table import (apply_table, chw_to_hwc, conv_oikk_to_kkio,
                                     flatten_init_kwargs, identity, transpose_fc)

__all__ = ["STYLEGAN2_RULES", "stylegan2_config_from_official_kwargs",
           "stylegan2_generator_from_official"]


_B = r"(synthesis\.b\d+)"                                   # a block
_L = r"(synthesis\.b\d+\.(?:conv0|conv1|torgb|skip))"         # a layer of a block
STYLEGAN2_RULES = [
    (r"mapping\.(embed|fc\d+)\.weight", r"mapping.\1.weight", transpose_fc),
    (r"mapping\.(embed|fc\d+)\.bias", r"mapping.\1.bias", identity),
    (r"mapping\.w_avg", r"mapping.w_avg", identity),
    (rf"{_B}\.const", r"\1.const", chw_to_hwc),
    (rf"{_B}\.resample_filter", r"\1.resample_filter", identity),
    (rf"{_L}\.weight", r"\1.weight", conv_oikk_to_kkio),
    (rf"{_L}\.affine\.weight", r"\1.affine.weight", transpose_fc),
    (rf"{_L}\.(bias|affine\.bias|noise_const|noise_strength|resample_filter)", r"\1.\2",
     identity),
]

_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_MAPPING = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier",
            "w_avg_beta": "w_avg_beta"}
_SYNTHESIS = ("channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture",
              "resample_filter", "use_noise", "fused_modconv_default")


def stylegan2_config_from_official_kwargs(init_kwargs: dict) -> GeneratorConfig:
    """Official StyleGAN2 ``Generator`` kwargs -> :class:`GeneratorConfig` (``stylegan2``).

    ``mapping_kwargs`` is flattened into ``mapping_*``; ``synthesis_kwargs`` (nested) and flat
    synthesis/block kwargs are accepted. Unknown keys (e.g. a non-default activation or
    kernel size) raise one error naming them.
    """
    out = flatten_init_kwargs(init_kwargs, tuple(_TOP) + tuple(_SYNTHESIS), _MAPPING,
                              "stylegan2 generator")
    missing = [k for k in _TOP if k not in out]
    if missing:
        raise ValueError(f"stylegan2 generator init_kwargs: missing required key(s) {missing}")
    if out.get("conv_clamp") is not None:
        out["conv_clamp"] = float(out["conv_clamp"])
    if "resample_filter" in out:
        out["resample_filter"] = tuple(out["resample_filter"])
    if isinstance(out.get("fused_modconv_default"), bool):
        out["fused_modconv_default"] = str(out["fused_modconv_default"])
    base = GeneratorConfig(family="stylegan2", mapping_layers=8)
    return dataclasses.replace(base, **out)


def stylegan2_generator_from_official(state: dict, init_kwargs: dict, **generator_kwargs):
    """Build a :class:`StyleGAN2Generator` from an official ``state_dict`` and its kwargs.

    Args:
        state: ``{official_name: np.ndarray}`` (parameters and buffers).
        init_kwargs: official ``networks_stylegan2.Generator`` constructor kwargs.
        **generator_kwargs: passed to :func:`sg3keras.models.build_generator` (``name``).
    Returns:
        A built :class:`sg3keras.models.StyleGAN2Generator` holding the official values.
    """
    from sg3keras.models import build_generator
    g = build_generator(stylegan2_config_from_official_kwargs(init_kwargs), **generator_kwargs)
    apply_table(g, state, STYLEGAN2_RULES, what="stylegan2 generator")
    return g
