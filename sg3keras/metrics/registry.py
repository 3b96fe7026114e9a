"""Metric registry: the official StyleGAN3 metric protocols by name, and their JSONL records.

Names, sample counts and real-set sizes follow NVlabs ``metrics/metric_main.py`` (FID: Alias-Free
GAN Figure 3 and Appendix F; EQ-T/EQ-R: Appendix E) so numbers stay comparable with the paper:

==============  =========================================================================
fid50k_full     FID, all real images (no x-flip), 50k generated
kid50k_full     KID, <= 1M real, 50k generated, 100 subsets of <= 1000
pr50k3_full     precision/recall (VGG16), <= 200k real, 50k generated, k = 3
fid50k          legacy: FID, 50k real, 50k generated
kid50k          legacy: KID, 50k real, 50k generated
pr50k3          legacy: precision/recall, 50k real, 50k generated
is50k           Inception Score, 50k generated, 10 splits
eqt50k_int      EQ-T (integer translation), 50k samples, batch 4
eqt50k_frac     EQ-T_frac (fractional translation), 50k samples, batch 4
eqr50k          EQ-R (rotation), 50k samples, batch 4
ppl2_wend       listed, not supported (needs the LPIPS/VGG16 pickle path; raises)
==============  =========================================================================

The legacy ``fid50k``/``kid50k``/``pr50k3`` read the first 50k dataset images in order; the
datasets of :mod:`sg3keras.data` never flip, so (unlike the official legacy metrics) no
``--mirror`` x-flip is inherited.
"""

import dataclasses
import hashlib
import json
import os
import re
import time

import keras
import numpy as np

from sg3keras.metrics import feature_math
from sg3keras.metrics.equivariance import _draw_labels, compute_equivariance
from sg3keras.utils import append_bytes, format_time, to_uint8  # format_time: re-exported

__all__ = ["MetricSpec", "MetricContext", "METRICS", "register_metric", "list_metrics",
           "is_valid_metric", "calc_metric", "append_jsonl", "quantize_images", "cache_dir",
           "format_time"]

DETECTOR_BATCH = 64  # images per detector call (official data-loader batch)


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One registered protocol: its numbers and the function that computes it.

    Args:
        name: official metric name.
        fn: ``fn(ctx: MetricContext) -> {result key: value}`` (official ``metric_main``: one
            function per metric).
        num_gen: generated samples (official count).
        max_real: real images used (``None``: the whole dataset; ``0``: no real set).
        detector: detector name passed to ``load_detector`` (``None``: the metric uses none).
        options: metric-specific keyword options (tuple of pairs).
        supported: False for metrics that are listed but not implemented.
    """

    name: str
    fn: object
    num_gen: int = 50000
    max_real: object = None
    detector: object = None
    options: tuple = ()
    supported: bool = True

    @property
    def opts(self):
        return dict(self.options)

    @property
    def uses_real_images(self):
        """Whether the metric reads the dataset's images (``max_real != 0``)."""
        return self.max_real != 0


METRICS = {}


def register_metric(name, fn=None, *, num_gen=50000, max_real=None, detector=None,
                    supported=True, **options):
    """Register metric ``name``; with ``fn`` omitted, a decorator (returns ``fn`` unchanged).

    ``fn(ctx)`` gets a :class:`MetricContext` and returns ``{result key: value}``; keyword
    ``options`` become ``spec.opts`` (read by ``fn`` as ``ctx.spec.opts``). Registering an
    existing name replaces it. Example (a new metric is this one registration)::

        @register_metric("mean50k", detector=None, max_real=0)
        def mean50k(ctx):
            return {"mean50k": float(np.mean(ctx.generate_images(ctx.num_gen)))}
    """
    def register(fn):
        METRICS[name] = MetricSpec(name, fn, int(num_gen), max_real, detector,
                                   tuple(options.items()), bool(supported))
        return fn
    return register if fn is None else register(fn)


