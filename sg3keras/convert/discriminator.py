"""Official StyleGAN2 discriminator state dicts -> :class:`sg3keras.models.Discriminator`.

The Keras weight paths equal the official names (``b32.conv0.weight``), so the table only
changes layouts. Frozen layers (``--freezed``) keep their ``weight``/``bias`` as *buffers* under
the same names in the official state dict, so they need no extra rule.
"""

from __future__ import annotations

import dataclasses

from sg3keras.config import DiscriminatorConfig
from sg3keras.convert._table import apply_table, conv_oikk_to_kkio, identity, transpose_fc

__all__ = ["DISCRIMINATOR_RULES", "discriminator_config_from_official_kwargs",
           "discriminator_from_official"]

_CONV = r"(b\d+\.(?:fromrgb|conv0|conv1|skip|conv))"
DISCRIMINATOR_RULES = [
    # Conv2dLayer: weight [O, I, k, k] -> [k, k, I, O]; bias and resample_filter as is.
    (rf"{_CONV}\.weight", r"\1.weight", conv_oikk_to_kkio),
    (rf"{_CONV}\.(bias|resample_filter)", r"\1.\2", identity),
    # Block-level resample_filter buffer (used by the "skip" architecture).
    (r"(b\d+)\.resample_filter", r"\1.resample_filter", identity),
    # Epilogue FCs and the label mapping: FC weight [out, in] -> [in, out].
    (r"(b4\.(?:fc|out)|mapping\.(?:embed|fc\d+))\.weight", r"\1.weight", transpose_fc),
    (r"(b4\.(?:fc|out)|mapping\.(?:embed|fc\d+))\.bias", r"\1.bias", identity),
]

_TOP = ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base",
        "channel_max", "num_fp16_res", "conv_clamp", "cmap_dim")
_BLOCK = {"freeze_layers": "freeze_layers", "resample_filter": "resample_filter"}
_MAPPING = {"num_layers": "mapping_layers"}
_EPILOGUE = {"mbstd_group_size": "mbstd_group_size", "mbstd_num_channels": "mbstd_num_channels"}


def discriminator_config_from_official_kwargs(init_kwargs: dict) -> DiscriminatorConfig:
    """Official ``Discriminator`` constructor kwargs -> :class:`DiscriminatorConfig`.

    ``block_kwargs``, ``mapping_kwargs`` and ``epilogue_kwargs`` are flattened; unknown keys
    (including non-default activations or mapping lr multipliers) raise one error naming them.
    """
    kw = dict(init_kwargs)
    out, unknown = {}, []
    for group, table in (("block_kwargs", _BLOCK), ("mapping_kwargs", _MAPPING),
                         ("epilogue_kwargs", _EPILOGUE)):
        for key, value in (kw.pop(group, None) or {}).items():
            if key in table:
                out[table[key]] = value
            else:
                unknown.append(f"{group}.{key}")
    for key, value in kw.items():
        if key in _TOP:
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"discriminator init_kwargs: unknown key(s) {sorted(unknown)}; expected "
                         f"{sorted(_TOP)} and block/mapping/epilogue_kwargs "
                         f"{sorted(_BLOCK) + sorted(_MAPPING) + sorted(_EPILOGUE)}")
    missing = [k for k in ("c_dim", "img_resolution", "img_channels") if k not in out]
    if missing:
        raise ValueError(f"discriminator init_kwargs: missing required key(s) {missing}")
    if out.get("conv_clamp") is not None:
        out["conv_clamp"] = float(out["conv_clamp"])
    if "resample_filter" in out:
        out["resample_filter"] = tuple(out["resample_filter"])
    return dataclasses.replace(DiscriminatorConfig(), **out)


def discriminator_from_official(state: dict, init_kwargs: dict):
    """Build a :class:`Discriminator` from an official ``state_dict`` and its constructor kwargs.

    Args:
        state: ``{official_name: np.ndarray}`` (``params.npz`` or a decoded pickle's ``D``),
            parameters and buffers together.
        init_kwargs: the official constructor kwargs (``config.json`` -> ``constructor_kwargs``
            or a pickle's ``init_kwargs``).
    Returns:
        A built :class:`sg3keras.models.Discriminator` holding the official values.
    """
    from sg3keras.models.discriminator import Discriminator
    d = Discriminator(discriminator_config_from_official_kwargs(init_kwargs))
    apply_table(d, state, DISCRIMINATOR_RULES, what="discriminator")
    return d
