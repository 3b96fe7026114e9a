"""Feature-space metric maths: FID, KID, precision/recall and Inception Score.

NumPy/SciPy only. The detectors that produce the features live in
:mod:`sg3keras.detectors.loading`; the protocols (how many samples, which real set) live in
:mod:`sg3keras.metrics.registry`. Everything here follows the definitions used by the
official StyleGAN3 metrics (NVlabs ``metrics/``; docs/PAPER.md) so that numbers are comparable:

- FID  (Heusel et al. 2017):  ``|mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_g S_r)^(1/2))``.
- KID  (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel, averaged over
  random subsets.
- P/R  (Kynkaanniemi et al. 2019): k-NN manifold estimates on float16 features.
- IS   (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))`` over splits.
"""

import io

import numpy as np
import scipy.linalg

from sg3keras.utils import atomic_write_bytes

__all__ = [
    "FeatureStats",
    "compute_fid",
    "trace_sqrt_product",
    "compute_kid",
    "compute_pr",
    "compute_is",
]


class FeatureStats:
    """Streaming accumulator of detector features.

    Keeps float64 running sums for the mean and the (biased) covariance
    (``mu = sum(x)/n``, ``cov = sum(x x^T)/n - mu mu^T``) and optionally every raw feature
    vector (float32), stopping at ``max_items``.

    Args:
        capture_all: keep the raw features (needed by KID, P/R and IS).
        capture_mean_cov: keep the float64 sums for mean/covariance (needed by FID).
        max_items: stop accepting items after this many (``None``: unlimited). Rows beyond the
            limit in the batch that crosses it are dropped.

    Example:
        >>> stats = FeatureStats(capture_mean_cov=True, max_items=100)
        >>> stats.append(np.ones([10, 4], np.float32)); mu, cov = stats.get_mean_cov()
    """

    def __init__(self, capture_all=False, capture_mean_cov=False, max_items=None):
        if max_items is not None and int(max_items) < 0:
            raise ValueError(f"FeatureStats: max_items must be >= 0 or None, got {max_items}")
        self.capture_all = bool(capture_all)
        self.capture_mean_cov = bool(capture_mean_cov)
        self.max_items = None if max_items is None else int(max_items)
        self.num_items = 0
        self.num_features = None
        self.all_features = []
        self.raw_mean = None
        self.raw_cov = None

    def is_full(self):
        return self.max_items is not None and self.num_items >= self.max_items

    def remaining(self):
        """Items still accepted (``None`` when unlimited)."""
        return None if self.max_items is None else max(self.max_items - self.num_items, 0)

    def _set_num_features(self, num_features):
        if self.num_features is None:
            self.num_features = num_features
            if self.capture_mean_cov:
                self.raw_mean = np.zeros([num_features], dtype=np.float64)
                self.raw_cov = np.zeros([num_features, num_features], dtype=np.float64)
        elif num_features != self.num_features:
            raise ValueError(
                f"FeatureStats: features have {num_features} dims, expected {self.num_features}")

    def append(self, x):
        """Add a batch of features ``x [N, D]`` (cast to float32 like the official stats)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"FeatureStats.append: expected features [N, D], got shape {x.shape}")
        if self.max_items is not None:
            x = x[: self.remaining()]
        self._set_num_features(x.shape[1])
        if x.shape[0] == 0:
            return
        self.num_items += x.shape[0]
        if self.capture_all:
            self.all_features.append(x)
        if self.capture_mean_cov:
            x64 = x.astype(np.float64)
            self.raw_mean += x64.sum(axis=0)
            self.raw_cov += x64.T @ x64

    def get_all(self):
        """All captured features as one float32 array ``[num_items, D]``."""
        if not self.capture_all:
            raise ValueError("FeatureStats.get_all: created with capture_all=False")
        if not self.all_features:
            return np.zeros([0, self.num_features or 0], dtype=np.float32)
        return np.concatenate(self.all_features, axis=0)

    def get_mean_cov(self):
        """``(mu [D], cov [D, D])`` in float64, covariance divided by N (biased)."""
        if not self.capture_mean_cov:
            raise ValueError("FeatureStats.get_mean_cov: created with capture_mean_cov=False")
        if self.num_items == 0:
            raise ValueError("FeatureStats.get_mean_cov: no items were appended")
        mean = self.raw_mean / self.num_items
        cov = self.raw_cov / self.num_items - np.outer(mean, mean)
        return mean, cov

    # ---- persistence (npz; no pickle) ----
    def save(self, path):
        """Write the statistics to ``path`` (.npz) atomically (temp file + ``os.replace``)."""
        arrays = dict(
            capture_all=np.array(self.capture_all),
            capture_mean_cov=np.array(self.capture_mean_cov),
            max_items=np.array(-1 if self.max_items is None else self.max_items, np.int64),
            num_items=np.array(self.num_items, np.int64),
            num_features=np.array(-1 if self.num_features is None else self.num_features,
                                  np.int64),
        )
        if self.capture_mean_cov and self.raw_mean is not None:
            arrays.update(raw_mean=self.raw_mean, raw_cov=self.raw_cov)
        if self.capture_all:
            arrays.update(all_features=self.get_all())
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path):
        """Inverse of :meth:`save`."""
        with np.load(path, allow_pickle=False) as f:
            d = {k: f[k] for k in f.files}
        max_items = int(d["max_items"])
        stats = cls(capture_all=bool(d["capture_all"]),
                    capture_mean_cov=bool(d["capture_mean_cov"]),
                    max_items=None if max_items < 0 else max_items)
        stats.num_items = int(d["num_items"])
        nf = int(d["num_features"])
        stats.num_features = None if nf < 0 else nf
        if "raw_mean" in d:
            stats.raw_mean, stats.raw_cov = d["raw_mean"], d["raw_cov"]
        if "all_features" in d:
            stats.all_features = [d["all_features"].astype(np.float32)]
        return stats


def _check_mean_cov(name, mu, cov):
    mu = np.asarray(mu, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    if mu.ndim != 1 or cov.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{name}: expected mu [D] and cov [D, D], got {mu.shape} and {cov.shape}")
    return mu, cov


def compute_fid(mu_real, cov_real, mu_gen, cov_gen, method="sqrtm"):
    """Frechet distance between two Gaussians (Heusel et al. 2017, Eq. 6).

    Steps:
        1. ``m = |mu_gen - mu_real|^2``.
        2. ``s = sqrtm(cov_gen @ cov_real)`` with ``scipy.linalg.sqrtm(disp=False)`` (the
           official route; ``method="eig"`` uses :func:`trace_sqrt_product` instead).
        3. ``fid = real(m + tr(cov_gen + cov_real - 2 s))``.

    Args:
        mu_real, mu_gen: ``[D]`` feature means.
        cov_real, cov_gen: ``[D, D]`` (biased) feature covariances.
        method: ``"sqrtm"`` (default, official) or ``"eig"``.

    Returns:
        float FID.
    """
    mu_real, cov_real = _check_mean_cov("compute_fid(real)", mu_real, cov_real)
    mu_gen, cov_gen = _check_mean_cov("compute_fid(gen)", mu_gen, cov_gen)
    if mu_real.shape != mu_gen.shape:
        raise ValueError(f"compute_fid: real dim {mu_real.shape} != gen dim {mu_gen.shape}")
    m = np.square(mu_gen - mu_real).sum()
    if method == "sqrtm":
        s, _ = scipy.linalg.sqrtm(np.dot(cov_gen, cov_real), disp=False)
        tr_s = np.trace(s)
    elif method == "eig":
        tr_s = trace_sqrt_product(cov_gen, cov_real)
    else:
        raise ValueError(f"compute_fid: method must be 'sqrtm' or 'eig', got {method!r}")
    return float(np.real(m + np.trace(cov_gen + cov_real) - 2 * tr_s))


def trace_sqrt_product(sigma, sigma_v):
    """``tr(sqrtm(sigma @ sigma_v))`` for symmetric PSD matrices via symmetric eigensolvers.

    Proof (the idea of TF-GAN's ``trace_sqrt_product``). Let ``A = sigma``, ``B = sigma_v``
    and ``R = A^(1/2)`` the symmetric PSD root of ``A``.

    1. ``C = R B R`` is symmetric PSD (``v^T R B R v = (R v)^T B (R v) >= 0``), so its
       eigenvalues ``c_i`` are real and ``>= 0``.
    2. ``A B = R (R B R) R^(-1) = R C R^(-1)`` when ``A`` is invertible, i.e. ``A B`` is
       similar to ``C`` and has the same eigenvalues ``c_i`` (for singular ``A`` use
       ``A + eps I`` and let ``eps -> 0``: eigenvalues depend continuously on the matrix).
       ``A B`` is then diagonalisable as well (``A B = (R U) diag(c) (R U)^(-1)`` with
       ``C = U diag(c) U^T``).
    3. The principal square root of a diagonalisable matrix with non-negative eigenvalues has
       eigenvalues ``sqrt(c_i)``, hence ``tr(sqrtm(A B)) = sum_i sqrt(c_i)``.

    Steps: eigendecompose ``A`` (``eigh``), form ``R``, take ``eigvalsh(R B R)``, clip tiny
    negative round-off to 0, sum the square roots. Cost: two symmetric eigensolves, versus the
    Schur-based general ``sqrtm``.

    Args:
        sigma, sigma_v: ``[D, D]`` symmetric positive semi-definite matrices.

    Returns:
        float ``tr(sqrtm(sigma @ sigma_v))``.
    """
    a = np.asarray(sigma, dtype=np.float64)
    b = np.asarray(sigma_v, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != b.shape:
        raise ValueError(f"trace_sqrt_product: expected two [D, D] matrices, got {a.shape}, "
                         f"{b.shape}")
    a = 0.5 * (a + a.T)
    b = 0.5 * (b + b.T)
    w, u = np.linalg.eigh(a)
    root = (u * np.sqrt(np.clip(w, 0, None))) @ u.T
    c = np.linalg.eigvalsh(root @ b @ root)
    return float(np.sqrt(np.clip(c, 0, None)).sum())


def compute_kid(real_features, gen_features, num_subsets=100, max_subset_size=1000, rng=None):
    """Kernel Inception Distance (Binkowski et al. 2018), official estimator.

    Steps (``d`` = feature dim, ``m = min(n_real, n_gen, max_subset_size)``):
        1. For each of ``num_subsets`` subsets draw ``m`` generated rows ``x`` and ``m`` real
           rows ``y`` without replacement.
        2. ``a = k(x, x) + k(y, y)``, ``b = k(x, y)`` with ``k(u, v) = (u.v/d + 1)^3``.
        3. Accumulate ``(sum(a) - tr(a)) / (m - 1) - 2 sum(b) / m``.
        4. ``kid = total / num_subsets / m``.

    The kernel sums are evaluated in float32, as the official code does on float32 features.

    Args:
        real_features: ``[n_real, d]``; gen_features: ``[n_gen, d]``.
        num_subsets: number of random subsets (default 100).
        max_subset_size: subset size cap (default 1000).
        rng: ``numpy.random.Generator`` or seed (default: fresh ``default_rng()``).

    Returns:
        float KID.
    """
    real = np.asarray(real_features, dtype=np.float32)
    gen = np.asarray(gen_features, dtype=np.float32)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"compute_kid: expected [N, D] features with equal D, got {real.shape} "
                         f"and {gen.shape}")
    m = min(real.shape[0], gen.shape[0], int(max_subset_size))
    if m < 2 or num_subsets < 1:
        raise ValueError(f"compute_kid: need subsets of >= 2 items and num_subsets >= 1, got "
                         f"m={m}, num_subsets={num_subsets}")
    rng = np.random.default_rng(rng)
    n = real.shape[1]
    t = 0.0
    for _ in range(int(num_subsets)):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


def _fp16_distances(rows, cols, col_batch):
    """Euclidean distances ``[len(rows), len(cols)]`` of float16 features, rounded to float16.

    Computed in float32 from the float16 values (``|r|^2 + |c|^2 - 2 r.c``, clamped at 0),
    column block by column block, then rounded to float16 -- the documented CPU stand-in for the
    official GPU float16 ``cdist``.
    """
    r = rows.astype(np.float32)
    rr = np.sum(r * r, axis=1, keepdims=True)
    out = []
    for j in range(0, cols.shape[0], col_batch):
        c = cols[j:j + col_batch].astype(np.float32)
        cc = np.sum(c * c, axis=1)[None, :]
        d2 = np.maximum(rr + cc - 2 * (r @ c.T), 0)
        out.append(np.sqrt(d2).astype(np.float16))
    return np.concatenate(out, axis=1)


def compute_pr(real_features, gen_features, k=3, row_batch=10000, col_batch=10000):
    """Improved precision and recall (Kynkaanniemi et al. 2019), official k-NN estimator.

    Steps:
        1. Cast both feature sets to float16.
        2. For the manifold set, radius of each point = the (k+1)-th smallest float16 distance to
           the set itself (the point's own zero distance included).
        3. A probe is "inside" when its distance to any manifold point is ``<=`` that point's
           radius. Precision: manifold = real, probes = generated; recall: swapped.

    Args:
        real_features: ``[n_real, D]``; gen_features: ``[n_gen, D]``.
        k: neighbourhood size (default 3).
        row_batch, col_batch: block sizes for the distance matrix (default 10000).

    Returns:
        ``(precision, recall)`` floats.
    """
    real = np.asarray(real_features, dtype=np.float32).astype(np.float16)
    gen = np.asarray(gen_features, dtype=np.float32).astype(np.float16)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"compute_pr: expected [N, D] features with equal D, got {real.shape} "
                         f"and {gen.shape}")
    if min(real.shape[0], gen.shape[0]) < k + 1:
        raise ValueError(f"compute_pr: need more than k={k} items per set, got {real.shape[0]} "
                         f"and {gen.shape[0]}")
    results = []
    for manifold, probes in ((real, gen), (gen, real)):
        kth = []
        for i in range(0, manifold.shape[0], row_batch):
            dist = _fp16_distances(manifold[i:i + row_batch], manifold, col_batch)
            kth.append(np.partition(dist, k, axis=1)[:, k])
        kth = np.concatenate(kth)[None, :]
        inside = []
        for i in range(0, probes.shape[0], row_batch):
            dist = _fp16_distances(probes[i:i + row_batch], manifold, col_batch)
            inside.append(np.any(dist <= kth, axis=1))
        results.append(float(np.mean(np.concatenate(inside).astype(np.float32))))
    return results[0], results[1]


def compute_is(probs, num_splits=10):
    """Inception Score (Salimans et al. 2016) as mean and std over splits.

    Steps: split the ``[N, classes]`` softmax probabilities into ``num_splits`` consecutive
    parts ``[i N / s, (i + 1) N / s)``; per part ``exp(mean_x sum_y p log(p / mean_x p))``;
    return the mean and (population) std of the per-part scores. float32, as official.

    Args:
        probs: ``[N, classes]`` probabilities (rows sum to 1).
        num_splits: default 10.

    Returns:
        ``(is_mean, is_std)``.
    """
    p = np.asarray(probs, dtype=np.float32)
    if p.ndim != 2 or p.shape[0] < num_splits or num_splits < 1:
        raise ValueError(f"compute_is: expected probs [N >= num_splits, C], got {p.shape}, "
                         f"num_splits={num_splits}")
    n = p.shape[0]
    scores = []
    for i in range(num_splits):
        part = p[i * n // num_splits:(i + 1) * n // num_splits]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))
