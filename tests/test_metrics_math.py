"""FID / KID / PR / IS maths vs the official fixture and independent oracles."""

import numpy as np
import pytest
import scipy.linalg

from refdata import load_json, load_npz
from sg3keras.metrics import feature_math as fm

REF = load_npz("metrics", "fid_kid_is_pr")
REF_J = load_json("metrics", "fid_kid_is_pr")


def _random_psd(rng, d, rank=None):
    a = rng.standard_normal([d, rank or d])
    return a @ a.T / d


# ---------------------------------------------------------------- FeatureStats

@pytest.mark.parametrize("which", ["real", "gen"])
@pytest.mark.parametrize("batch", [1, 64, 300])
def test_feature_stats_mean_cov_vs_fixture(which, batch):
    feats = REF[f"{which}_features"]
    stats = fm.FeatureStats(capture_mean_cov=True, capture_all=True)
    for i in range(0, feats.shape[0], batch):
        stats.append(feats[i:i + batch])
    mu, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mu, REF[f"mu_{which}"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cov, REF[f"sigma_{which}"], rtol=1e-10, atol=1e-12)
    # Independent oracle: numpy's biased covariance.
    np.testing.assert_allclose(cov, np.cov(feats.astype(np.float64), rowvar=False, bias=True),
                               atol=1e-10)
    np.testing.assert_array_equal(stats.get_all(), feats)


def test_feature_stats_max_items_and_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal([50, 5]).astype(np.float32)
    stats = fm.FeatureStats(capture_all=True, capture_mean_cov=True, max_items=23)
    for i in range(0, 50, 10):
        stats.append(feats[i:i + 10])
    assert stats.is_full() and stats.num_items == 23
    np.testing.assert_array_equal(stats.get_all(), feats[:23])
    np.testing.assert_allclose(stats.get_mean_cov()[0], feats[:23].astype(np.float64).mean(0),
                               atol=1e-12)
    stats.save(str(tmp_path / "s.npz"))
    back = fm.FeatureStats.load(str(tmp_path / "s.npz"))
    assert back.num_items == 23 and back.max_items == 23 and back.is_full()
    np.testing.assert_array_equal(back.get_all(), stats.get_all())
    for a, b in zip(back.get_mean_cov(), stats.get_mean_cov()):
        np.testing.assert_array_equal(a, b)


def test_feature_stats_errors():
    stats = fm.FeatureStats(capture_mean_cov=True)
    with pytest.raises(ValueError, match="no items"):
        stats.get_mean_cov()
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        stats.append(np.zeros([3], np.float32))
    stats.append(np.zeros([2, 4], np.float32))
    with pytest.raises(ValueError, match="expected 4"):
        stats.append(np.zeros([2, 5], np.float32))
    with pytest.raises(ValueError, match="capture_all"):
        stats.get_all()


# ---------------------------------------------------------------- FID

@pytest.mark.parametrize("method", ["sqrtm", "eig"])
def test_fid_vs_fixture(method):
    fid = fm.compute_fid(REF["mu_real"], REF["sigma_real"], REF["mu_gen"], REF["sigma_gen"],
                         method=method)
    assert abs(fid - REF_J["fid"]) / REF_J["fid"] <= 1e-6


