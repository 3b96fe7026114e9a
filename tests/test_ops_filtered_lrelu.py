"""filtered_lrelu: fixture parity for both impls, ref-vs-fast values and gradients (eager,
tf.function, XLA), dynamic batch, low-precision dtypes, argument checks, JAX backend."""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from refdata import load_json, load_npz, nchw_to_nhwc

from sg3keras.ops import filtered_lrelu

fl_module = importlib.import_module("sg3keras.ops.filtered_lrelu")
CASES = load_json("ops", "filtered_lrelu")["cases"]
KW = ("up", "down", "padding", "gain", "slope", "clamp", "flip_filter")
GRAD_CASES = [(n, "eager") for n in ("t32_L13_32_16", "r32_L5_52_32", "clamp_small",
                                     "flip_filter", "padding_int_no_filters",
                                     "padding_xy_up3_down1")] + [
    ("nonsquare_padding4", "tf_function"), ("nonsquare_padding4", "outer_xla"),
    ("clamp_small", "tf_function")]


def _case(name):
    c = next(c for c in CASES if c["name"] == name)
    d = load_npz("ops", "filtered_lrelu")
    args = dict(x=nchw_to_nhwc(d[name + "/x"]), fu=d.get(name + "/fu"), fd=d.get(name + "/fd"),
                b=d.get(name + "/b"))
    return args, {k: c[k] for k in KW}, nchw_to_nhwc(d[name + "/y"])


@pytest.mark.parametrize("impl", ["ref", "fast", "conv"])
@pytest.mark.parametrize("name", [c["name"] for c in CASES])
def test_matches_fixture(name, impl):
    args, kw, ref = _case(name)
    y = filtered_lrelu(**args, **kw, impl=impl)
    assert tuple(y.shape) == ref.shape
    np.testing.assert_allclose(np.asarray(y), ref, rtol=0, atol=1e-5)


def _grads(args, kw, impl, dy, wrap=None):
    x = tf.constant(args["x"])
    b = None if args["b"] is None else tf.constant(args["b"])
    srcs = [x] + ([b] if b is not None else [])

    def run(x, b):
        with tf.GradientTape() as tape:
            tape.watch([x] + ([b] if b is not None else []))
            y = filtered_lrelu(x, args["fu"], args["fd"], b, **kw, impl=impl)
            loss = tf.reduce_sum(y * dy)
        return [y] + tape.gradient(loss, [x] + ([b] if b is not None else []))

    out = (wrap(run) if wrap else run)(*srcs) if b is not None else \
        (wrap(lambda x: run(x, None)) if wrap else (lambda x: run(x, None)))(x)
    return [np.asarray(t) for t in out]


@pytest.mark.parametrize("name,mode", GRAD_CASES)
def test_fast_matches_ref_values_and_gradients(name, mode):
    args, kw, ref = _case(name)
    dy = tf.constant(np.random.default_rng(0).standard_normal(ref.shape).astype(np.float32))
    wrap = {"eager": None, "tf_function": tf.function,
            "outer_xla": lambda f: tf.function(f, jit_compile=True)}[mode]
    want = _grads(args, kw, "ref", dy)                    # eager reference path
    got = _grads(args, kw, "fast", dy, wrap)
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-5, err_msg="y")
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-5, err_msg="dx")
    if len(want) == 3:  # db sums ~N*H*W float32 terms: allow their accumulated rounding
        bound = 1e-6 * np.abs(want[1]).sum(axis=(0, 1, 2))
        np.testing.assert_array_less(np.abs(got[2] - want[2]), bound + 1e-6, err_msg="db")


@pytest.mark.parametrize("name", ["t32_L13_32_16", "r32_L5_52_32", "clamp_small",
                                  "padding_xy_up3_down1"])
def test_conv_matches_ref_values_and_gradients(name):
    """impl="conv" has no hand-written backward: TensorFlow differentiates its depthwise
    convolutions, so training or attribution through an exported graph still works."""
    args, kw, ref = _case(name)
    dy = tf.constant(np.random.default_rng(1).standard_normal(ref.shape).astype(np.float32))
    want = _grads(args, kw, "ref", dy)
    got = _grads(args, kw, "conv", dy, tf.function)
    for g, w, what in zip(got, want, ("y", "dx", "db")):
        np.testing.assert_allclose(g, w, rtol=0, atol=2e-5 * max(1.0, np.abs(w).max()),
                                   err_msg=what)


