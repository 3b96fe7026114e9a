"""The paper's ladder A -> B ... H -> T -> R (Alias-Free GAN, Figure 3): each preset has the
property that defines its step and its neighbour lacks it; every step trains, resumes exactly
and has a measurable EQ-T. Expected numbers come from the paper's definitions (s/2, sqrt(2),
the 10-pixel margin, n = 6 taps per input pixel), not from the code under test."""

import dataclasses
import math

import numpy as np
import pytest

from sg3keras.config import LADDER, PRESETS, ladder_name, resolve_preset

TINY = dict(img_resolution=16, z_dim=8, w_dim=8, cbase=256, cmax=16)


def _cfg(letter, **kw):
    return resolve_preset(f"config-{letter}", **{**TINY, **kw}).generator


def _G(letter, **kw):
    import keras

    from sg3keras.models import build_generator
    keras.utils.set_random_seed(0)
    return build_generator(_cfg(letter, **kw), impl="ref", seed=0)


def _sched(letter, **kw):
    from sg3keras.models.schedule import synthesis_schedule
    return synthesis_schedule(_cfg(letter, **kw))


def _z(G, n=2, seed=1):
    return np.random.default_rng(seed).standard_normal([n, G.z_dim]).astype(np.float32)


def test_the_ladder_is_ten_presets_with_aliases_for_the_official_three():
    assert LADDER == tuple(f"config-{x}" for x in "abcdefghtr")
    for alias, name in (("config-a", "stylegan2"), ("config-t", "stylegan3-t"),
                        ("config-r", "stylegan3-r")):
        a, b = PRESETS[alias], PRESETS[name]
        assert (a.generator, a.discriminator, a.loss, a.train, a.g_channel_scale) == \
            (b.generator, b.discriminator, b.loss, b.train, b.g_channel_scale)
    for name in LADDER[1:8]:
        assert "Figure 3" in PRESETS[name].source
        assert ladder_name(PRESETS[name].generator) == name
        assert ladder_name(resolve_preset(name, **TINY).generator) == name
    assert ladder_name(PRESETS["stylegan3-t"].generator) is None


def test_b_replaces_the_constant_by_fourier_features():
    a, b = _G("a"), _G("b")
    names = lambda G: {v.path for v in G.weights}  # noqa: E731
    assert any(p.endswith("b4/const") for p in names(a))
    assert not any(p.endswith("/const") for p in names(b))
    assert any(p.endswith("b4/input/freqs") for p in names(b))
    assert not a.has_input_transform and b.has_input_transform
    # Bandwidth = the 4x4 block's Nyquist rate (s/2 = 2 cycles per unit): |f| < 2.
    freqs = np.asarray(b.synthesis.input.freqs)
    assert 0 < np.sqrt((freqs ** 2).sum(1)).max() < 2
    # The input transform moves the features: a translated input changes the image.
    z = _z(b)
    img0 = np.asarray(b(z, noise_mode="const"))
    b.set_transform(translate=(0.25, 0.0))
    assert not np.allclose(img0, np.asarray(b(z, noise_mode="const")))


def test_c_has_no_noise_inputs_and_b_has():
    b, c = _G("b"), _G("c")
    assert b.has_noise and b.noise_inputs()
    assert not c.has_noise and c.noise_inputs() == []
    z = _z(c)
    np.testing.assert_array_equal(np.asarray(c(z, noise_mode="random")),
                                  np.asarray(c(z, noise_mode="random")))


def test_d_is_the_simplified_generator():
    c, d = _G("c"), _G("d")
    torgbs = lambda G: [n for n in G.layer_names if n.endswith("torgb")]  # noqa: E731
    assert len(torgbs(c)) == int(math.log2(16)) - 1       # one ToRGB per resolution (skips)
    assert torgbs(d) == ["b16.torgb"]                      # no output skips
    assert len(c.mapping.fcs) == 8 and len(d.mapping.fcs) == 2
    assert PRESETS["config-c"].loss.pl_weight > 0 and PRESETS["config-d"].loss.pl_weight == 0
    assert PRESETS["config-d"].loss.style_mixing_prob == 0
    emas = [v for v in d.non_trainable_weights if v.path.endswith("magnitude_ema")]
    assert not [v for v in c.non_trainable_weights if v.path.endswith("magnitude_ema")]
    assert len(emas) == len(d.layer_names)                 # every layer normalises its input
    before = [float(v) for v in emas]
    d(_z(d, 4), update_emas=True)
    assert all(float(v) != b for v, b in zip(emas, before))


