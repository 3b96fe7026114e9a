"""impl="auto" (sg3keras.ops.autotune) and impl="fast_poly" (sg3keras.ops.radial): the cache
key, corrupt / foreign cache files, the override order, measurement at trace time, image
equality whatever the choice, the no-autotune path. Timing is faked (a fake clock that only
the fake -- or wrapped real -- candidates move): no test depends on what is faster."""

import importlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from refdata import load_json, load_npz, nchw_to_nhwc

from sg3keras.cli.options import autotuned
from sg3keras.models.generator import Generator
from sg3keras.ops import autotune, filtered_lrelu
from sg3keras.ops.filters import design_lowpass_filter
from sg3keras.ops.radial import down_2d_phases, down_2d_strided

fl_module = importlib.import_module("sg3keras.ops.filtered_lrelu")
CASES = load_json("ops", "filtered_lrelu")["cases"]
KW = ("up", "down", "padding", "gain", "slope", "clamp", "flip_filter")
KEY = "20x20x8 up2 down2 pad11,10,11,10 fu12 fd12x12 float32"
TINY = dict(img_resolution=16, channel_base=256, channel_max=16, z_dim=16, w_dim=16)


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    """Each test: an empty cache directory, no overrides in the environment, a fresh state."""
    monkeypatch.setenv("SG3KERAS_CACHE", str(tmp_path / "cache"))
    for var in ("SG3KERAS_IMPL", "SG3KERAS_AUTOTUNE", "SG3KERAS_AUTOTUNE_BUDGET"):
        monkeypatch.delenv(var, raising=False)
    autotune.reset()
    yield
    autotune.reset()