def list_metrics(supported_only=False):
    return [n for n, m in METRICS.items() if m.supported or not supported_only]


def is_valid_metric(name):
    return name in METRICS and METRICS[name].supported


def cache_dir():
    """Real-statistics cache: ``$SG3KERAS_CACHE_DIR`` if set and not empty, else
    ``gan-metrics/`` in the sg3keras cache (``$SG3KERAS_CACHE``, default ``~/.cache/sg3keras``)."""
    from sg3keras.data.download import cache_dir as sg3keras_cache
    return os.environ.get("SG3KERAS_CACHE_DIR") or sg3keras_cache("gan-metrics")


def quantize_images(img):
    """Generator output in [-1, 1] -> uint8 like the official metrics.

    ``img * 127.5 + 128`` in float32, clipped to [0, 255], truncated to uint8; one channel is
    repeated to three. ``img``: ``[N, H, W, C]`` with ``C`` in (1, 3).
    """
    x = np.asarray(img, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"generated images: expected [N, H, W, 1|3], got shape {x.shape}")
    return _to_rgb(to_uint8(x), "generated images")


def _to_rgb(x, what):
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{what}: expected uint8 [N, H, W, 1|3], got shape {x.shape}")
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


# ---------------------------------------------------------------------------------------------
# Feature collection.

def _detector_name(detector):
    return str(getattr(detector, "name", None) or type(detector).__name__)


def _detect(detector, images, output="features", runner=None):
    if runner is not None and hasattr(detector, "tensor_fn"):
        # Split over the replicas; detectors without a tensor function run in-process.
        out = runner.map(("detect", output), detector.tensor_fn(output), images)
    else:
        out = getattr(detector, output)(images)
    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != images.shape[0]:
        raise ValueError(f"detector {_detector_name(detector)}: expected [{images.shape[0]}, D] "
                         f"output, got shape {out.shape}")
    return out


