"""StyleGAN2 generator parity with the official networks_stylegan2.Generator (g_sg2_32)."""

import copy
import json

import keras
import numpy as np
import pytest

from helpers import close_to_official as _close
from refdata import load_json, load_npz, nchw_to_nhwc
from sg3keras.convert.stylegan2 import stylegan2_generator_from_official
from sg3keras.models.stylegan2_generator import StyleGAN2Generator

PARAMS = load_npz("g_sg2_32", "params")
IO = load_npz("g_sg2_32", "io")
CFG = load_json("g_sg2_32", "config")
ATOL = 2e-5
_G = []


def _g():
    if not _G:
        _G.append(stylegan2_generator_from_official(PARAMS, CFG["constructor_kwargs"]))
    return _G[0]


def test_structure_matches_official():
    g = _g()
    assert g.num_ws == CFG["structure"]["num_ws"]
    starts = dict(zip([b.name for b in g.synthesis.blocks], g.synthesis.ws_index))
    assert starts == CFG["structure"]["ws_index_per_block"]


@pytest.mark.parametrize("trunc", CFG["truncation"], ids=lambda t: t["ws_key"])
def test_mapping_matches_official(trunc):
    ws = _g().mapping(IO["z"], None, truncation_psi=trunc["truncation_psi"],
                      truncation_cutoff=trunc["truncation_cutoff"])
    _close(ws, IO[trunc["ws_key"]], ATOL)


@pytest.mark.parametrize("key", ["img_psi1_const", "img_psi1_none", "img_psi0.7_const",
                                 "img_psi0.7_none", "img_psi0.5_cutoff4_const"])
def test_synthesis_images_match_official(key):
    ws_key, noise_mode = key.replace("img_", "ws_").rsplit("_", 1)
    _close(_g().synthesis(IO[ws_key], noise_mode=noise_mode), IO[key], ATOL)


def test_full_generator_call_matches_official():
    _close(_g()(IO["z"], noise_mode="const"), IO["img_psi1_const"], ATOL)
    # The training-time (unfused) official path is the same function.
    _close(_g()(IO["z"], noise_mode="const"), IO["img_psi1_const_unfused"], ATOL)


@pytest.mark.parametrize("prefix,noise_mode", [("blocks", "const"),
                                               ("blocks_noise_none", "none")])
def test_block_outputs_match_official(prefix, noise_mode):
    g = _g()
    ws, x, img = IO["ws_psi1"], None, None
    for block, i in zip(g.synthesis.blocks, g.synthesis.ws_index):
        x, img = block(x, img, ws[:, i:i + block.num_conv + block.num_torgb],
                       noise_mode=noise_mode)
        _close(x, IO[f"{prefix}/synthesis.{block.name}/x"], ATOL)
        _close(img, IO[f"{prefix}/synthesis.{block.name}/img"], ATOL)


def test_layer_and_affine_outputs_match_official():
    g, ws = _g(), IO["ws_psi1"]
    for block, i in zip(g.synthesis.blocks, g.synthesis.ws_index):
        x = None if block.conv0 is None else nchw_to_nhwc(
            IO[f"blocks/synthesis.b{block.resolution // 2}/x"])
        names = (["conv0"] if block.conv0 is not None else []) + ["conv1", "torgb"]
        for j, name in enumerate(names):
            layer, key = getattr(block, name), f"synthesis.{block.name}.{name}"
            _close(layer.affine(ws[:, i + j]), IO[f"affine_out/{key}.affine"], ATOL)
            if x is None:  # conv1 of b4 starts from the learned constant
                x = np.broadcast_to(np.asarray(block.const)[None], (4,) + block.const.shape)
            kw = {} if name == "torgb" else {"noise_mode": "const"}
            y = layer(x, ws[:, i + j], **kw)
            _close(y, IO[f"layers/{key}"], ATOL)
            if name != "torgb":
                x = y


def test_update_emas_updates_w_avg_like_official():
    g = StyleGAN2Generator.from_config(copy.deepcopy(_g().get_config()))
    g.set_weights(_g().get_weights())
    img = g(IO["z"], noise_mode="const", update_emas=True)
    _close(img, IO["ema_update/img"], ATOL)
    _close(g.mapping.w_avg, IO["ema_update/mapping.w_avg"], 1e-6)
    np.testing.assert_array_equal(np.asarray(_g().mapping.w_avg), PARAMS["mapping.w_avg"])


def test_random_noise_is_fresh_and_uses_noise_strength():
    g = _g()
    ws = IO["ws_psi1"][:2]
    a = np.asarray(g.synthesis(ws, noise_mode="random"))
    b = np.asarray(g.synthesis(ws, noise_mode="random"))
    none = np.asarray(g.synthesis(ws, noise_mode="none"))
    assert a.shape == (2, 32, 32, 3) and np.abs(a - b).max() > 1e-3
    assert np.abs(a - none).max() > 1e-3
    with pytest.raises(ValueError, match="noise_mode"):
        g.synthesis(ws, noise_mode="fixed")


def test_errors_and_preset():
    with pytest.raises(ValueError, match="no input transform"):
        _g().set_transform(rotate=10)
    with pytest.raises(ValueError, match="ws"):
        _g().synthesis(IO["ws_psi1"][:, :5])
    g = StyleGAN2Generator.from_preset("stylegan2", img_resolution=16, z_dim=8, w_dim=8,
                                       channel_base=64, channel_max=8)
    assert g.num_ws == 6 and g.mapping.num_layers == 8
    assert g(np.zeros([2, 8], np.float32), noise_mode="none").shape == (2, 16, 16, 3)
    bad = dict(PARAMS)
    del bad["synthesis.b8.conv0.noise_const"]
    with pytest.raises(ValueError, match="noise_const"):
        stylegan2_generator_from_official(bad, CFG["constructor_kwargs"])


def test_config_and_keras_file_round_trip(tmp_path):
    g = _g()
    cfg = g.get_config()
    g2 = StyleGAN2Generator.from_config(json.loads(json.dumps(cfg)))
    assert json.dumps(g2.get_config(), sort_keys=True) == json.dumps(cfg, sort_keys=True)
    path = str(tmp_path / "g.keras")
    g.save(path)
    g3 = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(g3(IO["z"], noise_mode="const")),
                                  np.asarray(g(IO["z"], noise_mode="const")))
