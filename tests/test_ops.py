"""Fixture parity, NumPy/SciPy oracles and argument checks for sg3keras.ops (NHWC).

filtered_lrelu (ref vs fast, gradients, dtypes) lives in tests/test_ops_filtered_lrelu.py.
"""

import ast
import os

import numpy as np
import pytest
import scipy.signal
import tensorflow as tf
from refdata import load_json, load_npz, nchw_to_nhwc

from sg3keras.ops import (assert_shape, bias_act, design_lowpass_filter, downsample2d, filter2d,
                          modulated_conv2d, setup_filter, upfirdn2d, upsample2d)

OPS = {"upfirdn2d": upfirdn2d, "filter2d": filter2d, "upsample2d": upsample2d,
       "downsample2d": downsample2d}
BIAS_ACT = load_json("ops", "bias_act")["cases"]
LOWPASS = load_json("ops", "design_lowpass_filter")["cases"]
UPFIRDN = load_json("ops", "upfirdn2d")["cases"]
MODCONV = load_json("ops", "modulated_conv2d")["cases"]


# ---------------------------------------------------------------------------------- bias_act
@pytest.mark.parametrize("case", BIAS_ACT, ids=[c["name"] for c in BIAS_ACT])
def test_bias_act_matches_fixture(case):
    d = load_npz("ops", "bias_act")
    xk, bk = case.get("inputs", "x,b").split(",")
    y = bias_act(nchw_to_nhwc(d[xk]), d[bk], **case["kwargs"])
    np.testing.assert_allclose(np.asarray(y), nchw_to_nhwc(d[case["name"] + "/y"]),
                               rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------ filters
def test_design_lowpass_filter_matches_all_fixture_cases():
    d = load_npz("ops", "design_lowpass_filter")
    stored = 0
    for c in LOWPASS:
        f = design_lowpass_filter(c["numtaps"], c["cutoff"], c["width"], c["fs"], c["radial"])
        if c["returns_none"]:
            assert f is None, c
            continue
        ref = d[c["key"]]
        assert f.dtype == np.float32 and f.shape == ref.shape, c
        np.testing.assert_allclose(f, ref, rtol=0, atol=1e-7, err_msg=str(c))
        stored += 1
    assert stored == 154


def test_design_lowpass_filter_radial_properties():
    f = design_lowpass_filter(12, 4.0, 8.0, 32.0, radial=True)
    assert f.shape == (12, 12)
    np.testing.assert_allclose(f, f.T, atol=1e-8)
    np.testing.assert_allclose(f, f[::-1, ::-1], atol=1e-8)
    assert abs(float(f.sum(dtype=np.float64)) - 1) < 1e-6


def test_setup_filter_fixture_and_semantics():
    d = load_npz("ops", "upfirdn2d")
    np.testing.assert_allclose(setup_filter([1, 3, 3, 1]), d["setup_filter_1331"], atol=0)
    f8 = setup_filter(np.arange(1, 9))                      # >= 8 taps: stays separable
    assert f8.shape == (8,) and abs(f8.sum() - 1) < 1e-6
    assert setup_filter([1, 2, 3], separable=True).shape == (3,)
    np.testing.assert_allclose(setup_filter([1, 2], flip_filter=True, normalize=False),
                               [[4, 2], [2, 1]])
    np.testing.assert_allclose(setup_filter([1, 1], gain=4), np.full([2, 2], 1.0))
    np.testing.assert_allclose(setup_filter([1, 1], gain=4, separable=True), [1.0, 1.0])
    assert setup_filter(None).shape == (1, 1)
    with pytest.raises(ValueError, match="setup_filter"):
        setup_filter(np.ones([2, 2, 2]))


# ---------------------------------------------------------------------------------- upfirdn2d
@pytest.mark.parametrize("case", UPFIRDN, ids=[c["name"] for c in UPFIRDN])
def test_upfirdn2d_matches_fixture(case):
    d = load_npz("ops", "upfirdn2d")
    n = case["name"]
    y = OPS[case["function"]](nchw_to_nhwc(d[n + "/x"]), d[n + "/f"], **case["kwargs"])
    ref = nchw_to_nhwc(d[n + "/y"])
    assert tuple(y.shape) == ref.shape
    np.testing.assert_allclose(np.asarray(y), ref, rtol=0, atol=1e-5)


def _upfirdn_1d_scipy(x, f, up, down, p0, p1, axis):
    """Oracle along one axis: scipy.signal.upfirdn (zero insertion after each sample, *full*
    convolution, keep every down-th) re-cropped to upfirdn2d's pad-then-valid convention."""
    k = len(f)
    full = np.apply_along_axis(lambda v: scipy.signal.upfirdn(f, v, up=up), axis, x)
    length = x.shape[axis] * up
    # full conv index i corresponds to valid-conv output m = i - (k - 1) + p0 of the padded signal
    full_len = full.shape[axis]
    want = length + p0 + p1 - k + 1
    idx = np.arange(want) + (k - 1) - p0
    valid = (idx >= 0) & (idx < full_len)
    out = np.zeros(x.shape[:axis] + (want,) + x.shape[axis + 1:], np.float64)
    sl = [slice(None)] * x.ndim
    sl[axis] = np.nonzero(valid)[0]
    src = [slice(None)] * x.ndim
    src[axis] = idx[valid]
    out[tuple(sl)] = full[tuple(src)]
    sl[axis] = slice(None, None, down)
    return out[tuple(sl)]


def _upfirdn2d_loop(x, f, up, down, pad):
    """Direct NumPy oracle (2-D filter, NHWC): literal zero-insert, pad, flip, slide, stride."""
    (ux, uy), (dx, dy), (x0, x1, y0, y1) = up, down, pad
    n, h, w, c = x.shape
    z = np.zeros([n, h * uy, w * ux, c])
    z[:, ::uy, ::ux] = x
    z = np.pad(z, [[0, 0], [max(y0, 0), max(y1, 0)], [max(x0, 0), max(x1, 0)], [0, 0]])
    z = z[:, max(-y0, 0):z.shape[1] - max(-y1, 0), max(-x0, 0):z.shape[2] - max(-x1, 0)]
    fh, fw = f.shape
    g = f[::-1, ::-1]
    out = np.zeros([n, z.shape[1] - fh + 1, z.shape[2] - fw + 1, c])
    for i in range(fh):
        for j in range(fw):
            out += g[i, j] * z[:, i:i + out.shape[1], j:j + out.shape[2]]
    return out[:, ::dy, ::dx]


@pytest.mark.parametrize("up,down,pad", [(2, 1, (1, 2, 2, 1)), (3, 2, (4, -1, 0, 3)),
                                         (1, 3, (2, 2, 0, 0)), (4, 2, (-3, -5, -2, -6))])
def test_upfirdn2d_separable_matches_scipy_upfirdn(up, down, pad):
    rng = np.random.default_rng(up * 10 + down)
    x = rng.standard_normal([2, 9, 11, 3]).astype(np.float32)
    f = rng.standard_normal([7]).astype(np.float32)
    y = upfirdn2d(x, f, up=up, down=down, padding=pad)
    ref = _upfirdn_1d_scipy(x.astype(np.float64), f, up, down, pad[0], pad[1], axis=2)
    ref = _upfirdn_1d_scipy(ref, f, up, down, pad[2], pad[3], axis=1)
    assert tuple(y.shape) == ref.shape
    np.testing.assert_allclose(np.asarray(y), ref, rtol=0, atol=2e-5)


@pytest.mark.parametrize("up,down,pad,flip,gain", [((2, 3), (1, 2), (3, 0, -1, 2), False, 1.0),
                                                   ((1, 1), (2, 2), (1, 1, 1, 1), True, 2.5)])
def test_upfirdn2d_2d_filter_matches_loop(up, down, pad, flip, gain):
    rng = np.random.default_rng(7)
    x = rng.standard_normal([2, 8, 10, 2]).astype(np.float32)
    f = rng.standard_normal([3, 4]).astype(np.float32)
    y = upfirdn2d(x, f, up=list(up), down=list(down), padding=list(pad), flip_filter=flip,
                  gain=gain)
    ref = _upfirdn2d_loop(x, (f[::-1, ::-1] if flip else f) * gain, up, down, pad)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=0, atol=2e-5)


