"""GAN losses against the official StyleGAN2Loss fixtures (tests/reference/loss) and analytic
cases. D = d_sg2_32; the images' generator is g_sg3r_32."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import close_to_official as _close
from refdata import load_json, load_npz, nchw_to_nhwc
from sg3keras import losses
from sg3keras.convert.discriminator import discriminator_from_official

LOSS = load_npz("loss", "loss")
LOSS_JSON = load_json("loss", "loss")
GAMMA = LOSS_JSON["r1_gamma"]
_D = []


def _d():
    if not _D:
        _D.append(discriminator_from_official(
            load_npz("d_sg2_32", "params"), load_json("d_sg2_32", "config")["constructor_kwargs"]))
    return _D[0]


@pytest.mark.parametrize("case", LOSS_JSON["cases"], ids=lambda c: c["key"])
def test_run_d_blur_and_r1_match_official(case):
    k, sigma = case["key"], case["blur_sigma"]
    real = tf.constant(nchw_to_nhwc(LOSS["real_img"]))
    _close(losses.blur_images(real, sigma), LOSS[f"{k}/D_input"], 1e-5)
    penalty, logits = losses.r1_penalty(lambda x: _d()(losses.blur_images(x, sigma)), real)
    _close(logits, LOSS[f"{k}/real_logits"], 1e-4)
    _close(penalty, LOSS[f"{k}/r1_penalty"], 1e-6)       # values ~1e-3
    _close(penalty * GAMMA / 2, LOSS[f"{k}/loss_Dr1"], 1e-6)
    _, grads = losses.input_gradient(lambda x: _d()(losses.blur_images(x, sigma)), real)
    _close(grads, LOSS[f"{k}/r1_grads"], 1e-7)           # values ~1e-3
    real_loss, _ = losses.nonsaturating_discriminator_loss(logits, logits)
    _close(real_loss, LOSS[f"{k}/loss_Dreal"], 1e-5)


def test_generator_and_fake_losses_match_official():
    logits = _d()(nchw_to_nhwc(LOSS["gen_img"]))
    _close(logits, LOSS["gen_logits"], 1e-4)
    _close(losses.nonsaturating_generator_loss(LOSS["gen_logits"]), LOSS["loss_Gmain"], 1e-6)
    _, fake = losses.nonsaturating_discriminator_loss(LOSS["gen_logits"], LOSS["gen_logits"])
    _close(fake, LOSS["loss_Dgen"], 1e-6)


@pytest.mark.slow
def test_gen_img_from_converted_sg3r_generator():
    from sg3keras.convert.generator import generator_from_official
    g = generator_from_official(load_npz("g_sg3r_32", "params"),
                                load_json("g_sg3r_32", "config")["constructor_kwargs"])
    _close(g(LOSS["gen_z"]), LOSS["gen_img"], 1e-5)


@pytest.mark.parametrize("row", LOSS_JSON["blur_schedule_blur_fade_kimg_200"],
                         ids=lambda r: str(r["cur_nimg"]))
def test_blur_schedule(row):
    got = losses.blur_sigma(row["cur_nimg"], LOSS_JSON["blur_init_sigma"],
                            LOSS_JSON["blur_fade_kimg"])
    assert got == pytest.approx(row["blur_sigma"], rel=1e-9, abs=1e-12)
    assert losses.blur_sigma(row["cur_nimg"], 10, 0) == 0


def test_blur_kernel_is_base2_not_gaussian():
    assert losses.blur_kernel(0.3) is None and losses.blur_kernel(0) is None
    f = losses.blur_kernel(1.0)                       # radius floor(3) = 3
    x = np.arange(-3, 4)
    want = 2.0 ** -(x ** 2.0)
    np.testing.assert_allclose(f, want / want.sum(), rtol=1e-6)
    assert len(losses.blur_kernel(10)) == 61
    img = np.random.default_rng(0).standard_normal([1, 8, 8, 2]).astype(np.float32)
    assert losses.blur_images(img, 0.3) is img
    with pytest.raises(ValueError, match="sigma"):
        losses.blur_kernel(-1)


def test_nonsaturating_losses_analytic():
    logits = np.array([[-2.0], [0.0], [3.0]], np.float32)
    np.testing.assert_allclose(losses.nonsaturating_generator_loss(logits),
                               np.log1p(np.exp(-logits)), rtol=1e-6)
    real, fake = losses.nonsaturating_discriminator_loss(logits, -logits)
    np.testing.assert_allclose(real, np.log1p(np.exp(-logits)), rtol=1e-6)
    np.testing.assert_allclose(fake, np.log1p(np.exp(-logits)), rtol=1e-6)


def test_r1_penalty_of_linear_discriminator_is_squared_weight_norm():
    rng = np.random.default_rng(3)
    w = tf.constant(rng.standard_normal([1, 4, 4, 2]).astype(np.float32))
    x = rng.standard_normal([3, 4, 4, 2]).astype(np.float32)
    c = np.array([[1.0], [2.0], [0.5]], np.float32)
    penalty, logits = losses.r1_penalty(lambda t, c: tf.reduce_sum(t * w, axis=[1, 2, 3]) * c[:, 0],
                                        x, c)
    np.testing.assert_allclose(penalty, np.sum(np.square(w)) * c[:, 0] ** 2, rtol=1e-5)
    np.testing.assert_allclose(logits, np.sum(x * np.asarray(w), axis=(1, 2, 3)) * c[:, 0],
                               rtol=1e-5)


def test_r1_penalty_is_differentiable_wrt_d_weights():
    w = tf.Variable(np.full([1, 2, 2, 1], 0.5, np.float32))
    x = np.ones([2, 2, 2, 1], np.float32)
    with tf.GradientTape() as tape:
        penalty, _ = losses.r1_penalty(lambda t: tf.reduce_sum(t * w, axis=[1, 2, 3]), x)
        total = tf.reduce_sum(penalty)
    # penalty = N * sum(w^2) -> d/dw = 2 N w.
    np.testing.assert_allclose(tape.gradient(total, w), 2 * 2 * np.asarray(w.numpy()), rtol=1e-6)


def test_path_length_penalty_of_linear_synthesis():
    rng = np.random.default_rng(4)
    n, num_ws, w_dim, h, wd, ch = 3, 4, 5, 6, 6, 2
    a = rng.standard_normal([num_ws * w_dim, h * wd * ch]).astype(np.float32)
    ws = rng.standard_normal([n, num_ws, w_dim]).astype(np.float32)
    y = (rng.standard_normal([n, h, wd, ch]) / np.sqrt(h * wd)).astype(np.float32)
    synth = lambda t: tf.reshape(tf.reshape(t, [-1, num_ws * w_dim]) @ a, [-1, h, wd, ch])
    penalty, new_mean = losses.path_length_penalty(synth, ws, pl_mean=0.5, pl_decay=0.01, noise=y)
    grads = (y.reshape(n, -1) @ a.T).reshape(n, num_ws, w_dim)          # J^T y
    lengths = np.sqrt(np.mean(np.sum(grads ** 2, axis=2), axis=1))
    want_mean = 0.5 + 0.01 * (lengths.mean() - 0.5)
    np.testing.assert_allclose(new_mean, want_mean, rtol=1e-5)
    np.testing.assert_allclose(penalty, (lengths - want_mean) ** 2, rtol=1e-4, atol=1e-7)
    # Random noise path: shape and finiteness.
    p2, _ = losses.path_length_penalty(synth, ws, pl_mean=0.0, seed=1)
    assert p2.shape == (n,) and np.all(np.isfinite(p2))


def test_style_mix():
    ws = np.zeros([2, 6, 3], np.float32)
    mix = np.ones([2, 6, 3], np.float32)
    out, cutoff = losses.style_mix(ws, mix, prob=0.0)
    np.testing.assert_array_equal(out, ws)
    assert int(cutoff) == 6
    seen = set()
    for seed in range(40):
        out, cutoff = losses.style_mix(ws, mix, prob=1.0, seed=seed)
        k = int(cutoff)
        assert 1 <= k < 6
        np.testing.assert_array_equal(np.asarray(out)[:, :k], 0)
        np.testing.assert_array_equal(np.asarray(out)[:, k:], 1)
        seen.add(k)
    assert seen == {1, 2, 3, 4, 5}
    cutoffs = [int(losses.style_mix(ws, mix, prob=0.5, seed=s)[1]) for s in range(40)]
    assert 6 in cutoffs and any(k < 6 for k in cutoffs)
    with pytest.raises(ValueError, match="differ"):
        losses.style_mix(ws, mix[:, :4], prob=0.5)