def test_e_has_the_margin_and_the_sinc_upsampling_filter():
    d, e = _cfg("d"), _cfg("e")
    assert not d.has_layer_schedule and e.has_layer_schedule
    sched = _sched("e")
    n = 2 * int(math.log2(16)) - 3                         # one layer at 4x4, two per octave
    assert len(sched.layers) == n + 1
    rates = [L.out_sampling_rate for L in sched.layers]
    assert rates == [4, 8, 8, 16, 16, 16]
    for L in sched.layers[:-2]:                            # 10-pixel margin, cropped per layer
        assert L.out_size == L.out_sampling_rate + 20
    assert [L.out_size for L in sched.layers[-2:]] == [16, 16]
    for L in sched.layers:
        assert L.out_cutoff == L.out_sampling_rate / 2     # critically sampled
        assert math.isclose(L.out_half_width, (math.sqrt(2) - 1) * L.out_sampling_rate / 2)
        if L.in_sampling_rate < L.out_sampling_rate:       # upsampling: 6 taps per input pixel
            assert (L.up_factor, L.up_taps) == (2, 12)
        else:
            assert L.up_taps == 1
        assert (L.down_factor, L.down_taps) == (1, 1)      # no filter around the lrelu yet
    up = [L for L in _G("e").synthesis.synthesis_layers if L.up_taps > 1][0]
    taps = np.asarray(up.up_filter)
    assert taps.shape == (12,) and math.isclose(float(taps.sum()), 1, rel_tol=1e-5)
    assert (taps < 0).any()                                # a windowed sinc, not [1,3,3,1]


def test_f_filters_the_nonlinearity():
    e, f = _sched("e"), _sched("f")
    assert not _cfg("e").has_filtered_nonlinearities and _cfg("f").has_filtered_nonlinearities
    for le, lf in zip(e.layers[:-1], f.layers[:-1]):      # ToRGB is linear in both
        top = max(le.in_sampling_rate, le.out_sampling_rate)
        assert le.tmp_sampling_rate == top and lf.tmp_sampling_rate == 2 * top
        assert lf.down_factor == 2 and lf.down_taps == 12
        assert lf.out_cutoff == le.out_cutoff


def test_g_samples_below_the_critical_rate_except_at_the_top():
    f, g = _sched("f"), _sched("g")
    n = len(g.layers) - 1
    for lf, lg in zip(f.layers, g.layers):
        s = lg.out_sampling_rate
        assert lf.out_cutoff == s / 2
        if lg.idx >= n - 2:                                # the highest-resolution layers
            assert lg.out_cutoff == s / 2 and lg.is_critically_sampled
        else:                                              # f_c = s/2 - f_h: aliases stopped
            assert lg.out_cutoff < s / 2 and not lg.is_critically_sampled
            assert math.isclose(lg.out_cutoff + lg.out_half_width, s / 2)
            assert math.isclose(lg.out_cutoff, (2 - math.sqrt(2)) * s / 2)


def test_h_learns_the_input_transform_from_w():
    g, h = _G("g"), _G("h")
    assert g.synthesis.input.affine is None and h.synthesis.input.affine is not None
    assert h.config.has_learned_input_transform and not g.config.has_learned_input_transform
    rng = np.random.default_rng(0)
    for G in (g, h):
        for v in G.synthesis.input.trainable_weights:
            v.assign(np.asarray(v) + 0.5 * rng.standard_normal(v.shape).astype(np.float32))
    w1, w2 = (rng.standard_normal([1, 8]).astype(np.float32) for _ in range(2))
    feats = lambda G, w: np.asarray(G.synthesis.input(w))  # noqa: E731
    np.testing.assert_array_equal(feats(g, w1), feats(g, w2))   # G: fixed features
    assert not np.allclose(feats(h, w1), feats(h, w2))          # H: w moves them


