"""The generator protocol (sg3keras.models.base.GeneratorBase) and the factory that picks the
class for a config: every family answers the same questions, with the same call signatures."""

import numpy as np
import pytest

from sg3keras.config import PRESETS, GeneratorConfig, resolve_preset
from sg3keras.models import (GENERATOR_CLASSES, Generator, GeneratorBase, StyleGAN2Generator,
                             build_generator, generator_class)

TINY = dict(img_resolution=16, z_dim=8, w_dim=8, channel_base=256, channel_max=16)


def _perturb(g, seed=0):
    """Move the trainable weights away from their init (a fresh network saturates)."""
    rng = np.random.default_rng(seed)
    for v in g.trainable_weights:
        v.assign((np.asarray(v) + 0.1 * rng.standard_normal(v.shape)).astype("float32"))
    return g


@pytest.fixture(scope="module")
def nets():
    import keras
    keras.utils.set_random_seed(0)
    return {"sg3": _perturb(Generator.from_preset("stylegan3-t", impl="ref", seed=0, **TINY)),
            "sg2": _perturb(Generator.from_preset("stylegan2", **TINY))}


def _ws(G, n, seed=1):
    z = np.random.default_rng(seed).standard_normal([n, G.z_dim]).astype(np.float32)
    return np.asarray(G.mapping(z), np.float32)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_factory_picks_the_class_from_the_config_for_every_preset(name):
    cfg = resolve_preset(name, **TINY).generator
    cls = generator_class(cfg)
    assert cls is GENERATOR_CLASSES[cfg.family] and issubclass(cls, GeneratorBase)
    assert generator_class(cfg.to_dict()) is cls
    G = Generator.from_preset(name, **TINY)
    assert type(G) is cls
    assert type(StyleGAN2Generator.from_preset(name, **TINY)) is cls
    G2 = build_generator(G.config, name="built")
    assert type(G2) is cls and G2.name == "built"
    assert (G.has_noise, G.has_input_transform, G.has_filtered_nonlinearities) == \
        (cfg.has_noise, cfg.has_input_transform, cfg.has_filtered_nonlinearities)


def test_factory_rejects_an_unknown_family_and_routes_options():
    with pytest.raises(ValueError, match="config.family"):
        generator_class(GeneratorConfig(family="stylegan1"))
    with pytest.raises(TypeError, match="GeneratorConfig or dict"):
        generator_class("stylegan3-t")
    cfg = resolve_preset("stylegan3-t", **TINY).generator
    g = build_generator(cfg, impl="ref", seed=3)
    assert (g.impl, g.seed) == ("ref", 3)
    # StyleGAN2 has no filtered_lrelu and no random Fourier features: impl / seed are ignored.
    g2 = build_generator(resolve_preset("stylegan2", **TINY).generator, impl="ref", seed=3)
    assert isinstance(g2, StyleGAN2Generator)


def test_both_families_answer_the_structure_questions(nets):
    g3, g2 = nets["sg3"], nets["sg2"]
    assert (g3.has_noise, g3.has_input_transform, g3.has_filtered_nonlinearities) == \
        (False, True, True)
    assert (g2.has_noise, g2.has_input_transform, g2.has_filtered_nonlinearities) == \
        (True, False, False)
    assert g3.layer_names == [s.name for s in g3.synthesis.schedule.layers]
    assert len(g3.layer_names) == g3.config.num_layers + 1 and g3.noise_inputs() == []
    assert g2.layer_names[:2] == ["b4.conv1", "b4.torgb"] and g2.layer_names[-1] == "b16.torgb"
    noise = g2.noise_inputs()
    assert [n for n, _ in noise] == [n for n in g2.layer_names if ".conv" in n]
    assert noise[0] == ("b4.conv1", 4) and noise[-1] == ("b16.conv1", 16)
    g2_quiet = build_generator(GeneratorConfig.from_dict(
        dict(g2.config.to_dict(), use_noise=False)))
    assert not g2_quiet.has_noise and g2_quiet.noise_inputs() == []


def test_input_transform_is_one_question(nets):
    g3, g2 = nets["sg3"], nets["sg2"]
    assert g3.input_transform is g3.synthesis.input.transform
    with pytest.raises(ValueError, match="eqmap needs a StyleGAN3 network.*StyleGAN2Generator"):
        g2.require_input_transform("eqmap")
    with pytest.raises(ValueError, match="no input transform"):
        g2.set_transform(rotate=10)
    with pytest.raises(ValueError, match="no input transform"):
        g2.set_transform_matrix(np.eye(3))


