"""conv2d_resample and minibatch_std against the official fixtures (tests/reference/ops)."""

import numpy as np
import pytest
import tensorflow as tf

from refdata import load_json, load_npz, nchw_to_nhwc
from sg3keras.ops.conv2d_resample import conv2d_resample, modulated_conv2d_resample
from sg3keras.ops.minibatch_std import minibatch_std

CONV = load_npz("ops", "conv2d_resample")
CONV_CASES = load_json("ops", "conv2d_resample")["cases"]
MBSTD = load_npz("ops", "minibatch_std")
MBSTD_CASES = load_json("ops", "minibatch_std")["cases"]


def _w(name):
    return np.transpose(CONV[name + "/w"], (2, 3, 1, 0))  # [O, I, k, k] -> [k, k, I, O]


@pytest.mark.parametrize("case", CONV_CASES, ids=[c["name"] for c in CONV_CASES])
def test_conv2d_resample_matches_official(case):
    y = conv2d_resample(tf.constant(nchw_to_nhwc(CONV["x"])), _w(case["name"]), CONV["f"],
                        up=case["up"], down=case["down"], padding=case["padding"],
                        flip_weight=case["flip_weight"])
    want = nchw_to_nhwc(CONV[case["name"] + "/y"])
    assert y.shape == want.shape
    np.testing.assert_allclose(np.asarray(y), want, rtol=0, atol=1e-5)


def test_conv2d_resample_plain_equals_keras_conv_and_flip_is_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal([2, 7, 6, 3]).astype(np.float32)
    w = rng.standard_normal([3, 3, 3, 4]).astype(np.float32)
    xp = np.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    want = np.zeros([2, 7, 6, 4], np.float32)
    for i in range(3):
        for j in range(3):
            want += np.einsum("nhwc,co->nhwo", xp[:, i:i + 7, j:j + 6], w[i, j])
    got = conv2d_resample(tf.constant(x), w, padding=1)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
    flipped = conv2d_resample(tf.constant(x), w[::-1, ::-1].copy(), padding=1, flip_weight=False)
    np.testing.assert_allclose(np.asarray(flipped), want, atol=1e-5)


def test_conv2d_resample_errors():
    x = tf.zeros([1, 8, 8, 4])
    with pytest.raises(ValueError, match="filter f is required"):
        conv2d_resample(x, np.zeros([3, 3, 4, 2], np.float32), down=2, padding=1)
    with pytest.raises(ValueError, match="conv2d_resample: x"):
        conv2d_resample(x, np.zeros([3, 3, 5, 2], np.float32))


def test_modulated_conv_constant_styles():
    rng = np.random.default_rng(1)
    x = rng.standard_normal([2, 5, 5, 3]).astype(np.float32)
    w = rng.standard_normal([3, 3, 3, 4]).astype(np.float32)
    s = np.full([2, 3], 2.0, np.float32)
    noise = rng.standard_normal([5, 5, 1]).astype(np.float32)
    plain = np.asarray(conv2d_resample(tf.constant(x), w, padding=1))
    # No demodulation: conv(x * s, w) + noise.
    got = modulated_conv2d_resample(tf.constant(x), w, s, noise=noise, padding=1,
                                    demodulate=False)
    np.testing.assert_allclose(np.asarray(got), 2.0 * plain + noise, atol=1e-5)
    # Demodulation: every output channel scaled by 1 / sqrt(sum_{k,k,i} (w * s)^2).
    d = 1.0 / np.sqrt(np.sum(np.square(w * 2.0), axis=(0, 1, 2)) + 1e-8)
    dem = modulated_conv2d_resample(tf.constant(x), w, s, padding=1)
    np.testing.assert_allclose(np.asarray(dem), 2.0 * plain * d, atol=1e-5)


@pytest.mark.parametrize("case", MBSTD_CASES, ids=[c["name"] for c in MBSTD_CASES])
def test_minibatch_std_matches_official(case):
    x = nchw_to_nhwc(MBSTD["x"])
    want = nchw_to_nhwc(MBSTD[case["name"] + "/y"])
    y = minibatch_std(tf.constant(x), case["group_size"], case["num_channels"])
    np.testing.assert_allclose(np.asarray(y), want, rtol=0, atol=1e-5)
    # Dynamic batch under tf.function gives the same result.
    fn = tf.function(lambda t: minibatch_std(t, case["group_size"], case["num_channels"]),
                     input_signature=[tf.TensorSpec([None] + list(x.shape[1:]), tf.float32)])
    np.testing.assert_allclose(np.asarray(fn(x)), want, rtol=0, atol=1e-5)


def test_minibatch_std_groups_are_strided():
    # N = 4, G = 2: groups {0, 2} and {1, 3}. Sample 0/2 differ by 2 -> std 1; 1/3 equal -> ~0.
    x = np.zeros([4, 1, 1, 1], np.float32)
    x[0], x[2] = 1.0, 3.0
    y = np.asarray(minibatch_std(tf.constant(x), group_size=2))[:, 0, 0, 1]
    np.testing.assert_allclose(y, [1.0, 1e-4, 1.0, 1e-4], rtol=1e-4)


def test_minibatch_std_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="not divisible"):
        minibatch_std(tf.zeros([6, 4, 4, 2]), group_size=4)