def _real_cache_path(dataset, detector, spec, stats_kwargs, max_items):
    path = getattr(dataset, "path", None)
    if path is None or not os.path.exists(path):
        return None
    key = dict(path=os.path.abspath(path), size=len(dataset), mtime=os.stat(path).st_mtime,
               detector=str(getattr(detector, "cache_key", None) or _detector_name(detector)),
               xflip=False, max_items=max_items,
               **stats_kwargs)
    digest = hashlib.md5(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{spec.name}-{_detector_name(detector)}")
    return os.path.join(cache_dir(), f"{tag}-{digest}.npz")


def _real_stats(dataset, detector, spec, stats_kwargs, use_cache, progress, runner=None):
    if dataset is None:
        raise ValueError(f"metric {spec.name}: needs a dataset (real images)")
    n = len(dataset) if spec.max_real is None else min(len(dataset), spec.max_real)
    cache_path = _real_cache_path(dataset, detector, spec, stats_kwargs, n) if use_cache else None
    if cache_path is not None and os.path.isfile(cache_path):
        return feature_math.FeatureStats.load(cache_path)
    stats = feature_math.FeatureStats(max_items=n, **stats_kwargs)
    for batch in dataset.iter_uint8(DETECTOR_BATCH):
        if stats.is_full():
            break
        batch = _to_rgb(np.asarray(batch, np.uint8)[:stats.remaining()], "dataset images")
        stats.append(_detect(detector, batch, "features", runner))
        if progress is not None:
            progress("real", stats.num_items, n)
    if stats.num_items < n:
        raise ValueError(f"dataset yielded {stats.num_items} images, expected {n}")
    if cache_path is not None:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        stats.save(cache_path)
    return stats


def _generate(G, zs, cs, runner):
    """Quantised images of the latent/label chunks ``zs``/``cs`` (``batch_gen`` rows each).

    In-process: one ``G`` call per chunk. With a runner: ``num_replicas`` chunks per call, one
    chunk per replica (the official per-GPU ``batch_gen``). Noise (where ``G`` has it) is
    drawn afresh, as the official ``G(z, c)`` (``noise_mode="random"``).
    """
    if runner is None:
        return [quantize_images(G.synthesize(G.mapping(z, c), noise_mode="random"))
                for z, c in zip(zs, cs)]
    step, out = runner.num_replicas, []
    for i in range(0, len(zs), step):
        img = runner.map("generate",
                         lambda z, c: G.synthesize_batch(G.mapping(z, c), noise_mode="random"),
                         np.concatenate(zs[i:i + step]), np.concatenate(cs[i:i + step]),
                         per_replica=len(zs[i]))
        out.append(quantize_images(img))
    return out


def _gen_stats(G, detector, output, stats_kwargs, num_gen, batch_gen, dataset, rng, progress,
               runner=None):
    stats = feature_math.FeatureStats(max_items=num_gen, **stats_kwargs)
    while not stats.is_full():
        # Official: 64 images per detector call in chunks of batch_gen; we stop generating once
        # the remaining count is covered (the official surplus is discarded anyway).
        want = min(DETECTOR_BATCH, -(-stats.remaining() // batch_gen) * batch_gen)
        zs, cs = [], []
        for _ in range(want // batch_gen):
            zs.append(rng.standard_normal([batch_gen, int(G.z_dim)]).astype(np.float32))
            cs.append(_draw_labels(G, batch_gen, rng, dataset))
        images = np.concatenate(_generate(G, zs, cs, runner))
        stats.append(_detect(detector, images, output, runner))
        if progress is not None:
            progress("gen", stats.num_items, num_gen)
    return stats


# ---------------------------------------------------------------------------------------------
# What a metric function gets.

@dataclasses.dataclass
class MetricContext:
    """The arguments of one evaluation, handed to the metric's function (official
    ``metric_main``'s ``opts``): ``spec``, ``G``, ``dataset``, ``num_gen`` (generated samples),
    ``batch_gen`` (generator batch), ``rng`` (``np.random.Generator`` of ``seed``), ``seed``,
    ``use_cache``, ``progress``, ``runner`` (replica runner or None), and the detector (loaded
    on first use of :attr:`detector` unless given)."""

    spec: MetricSpec
    G: object
    dataset: object
    num_gen: int
    batch_gen: int
    rng: object
    seed: int = 0
    use_cache: bool = True
    progress: object = None
    runner: object = None
    detector_dir: object = None
    given_detector: object = None

    @property
    def detector(self):
        """``spec.detector`` loaded from ``detector_dir`` (once), or the one given."""
        if self.given_detector is None:
            # lazy: heavy, and optional for EQ metrics
            from sg3keras.detectors.loading import load_detector
            self.given_detector = load_detector(self.spec.detector, self.detector_dir)
        return self.given_detector

    def real_stats(self, **stats_kwargs):
        """:class:`FeatureStats` of up to ``spec.max_real`` dataset images (cached)."""
        return _real_stats(self.dataset, self.detector, self.spec, stats_kwargs, self.use_cache,
                           self.progress, self.runner)

    def gen_stats(self, output="features", **stats_kwargs):
        """:class:`FeatureStats` of ``num_gen`` generated images (detector ``output``:
        ``"features"`` or ``"probabilities"``)."""
        return _gen_stats(self.G, self.detector, output, stats_kwargs, self.num_gen,
                          self.batch_gen, self.dataset, self.rng, self.progress, self.runner)


# ---------------------------------------------------------------------------------------------
# The metrics: one function each, registered under the official names (table in the module
# docstring).

INCEPTION = "inception"   # names understood by detectors.load_detector
VGG16 = "vgg16"


def fid(ctx):
    """Frechet Inception distance of the real and generated feature statistics."""
    kw = dict(capture_mean_cov=True)
    r, g = ctx.real_stats(**kw), ctx.gen_stats(**kw)
    return {ctx.spec.name: feature_math.compute_fid(*r.get_mean_cov(), *g.get_mean_cov())}


def kid(ctx):
    """Kernel Inception distance (``num_subsets`` subsets of ``max_subset_size``)."""
    o, kw = ctx.spec.opts, dict(capture_all=True)
    real_f, gen_f = ctx.real_stats(**kw).get_all(), ctx.gen_stats(**kw).get_all()
    value = feature_math.compute_kid(real_f, gen_f, num_subsets=o["num_subsets"],
                                     max_subset_size=o["max_subset_size"], rng=ctx.rng)
    return {ctx.spec.name: value}


def pr(ctx):
    """Improved precision and recall (VGG16 features, ``nhood_size`` neighbours)."""
    o, kw = ctx.spec.opts, dict(capture_all=True)
    real_f, gen_f = ctx.real_stats(**kw).get_all(), ctx.gen_stats(**kw).get_all()
    precision, recall = feature_math.compute_pr(real_f, gen_f, k=o["nhood_size"],
                                                row_batch=o["row_batch_size"],
                                                col_batch=o["col_batch_size"])
    return {f"{ctx.spec.name}_precision": precision, f"{ctx.spec.name}_recall": recall}


def inception_score(ctx):
    """Inception Score of the generated images (``num_splits`` splits)."""
    probs = ctx.gen_stats("probabilities", capture_all=True).get_all()
    mean, std = feature_math.compute_is(probs, num_splits=ctx.spec.opts["num_splits"])
    return {f"{ctx.spec.name}_mean": mean, f"{ctx.spec.name}_std": std}


def equivariance(ctx):
    """EQ-T / EQ-T_frac / EQ-R PSNR (:func:`~sg3keras.metrics.equivariance.compute_equivariance`
    with the spec's ``compute_*`` option)."""
    progress = ctx.progress
    eq_progress = None if progress is None else (lambda d, t: progress("eq", d, t))
    out = compute_equivariance(ctx.G, ctx.num_gen, batch_size=ctx.batch_gen, seed=ctx.seed,
                               dataset=ctx.dataset, progress=eq_progress, runner=ctx.runner,
                               **ctx.spec.opts)
    return {ctx.spec.name: next(iter(out.values()))}


def perceptual_path_length(ctx):
    """perceptual path length"""
    raise NotImplementedError(f"metric {ctx.spec.name!r}: not supported by sg3keras")


_KID = dict(num_subsets=100, max_subset_size=1000)
_PR = dict(nhood_size=3, row_batch_size=10000, col_batch_size=10000)
register_metric("fid50k_full", fid, max_real=None, detector=INCEPTION)
register_metric("kid50k_full", kid, max_real=1000000, detector=INCEPTION, **_KID)
register_metric("pr50k3_full", pr, max_real=200000, detector=VGG16, **_PR)
register_metric("ppl2_wend", perceptual_path_length, max_real=0, detector=VGG16,
                supported=False, epsilon=1e-4, space="w", sampling="end", crop=False)
register_metric("eqt50k_int", equivariance, max_real=0, compute_eqt_int=True)
register_metric("eqt50k_frac", equivariance, max_real=0, compute_eqt_frac=True)
register_metric("eqr50k", equivariance, max_real=0, compute_eqr=True)
register_metric("fid50k", fid, max_real=50000, detector=INCEPTION)
register_metric("kid50k", kid, max_real=50000, detector=INCEPTION, **_KID)
register_metric("pr50k3", pr, max_real=50000, detector=VGG16, **_PR)
register_metric("is50k", inception_score, max_real=0, detector=INCEPTION, num_splits=10)


def _replica_runner(strategy):
    """A replica runner for ``strategy`` (default: the active ``tf.distribute`` strategy), or
    ``None`` to evaluate in-process (one replica, a multi-worker strategy, or not TensorFlow)."""
    if keras.backend.backend() != "tensorflow":
        if strategy is not None:
            raise ValueError("calc_metric: a tf.distribute strategy needs the TensorFlow backend")
        return None
    from sg3keras.metrics import distributed  # TensorFlow-only module
    return distributed.runner_for(strategy)


def calc_metric(name, G, dataset=None, num_samples=None, detector_dir=None, batch_size=4,
                progress=None, detector=None, snapshot_pkl=None, seed=0, use_cache=True,
                strategy=None):
    """Evaluate one registered metric and return its JSONL record.

    Steps: look up ``name``; call the registered function with a :class:`MetricContext`. The
    feature metrics obtain the detector
    (``sg3keras.detectors.loading.load_detector(spec.detector, detector_dir)`` unless one is
    given), compute (or load from the cache) the real statistics, generate ``num_samples``
    images with ``G.synthesis(G.mapping(z, c))`` in chunks of ``batch_size``, quantise them
    (:func:`quantize_images`) and apply the metric maths; EQ metrics call
    :func:`~sg3keras.metrics.equivariance.compute_equivariance`.

    Args:
        name: a name from :data:`METRICS` (``ppl2_wend`` raises ``NotImplementedError``).
        G: generator (``z_dim``, ``c_dim``, ``mapping``, ``synthesis``; NHWC images in [-1, 1]).
        dataset: real images (``iter_uint8``, ``__len__``, ``sample_labels``; ``path`` enables
            the statistics cache). Required except for ``is50k`` and the EQ metrics.
        num_samples: override of the generated-sample count (default: the official 50,000);
            recorded in the result as ``num_samples``.
        detector_dir: folder with the detector weights (passed to ``load_detector``).
        batch_size: generator batch (official 4).
        progress: optional ``callable(stage, done, total)``, stage ``"real"``/``"gen"``/``"eq"``.
        detector: optional detector object overriding ``load_detector``.
        snapshot_pkl: recorded in the result. seed: NumPy seed for latents/labels/subsets.
        use_cache: read/write cached real statistics.
        strategy: ``tf.distribute`` strategy whose replicas share the work (default: the active
            one). Generation, detector and EQ evaluations are split over its replicas by sample
            (:mod:`sg3keras.metrics.distributed`); the samples are the same as with one
            replica, so the values agree up to float rounding. ``G`` should then be built
            inside ``strategy.scope()`` (EQ metrics then evaluate one batch per replica).

    Returns:
        ``dict(results, metric, total_time, total_time_str, num_gpus, snapshot_pkl, timestamp,
        num_samples)``.
    """
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(list_metrics(True))}")
    spec = METRICS[name]
    if not spec.supported:
        raise NotImplementedError(f"metric {name!r} ({spec.fn.__doc__ or 'listed'}) is not "
                                  f"supported by sg3keras; supported: "
                                  f"{', '.join(list_metrics(True))}")
    num_gen = spec.num_gen if num_samples is None else int(num_samples)
    if num_gen < 1 or int(batch_size) < 1:
        raise ValueError(f"metric {name}: num_samples and batch_size must be >= 1, got "
                         f"{num_gen}, {batch_size}")
    rng = np.random.default_rng(seed)
    runner = _replica_runner(strategy)
    start = time.time()
    ctx = MetricContext(spec, G, dataset, num_gen, int(batch_size), rng, seed=seed,
                        use_cache=use_cache, progress=progress, runner=runner,
                        detector_dir=detector_dir, given_detector=detector)
    results = spec.fn(ctx)
    total = time.time() - start
    num_gpus = 1 if runner is None else runner.num_replicas
    return dict(results={k: float(v) for k, v in results.items()}, metric=name,
                total_time=total, total_time_str=format_time(total), num_gpus=num_gpus,
                snapshot_pkl=snapshot_pkl, timestamp=time.time(), num_samples=num_gen)


def append_jsonl(path, result):
    """Append ``result`` as one JSON line to ``path`` (single ``write`` on an O_APPEND file)."""
    line = (json.dumps(result) + "\n").encode("utf-8")
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    append_bytes(path, line)