@pytest.mark.parametrize("family,noise_mode", [("sg3", "const"), ("sg2", "const"),
                                               ("sg2", "none")])
def test_layer_outputs_walk_the_synthesis_and_end_in_its_image(nets, family, noise_mode):
    G = nets[family]
    ws = _ws(G, 2)
    outs = [(name, np.asarray(x)) for name, x in G.layer_outputs(ws, noise_mode=noise_mode)]
    names = [n for n, _ in outs]
    if family == "sg3":
        assert names == ["input"] + G.layer_names + ["output"]
    else:                                   # one entry per block
        assert names == [b.name for b in G.synthesis.blocks] + ["output"]
    assert all(x.shape[0] == 2 and x.ndim == 4 for _, x in outs)
    np.testing.assert_array_equal(outs[-1][1], G.synthesize(ws, noise_mode=noise_mode))
    with pytest.raises(ValueError, match="noise_mode"):
        next(G.layer_outputs(ws, noise_mode="loud"))


@pytest.mark.parametrize("family", ["sg3", "sg2"])
def test_synthesize_in_batches_equals_one_call(nets, family):
    G = nets[family]
    ws = _ws(G, 5)
    one = np.asarray(G.synthesis(ws, noise_mode="const"), np.float32)
    assert np.array_equal(G.synthesize(ws), one)
    batched = G.synthesize(ws, batch_size=2)
    assert batched.shape == (5, 16, 16, 3) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, one, atol=1e-5)
    np.testing.assert_array_equal(G.synthesize(ws, batch_size=2)[2:4], G.synthesize(ws[2:4]))
    assert G.synthesize(ws[:0], batch_size=2).shape == (0, 16, 16, 3)


@pytest.mark.parametrize("family", ["sg3", "sg2"])
def test_one_synthesis_signature_for_every_family(nets, family):
    """``synthesis(ws, noise_mode=, noise=, transform=, update_emas=)`` is accepted by both;
    what a network does not have is refused with one clear error."""
    G = nets[family]
    ws = _ws(G, 2)
    for mode in ("random", "const", "none"):
        assert tuple(G.synthesis(ws, noise_mode=mode).shape) == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="bogus")
    if G.has_noise:
        with pytest.raises(ValueError, match="no input transform"):
            G.synthesis(ws, transform=np.tile(np.eye(3, dtype=np.float32), (2, 1, 1)))
    else:
        with pytest.raises(ValueError, match="no noise inputs"):
            G.synthesis(ws, noise={"b4.conv1": np.zeros([2, 4, 4, 1], np.float32)})
    z = np.random.default_rng(0).standard_normal([2, G.z_dim]).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(G(z, noise_mode="const")),
                                  np.asarray(G.synthesis(G.mapping(z), noise_mode="const")))


def test_shared_noise_buffers_replace_the_constants(nets):
    G = nets["sg2"]
    ws = _ws(G, 3)
    rng = np.random.default_rng(2)
    noise = {n: rng.standard_normal([r, r]).astype(np.float32) for n, r in G.noise_inputs()}
    tiled = {n: np.tile(v[None, :, :, None], (3, 1, 1, 1)) for n, v in noise.items()}
    expected = np.asarray(G.synthesis(ws, noise_mode="random", noise=tiled))
    np.testing.assert_array_equal(G.synthesize(ws, noise=noise), expected)
    assert not np.array_equal(expected, G.synthesize(ws))
    # Networks without noise ignore it.
    g3 = nets["sg3"]
    ws3 = _ws(g3, 2)
    np.testing.assert_array_equal(g3.synthesize(ws3, noise=noise), g3.synthesize(ws3))


@pytest.mark.parametrize("family", ["sg3", "sg2"])
def test_generate_is_G_in_batches(nets, family):
    G = nets[family]
    z = np.random.default_rng(4).standard_normal([3, G.z_dim]).astype(np.float32)
    out = G.generate(z, batch_size=2, truncation_psi=0.5)
    np.testing.assert_array_equal(out[:2], np.asarray(
        G(z[:2], truncation_psi=0.5, noise_mode="const")))
    np.testing.assert_array_equal(out[2:], np.asarray(
        G(z[2:], truncation_psi=0.5, noise_mode="const")))


def test_with_impl(nets):
    g3, g2 = nets["sg3"], nets["sg2"]
    assert g2.with_impl("conv") is g2
    copy = g3.with_impl("fast")
    assert copy is not g3 and copy.impl == "fast" and type(copy) is Generator
    for a, b in zip(g3.weights, copy.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    ws = _ws(g3, 2)
    np.testing.assert_allclose(copy.synthesize(ws), g3.synthesize(ws), atol=1e-4)
