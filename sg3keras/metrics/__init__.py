"""GAN metrics: FID/KID/PR/IS maths, equivariance (EQ-T/EQ-R) and the official metric registry.

``calc_metric(name, G, dataset, ...)`` evaluates one of the NVlabs protocol names
(``fid50k_full``, ``kid50k_full``, ``pr50k3_full``, ``is50k``, ``eqt50k_int``, ``eqt50k_frac``,
``eqr50k``, legacy ``fid50k``/``kid50k``/``pr50k3``) and returns its JSONL record;
``append_jsonl`` writes it. Detectors live in ``sg3keras.detectors.loading`` (loaded lazily).
"""

from sg3keras.metrics.registry import (
    METRICS,
    MetricContext,
    MetricSpec,
    append_jsonl,
    cache_dir,
    calc_metric,
    is_valid_metric,
    list_metrics,
    quantize_images,
    register_metric,
)

__all__ = ["METRICS", "MetricContext", "MetricSpec", "append_jsonl", "cache_dir", "calc_metric",
           "is_valid_metric", "list_metrics", "quantize_images", "register_metric"]