def test_fid_analytic_diagonal():
    # Commuting (diagonal) covariances: FID = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    for method in ("sqrtm", "eig"):
        assert fm.compute_fid(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(
            expected, rel=1e-12)
    assert fm.compute_fid(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("d,rank", [(5, None), (24, None), (16, 6)])
def test_trace_sqrt_product_vs_scipy(d, rank):
    rng = np.random.default_rng(d)
    a, b = _random_psd(rng, d, rank), _random_psd(rng, d)
    expected = np.trace(scipy.linalg.sqrtm(a @ b)).real
    assert fm.trace_sqrt_product(a, b) == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_fid_errors():
    with pytest.raises(ValueError, match="compute_fid"):
        fm.compute_fid(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="method"):
        fm.compute_fid(np.zeros(3), np.eye(3), np.zeros(3), np.eye(3), method="svd")


# ---------------------------------------------------------------- KID

def test_kid_vs_fixture():
    kid = fm.compute_kid(REF["real_features"], REF["gen_features"], rng=0)
    assert kid == pytest.approx(REF_J["kid"], rel=1e-5)


def _kid_oracle(real, gen):
    """Unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3 on the full sets, float64, explicit loops."""
    x, y = gen.astype(np.float64), real.astype(np.float64)
    d, m = x.shape[1], x.shape[0]

    def k(u, v):
        return (u @ v / d + 1) ** 3

    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


def test_kid_vs_unbiased_mmd_oracle():
    rng = np.random.default_rng(3)
    real = rng.standard_normal([30, 6]).astype(np.float32)
    gen = (rng.standard_normal([30, 6]) * 1.3 + 0.4).astype(np.float32)
    kid = fm.compute_kid(real, gen, num_subsets=3, max_subset_size=1000, rng=1)
    assert kid == pytest.approx(_kid_oracle(real, gen), rel=1e-4)


def test_kid_subsets_are_drawn_without_replacement():
    rng = np.random.default_rng(4)
    real = rng.standard_normal([40, 6]).astype(np.float32)
    gen = rng.standard_normal([40, 6]).astype(np.float32)
    a = fm.compute_kid(real, gen, num_subsets=5, max_subset_size=10, rng=7)
    b = fm.compute_kid(real, gen, num_subsets=5, max_subset_size=10, rng=7)
    c = fm.compute_kid(real, gen, num_subsets=5, max_subset_size=10, rng=8)
    assert a == b and a != c
    with pytest.raises(ValueError, match="compute_kid"):
        fm.compute_kid(real[:1], gen)


# ---------------------------------------------------------------- precision / recall

@pytest.mark.parametrize("row_batch,col_batch", [(10000, 10000), (7, 13), (300, 1)])
def test_pr_vs_fixture(row_batch, col_batch):
    p, r = fm.compute_pr(REF["real_features"], REF["gen_features"], k=3,
                         row_batch=row_batch, col_batch=col_batch)
    assert p == pytest.approx(REF_J["pr_precision"], rel=1e-5)
    assert r == pytest.approx(REF_J["pr_recall"], rel=1e-5)


def test_pr_analytic_cases():
    rng = np.random.default_rng(5)
    real = rng.standard_normal([40, 8]).astype(np.float32)
    assert fm.compute_pr(real, real.copy(), k=3) == (1.0, 1.0)
    far = real + 1000
    assert fm.compute_pr(real, far, k=3) == (0.0, 0.0)
    # Half of the generated points coincide with real ones, the rest are far away:
    # precision 1/2; recall 1 only for real points whose generated twin is kept.
    gen = np.concatenate([real[:20], far[:20]])
    p, r = fm.compute_pr(real, gen, k=1)
    assert p == 0.5
    assert 0.5 <= r < 1.0
    with pytest.raises(ValueError, match="compute_pr"):
        fm.compute_pr(real[:3], gen, k=3)


# ---------------------------------------------------------------- IS

def test_is_vs_fixture():
    mean, std = fm.compute_is(REF["gen_probs"], num_splits=10)
    assert mean == pytest.approx(REF_J["is_mean"], rel=1e-5)
    assert std == pytest.approx(REF_J["is_std"], rel=1e-5)


def test_is_analytic_cases():
    # Identical predictions: KL = 0 -> IS = 1. Confident and uniformly spread over c classes:
    # IS = c in every split.
    assert fm.compute_is(np.full([20, 4], 0.25, np.float32), num_splits=2) == pytest.approx(
        (1.0, 0.0), abs=1e-6)
    eps = 1e-7
    probs = np.full([40, 5], eps, np.float32)
    probs[np.arange(40), np.arange(40) % 5] = 1 - 4 * eps
    mean, std = fm.compute_is(probs, num_splits=4)
    assert mean == pytest.approx(5.0, rel=1e-4) and std == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="compute_is"):
        fm.compute_is(probs[:3], num_splits=10)