def test_t_has_flexible_layers_and_r_rotation_equivariant_ones():
    h, t, r = _sched("h"), _sched("t"), _sched("r")
    assert len(h.layers) == 6 and len(t.layers) == 15      # 14 layers + ToRGB, any resolution
    assert len(_sched("t", img_resolution=64).layers) == 15
    assert len(_sched("h", img_resolution=64).layers) == 10
    # T: the cutoff grows geometrically (constant ratio) up to the critical layers.
    ratios = t.cutoffs[1:12] / t.cutoffs[:11]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)
    assert all(L.conv_kernel == 3 for L in t.layers[:-1])
    assert all(L.conv_kernel == 1 for L in r.layers)
    for L in r.layers:
        assert L.down_radial == (not L.is_critically_sampled and L.down_taps > 1)
    radial = [L for L in _G("r").synthesis.synthesis_layers if L.down_radial][0]
    assert np.asarray(radial.down_filter).ndim == 2


@pytest.mark.parametrize("letter", "bcdefghtr")
def test_eq_t_of_the_initialised_network_is_measured(letter):
    from sg3keras.metrics.equivariance import compute_equivariance
    G = _G(letter)
    r = compute_equivariance(G, 4, compute_eqt_int=True, compute_eqt_frac=True,
                             compute_eqr=True)
    assert all(np.isfinite(v) and v > 0 for v in r.values()), r


def test_a_has_no_equivariance_metric():
    from sg3keras.metrics.equivariance import compute_equivariance
    with pytest.raises(ValueError, match="input transform"):
        compute_equivariance(_G("a"), 4, compute_eqt_int=True)


def test_octave_schedule_rejects_a_wrong_layer_count():
    from sg3keras.models.schedule import synthesis_schedule
    cfg = dataclasses.replace(_cfg("e"), num_layers=14)
    with pytest.raises(ValueError, match="num_layers = 2 log2"):
        synthesis_schedule(cfg)


# ------------------------------------------------------------------------------------------
# Training: one step and an exact resume per configuration.

def _gan(letter):
    import tensorflow as tf
    from train_fixtures import tiny_gan_config

    from sg3keras.training.loop import build_gan
    cfg = tiny_gan_config(batch=4, mbstd_group=2, cfg=f"config-{letter}")
    return build_gan(cfg, None, tf.distribute.get_strategy(), seed=1, impl="ref")


def _fit_one(gan, seed):
    import tensorflow as tf
    x = np.random.RandomState(seed).uniform(-1, 1, size=(4, 16, 16, 3)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros((4, 0), np.float32))).batch(4)
    gan.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)


def _arrays(gan):
    return {k: np.array(v) for k, v in gan.checkpoint_variables()}


@pytest.mark.slow
@pytest.mark.parametrize("letter", "abcdefghtr")
def test_each_step_trains_and_resumes_exactly(letter, tmp_path):
    """A step changes G and D; step 2 after a checkpoint and a reload into a new trainer equals
    step 2 of the trainer that never stopped (every variable bit-equal: weights, optimizer
    moments, counters, RNG states, magnitude EMAs)."""
    from sg3keras.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    gan = _gan(letter)
    init = _arrays(gan)
    _fit_one(gan, 0)
    after = _arrays(gan)
    moved = [k for k in init if k.startswith(("G/", "D/")) and not np.array_equal(init[k], after[k])]
    assert any(k.startswith("G/") for k in moved) and any(k.startswith("D/") for k in moved)
    assert all(np.all(np.isfinite(v)) for v in after.values() if v.dtype.kind == "f")
    save_checkpoint(str(tmp_path), gan, {"step": 1})
    _fit_one(gan, 1)
    resumed = _gan(letter)
    load_checkpoint(latest_checkpoint(str(tmp_path)), resumed)
    _fit_one(resumed, 1)
    a, b = _arrays(gan), _arrays(resumed)
    assert sorted(a) == sorted(b)
    bad = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not bad, bad[:5]