def test_conv_never_uses_xla(monkeypatch):
    """The export path must not reach the XLA wrappers."""
    import sg3keras.ops.xla as xla
    monkeypatch.setattr(xla, "compiled_stage", None)
    monkeypatch.setattr(xla, "with_custom_gradient", None)
    args, kw, ref = _case("r32_L5_52_32")
    fn = tf.function(lambda x: filtered_lrelu(x, args["fu"], args["fd"], args["b"], **kw,
                                              impl="conv"))
    graph = fn.get_concrete_function(tf.constant(args["x"])).graph.as_graph_def()
    ops_used = {n.op for n in graph.node} | {n.op for f in graph.library.function
                                             for n in f.node_def}
    assert "DepthwiseConv2dNative" in ops_used
    assert not any("Xla" in o or "PartitionedCall" in o for o in ops_used), sorted(ops_used)
    # bench/ops.py --profile attributes time by these name scopes: every heavy op has one
    heavy = [n.name for n in graph.node if n.op in ("DepthwiseConv2dNative", "BatchMatMulV2",
                                                     "GatherV2", "LeakyRelu", "Pad", "If",
                                                     "StatelessIf", "AddV2", "Max", "Min")]
    assert len(heavy) >= 8
    for name in heavy:
        assert set(name.split("/")) & set(fl_module.CONV_STAGES), name
    # index tables scale with the image (F*W*up entries); they must be built in the graph,
    # not stored as constants in every exported signature
    sizes = {n.name: int(np.prod([d.size for d in n.attr["value"].tensor.tensor_shape.dim]))
             for n in graph.node if n.op == "Const"}
    assert max(sizes.values()) < 4096, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    np.testing.assert_allclose(fn(tf.constant(args["x"])).numpy(), ref, atol=1e-5)


def test_fast_2d_up_filter_matches_ref_and_separable():
    args, kw, _ = _case("t32_L5_52_32")
    fu2 = np.outer(args["fu"], args["fu"]).astype(np.float32)
    sep = np.asarray(filtered_lrelu(**args, **kw, impl="fast"))
    for impl in ("ref", "fast", "conv"):
        y = np.asarray(filtered_lrelu(args["x"], fu2, args["fd"], args["b"], **kw, impl=impl))
        np.testing.assert_allclose(y, sep, rtol=0, atol=1e-5, err_msg=impl)


