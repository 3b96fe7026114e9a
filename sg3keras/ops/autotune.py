"""Per-machine choice of the ``filtered_lrelu`` implementation: measured once, cached on disk.

``filtered_lrelu(..., impl="auto")`` (and ``SynthesisLayer(impl="auto")``) resolves to a
concrete implementation per stage *geometry* (input H, W, C, up/down factors, padding, filter
shapes -- taps and radial or separable -- and dtype), in this order:

1. ``$SG3KERAS_IMPL`` (``fast``, ``conv``, ``fast_poly`` or ``ref``): one implementation for
   every stage (an explicit ``impl=`` other than ``"auto"`` never gets here: it always wins);
2. ``$SG3KERAS_AUTOTUNE=0`` (``--no-autotune`` in the benchmarks): the fixed default
   :data:`DEFAULT`, as before autotuning existed;
3. the on-disk cache ``$SG3KERAS_CACHE/autotune/filtered_lrelu-<machine>.json``;
4. a measurement: every candidate runs on a batch-1 random input of the geometry, one warm-up
   (trace/compile) each, then up to :data:`REPS` rounds in which each is timed once in turn
   (fewer past :data:`CANDIDATE_S` seconds per candidate; turns let a drifting machine speed
   hit all alike); the best time counts. The fastest is kept -- the default only loses when
   another is more than :data:`MARGIN` faster, so noise does not flip it -- and written to the
   cache atomically (a re-read-merge-rename, so processes tuning side by side lose nothing but
   a duplicate measurement). Each process spends at most ``$SG3KERAS_AUTOTUNE_BUDGET`` seconds
   (:data:`BUDGET_S`) measuring; past it, new geometries get
5. the default :data:`DEFAULT` (not cached: a later process measures them).

``<machine>`` hashes :func:`machine`: CPU model, the vector/matrix flags that decide which
kernel wins (AVX2, AVX-512, ``avx512_bf16``, AMX, ...), the CPUs this process may use, the
TensorFlow and Keras versions and the backend. A cache file that is not JSON, or was written
for another machine (a copied file), is ignored with one warning line and rewritten.

Where the timing runs: on the TensorFlow backend, when the first call of a geometry is traced,
outside the graph being traced (``tf.init_scope``: eagerly, the tape paused), so tracing a
``tf.function``, an XLA-compiled function or a SavedModel signature is unaffected except that
the graph then holds the chosen implementation (an exported graph records the choice made on
the exporting machine; ``sg3keras export`` itself builds ``impl="conv"``, the portable
XLA-free path, as before). On other backends (JAX) ``"auto"`` resolves to ``$SG3KERAS_IMPL``
or :data:`DEFAULT` without measuring. Every candidate computes the same function (tested equal
to the reference); the choice changes speed only, and two runs that make the same choice give
bit-identical images.
"""

import hashlib
import json
import os
import platform
import re
import sys
import time

import keras
import numpy as np
from keras import backend

from sg3keras.utils import atomic_write_json

__all__ = ["DEFAULT", "candidates", "choose", "choose_impl", "geometry_key", "machine",
           "cache_path", "choices", "reset", "time_round_robin"]

DEFAULT = "fast"
CONCRETE = ("fast", "conv", "fast_poly", "ref")
ENV_IMPL, ENV_AUTOTUNE, ENV_BUDGET = "SG3KERAS_IMPL", "SG3KERAS_AUTOTUNE", \
    "SG3KERAS_AUTOTUNE_BUDGET"
BUDGET_S = 120.0        # per process, all measurements together
CANDIDATE_S = 0.5       # timing stops once the timed runs took this long per candidate
REPS = 5                # rounds: each candidate timed once per round, in turns
MARGIN = 0.10           # another candidate replaces the default only when this much faster
CLOCK = time.perf_counter
_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
          "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_bf16", "amx_tile", "amx_int8")
_VERSION = 1


class _State:
    """What this process knows: the cache as read, choices made, time spent measuring."""

    def __init__(self):
        self.loaded = None          # {key: impl} read from the cache file (None: not yet)
        self.made = {}              # key -> (impl, source), in order of first use
        self.spent = 0.0
        self.warned = set()


_state = _State()


def reset():
    """Forget what this process read and chose (tests; a changed ``$SG3KERAS_CACHE``)."""
    global _state
    _state = _State()


