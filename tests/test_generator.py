"""StyleGAN3 generator parity with the official fixtures, plus API/serialization contracts.

Parity runs every fixture case with ``impl="ref"`` (cheap to trace); ``g_sg3t_32`` also runs
with the default ``impl="fast"`` and, in a subprocess, under ``KERAS_BACKEND=jax``.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from refdata import load_json, load_npz, nchw_to_nhwc

import keras
from sg3keras.config import GeneratorConfig
from sg3keras.convert.generator import config_from_official_kwargs, generator_from_official
from sg3keras.layers import FullyConnectedLayer, MappingNetwork, SynthesisInput, SynthesisLayer
from sg3keras.models import Generator, SynthesisNetwork, parameter_counts
from sg3keras.models.generator import make_transform

CASES = ["g_sg3t_32", "g_sg3r_32", "g_sg3t_32_cond_clamp", "g_sg3t_64", "g_sg3r_64"]
TRUNC = [("psi1", 1.0, None), ("psi0.7", 0.7, None), ("psi0.5_cutoff8", 0.5, 8)]
WS_TOL, IMG_TOL = 1e-5, 2e-5
_CACHE = {}


def _case(case, impl="ref"):
    """(G, io, params, config.json) for a fixture case, G loaded once per (case, impl)."""
    key = (case, impl)
    if key not in _CACHE:
        params, cfg = load_npz(case, "params"), load_json(case, "config")
        _CACHE[key] = (generator_from_official(params, cfg["constructor_kwargs"], impl=impl),
                       load_npz(case, "io"), params, cfg)
    return _CACHE[key]


def _c(io):
    return io["c"] if io["c"].shape[1] else None


def _err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.mark.parametrize("case", CASES)
def test_mapping_parity(case):
    g, io, _, _ = _case(case)
    for name, psi, cutoff in TRUNC:
        ws = g.mapping(io["z"], _c(io), truncation_psi=psi, truncation_cutoff=cutoff)
        assert ws.shape == io[f"ws_{name}"].shape
        assert _err(ws, io[f"ws_{name}"]) <= WS_TOL, (case, name)


@pytest.mark.parametrize("case", CASES)
def test_image_parity(case):
    g, io, _, _ = _case(case)
    img = g(io["z"], _c(io))                                    # mapping + synthesis
    assert img.dtype == "float32" and tuple(img.shape) == nchw_to_nhwc(io["img_psi1"]).shape
    assert _err(img, nchw_to_nhwc(io["img_psi1"])) <= IMG_TOL, case
    img = g(io["z"], _c(io), truncation_psi=0.7)
    assert _err(img, nchw_to_nhwc(io["img_psi0.7"])) <= IMG_TOL, case
    img = g.synthesis(io["ws_psi0.5_cutoff8"])
    assert _err(img, nchw_to_nhwc(io["img_psi0.5_cutoff8"])) <= IMG_TOL, case


@pytest.mark.parametrize("case", CASES)
def test_extra_transforms(case):
    g, io, params, _ = _case(case)
    try:
        for k in range(io["extra_transform_buffer"].shape[0]):
            g.set_transform_matrix(io["extra_transform_buffer"][k])
            img = g.synthesis(io["ws_psi1"][:2])
            assert _err(img, nchw_to_nhwc(io["img_extra_transforms"][k])) <= IMG_TOL, (case, k)
    finally:
        g.set_transform_matrix(params["synthesis.input.transform"])


@pytest.mark.parametrize("case", CASES)
def test_ema_update(case):
    io, params, cfg = load_npz(case, "io"), load_npz(case, "params"), load_json(case, "config")
    g = generator_from_official(params, cfg["constructor_kwargs"], impl="ref")   # a copy
    img = g(io["z"], _c(io), training=True, update_emas=True)
    assert _err(img, nchw_to_nhwc(io["ema_update/img"])) <= IMG_TOL, case
    assert _err(g.mapping.w_avg, io["ema_update/mapping.w_avg"]) <= WS_TOL, case
    for layer in g.synthesis.synthesis_layers:
        want = io[f"ema_update/synthesis.{layer.name}.magnitude_ema"]
        assert _err(layer.magnitude_ema, want) <= 1e-6 * max(1.0, abs(float(want))), layer.name
        # The update really happened (fixture buffers are perturbed away from the new value).
        assert abs(float(want) - float(params[f"synthesis.{layer.name}.magnitude_ema"])) > 1e-6


def _layer_chain(g, ws):
    """Outputs of synthesis.input and every synthesis layer, plus raw affine outputs."""
    syn = g.synthesis
    out = {"input": syn.input(ws[:, 0]), "input.affine": syn.input.affine(ws[:, 0])}
    x = out["input"]
    for i, layer in enumerate(syn.synthesis_layers):
        out[f"{layer.name}.affine"] = layer.affine(ws[:, i + 1])
        x = out[layer.name] = layer(x, ws[:, i + 1])
    return {k: np.asarray(v) for k, v in out.items()}


_T32_NAMES = ["input"] + [spec["name"] for spec in
                          load_json("g_sg3t_32", "config")["layer_spec"]["layers"]]


@pytest.fixture(scope="module")
def t32_chain():
    g, io, _, _ = _case("g_sg3t_32")
    return _layer_chain(g, io["ws_psi1"]), io


@pytest.mark.parametrize("name", _T32_NAMES)
def test_layer_localisation_g_sg3t_32(t32_chain, name):
    """Every layer output (sample 0, all channels) and affine output of g_sg3t_32."""
    chain, io = t32_chain
    ref = io[f"layers_full_sample0/synthesis.{name}"]                     # [C, H, W]
    got = np.transpose(chain[name][0], (2, 0, 1))
    assert _err(got, ref) <= 1e-5 * max(1.0, np.abs(ref).max()), name
    assert _err(chain[f"{name}.affine"], io[f"affine_out/synthesis.{name}.affine"]) <= 1e-5


@pytest.mark.parametrize("case", CASES[1:])
def test_layer_first_channels(case):
    g, io, _, _ = _case(case)
    chain = _layer_chain(g, io["ws_psi1"])
    for key, ref in io.items():
        if key.startswith("layers_sample0_firstch/synthesis."):
            name = key.split("synthesis.", 1)[1]
            got = np.transpose(chain[name][0, :, :, :ref.shape[0]], (2, 0, 1))
            assert _err(got, ref) <= 1e-5 * max(1.0, np.abs(ref).max()), (case, name)


def test_fast_impl_parity_g_sg3t_32():
    g, io, _, _ = _case("g_sg3t_32", impl="fast")
    assert all(layer.impl == "fast" for layer in g.synthesis.synthesis_layers)
    assert _err(g(io["z"]), nchw_to_nhwc(io["img_psi1"])) <= IMG_TOL
    assert _err(g.synthesis(io["ws_psi0.5_cutoff8"]),
                nchw_to_nhwc(io["img_psi0.5_cutoff8"])) <= IMG_TOL


def test_default_impl_is_fast():
    cfg = load_json("g_sg3t_32", "config")["constructor_kwargs"]
    g = Generator(config_from_official_kwargs(cfg))
    assert {layer.impl for layer in g.synthesis.synthesis_layers} == {"fast"}


@pytest.mark.slow
def test_jax_backend_parity_subprocess():
    script = os.path.join(os.path.dirname(__file__), "generator_parity_script.py")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_backend_optimization_level=0 "
                         "--xla_llvm_disable_expensive_passes=true")
    res = subprocess.run(["timeout", "-s", "KILL", "240", sys.executable, script, "g_sg3t_32",
                          "fast"], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "backend=jax" in res.stdout


@pytest.mark.parametrize("case", CASES)
def test_set_transform_semantics(case):
    cfg = load_json(case, "config")
    fwd = np.array(cfg["transform_forward_matrix"])
    spec = cfg["transform_spec"]
    if spec["scale"] == 1.0:
        np.testing.assert_allclose(make_transform(spec["translate"], spec["angle_deg"]), fwd,
                                   atol=1e-12)
    g, _, params, _ = _case(case)
    try:
        g.set_transform_matrix(np.linalg.inv(fwd))
        np.testing.assert_allclose(g.synthesis.input.transform, cfg["transform_buffer"],
                                   atol=1e-6)
        if spec["scale"] == 1.0:
            g.set_transform(translate=spec["translate"], rotate=spec["angle_deg"])
            np.testing.assert_allclose(g.synthesis.input.transform, cfg["transform_buffer"],
                                       atol=1e-6)
    finally:
        g.set_transform_matrix(params["synthesis.input.transform"])


def test_set_transform_matches_extra_transform_fixtures():
    g, io, params, _ = _case("g_sg3t_32")
    fwd, buf = io["extra_transform_forward"], io["extra_transform_buffer"]
    try:
        # README: identity, pure translation (0.25, 0), pure rotation 30 degrees.
        for k, (translate, rotate) in enumerate([((0, 0), 0), ((0.25, 0), 0), ((0, 0), 30)]):
            np.testing.assert_allclose(make_transform(translate, rotate), fwd[k], atol=1e-7)
            g.set_transform(translate=translate, rotate=rotate)
            np.testing.assert_allclose(g.synthesis.input.transform, buf[k], atol=1e-6)
        with pytest.raises(ValueError, match=r"\[3, 3\]"):
            g.set_transform_matrix(np.eye(2))
    finally:
        g.set_transform_matrix(params["synthesis.input.transform"])


def test_built_model_parameter_counts():
    g, _, params, cfg = _case("g_sg3t_32_cond_clamp")
    counts = parameter_counts(g.config)
    assert sum(int(np.prod(v.shape)) for v in g.trainable_weights) == counts["total"]
    assert sum(int(np.prod(v.shape)) for v in g.non_trainable_weights) == counts["buffers"]
    assert sum(a.size for a in params.values()) == counts["total"] + counts["buffers"]


def _tiny_config(**kw):
    base = dict(z_dim=8, w_dim=8, img_resolution=16, channel_base=64, channel_max=8,
                num_layers=4, num_critical=2, magnitude_ema_beta=0.9)
    base.update(kw)
    return GeneratorConfig(**base)


def _perturb(g, seed=0):
    """Move trainable weights and w_avg away from their init values (filters stay designed)."""
    rng = np.random.default_rng(seed)
    for v in g.trainable_weights + [g.mapping.w_avg]:
        v.assign((np.asarray(v) + 0.1 * rng.standard_normal(v.shape)).astype("float32"))


def test_conditional_generator_requires_c():
    g = Generator(_tiny_config(c_dim=3), impl="ref")
    z = np.random.default_rng(0).standard_normal((2, 8)).astype("float32")
    with pytest.raises(ValueError, match=r"c: this generator is conditional"):
        g(z)
    with pytest.raises(ValueError, match=r"c: expected shape \[N, 3\]"):
        g(z, np.zeros((2, 4), "float32"))
    assert tuple(g(z, np.eye(3, dtype="float32")[[0, 2]]).shape) == (2, 16, 16, 3)


def test_bad_inputs_raise_clear_errors():
    g = Generator(_tiny_config(), impl="ref")
    with pytest.raises(ValueError, match=r"z: expected shape \[N, 8\]"):
        g(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match=r"ws"):
        g.synthesis(np.zeros((2, 3, 8), "float32"))
    with pytest.raises(ValueError, match="family"):
        Generator(dataclasses.replace(_tiny_config(), family="stylegan2"))


def test_converter_reports_every_problem():
    case = "g_sg3t_32"
    params = dict(load_npz(case, "params"))
    kwargs = load_json(case, "config")["constructor_kwargs"]
    del params["synthesis.L3_36_32.bias"]
    params["synthesis.L3_36_32.extra"] = np.zeros(3, "float32")
    params["mapping.fc1.weight"] = params["mapping.fc1.weight"][:, :10]
    with pytest.raises(ValueError) as info:
        generator_from_official(params, kwargs)
    msg = str(info.value)
    assert "3 problem(s)" in msg
    assert "missing official entry for 'synthesis.L3_36_32.bias'" in msg
    assert "synthesis.L3_36_32.extra" in msg and "mapping.fc1.weight" in msg
    with pytest.raises(ValueError, match="bogus"):
        generator_from_official(load_npz(case, "params"), dict(kwargs, bogus=1))


def test_get_config_round_trip_every_layer():
    g = Generator(_tiny_config(c_dim=2), impl="ref", seed=5)
    layers = [g, g.mapping, g.mapping.embed, g.mapping.fcs[0], g.synthesis, g.synthesis.input,
              g.synthesis.input.affine] + list(g.synthesis.synthesis_layers)
    assert {type(l) for l in layers} == {Generator, MappingNetwork, FullyConnectedLayer,
                                         SynthesisNetwork, SynthesisInput, SynthesisLayer}
    for layer in layers:
        config = layer.get_config()
        clone = type(layer).from_config(json.loads(json.dumps(config)))
        assert json.dumps(clone.get_config(), sort_keys=True) == \
            json.dumps(config, sort_keys=True), layer.name


def test_keras_save_load_reproduces_outputs(tmp_path):
    g = Generator(_tiny_config(c_dim=2), impl="ref", seed=1)
    _perturb(g)
    g.set_transform(translate=(0.1, -0.2), rotate=15)
    z = np.random.default_rng(1).standard_normal((3, 8)).astype("float32")
    c = np.eye(2, dtype="float32")[[0, 1, 1]]
    g(z, c, update_emas=True)                          # move w_avg / magnitude_ema
    path = str(tmp_path / "g.keras")
    g.save(path)
    g2 = keras.models.load_model(path)
    assert isinstance(g2, Generator) and g2.config == g.config
    for a, b in zip(g.weights, g2.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    np.testing.assert_array_equal(g(z, c, truncation_psi=0.6), g2(z, c, truncation_psi=0.6))


def test_tf_function_dynamic_batch_tensor_psi_and_update_emas():
    import tensorflow as tf
    cfg = _tiny_config()
    g, ref = Generator(cfg, impl="ref", seed=2), Generator(cfg, impl="ref", seed=3)
    _perturb(g)
    for a, b in zip(g.weights, ref.weights):
        b.assign(a)
    fn = tf.function(lambda z, psi: g(z, truncation_psi=psi),
                     input_signature=[tf.TensorSpec([None, 8]), tf.TensorSpec([])])
    for n in (2, 3):
        z = np.random.default_rng(n).standard_normal((n, 8)).astype("float32")
        psi = tf.constant(0.7)
        want = np.asarray(ref(z, truncation_psi=psi))
        np.testing.assert_allclose(fn(z, psi), want, atol=2e-6 * np.abs(want).max())
        np.testing.assert_allclose(ref.mapping(z, truncation_psi=psi),
                                   ref.mapping(z, truncation_psi=0.7), atol=1e-6)
    upd = tf.function(lambda z: g(z, update_emas=True))
    z = np.random.default_rng(9).standard_normal((4, 8)).astype("float32")
    want = np.asarray(ref(z, update_emas=True))
    np.testing.assert_allclose(upd(z), want, atol=2e-6 * np.abs(want).max())
    np.testing.assert_allclose(g.mapping.w_avg, ref.mapping.w_avg, atol=1e-6)
    for a, b in zip(g.synthesis.synthesis_layers, ref.synthesis.synthesis_layers):
        np.testing.assert_allclose(a.magnitude_ema, b.magnitude_ema, rtol=1e-6)
    assert float(ref.mapping.w_avg[0]) != 0.0


def test_from_preset_r_and_weight_paths():
    g = Generator.from_preset("stylegan3-r", img_resolution=16, z_dim=8, w_dim=8,
                              channel_base=128, channel_max=16, num_layers=4, impl="ref")
    assert g.config.conv_kernel == 1 and g.config.use_radial_filters
    assert (g.z_dim, g.c_dim, g.w_dim, g.img_resolution, g.img_channels, g.num_ws) == \
        (8, 0, 8, 16, 3, 6)
    layer = g.synthesis.synthesis_layers[0]
    assert tuple(layer.weight.shape)[:2] == (1, 1) and len(layer.down_filter.shape) == 2
    assert layer.weight.path == f"generator/synthesis/{layer.name}/weight"
    assert g.synthesis.synthesis_layers[-1].up_filter is None       # ToRGB: 1 tap, no buffer
    img = g(np.zeros((1, 8), "float32") + 0.5)
    assert tuple(img.shape) == (1, 16, 16, 3)


def test_stylegan2_networks_are_delegated():
    from sg3keras.models.stylegan2_generator import StyleGAN2Generator
    g = Generator.from_preset("stylegan2", img_resolution=16, z_dim=8, w_dim=8,
                              channel_base=64, channel_max=8)
    assert isinstance(g, StyleGAN2Generator)
    g2 = generator_from_official(load_npz("g_sg2_32", "params"),
                                 load_json("g_sg2_32", "config")["constructor_kwargs"])
    assert isinstance(g2, StyleGAN2Generator)


def test_generate_images_batches_by_resolution(monkeypatch):
    """1024-px networks are generated one image per call (a batch of them would not fit 16 GB);
    the batching never changes the images."""
    from sg3keras.inference import generate
    assert [generate.default_batch_size(r) for r in (16, 256, 512, 1024, 2048)] == [8, 8, 2, 1, 1]
    g = Generator(_tiny_config(), impl="fast")
    _perturb(g)
    calls = []
    real_call = Generator.__call__

    def spy(self, z, *a, **kw):
        calls.append(len(z))
        return real_call(self, z, *a, **kw)
    monkeypatch.setattr(Generator, "__call__", spy)
    seeds = list(range(10))
    batched = generate.generate_images(g, seeds)
    assert calls == [8, 2]
    calls.clear()
    monkeypatch.setattr(generate, "default_batch_size", lambda res: 1)
    single = generate.generate_images(g, seeds)
    assert calls == [1] * 10
    assert np.abs(batched.astype(int) - single).max() <= 1
