"""ADA: adaptive augmentation probability (Karras et al. 2020, §3 "Adaptive discriminator
augmentation", Eq. 1; docs/PAPER.md).

The overfitting heuristic ``r_t = E[sign(D(x_real))]`` is accumulated over every real-image
discriminator evaluation since the previous adjustment; every ``interval`` iterations
``p <- max(p + sign(r_t - target) * batch * interval / (ada_kimg * 1000), 0)`` (no upper bound),
so ``p`` can move from 0 to 1 in ``ada_kimg`` thousand images.

The statistics are accumulated by the trainer (``StyleGAN._update_ada``, summed over replicas);
:func:`ada_adjust` is the update, in tensor ops (safe inside ``tf.function``).
"""

from keras import ops

__all__ = ["ada_adjust"]


def ada_adjust(p, sign_mean, target, batch_size, interval, ada_kimg):
    """One ADA step: ``max(p + sign(sign_mean - target) * batch_size * interval / (ada_kimg * 1000), 0)``.

    Args:
        p: current probability (scalar, float or tensor).
        sign_mean: mean of ``sign(D(real))`` since the last adjustment (scalar).
        target: the ADA target (0.6 by default in train.py).
        batch_size: images per iteration (global batch).
        interval: iterations between adjustments (4).
        ada_kimg: thousands of images for p to change by 1 (500; 100 on resume).
    Returns:
        float32 scalar tensor, the new p (>= 0).
    """
    step = float(batch_size) * float(interval) / (float(ada_kimg) * 1000.0)
    p = ops.cast(p, "float32")
    direction = ops.sign(ops.cast(sign_mean, "float32") - float(target))
    return ops.maximum(p + direction * step, 0.0)
