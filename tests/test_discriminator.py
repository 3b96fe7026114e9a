"""Discriminator parity with the official StyleGAN2 D (tests/reference/d_sg2_32*), conversion,
freeze-D and serialization."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import close_to_official as _close
from refdata import load_json, load_npz, nchw_to_nhwc
from sg3keras.config import DiscriminatorConfig
from sg3keras.convert.discriminator import discriminator_from_official
from sg3keras.models.discriminator import Discriminator

CASES = ["d_sg2_32", "d_sg2_32_cond"]
_CACHE = {}


def _load(case):
    if case not in _CACHE:
        params, io = load_npz(case, "params"), load_npz(case, "io")
        d = discriminator_from_official(params, load_json(case, "config")["constructor_kwargs"])
        c = io["c"] if io["c"].shape[1] else None
        _CACHE[case] = d, io, c
    return _CACHE[case]


@pytest.mark.parametrize("case", CASES)
def test_logits_match_official(case):
    d, io, c = _load(case)
    _close(d(nchw_to_nhwc(io["img"]), c), io["logits"], 1e-4)
    # A batch of 4 regroups the minibatch-std statistics.
    _close(d(nchw_to_nhwc(io["img"][:4]), None if c is None else c[:4]),
           io["logits_first4_as_batch4"], 1e-4)


@pytest.mark.parametrize("case", CASES)
def test_block_and_epilogue_outputs_match_official(case):
    d, io, c = _load(case)
    x, img = None, tf.constant(nchw_to_nhwc(io["img"]))
    for block in d.blocks:
        x, img = block(x, img)
        _close(x, io[f"layers/{block.name}"], 1e-5)
    # Epilogue steps, each fed with the official input of that step.
    b4 = d.b4
    _close(b4.mbstd(nchw_to_nhwc(io["layers/b8"])), io["layers/b4.mbstd"], 1e-5)
    _close(b4.conv(nchw_to_nhwc(io["layers/b4.mbstd"])), io["layers/b4.conv"], 1e-5)
    flat = np.reshape(io["layers/b4.conv"], [io["layers/b4.conv"].shape[0], -1])  # NCHW order
    _close(b4.fc(flat), io["layers/b4.fc"], 1e-5)
    _close(b4.out(io["layers/b4.fc"]), io["layers/b4.out"], 1e-4)
    if c is not None:
        _close(d.mapping(c), io["layers/mapping"], 1e-5)


def test_dynamic_batch_under_tf_function():
    d, io, c = _load("d_sg2_32")
    fn = tf.function(lambda t: d(t), input_signature=[tf.TensorSpec([None, 32, 32, 3])])
    _close(fn(nchw_to_nhwc(io["img"])), io["logits"], 1e-4)


def test_freeze_layers_marks_leading_layers_frozen_and_still_loads():
    params = load_npz("d_sg2_32", "params")
    kwargs = dict(load_json("d_sg2_32", "config")["constructor_kwargs"])
    kwargs["block_kwargs"] = {"freeze_layers": 5}   # b32: fromrgb, conv0, conv1, skip; b16.conv0
    d = discriminator_from_official(params, kwargs)
    frozen = {v.path.split("/", 1)[1] for v in d.non_trainable_weights
              if not v.path.endswith("resample_filter")}
    assert frozen == {"b32/fromrgb/weight", "b32/fromrgb/bias", "b32/conv0/weight",
                      "b32/conv0/bias", "b32/conv1/weight", "b32/conv1/bias", "b32/skip/weight",
                      "b16/conv0/weight", "b16/conv0/bias"}
    io = load_npz("d_sg2_32", "io")
    _close(d(nchw_to_nhwc(io["img"])), io["logits"], 1e-4)


def test_converter_reports_missing_and_misshaped_entries():
    params = dict(load_npz("d_sg2_32", "params"))
    kwargs = load_json("d_sg2_32", "config")["constructor_kwargs"]
    del params["b16.conv0.bias"]
    params["b8.conv1.weight"] = params["b8.conv1.weight"][:, :5]
    with pytest.raises(ValueError) as err:
        discriminator_from_official(params, kwargs)
    assert "b16.conv0.bias" in str(err.value) and "b8.conv1.weight" in str(err.value)
    with pytest.raises(ValueError, match="unknown key"):
        discriminator_from_official(params, dict(kwargs, channel_multiplier=2))


def test_bad_inputs_raise_clear_errors():
    d, io, c = _load("d_sg2_32_cond")
    with pytest.raises(ValueError, match="img must be NHWC"):
        d(np.zeros([2, 3, 32, 32], np.float32), c[:2])
    with pytest.raises(ValueError, match="conditional"):
        d(nchw_to_nhwc(io["img"]))


def test_get_config_round_trip_and_from_preset():
    d = Discriminator.from_preset("stylegan3-r", img_resolution=16, channel_base=128,
                                  channel_max=16, c_dim=3)
    assert d.config.channel_base == 128 and d.config.c_dim == 3 and d.cmap_dim == 16
    cfg = d.get_config()
    d2 = Discriminator.from_config(json.loads(json.dumps(cfg)))
    assert json.dumps(d2.get_config(), sort_keys=True) == json.dumps(cfg, sort_keys=True)
    assert [v.path for v in d2.weights] == [v.path for v in d.weights]
    with pytest.raises(ValueError, match="unknown config field"):
        Discriminator.from_preset("stylegan2", img_resolution=16, chanel_base=1)
    assert isinstance(d.config, DiscriminatorConfig)


def test_keras_file_round_trip(tmp_path):
    d, io, c = _load("d_sg2_32_cond")
    img = nchw_to_nhwc(io["img"])
    path = str(tmp_path / "d.keras")
    d.save(path)
    d2 = keras.models.load_model(path)
    assert isinstance(d2, Discriminator)
    np.testing.assert_array_equal(np.asarray(d2(img, c)), np.asarray(d(img, c)))
