"""ADA: adaptive augmentation probability (Karras et al. 2020; REFERENCE.md §4.2).

The overfitting heuristic ``r_t = E[sign(D(x_real))]`` is accumulated over every real-image
discriminator evaluation since the previous adjustment; every ``interval`` iterations
``p <- max(p + sign(r_t - target) * batch * interval / (ada_kimg * 1000), 0)`` (no upper bound),
so ``p`` can move from 0 to 1 in ``ada_kimg`` thousand images.

The accumulators are non-trainable ``keras.Variable``s (SUM aggregation, so replicas under
``tf.distribute`` add their counts), updated with tensor ops: safe to call inside ``tf.function``.
"""

import keras
from keras import ops

__all__ = ["AdaController", "ada_adjust"]


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


class AdaController:
    """Collects ``sign(D(real))`` statistics and adjusts the augmentation probability.

    Args:
        target: ADA target for ``E[sign(D(real))]``; default 0.6.
        interval: iterations between adjustments; default 4.
        ada_kimg: speed (kimg for a change of 1 in p); default 500.
        batch_size: global batch size (images per iteration); required.
    Usage: ``accumulate(real_logits)`` after each real-image D evaluation; every ``interval``
    iterations ``pipe.p.assign(controller.update(pipe.p))``.
    """

    def __init__(self, target=0.6, interval=4, ada_kimg=500, batch_size=None):
        if batch_size is None or int(batch_size) < 1:
            raise ValueError(f"AdaController: batch_size must be a positive int, got {batch_size!r}")
        if int(interval) < 1 or float(ada_kimg) <= 0:
            raise ValueError(f"AdaController: interval must be >= 1 and ada_kimg > 0, "
                             f"got interval={interval!r}, ada_kimg={ada_kimg!r}")
        self.target = float(target)
        self.interval = int(interval)
        self.ada_kimg = float(ada_kimg)
        self.batch_size = int(batch_size)
        self.sign_sum = keras.Variable(0.0, dtype="float32", trainable=False, name="ada_sign_sum",
                                       aggregation="sum")
        self.count = keras.Variable(0.0, dtype="float32", trainable=False, name="ada_count",
                                    aggregation="sum")

    def accumulate(self, real_logits):
        """Add ``sum(sign(real_logits))`` and the number of logits to the running statistics."""
        logits = ops.cast(real_logits, "float32")
        self.sign_sum.assign_add(ops.sum(ops.sign(logits)))
        self.count.assign_add(ops.cast(ops.size(logits), "float32"))

    def sign_mean(self):
        """Mean of the accumulated signs (0 when nothing was accumulated)."""
        return self.sign_sum.value / ops.maximum(self.count.value, 1.0)

    def update(self, p):
        """Return the adjusted p and reset the statistics; p is unchanged if nothing was seen."""
        new_p = ada_adjust(p, self.sign_mean(), self.target, self.batch_size, self.interval,
                           self.ada_kimg)
        new_p = ops.where(self.count.value > 0, new_p, ops.cast(p, "float32"))
        self.sign_sum.assign(0.0)
        self.count.assign(0.0)
        return new_p