def choices():
    """``{geometry key: (impl, source)}`` for every geometry resolved in this process, where
    ``source`` is ``env``, ``no-autotune``, ``cache``, ``autotune`` or ``default``."""
    return dict(_state.made)


def _warn(msg):
    if msg not in _state.warned:
        _state.warned.add(msg)
        print(f"sg3keras: {msg}", file=sys.stderr)


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine(), []
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = re.search(r"flags\s*:\s*(.*)", info)
    have = set(flags.group(1).split()) if flags else set()
    return (model.group(1).strip() if model else platform.machine()), \
        [f for f in _FLAGS if f in have]


def _threads():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine():
    """What the cached choices depend on, as a JSON-able dict."""
    model, flags = _cpu()
    tf_version = None
    if backend.backend() == "tensorflow":
        from . import xla  # TensorFlow-only; imported lazily
        tf_version = xla.tf_version()
    return dict(cpu=model, flags=flags, threads=_threads(), backend=backend.backend(),
                tensorflow=tf_version, keras=keras.__version__)


def _machine_id(m):
    return hashlib.sha256(json.dumps(m, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(m=None):
    """``$SG3KERAS_CACHE/autotune/filtered_lrelu-<machine>.json`` (the cache root follows
    ``sg3keras.data.download.cache_dir``: ``$SG3KERAS_CACHE`` or ``~/.cache/sg3keras``)."""
    root = os.environ.get("SG3KERAS_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "sg3keras")
    m = machine() if m is None else m
    return os.path.join(root, "autotune", f"filtered_lrelu-{_machine_id(m)}.json")


def _read(path, m):
    """The choices in the cache file ``path`` written for machine ``m``; ``{}`` (with one
    warning line) when it is unreadable, not ours, or for another machine."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict) or data.get("version") != _VERSION or \
                not isinstance(data.get("choices"), dict):
            raise ValueError("not an sg3keras autotune file")
    except (OSError, ValueError) as e:
        _warn(f"ignoring the autotune cache {path} ({type(e).__name__}: {e}); it will be "
              "rewritten")
        return {}
    if data.get("machine") != m:
        _warn(f"ignoring the autotune cache {path}: written on another machine or software "
              "version; it will be rewritten")
        return {}
    return {k: v for k, v in data["choices"].items() if v in CONCRETE}


def _loaded():
    if _state.loaded is None:
        m = machine()
        _state.loaded = _read(cache_path(m), m)
    return _state.loaded


def _store(key, impl):
    """Add ``key -> impl`` to the cache file (re-read, merge, atomic rename)."""
    m = machine()
    path = cache_path(m)
    _state.loaded = dict(_loaded(), **{key: impl})
    try:
        on_disk = _read(path, m) if os.path.exists(path) else {}
        atomic_write_json(path, dict(version=_VERSION, machine=m,
                                     choices=dict(on_disk, **_state.loaded)))
    except OSError as e:
        _warn(f"cannot write the autotune cache {path} ({e}); set $SG3KERAS_CACHE to a "
              "writable directory")


def geometry_key(shape, fu_shape, fd_shape, up, down, padding, dtype):
    """The cache key of one stage: input ``[H, W, C]``, factors, padding, filter shapes
    (``()`` = no filter; 1-D = separable, 2-D = radial) and dtype (batch excluded)."""
    h, w, c = (int(s) for s in shape[-3:])

    def f(s):
        return "x".join(str(int(v)) for v in s) or "-"
    return (f"{h}x{w}x{c} up{int(up)} down{int(down)} pad{','.join(str(int(p)) for p in padding)}"
            f" fu{f(fu_shape)} fd{f(fd_shape)} {backend.standardize_dtype(dtype)}")


def candidates(fd_shape):
    """The implementations worth timing for a stage: ``fast`` and ``conv`` always,
    ``fast_poly`` for a 2-D (radial) down filter (elsewhere it equals ``fast``). ``ref`` is
    never a candidate (it is the slow, memory-hungry literal composition)."""
    return ("fast", "conv") + (("fast_poly",) if len(fd_shape) == 2 else ())


def _env_impl():
    impl = os.environ.get(ENV_IMPL, "").strip()
    if impl and impl not in CONCRETE:
        _warn(f"ignoring ${ENV_IMPL}={impl!r}: expected one of {', '.join(CONCRETE)}")
        return None
    return impl or None


def autotune_enabled():
    return os.environ.get(ENV_AUTOTUNE, "1").strip().lower() not in ("0", "false", "no", "off")


def _budget():
    try:
        return float(os.environ.get(ENV_BUDGET, BUDGET_S))
    except ValueError:
        return BUDGET_S


def choose(key, options, prepare=None, clock=None):
    """Resolve ``impl="auto"`` for the geometry ``key`` among ``options`` (module docstring;
    ``options[0]`` is the default, kept unless another is faster by more than :data:`MARGIN`).
    ``prepare(impl) -> run``: a warmed-up callable running the candidate once (None: cannot
    measure here); ``clock`` (default :data:`CLOCK`) times the runs."""
    impl, source = _resolve(key, options, prepare, clock or CLOCK)
    _state.made.setdefault(key, (impl, source))
    return impl


def _resolve(key, options, prepare, clock):
    env = _env_impl()
    if env:
        return env, "env"
    if not autotune_enabled():
        return DEFAULT, "no-autotune"
    cached = _loaded().get(key)
    if cached in options:
        return cached, "cache"
    if prepare is None or _state.spent >= _budget():
        return DEFAULT, "default"
    t0 = time.perf_counter()
    times = time_round_robin({impl: prepare(impl) for impl in options}, clock)
    _state.spent += time.perf_counter() - t0
    fastest = min(options, key=lambda impl: (times[impl], options.index(impl)))
    if times[options[0]] <= times[fastest] * (1 + MARGIN):
        fastest = options[0]
    _store(key, fastest)
    return fastest, "autotune"


def time_round_robin(runs, clock, reps=REPS, limit_s=CANDIDATE_S):
    """``{name: best seconds}`` of the callables ``runs``, timed in turns (a drifting machine
    speed hits every candidate alike): up to ``reps`` rounds, fewer once the timed calls took
    ``limit_s`` per candidate."""
    best, total = {k: float("inf") for k in runs}, 0.0
    for _ in range(reps):
        for k, run in runs.items():
            t0 = clock()
            run()
            dt = clock() - t0
            best[k], total = min(best[k], dt), total + dt
        if total >= limit_s * len(runs):
            break
    return best


def _tf_prepare(xla, op, shape, dtype, fu_shape, fd_shape, with_bias, args):
    """``prepare(impl)`` for ``choose`` on TensorFlow (``xla`` is :mod:`sg3keras.ops.xla`):
    ``op`` on a random batch-1 input of the geometry inside a ``tf.function``, traced, compiled
    and run outside any graph being traced."""
    rng = np.random.default_rng(0)
    h, w, c = shape[-3:]

    def prepare(impl):
        with xla.outside_trace():
            x = xla.constant(rng.standard_normal([1, h, w, c]).astype(np.float32), dtype)
            fu = None if fu_shape is None else np.full(fu_shape, 1 / np.prod(fu_shape), np.float32)
            fd = None if fd_shape is None else np.full(fd_shape, 1 / np.prod(fd_shape), np.float32)
            b = xla.constant(np.zeros([c], np.float32), dtype) if with_bias else None
            fn = xla.graph_function(lambda x: op(x, fu, fd, b, impl=impl, **args))

        def run():
            with xla.outside_trace():
                return fn(x).numpy()
        run()                                                        # warm-up: trace, compile
        return run
    return prepare


def choose_impl(op, x, fu, fd, b, args):
    """The implementation for ``op(x, fu, fd, b, impl=..., **args)`` (``filtered_lrelu``)
    under ``impl="auto"``; ``op`` is passed in so that this module does not import it."""
    fu_shape = None if fu is None else tuple(int(s) for s in fu.shape)
    fd_shape = None if fd is None else tuple(int(s) for s in fd.shape)
    key = geometry_key(x.shape, fu_shape or (), fd_shape or (), args["up"], args["down"],
                       args["padding"], x.dtype)
    prepare = None
    if backend.backend() == "tensorflow":
        from . import xla  # TensorFlow-only; imported lazily
        prepare = _tf_prepare(xla, op, tuple(x.shape), backend.standardize_dtype(x.dtype),
                              fu_shape, fd_shape, b is not None, args)
    return choose(key, candidates(fd_shape or ()), prepare)