class FakeClock:
    """A clock that only the fake candidates move."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _fake(costs, calls=None):
    """``(prepare, clock)`` for ``choose``: running candidate ``impl`` takes ``costs[impl]``
    seconds of the fake clock; ``calls`` records the candidates prepared."""
    clock = FakeClock()

    def prepare(impl):
        if calls is not None:
            calls.append(impl)

        def run():
            clock.t += costs[impl]
        return run
    return prepare, clock


def _never(impl):
    pytest.fail(f"measured {impl}")


def _radial_args(n=2, size=20, c=8):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal([n, size, size, c]).astype(np.float32))
    fu = design_lowpass_filter(12, 16.0, 32.0, 64.0)
    fd = design_lowpass_filter(12, 22.6, 40.0, 64.0, radial=True)
    b = tf.constant(rng.standard_normal([c]).astype(np.float32))
    return x, fu, fd, b, dict(up=2, down=2, padding=[11, 10, 11, 10], clamp=256.0)


# ------------------------------------------------------------------------------------------
# fast_poly / the polyphase radial down filter: equal to the reference.

def _numpy_strided_corr(x, g, d):
    n, h, w, c = x.shape
    kh, kw = g.shape
    ho, wo = (h - kh) // d + 1, (w - kw) // d + 1
    y = np.zeros([n, ho, wo, c], np.float64)
    for a in range(kh):
        for b in range(kw):
            y += g[a, b] * x[:, a:a + d * (ho - 1) + 1:d, b:b + d * (wo - 1) + 1:d, :]
    return y


@pytest.mark.parametrize("shape,taps,down", [((2, 20, 20, 3), (12, 12), 2),
                                             ((1, 17, 23, 2), (5, 7), 2),
                                             ((1, 19, 16, 2), (4, 6), 3),
                                             ((1, 9, 9, 1), (3, 3), 1)])
def test_phases_equal_a_direct_strided_correlation(shape, taps, down):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(taps).astype(np.float32)
    want = _numpy_strided_corr(x.astype(np.float64), g.astype(np.float64), down)
    for fn in (down_2d_phases, down_2d_strided):
        got = np.asarray(fn(tf.constant(x), tf.constant(g), down))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * max(1.0, np.abs(want).max()),
                                   err_msg=fn.__name__)


@pytest.mark.parametrize("name", [c["name"] for c in CASES])
def test_fast_poly_matches_fixture(name):
    c = next(c for c in CASES if c["name"] == name)
    d = load_npz("ops", "filtered_lrelu")
    y = filtered_lrelu(nchw_to_nhwc(d[name + "/x"]), d.get(name + "/fu"), d.get(name + "/fd"),
                       d.get(name + "/b"), **{k: c[k] for k in KW}, impl="fast_poly")
    np.testing.assert_allclose(np.asarray(y), nchw_to_nhwc(d[name + "/y"]), rtol=0, atol=1e-5)


def test_fast_poly_gradients_equal_fast():
    x, fu, fd, b, kw = _radial_args()

    dy = tf.constant(np.random.default_rng(2).standard_normal([2, 20, 20, 8]), tf.float32)

    def grads(impl):
        with tf.GradientTape() as tape:
            tape.watch([x, b])
            y = filtered_lrelu(x, fu, fd, b, impl=impl, **kw)
            loss = tf.reduce_sum(y * dy)
        return [np.asarray(t) for t in [y] + tape.gradient(loss, [x, b])]
    (y, dx, db), (y_fast, dx_fast, db_fast) = grads("fast_poly"), grads("fast")
    np.testing.assert_allclose(y, y_fast, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(dx, dx_fast)      # the same hand-written backward
    np.testing.assert_array_equal(db, db_fast)


# ------------------------------------------------------------------------------------------
# The cache key and the cache file.

def test_geometry_key_names_every_field_but_the_batch():
    base = dict(shape=(4, 20, 20, 8), fu_shape=(12,), fd_shape=(12, 12), up=2, down=2,
                padding=(11, 10, 11, 10), dtype="float32")
    key = autotune.geometry_key(**base)
    assert key == KEY
    assert autotune.geometry_key(**dict(base, shape=(1, 20, 20, 8))) == key
    changes = [dict(shape=(4, 20, 20, 16)), dict(shape=(4, 36, 36, 8)), dict(up=4),
               dict(down=1), dict(padding=(-2, -5, -2, -5)), dict(fu_shape=(24,)),
               dict(fd_shape=(12,)), dict(fd_shape=()), dict(dtype="bfloat16")]
    keys = {autotune.geometry_key(**dict(base, **c)) for c in changes}
    assert key not in keys and len(keys) == len(changes)


def test_cache_file_is_keyed_by_cpu_flags_and_versions(monkeypatch):
    m = autotune.machine()
    assert {"cpu", "flags", "threads", "tensorflow", "keras", "backend"} <= set(m)
    assert m["tensorflow"] == tf.__version__
    paths = {autotune.cache_path(m)}
    for change in (dict(cpu="Other CPU"), dict(flags=m["flags"] + ["amx_tile"]),
                   dict(tensorflow="0.0.1"), dict(threads=m["threads"] + 1)):
        paths.add(autotune.cache_path(dict(m, **change)))
    assert len(paths) == 5
    assert all(os.path.dirname(p) == os.path.join(os.environ["SG3KERAS_CACHE"], "autotune")
               for p in paths)


def test_choice_is_measured_once_then_read_from_the_cache():
    calls = []
    got = autotune.choose(KEY, ("fast", "conv"), *_fake(dict(fast=2.0, conv=1.0), calls))
    assert got == "conv" and calls == ["fast", "conv"]
    assert autotune.choices()[KEY] == ("conv", "autotune")
    data = json.load(open(autotune.cache_path()))
    assert data["choices"] == {KEY: "conv"} and data["machine"] == autotune.machine()
    autotune.reset()                                         # a new process
    assert autotune.choose(KEY, ("fast", "conv"), *_fake(dict(fast=0.0, conv=9.0), calls)) \
        == "conv"
    assert calls == ["fast", "conv"] and autotune.choices()[KEY] == ("conv", "cache")


def test_processes_tuning_side_by_side_keep_both_choices():
    autotune.choose("a", ("fast", "conv"), *_fake(dict(fast=1.0, conv=2.0)))
    autotune.reset()
    autotune.choose("b", ("fast", "conv"), *_fake(dict(fast=2.0, conv=1.0)))
    assert json.load(open(autotune.cache_path()))["choices"] == {"a": "fast", "b": "conv"}
    leftovers = [f for f in os.listdir(os.path.dirname(autotune.cache_path()))
                 if not f.endswith(".json")]
    assert leftovers == []


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"version": 1}',
                                     '{"version": 99, "machine": {}, "choices": {}}'])
def test_corrupt_cache_is_ignored_with_one_warning_line(content, capsys):
    path = autotune.cache_path()
    os.makedirs(os.path.dirname(path))
    open(path, "w").write(content)
    for key in ("a", "b"):
        assert autotune.choose(key, ("fast", "conv"), *_fake(dict(fast=2.0, conv=1.0))) == "conv"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ignoring the autotune cache" in err[0] and path in err[0]
    assert json.load(open(path))["choices"] == {"a": "conv", "b": "conv"}   # rewritten


def test_foreign_cache_is_ignored_with_one_warning_line(capsys):
    path = autotune.cache_path()
    os.makedirs(os.path.dirname(path))
    foreign = dict(autotune.machine(), cpu="Some Other CPU")
    json.dump(dict(version=1, machine=foreign, choices={KEY: "conv"}), open(path, "w"))
    assert autotune.choose(KEY, ("fast", "conv"), *_fake(dict(fast=1.0, conv=2.0))) == "fast"
    assert autotune.choose(KEY, ("fast", "conv"), None) == "fast"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another machine" in err[0]


def test_unknown_implementation_in_the_cache_is_not_used():
    path = autotune.cache_path()
    os.makedirs(os.path.dirname(path))
    json.dump(dict(version=1, machine=autotune.machine(), choices={KEY: "warp"}),
              open(path, "w"))
    assert autotune.choose(KEY, ("fast", "conv"), *_fake(dict(fast=2.0, conv=1.0))) == "conv"


def test_unwritable_cache_warns_and_still_chooses(monkeypatch, capsys):
    def fail(path, obj):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(autotune, "atomic_write_json", fail)
    assert autotune.choose(KEY, ("fast", "conv"), *_fake(dict(fast=2.0, conv=1.0))) == "conv"
    assert "cannot write the autotune cache" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# Override order: explicit impl > $SG3KERAS_IMPL > cache > measurement > default.

def _cache(choice):
    path = autotune.cache_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump(dict(version=1, machine=autotune.machine(), choices={KEY: choice}),
              open(path, "w"))


def test_explicit_impl_never_asks_the_autotuner(monkeypatch):
    monkeypatch.setenv("SG3KERAS_IMPL", "ref")
    _cache("conv")
    monkeypatch.setattr(autotune, "choose", lambda *a, **k: pytest.fail("asked"))
    x, fu, fd, b, kw = _radial_args()
    y = filtered_lrelu(x, fu, fd, b, impl="fast", **kw)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(fl_module.filtered_lrelu(
        x, fu, fd, b, impl="fast", **kw)))
    assert autotune.choices() == {}


def test_env_beats_cache_and_measurement(monkeypatch):
    _cache("conv")
    monkeypatch.setenv("SG3KERAS_IMPL", "ref")
    assert autotune.choose(KEY, ("fast", "conv"), _never) == "ref"
    assert autotune.choices()[KEY] == ("ref", "env")


def test_bad_env_value_warns_and_is_ignored(monkeypatch, capsys):
    monkeypatch.setenv("SG3KERAS_IMPL", "warp")
    assert autotune.choose(KEY, ("fast", "conv"), *_fake(dict(fast=2.0, conv=1.0))) == "conv"
    assert "SG3KERAS_IMPL='warp'" in capsys.readouterr().err


def test_cache_beats_measurement():
    _cache("conv")
    assert autotune.choose(KEY, ("fast", "conv"), _never) \
        == "conv"


def test_cached_choice_that_is_no_candidate_is_measured_again():
    _cache("fast_poly")                      # e.g. the key of a separable stage, edited
    assert autotune.choose(KEY, ("fast", "conv"), *_fake(dict(fast=2.0, conv=1.0))) == "conv"


def test_measurement_beats_default_and_ties_keep_the_candidate_order():
    assert autotune.choose("a", ("fast", "conv"), *_fake(dict(fast=1.0, conv=1.0))) == "fast"
    assert autotune.choose("b", ("conv", "fast"), *_fake(dict(fast=1.0, conv=1.0))) == "conv"


@pytest.mark.parametrize("setting", ["0", "off", "false"])
def test_no_autotune_keeps_the_default_and_writes_nothing(monkeypatch, setting):
    _cache("conv")
    monkeypatch.setenv("SG3KERAS_AUTOTUNE", setting)
    assert autotune.choose(KEY, ("fast", "conv"), _never) \
        == autotune.DEFAULT == "fast"
    assert autotune.choose("new", ("fast", "conv"), _never) \
        == "fast"
    assert json.load(open(autotune.cache_path()))["choices"] == {KEY: "conv"}


def test_spent_budget_falls_back_to_the_default_uncached(monkeypatch):
    monkeypatch.setenv("SG3KERAS_AUTOTUNE_BUDGET", "0")
    assert autotune.choose(KEY, ("fast", "conv"), _never) \
        == "fast"
    assert autotune.choices()[KEY] == ("fast", "default")
    assert not os.path.exists(autotune.cache_path())
    autotune.reset()
    assert autotune.choose(KEY, ("fast", "conv"), None) == "fast"       # cannot measure


def test_candidates_are_timed_in_turns_and_the_best_time_counts():
    clock, order = FakeClock(), []
    costs = dict(a=iter([5.0, 1.0, 3.0]), b=iter([2.0, 2.0, 2.0]))

    def run(name):
        def go():
            order.append(name)
            clock.t += next(costs[name])
        return go
    best = autotune.time_round_robin(dict(a=run("a"), b=run("b")), clock, reps=3, limit_s=100)
    assert best == dict(a=1.0, b=2.0) and order == ["a", "b"] * 3
    order.clear()
    costs = dict(a=iter([5.0] * 3), b=iter([2.0] * 3))
    assert autotune.time_round_robin(dict(a=run("a"), b=run("b")), clock, reps=3,
                                     limit_s=3) == dict(a=5.0, b=2.0)
    assert order == ["a", "b"]                      # 7 s > 2 candidates * 3 s: one round


def test_the_default_loses_only_by_more_than_the_margin():
    m = autotune.MARGIN
    assert autotune.choose("a", ("fast", "conv"), *_fake(dict(fast=1.0 + m / 2, conv=1.0))) \
        == "fast"
    assert autotune.choose("b", ("fast", "conv"), *_fake(dict(fast=1.0 + 2 * m, conv=1.0))) \
        == "conv"


# ------------------------------------------------------------------------------------------
# Measurement of the real op at trace time (faked clock).

def _fake_timing(monkeypatch, costs, seen):
    """Run the real candidates (each result must be concrete: run eagerly, outside any trace)
    on a fake clock on which candidate ``impl`` takes ``costs[impl]`` seconds."""
    clock, real = FakeClock(), autotune._tf_prepare

    def wrapped(*args, **kw):
        prep = real(*args, **kw)

        def prepare(impl):
            run = prep(impl)

            def timed():
                seen.append(type(run()).__name__)
                clock.t += costs[impl]
            return timed
        return prepare
    monkeypatch.setattr(autotune, "_tf_prepare", wrapped)
    monkeypatch.setattr(autotune, "CLOCK", clock)


@pytest.mark.parametrize("wrap", ["eager", "tf_function", "xla"])
def test_auto_measures_outside_the_trace_and_uses_the_choice(monkeypatch, wrap):
    seen = []
    _fake_timing(monkeypatch, dict(fast=3.0, conv=1.0, fast_poly=2.0), seen)
    x, fu, fd, b, kw = _radial_args()
    fn = lambda x: filtered_lrelu(x, fu, fd, b, impl="auto", **kw)  # noqa: E731
    if wrap != "eager":
        fn = tf.function(fn, jit_compile=wrap == "xla")
    y = np.asarray(fn(x))
    assert seen and set(seen) == {"ndarray"}                # concrete results: ran eagerly
    assert list(autotune.choices().values()) == [("conv", "autotune")]
    want = fl_module.filtered_lrelu(x, fu, fd, b, impl="conv", **kw)
    if wrap == "xla":      # XLA may fuse the conv graph differently: equal to rounding only
        np.testing.assert_allclose(y, np.asarray(want), rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(y, np.asarray(want))


def test_auto_under_a_gradient_tape(monkeypatch):
    _fake_timing(monkeypatch, dict(fast=1.0, conv=2.0, fast_poly=3.0), [])
    x, fu, fd, b, kw = _radial_args()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = filtered_lrelu(x, fu, fd, b, impl="auto", **kw)
    dx = tape.gradient(tf.reduce_sum(y), x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y2 = filtered_lrelu(x, fu, fd, b, impl="fast", **kw)
    np.testing.assert_array_equal(np.asarray(dx), np.asarray(tape.gradient(tf.reduce_sum(y2), x)))


# ------------------------------------------------------------------------------------------
# Whole generators: the same images whatever the choice.

def _build(preset, impl):
    keras.utils.set_random_seed(0)
    return Generator.from_preset(preset, impl=impl, seed=0, **TINY)


def _images(G, seed=0):
    z = np.random.default_rng(seed).standard_normal([2, G.z_dim]).astype(np.float32)
    return np.asarray(tf.function(lambda z: G(z, noise_mode="const"))(tf.constant(z)))


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["stylegan3-r", "stylegan3-t"])
def test_generator_images_equal_whatever_the_choice(monkeypatch, preset):
    ref = _images(_build(preset, "ref"))
    fixed = {}
    for impl in ("fast", "conv", "fast_poly"):
        fixed[impl] = _images(_build(preset, impl))
        np.testing.assert_allclose(fixed[impl], ref, rtol=0, atol=1e-4, err_msg=impl)
    for pick in ("conv", "fast_poly"):          # every stage gets `pick` (or fast if no cand.)
        autotune.reset()
        monkeypatch.setattr(autotune, "_resolve", lambda key, options, prepare, clock, pick=pick:
                            (pick if pick in options else "fast", "autotune"))
        auto = _images(_build(preset, "auto"))
        if preset == "stylegan3-r" or pick == "conv":
            np.testing.assert_array_equal(auto, fixed[pick])     # bit for bit
        else:
            np.testing.assert_array_equal(auto, fixed["fast"])


def test_two_processes_with_the_same_choice_give_identical_images(monkeypatch):
    _fake_timing(monkeypatch, dict(fast=2.0, conv=1.0, fast_poly=3.0), [])   # conv everywhere
    G = _build("stylegan3-r", "auto")
    first = _images(G)
    assert {impl for impl, _ in autotune.choices().values()} == {"conv"}
    autotune.reset()                                         # "next process": from the cache
    monkeypatch.setattr(autotune, "_tf_prepare", lambda *a, **k: _never)
    again = _images(_build("stylegan3-r", "auto"))
    assert {s for _, s in autotune.choices().values()} == {"cache"}
    np.testing.assert_array_equal(first, again)


def test_cli_networks_run_auto_unless_told_otherwise(monkeypatch):
    G = Generator.from_preset("stylegan3-r", seed=0, **TINY)
    layers = G.synthesis.synthesis_layers
    layers[0].impl = "conv"                                  # saved with another impl: kept
    monkeypatch.setenv("SG3KERAS_AUTOTUNE", "0")
    assert [la.impl for la in autotuned(G).synthesis.synthesis_layers][1:] == \
        ["fast"] * (len(layers) - 1)
    monkeypatch.delenv("SG3KERAS_AUTOTUNE")
    assert [la.impl for la in autotuned(G).synthesis.synthesis_layers] == \
        ["conv"] + ["auto"] * (len(layers) - 1)
    assert G.get_config()["impl"] == "fast"


@pytest.mark.slow
def test_auto_on_jax_takes_the_default_without_measuring(tmp_path):
    code = (
        "import numpy as np\n"
        "from sg3keras.ops import autotune, filtered_lrelu, design_lowpass_filter\n"
        "fd = design_lowpass_filter(12, 22.6, 40.0, 64.0, radial=True)\n"
        "fu = design_lowpass_filter(12, 16.0, 32.0, 64.0)\n"
        "x = np.random.default_rng(0).standard_normal([1, 20, 20, 4]).astype('float32')\n"
        "kw = dict(up=2, down=2, padding=[11, 10, 11, 10])\n"
        "a = np.asarray(filtered_lrelu(x, fu, fd, None, impl='auto', **kw))\n"
        "f = np.asarray(filtered_lrelu(x, fu, fd, None, impl='fast', **kw))\n"
        "assert (a == f).all()\n"
        "print(list(autotune.choices().values()))\n")
    env = dict(os.environ, KERAS_BACKEND="jax", SG3KERAS_CACHE=str(tmp_path),
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[('fast', 'default')]"
    assert not os.path.exists(os.path.join(tmp_path, "autotune"))
