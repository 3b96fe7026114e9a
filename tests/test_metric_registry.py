"""Metric registry: protocols, quantisation, real-stat cache, JSONL records (fake detector/data)."""

import json
import sys
import types

import numpy as np
import pytest

import sg3keras.detectors
from sg3keras.metrics import feature_math as fm
from sg3keras.metrics import registry
from sg3keras.models.base import GeneratorBase
from test_equivariance import FieldGenerator

RES = 16


class FakeDetector:
    """Fixed random projection of 4x4-average-pooled pixels (uint8 NHWC in, float features out)."""

    name = "fake-proj"

    def __init__(self, dim=6, classes=5):
        rng = np.random.default_rng(123)
        self.proj = rng.standard_normal([(RES // 4) ** 2 * 3, dim]) / 50
        self.cls = rng.standard_normal([dim, classes]) / 20
        self.seen = []

    def features(self, images):
        assert images.dtype == np.uint8 and images.shape[-1] == 3
        self.seen.append(images.copy())
        n = images.shape[0]
        pooled = images.astype(np.float64).reshape(n, RES // 4, 4, RES // 4, 4, 3).mean((2, 4))
        return (pooled.reshape(n, -1) @ self.proj).astype(np.float32)

    def probabilities(self, images):
        logits = self.features(images).astype(np.float64) @ self.cls
        e = np.exp(logits - logits.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)


class FakeDataset:
    def __init__(self, path, n=40, channels=3, seed=0):
        self.path = str(path)
        with open(self.path, "wb") as f:
            f.write(b"fake")
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, [n, RES, RES, channels]).astype(np.uint8)
        self.iterations = 0
        self.has_labels = False

    def __len__(self):
        return len(self.images)

    def sample_labels(self, n, rng):
        return np.zeros([n, 0], np.float32)

    def iter_uint8(self, batch_size):
        self.iterations += 1
        for i in range(0, len(self.images), batch_size):
            yield self.images[i:i + batch_size]


class _Synth:
    def __init__(self, owner):
        self.owner = owner

    def __call__(self, ws):
        return self.owner.next_images(len(ws))


class ReplayGenerator(GeneratorBase):
    """Returns the dataset images in order (mapped to [-1, 1]), plus ``offset``."""

    has_noise, has_input_transform = False, False     # the generator protocol's answers

    def __init__(self, images, offset=0.0):
        self.z_dim, self.c_dim = 4, 0
        self.images, self.offset, self.pos = images, offset, 0
        self.synthesis = _Synth(self)

    def mapping(self, z, c):
        return z

    def next_images(self, n):
        idx = np.arange(self.pos, self.pos + n) % len(self.images)
        self.pos += n
        # u8 -> (u8 + 0.5 - 128) / 127.5 quantises back to exactly u8.
        x = (self.images[idx].astype(np.float32) + 0.5 - 128) / 127.5
        return x + np.float32(self.offset)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SG3KERAS_CACHE_DIR", str(d))
    return d


def test_real_statistics_cache_follows_sg3keras_cache(tmp_path, monkeypatch):
    """``$SG3KERAS_CACHE`` moves the real-statistics cache (it used to stay under ~/.cache);
    ``$SG3KERAS_CACHE_DIR`` still names the folder itself, and an empty one counts as unset."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SG3KERAS_CACHE", str(tmp_path / "c"))
    for value in (None, ""):
        if value is None:
            monkeypatch.delenv("SG3KERAS_CACHE_DIR", raising=False)
        else:
            monkeypatch.setenv("SG3KERAS_CACHE_DIR", value)
        assert registry.cache_dir() == str(tmp_path / "c" / "gan-metrics")
    monkeypatch.setenv("SG3KERAS_CACHE_DIR", str(tmp_path / "stats"))
    assert registry.cache_dir() == str(tmp_path / "stats")


def test_registry_table():
    official = {"fid50k_full", "fid50k", "kid50k_full", "kid50k", "pr50k3_full", "pr50k3",
                "is50k", "eqt50k_int", "eqt50k_frac", "eqr50k"}
    assert set(registry.list_metrics(supported_only=True)) == official
    assert "ppl2_wend" in registry.list_metrics() and not registry.is_valid_metric("ppl2_wend")
    m = registry.METRICS
    assert all(m[n].num_gen == 50000 for n in official)
    assert m["fid50k_full"].max_real is None and m["fid50k"].max_real == 50000
    assert m["kid50k_full"].max_real == 1000000 and m["pr50k3_full"].max_real == 200000
    assert m["kid50k_full"].opts == dict(num_subsets=100, max_subset_size=1000)
    assert m["pr50k3_full"].opts == dict(nhood_size=3, row_batch_size=10000, col_batch_size=10000)
    assert m["is50k"].opts == dict(num_splits=10)


def test_quantize_images_analytic():
    x = np.array([-1.0, -0.5, 0.0, 0.3, 0.999, 1.0, 2.0, -3.0], np.float32).reshape(1, 1, 8, 1)
    q = registry.quantize_images(x)
    # floor(clip(x * 127.5 + 128, 0, 255)): 0.5, 64.25, 128, 166.25, 255.37, 255.5, 383, -254.5
    assert q.dtype == np.uint8 and q.shape == (1, 1, 8, 3)
    np.testing.assert_array_equal(q[0, 0, :, 0], [0, 64, 128, 166, 255, 255, 255, 0])
    np.testing.assert_array_equal(q[..., 0], q[..., 2])
    with pytest.raises(ValueError, match="generated images"):
        registry.quantize_images(np.zeros([1, 4, 4, 2], np.float32))


def test_fid_self_zero_shift_grows_and_cache(tmp_path, cache):
    ds = FakeDataset(tmp_path / "ds.zip")
    det = FakeDetector()
    kw = dict(dataset=ds, num_samples=len(ds), detector=det)
    r0 = registry.calc_metric("fid50k_full", ReplayGenerator(ds.images), **kw)
    assert ds.iterations == 1
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("fid50k_full-fake-proj-")
    # Generated images quantise back to the dataset images exactly -> identical features.
    np.testing.assert_array_equal(np.concatenate(det.seen[:1]), ds.images[:40])
    assert abs(r0["results"]["fid50k_full"]) < 1e-9
    # Cached statistics: the dataset is not read again.
    r1 = registry.calc_metric("fid50k_full", ReplayGenerator(ds.images, 0.1), **kw)
    r2 = registry.calc_metric("fid50k_full", ReplayGenerator(ds.images, 0.3), **kw)
    assert ds.iterations == 1
    assert 0 < r1["results"]["fid50k_full"] < r2["results"]["fid50k_full"]
    # Oracle: the same FID from features computed directly.
    real = det.features(ds.images)
    gen = det.features(registry.quantize_images(ReplayGenerator(ds.images, 0.3).next_images(40)))
    mu = lambda f: f.astype(np.float64).mean(0)  # noqa: E731
    cov = lambda f: np.cov(f.astype(np.float64), rowvar=False, bias=True)  # noqa: E731
    expected = fm.compute_fid(mu(real), cov(real), mu(gen), cov(gen))
    assert r2["results"]["fid50k_full"] == pytest.approx(expected, rel=1e-6)
    # Legacy fid50k reads at most 50k reals: a different cache entry.
    registry.calc_metric("fid50k", ReplayGenerator(ds.images), **kw)
    assert ds.iterations == 2 and len(list(cache.iterdir())) == 2


def test_gray_dataset_and_no_cache_without_path(tmp_path, cache):
    ds = FakeDataset(tmp_path / "gray.zip", n=12, channels=1)
    ds.path = None
    det = FakeDetector()
    r = registry.calc_metric("fid50k_full", ReplayGenerator(ds.images), dataset=ds,
                             num_samples=12, detector=det, batch_size=4)
    assert abs(r["results"]["fid50k_full"]) < 1e-9
    assert all(b.shape[-1] == 3 for b in det.seen) and not cache.exists()


def test_kid_pr_is_through_registry(tmp_path, cache):
    ds = FakeDataset(tmp_path / "ds.zip", n=30)
    det = FakeDetector()
    kw = dict(dataset=ds, num_samples=30, detector=det)
    kid = registry.calc_metric("kid50k_full", ReplayGenerator(ds.images, 0.2), **kw)["results"]
    real = det.features(ds.images)
    gen = det.features(registry.quantize_images(ReplayGenerator(ds.images, 0.2).next_images(30)))
    # Subsets = the full sets, so the value does not depend on the RNG.
    assert kid["kid50k_full"] == pytest.approx(fm.compute_kid(real, gen, rng=5), rel=1e-5)
    pr = registry.calc_metric("pr50k3_full", ReplayGenerator(ds.images), **kw)["results"]
    assert pr == {"pr50k3_full_precision": 1.0, "pr50k3_full_recall": 1.0}
    is_res = registry.calc_metric("is50k", ReplayGenerator(ds.images), **kw)["results"]
    mean, std = fm.compute_is(det.probabilities(ds.images), num_splits=10)
    assert is_res["is50k_mean"] == pytest.approx(mean, rel=1e-6)
    assert is_res["is50k_std"] == pytest.approx(std, rel=1e-5)


def test_jsonl_record_and_num_samples(tmp_path, cache):
    ds = FakeDataset(tmp_path / "ds.zip", n=20)
    calls = []
    res = registry.calc_metric("fid50k_full", ReplayGenerator(ds.images), dataset=ds,
                               num_samples=20, detector=FakeDetector(), snapshot_pkl="snap.pkl",
                               progress=lambda *a: calls.append(a))
    assert {"results", "metric", "total_time", "total_time_str", "num_gpus", "snapshot_pkl",
            "timestamp", "num_samples"} <= set(res)
    assert res["metric"] == "fid50k_full" and res["num_samples"] == 20
    assert res["snapshot_pkl"] == "snap.pkl" and res["num_gpus"] == 1
    assert calls[-1] == ("gen", 20, 20) and ("real", 20, 20) in calls
    path = tmp_path / "out" / "metric-fid50k_full.jsonl"
    registry.append_jsonl(str(path), res)
    registry.append_jsonl(str(path), dict(res, metric="again"))
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["metric"] == "again"
    assert json.loads(lines[0])["results"] == res["results"]


@pytest.mark.parametrize("name,key", [("eqt50k_int", "eqt50k_int"),
                                      ("eqt50k_frac", "eqt50k_frac"), ("eqr50k", "eqr50k")])
def test_eq_metrics_through_registry(name, key):
    res = registry.calc_metric(name, FieldGenerator(), num_samples=4)
    assert set(res["results"]) == {key} and res["results"][key] > 50
    assert res["num_samples"] == 4


def test_detector_loaded_lazily_by_official_name(tmp_path, cache, monkeypatch):
    ds = FakeDataset(tmp_path / "ds.zip", n=8)
    asked = []

    def load_detector(name, detector_dir):
        asked.append((name, detector_dir))
        return FakeDetector()

    fake = types.ModuleType("sg3keras.detectors.loading")
    fake.load_detector = load_detector
    monkeypatch.setitem(sys.modules, "sg3keras.detectors.loading", fake)
    monkeypatch.setattr(sg3keras.detectors, "loading", fake, raising=False)
    registry.calc_metric("fid50k_full", ReplayGenerator(ds.images), dataset=ds, num_samples=8,
                         detector_dir="/weights")
    registry.calc_metric("pr50k3_full", ReplayGenerator(ds.images), dataset=ds, num_samples=8,
                         detector_dir="/weights")
    assert asked == [("inception", "/weights"), ("vgg16", "/weights")]


def test_bad_requests(tmp_path):
    with pytest.raises(ValueError, match="unknown metric 'fid10k'"):
        registry.calc_metric("fid10k", FieldGenerator())
    with pytest.raises(NotImplementedError, match="ppl2_wend"):
        registry.calc_metric("ppl2_wend", FieldGenerator())
    with pytest.raises(ValueError, match="needs a dataset"):
        registry.calc_metric("fid50k_full", FieldGenerator(), num_samples=4,
                             detector=FakeDetector())
    with pytest.raises(ValueError, match="num_samples"):
        registry.calc_metric("eqt50k_int", FieldGenerator(), num_samples=0)


@pytest.mark.parametrize("sec,text", [(5, "5s"), (65, "1m 05s"), (3723, "1h 02m 03s"),
                                      (90061, "1d 01h 01m")])
def test_format_time(sec, text):
    assert registry.format_time(sec) == text


def test_with_image_folder_dataset(tmp_path, cache):
    """End to end with sg3keras.data.ImageDataset: self-FID 0, cache invalidated by a new file."""
    from PIL import Image
    from sg3keras.data import ImageDataset

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(9)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, [RES, RES, 3]).astype(np.uint8)).save(
            folder / f"{i:03d}.png")
    ds = ImageDataset(str(folder))
    images = np.stack([ds.get_image(i) for i in range(len(ds))])
    det = FakeDetector()
    r = registry.calc_metric("fid50k_full", ReplayGenerator(images), dataset=ds,
                             num_samples=len(ds), detector=det)
    assert abs(r["results"]["fid50k_full"]) < 1e-9 and len(list(cache.iterdir())) == 1
    Image.fromarray(images[0]).save(folder / "zzz.png")
    ds2 = ImageDataset(str(folder))
    registry.calc_metric("fid50k_full", ReplayGenerator(images), dataset=ds2,
                         num_samples=len(ds2), detector=det)
    assert len(list(cache.iterdir())) == 2


def test_a_new_metric_is_one_registration(tmp_path, cache, monkeypatch):
    """``register_metric`` is the whole recipe: the registry lists it, ``calc_metric`` runs it
    with a context that loads its detector, feeds the generated statistics and times it."""
    monkeypatch.setattr(registry, "METRICS", dict(registry.METRICS))
    seen = {}

    @registry.register_metric("toy8", num_gen=8, max_real=0, detector="inception", scale=2.0)
    def toy(ctx):
        seen["ctx"] = ctx
        stats = ctx.gen_stats(capture_all=True)
        return {ctx.spec.name: ctx.spec.opts["scale"] * float(np.mean(stats.get_all()))}

    assert registry.is_valid_metric("toy8") and "toy8" in registry.list_metrics(True)
    spec = registry.METRICS["toy8"]
    assert spec.fn is toy and spec.num_gen == 8 and not spec.uses_real_images
    ds = FakeDataset(tmp_path / "ds.zip", n=8)
    det = FakeDetector()
    res = registry.calc_metric("toy8", ReplayGenerator(ds.images), detector=det, batch_size=2)
    expected = 2.0 * float(np.mean(det.features(registry.quantize_images(
        ReplayGenerator(ds.images).next_images(8)))))
    assert res["metric"] == "toy8" and res["num_samples"] == 8
    assert res["results"] == {"toy8": pytest.approx(expected, rel=1e-6)}
    assert seen["ctx"].detector is det and seen["ctx"].batch_gen == 2