def test_upfirdn2d_identity_filter_and_gain():
    x = np.random.default_rng(0).standard_normal([1, 4, 5, 2]).astype(np.float32)
    np.testing.assert_allclose(np.asarray(upfirdn2d(x, None)), x)
    np.testing.assert_allclose(np.asarray(upfirdn2d(x, None, gain=3.0)), 3 * x, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(upfirdn2d(x, np.array([2.0], np.float32))), 4 * x,
                               rtol=1e-6)
    y = upfirdn2d(x, None, up=2)
    assert tuple(y.shape) == (1, 8, 10, 2)
    np.testing.assert_allclose(np.asarray(y)[:, ::2, ::2], x)
    assert np.all(np.asarray(y)[:, 1::2] == 0)


def test_upfirdn2d_dynamic_batch_and_gradient():
    f = setup_filter([1, 3, 3, 1])
    fn = tf.function(lambda x: downsample2d(x, f),
                     input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
    x = np.random.default_rng(1).standard_normal([5, 16, 16, 3]).astype(np.float32)
    np.testing.assert_allclose(fn(x).numpy(), np.asarray(downsample2d(x, f)), atol=1e-6)
    assert fn(x[:2]).shape == (2, 8, 8, 3)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(upsample2d(xt, f))
    g = tape.gradient(loss, xt).numpy()
    # Interior pixels: every input sample spreads with total weight gain = up**2 = 4.
    np.testing.assert_allclose(g[:, 2:-2, 2:-2], 4.0, rtol=1e-5)


def test_upfirdn2d_under_xla():
    f = setup_filter([1, 3, 3, 1])
    x = np.random.default_rng(2).standard_normal([2, 8, 8, 3]).astype(np.float32)
    fn = tf.function(lambda x: upfirdn2d(x, f, up=2, down=1, padding=[2, 1, 2, 1]),
                     jit_compile=True)
    np.testing.assert_allclose(fn(x).numpy(), np.asarray(upfirdn2d(x, f, up=2,
                                                                   padding=[2, 1, 2, 1])),
                               atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(f=np.ones([2, 2, 2], np.float32)), "filter f"),
    (dict(up=-1), "up"),
    (dict(up=[2, 2, 2]), "up"),
    (dict(down=0), "down"),
    (dict(padding=[1, 2, 3]), "padding"),
    (dict(padding=1.5), "padding"),
    (dict(padding=-8), "empty"),
])
def test_upfirdn2d_bad_arguments(kwargs, match):
    x = np.zeros([1, 6, 6, 2], np.float32)
    args = dict(f=np.ones([3], np.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        upfirdn2d(x, **args)


def test_upfirdn2d_rejects_nchw_rank():
    with pytest.raises(ValueError, match="NHWC"):
        upfirdn2d(np.zeros([2, 3, 4], np.float32), None)


# --------------------------------------------------------------------------- modulated_conv2d
@pytest.mark.parametrize("case", MODCONV, ids=[c["name"] for c in MODCONV])
def test_modulated_conv2d_matches_fixture(case):
    d = load_npz("ops", "modulated_conv2d")
    n = case["name"]
    w = np.transpose(d[n + "/w"], (2, 3, 1, 0))            # [O, I, k, k] -> [k, k, I, O]
    y = modulated_conv2d(nchw_to_nhwc(d[n + "/x"]), w, d[n + "/s"],
                         demodulate=case["demodulate"], padding=case["padding"],
                         input_gain=d.get(n + "/input_gain"))
    ref = nchw_to_nhwc(d[n + "/y"])
    assert tuple(y.shape) == ref.shape
    np.testing.assert_allclose(np.asarray(y), ref, rtol=0, atol=1e-5)


def _modconv_oracle(x, w, s, demodulate, padding, gain):
    """Fused per-sample weights (official formulation), float64, direct loops."""
    w, s = w.astype(np.float64), s.astype(np.float64)
    if demodulate:
        w = w / np.sqrt(np.mean(w ** 2, axis=(0, 1, 2), keepdims=True))
        s = s / np.sqrt(np.mean(s ** 2))
    k = w.shape[0]
    xp = np.pad(x.astype(np.float64), [[0, 0], [padding] * 2, [padding] * 2, [0, 0]])
    hout, wout = xp.shape[1] - k + 1, xp.shape[2] - k + 1
    out = np.zeros([x.shape[0], hout, wout, w.shape[3]])
    for n in range(x.shape[0]):
        wn = w * s[n][None, None, :, None]
        if demodulate:
            wn = wn / np.sqrt(np.sum(wn ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
        wn = wn * np.broadcast_to(gain, s.shape)[n][None, None, :, None]
        for i in range(k):
            for j in range(k):
                out[n] += xp[n, i:i + hout, j:j + wout] @ wn[i, j]
    return out


@pytest.mark.parametrize("demodulate,gain_kind", [(True, "per_sample"), (False, "vector"),
                                                  (True, "none")])
def test_modulated_conv2d_matches_fused_oracle(demodulate, gain_kind):
    rng = np.random.default_rng(3)
    x = rng.standard_normal([3, 6, 7, 4]).astype(np.float32)
    w = rng.standard_normal([3, 3, 4, 5]).astype(np.float32)
    s = rng.standard_normal([3, 4]).astype(np.float32)
    gain = {"per_sample": rng.uniform(0.5, 2, [3, 4]), "vector": rng.uniform(0.5, 2, [4]),
            "none": None}[gain_kind]
    gain = None if gain is None else gain.astype(np.float32)
    y = modulated_conv2d(x, w, s, demodulate=demodulate, padding=1, input_gain=gain)
    ref = _modconv_oracle(x, w, s, demodulate, 1, 1.0 if gain is None else gain)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=0, atol=2e-5)


def test_modulated_conv2d_dynamic_batch_xla_and_errors():
    rng = np.random.default_rng(4)
    x = rng.standard_normal([2, 5, 5, 4]).astype(np.float32)
    w = rng.standard_normal([3, 3, 4, 6]).astype(np.float32)
    s = rng.standard_normal([2, 4]).astype(np.float32)
    eager = np.asarray(modulated_conv2d(x, w, s, padding=2, input_gain=0.5))
    fn = tf.function(lambda x, s: modulated_conv2d(x, w, s, padding=2, input_gain=0.5),
                     input_signature=[tf.TensorSpec([None, 5, 5, 4]), tf.TensorSpec([None, 4])],
                     jit_compile=True)
    np.testing.assert_allclose(fn(x, s).numpy(), eager, atol=1e-5)
    with pytest.raises(ValueError, match="w must be"):
        modulated_conv2d(x, w[0], s)
    with pytest.raises(ValueError, match="s"):
        modulated_conv2d(x, w, s[:, :3])
    with pytest.raises(ValueError, match="input_gain"):
        modulated_conv2d(x, w, s, input_gain=np.ones([3], np.float32))


# ------------------------------------------------------------------------------- misc/layout
def test_assert_shape():
    x = tf.zeros([2, 4, 4, 3])
    assert_shape(x, [None, 4, 4, 3])
    with pytest.raises(ValueError, match="feat: dimension 3 is 3, expected 5"):
        assert_shape(x, [None, 4, 4, 5], "feat")
    with pytest.raises(ValueError, match="rank"):
        assert_shape(x, [2, 4, 4])

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3])])
    def f(t):
        assert_shape(t, [7, 4, 4, 3])  # unknown batch is accepted at trace time
        return t
    f(x)


def test_ops_do_not_import_upper_layers():
    ops_dir = os.path.join(os.path.dirname(__file__), "..", "sg3keras", "ops")
    for name in sorted(os.listdir(ops_dir)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(ops_dir, name)) as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for m in mods:
                assert not m.startswith(("sg3keras.layers", "sg3keras.models")), (name, m)
                if name != "xla.py":
                    assert not m.startswith("tensorflow"), (name, m)
