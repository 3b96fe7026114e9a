"""The StyleGAN3 synthesis schedule vs the official layer attributes (specs/layer_specs.json)."""

import dataclasses

import numpy as np
import pytest
from refdata import load_json

from sg3keras.config import GeneratorConfig, resolve_preset
from sg3keras.convert.generator import config_from_official_kwargs
from sg3keras.models.schedule import parameter_counts, synthesis_schedule

SPECS = load_json("specs", "layer_specs")["configs"]
NAMES = sorted(SPECS)

# json field -> LayerSpec attribute where the names differ.
_RENAMED = {"out_stopband_formula": "out_stopband"}
_NOT_IN_SPEC = {"up_filter_shape", "down_filter_shape"}


def _schedule(name):
    return synthesis_schedule(config_from_official_kwargs(SPECS[name]["G_kwargs"]))


def test_all_fourteen_configs_present():
    assert len(NAMES) == 14


@pytest.mark.parametrize("name", NAMES)
def test_layer_specs_match_official(name):
    ref = SPECS[name]
    sched = _schedule(name)
    assert sched.num_ws == ref["num_ws"]
    assert len(sched.layers) == ref["num_layers"] + 1 == len(ref["layers"])
    inp = ref["input"]
    assert sched.input.channels == inp["channels"]
    assert [sched.input.size] * 2 == inp["size"]
    assert sched.input.sampling_rate == inp["sampling_rate"]
    assert sched.input.bandwidth == pytest.approx(inp["bandwidth"], rel=1e-12)
    for spec, lref in zip(sched.layers, ref["layers"]):
        for key, want in lref.items():
            if key in _NOT_IN_SPEC:
                continue
            got = getattr(spec, _RENAMED.get(key, key))
            where = f"{name} {lref['name']}.{key}"
            if key in ("in_size", "out_size"):
                assert [got, got] == want, where
            elif key == "padding":
                assert list(got) == want, where
            elif isinstance(want, float):
                assert got == pytest.approx(want, rel=1e-12, abs=1e-12), where
            else:
                assert got == want, where
        # Filter shapes follow from taps / radial flag.
        up_shape = None if spec.up_taps == 1 else [spec.up_taps]
        down_shape = None if spec.down_taps == 1 else (
            [spec.down_taps] * 2 if spec.down_radial else [spec.down_taps])
        assert up_shape == lref["up_filter_shape"], name
        assert down_shape == lref["down_filter_shape"], name


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_match_official(name):
    ref = SPECS[name]
    counts = parameter_counts(config_from_official_kwargs(ref["G_kwargs"]))
    assert counts["mapping"] == ref["num_params_mapping"]
    assert counts["synthesis"] == ref["num_params_synthesis"]
    assert counts["total"] == ref["num_params_G"]
    assert counts["buffers"] == ref["num_buffers_elems"]


@pytest.mark.parametrize("preset", ["stylegan3-t", "stylegan3-r"])
@pytest.mark.parametrize("res", [256, 1024])
def test_presets_reproduce_train_py_schedules(preset, res):
    """resolve_preset(...) gives the same schedule as the kwargs train.py passes."""
    ours = synthesis_schedule(resolve_preset(preset, img_resolution=res).generator)
    ref = SPECS[f"{preset}-{res}"]
    assert [s.name for s in ours.layers] == [l["name"] for l in ref["layers"]]
    assert parameter_counts(resolve_preset(preset, img_resolution=res).generator)["total"] \
        == ref["num_params_G"]


def test_channels_use_half_channel_base_and_rint():
    # Not channel_base / s_i as some ports do: L7 of -t 1024 has an odd channel count.
    sched = synthesis_schedule(resolve_preset("stylegan3-t", img_resolution=1024).generator)
    ref = SPECS["stylegan3-t-1024"]["layers"][7]
    assert ref["out_channels"] % 2 == 1
    assert sched.layers[7].name == ref["name"]
    np.testing.assert_array_equal(sched.channels[-1], 3)


def test_bad_config_raises():
    cfg = dataclasses.replace(GeneratorConfig(), num_layers=2, num_critical=2)
    with pytest.raises(ValueError, match="num_layers"):
        synthesis_schedule(cfg)


def test_unknown_official_kwargs_raise():
    with pytest.raises(ValueError, match="bogus"):
        config_from_official_kwargs(dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16,
                                         img_channels=3, bogus=1))