def test_fast_never_calls_ref(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("fast path fell back to ref")
    monkeypatch.setattr(fl_module, "_filtered_lrelu_ref", boom)
    monkeypatch.setattr(fl_module, "upfirdn2d", boom)
    args, kw, ref = _case("r32_L5_52_32")
    np.testing.assert_allclose(np.asarray(filtered_lrelu(**args, **kw, impl="fast")), ref,
                               atol=1e-5)


@pytest.mark.parametrize("name", ["t32_L5_52_32", "r32_L5_52_32", "padding_int_no_filters"])
@pytest.mark.parametrize("margin", [0.97, 1.03])
def test_conv_skips_the_clamp_only_when_nothing_can_reach_it(name, margin, monkeypatch):
    """impl="conv" skips the clip pass when a bound on the activations (max|x + b| times the
    up filter's phase L1 norms times the gain) is below the clamp. A clamp just under the true
    peak of the activations must still clip (and match the reference); one just above changes
    nothing, whichever branch runs. With the fixtures' clamp (256) the clip is skipped."""
    args, kw, _ = _case(name)
    kw = dict(kw, clamp=None)
    act = filtered_lrelu(args["x"], args["fu"], None, args["b"],          # before the down filter
                         **dict(kw, down=1), impl="ref")
    peak = float(np.abs(np.asarray(act)).max())
    clamp = margin * peak
    want = np.asarray(filtered_lrelu(**args, **dict(kw, clamp=clamp), impl="ref"))
    unclamped = np.asarray(filtered_lrelu(**args, **kw, impl="ref"))
    if margin < 1:
        assert np.abs(want - unclamped).max() > 1e-4        # the clamp matters here
    got = tf.function(lambda x: filtered_lrelu(x, args["fu"], args["fd"], args["b"],
                                               **dict(kw, clamp=clamp), impl="conv"))
    np.testing.assert_allclose(got(tf.constant(args["x"])).numpy(), want, rtol=0, atol=1e-5)

    clips = []
    real_clip = fl_module.ops.clip
    monkeypatch.setattr(fl_module.ops, "clip", lambda *a: clips.append(1) or real_clip(*a))
    y = filtered_lrelu(**args, **dict(kw, clamp=256.0), impl="conv")     # eager: one branch runs
    assert clips == [] and peak < 200
    np.testing.assert_allclose(np.asarray(y), unclamped, rtol=0, atol=1e-5)
    filtered_lrelu(**args, **dict(kw, clamp=0.5 * peak), impl="conv")
    assert clips == [1]


@pytest.mark.parametrize("name", ["t32_L5_52_32", "r32_L5_52_32"])
def test_conv_clamp_bound_holds_for_the_worst_input(name):
    """The input that drives one activation to the largest value the up filter allows (the
    signs of that activation's impulse response, scaled by M): with the clamp 1 % under that
    value, the clip must run. An underestimated bound would skip it."""
    from sg3keras.ops import upfirdn2d
    args, kw, _ = _case(name)
    n = args["x"].shape[1]
    eye = np.eye(n * n, dtype=np.float32).reshape(n * n, n, n, 1)        # every impulse
    resp = np.asarray(upfirdn2d(eye, args["fu"], up=kw["up"], padding=kw["padding"],
                                gain=kw["up"] ** 2))                      # [n*n, H', W', 1]
    side = resp.shape[1]
    resp = resp.reshape(n * n, -1)
    l1 = np.abs(resp).sum(axis=0)
    loud = np.flatnonzero(l1 >= l1.max() * (1 - 1e-6))                   # the loudest outputs
    u = loud[np.argmin(np.abs(loud // side - side // 2) + np.abs(loud % side - side // 2))]
    x = 3.0 * np.sign(resp[:, u]).reshape(1, n, n, 1).repeat(3, axis=3)
    peak = 3.0 * np.abs(resp[:, u]).sum() * kw["gain"]
    kw = dict(kw, clamp=0.99 * peak)
    want = np.asarray(filtered_lrelu(x, args["fu"], args["fd"], None, **kw, impl="ref"))
    unclamped = np.asarray(filtered_lrelu(x, args["fu"], args["fd"], None,
                                          **dict(kw, clamp=None), impl="ref"))
    assert np.abs(want - unclamped).max() > 1e-5 * peak                 # the clip matters
    got = np.asarray(filtered_lrelu(x, args["fu"], args["fd"], None, **kw, impl="conv"))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * peak)


@pytest.mark.parametrize("impl", ["ref", "fast", "conv"])
def test_dynamic_batch(impl):
    args, kw, ref = _case("t32_L2_36_32")
    fn = tf.function(lambda x: filtered_lrelu(x, args["fu"], args["fd"], args["b"], **kw,
                                              impl=impl),
                     input_signature=[tf.TensorSpec([None, 38, 38, 3], tf.float32)])
    np.testing.assert_allclose(fn(args["x"]).numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(fn(args["x"][:1]).numpy(), ref[:1], atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [("float16", 2e-2), ("bfloat16", 1.5e-1)])
@pytest.mark.parametrize("impl", ["ref", "fast", "conv"])
@pytest.mark.parametrize("name", ["t32_L5_52_32", "r32_L5_52_32"])   # separable, radial
def test_low_precision_runs(dtype, tol, impl, name):
    args, kw, ref = _case(name)
    x = tf.cast(tf.constant(args["x"]), dtype)
    y = filtered_lrelu(x, args["fu"], args["fd"], tf.cast(args["b"], dtype), **kw, impl=impl)
    assert y.dtype == tf.as_dtype(dtype)
    y = tf.cast(y, tf.float32).numpy()
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, ref, rtol=0, atol=tol * np.abs(ref).max())


@pytest.mark.parametrize("kwargs,match", [
    (dict(impl="cuda"), "impl"),
    (dict(impl="fastest"), "impl"),
    (dict(up=-2), "up"),
    (dict(down=0), "down"),
    (dict(up=2.5), "up"),
    (dict(fu=np.ones([2, 2, 2], np.float32)), "fu"),
    (dict(fd=np.ones([0], np.float32)), "fd"),
    (dict(padding=[1, 2, 3]), "padding"),
    (dict(b=np.ones([4], np.float32)), "b must be"),
    (dict(padding=-30), "empty"),
])
def test_bad_arguments(kwargs, match):
    args = dict(x=np.zeros([1, 8, 8, 3], np.float32), fu=np.ones([4], np.float32),
                fd=np.ones([4], np.float32), b=None, up=2, down=2, padding=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        filtered_lrelu(**args)
    with pytest.raises(ValueError, match="NHWC"):
        filtered_lrelu(np.zeros([3, 8, 8], np.float32))


_JAX_SCRIPT = r"""
import sys; sys.path.insert(0, sys.argv[1])
import numpy as np, keras
from refdata import load_npz, nchw_to_nhwc
from sg3keras.ops import filtered_lrelu
assert keras.backend.backend() == "jax"
d = load_npz("ops", "filtered_lrelu")
n = "r32_L5_52_32"
err = 0.0
for impl in ("fast", "conv"):
    y = filtered_lrelu(nchw_to_nhwc(d[n + "/x"]), d[n + "/fu"], d[n + "/fd"], d[n + "/b"],
                       up=4, down=2, padding=[-2, -5, -2, -5], clamp=256.0, impl=impl)
    err = max(err, float(np.abs(np.asarray(y) - nchw_to_nhwc(d[n + "/y"])).max()))
print("MAXERR", err)
"""


@pytest.mark.slow
def test_fast_path_runs_under_jax_backend():
    pytest.importorskip("jax")
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, KERAS_BACKEND="jax",
               PYTHONPATH=os.path.dirname(here) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(["timeout", "-s", "KILL", "180", sys.executable, "-c", _JAX_SCRIPT, here],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    err = float(res.stdout.split("MAXERR")[1])
    assert err < 1e-5


def test_fast_path_accepts_keras_variables_inside_tf_function():
    """Layers pass their filter / bias weights (Keras variables) straight to the op; inside a
    traced function (training) they must work with the XLA path as they do eagerly."""
    import keras
    import tensorflow as tf

    from sg3keras.ops.filtered_lrelu import filtered_lrelu
    from sg3keras.ops.filters import design_lowpass_filter
    rng = np.random.RandomState(0)
    f = design_lowpass_filter(12, 2.0, 12.0, 32.0)
    fu, fd = keras.Variable(f, trainable=False), keras.Variable(f, trainable=False)
    b = keras.Variable(rng.randn(3).astype(np.float32))
    x = tf.constant(rng.randn(2, 10, 10, 3).astype(np.float32))
    kw = dict(up=2, down=2, padding=[9, 8, 9, 8], clamp=256.0)
    eager = filtered_lrelu(x, fu, fd, b, impl="fast", **kw)
    traced = tf.function(lambda x: filtered_lrelu(x, fu, fd, b, impl="fast", **kw))(x)
    ref = filtered_lrelu(x, f, f, np.asarray(b), impl="ref", **kw)
    np.testing.assert_allclose(np.asarray(traced), np.asarray(ref), atol=1e-5)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(ref), atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_fast_path_accumulates_16bit_inputs_in_float32(dtype):
    """16-bit in, 16-bit out, float32 inside (as the official CUDA kernel): the result is the
    float32 computation on the (already rounded) input, rounded once at the end."""
    args, kw, _ = _case("t32_L5_52_32")
    x = tf.cast(tf.constant(args["x"]), dtype)
    b = tf.cast(args["b"], dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = filtered_lrelu(x, args["fu"], args["fd"], b, **kw, impl="fast")
    dx = tape.gradient(y, x, output_gradients=tf.ones_like(y))
    assert y.dtype == dx.dtype == tf.as_dtype(dtype)
    want = filtered_lrelu(tf.cast(x, tf.float32), args["fu"], args["fd"], tf.cast(b, tf.float32),
                          **kw, impl="fast")
    once = tf.cast(tf.cast(want, dtype), tf.float32).numpy()
    np.testing.assert_array_equal(tf.cast(y, tf.float32).numpy(), once)
