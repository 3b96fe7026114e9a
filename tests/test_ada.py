"""ADA controller: p <- max(p + sign(E[sign(D(real))] - target) * batch*interval/(ada_kimg*1000), 0)."""

import numpy as np
import pytest
import tensorflow as tf

from sg3keras.training.ada import AdaController, ada_adjust


def _logits(num_pos, num_neg):
    return tf.constant([1.5] * num_pos + [-0.7] * num_neg, tf.float32)


def test_p_rises_when_overfitting():
    ctl = AdaController(target=0.6, interval=4, ada_kimg=500, batch_size=32)
    ctl.accumulate(_logits(9, 1))  # mean sign 0.8 > 0.6
    p = float(ctl.update(0.25))
    assert p == pytest.approx(0.25 + 32 * 4 / 500_000, abs=1e-7)


def test_p_falls_and_clips_at_zero():
    ctl = AdaController(target=0.6, interval=4, ada_kimg=100, batch_size=64)
    ctl.accumulate(_logits(1, 1))  # mean sign 0 < 0.6
    assert float(ctl.update(0.01)) == pytest.approx(0.01 - 64 * 4 / 100_000, abs=1e-7)
    ctl.accumulate(_logits(0, 3))
    assert float(ctl.update(0.001)) == 0.0


def test_no_upper_bound_and_exact_target_holds():
    assert float(ada_adjust(1.0, 1.0, 0.6, 1000, 4, 1)) == pytest.approx(5.0)
    assert float(ada_adjust(0.3, 0.6, 0.6, 32, 4, 500)) == pytest.approx(0.3)


@pytest.mark.parametrize("batch,interval,kimg", [(32, 4, 500), (8, 1, 100), (256, 16, 20)])
def test_step_size_formula(batch, interval, kimg):
    step = batch * interval / (kimg * 1000)
    assert float(ada_adjust(0.0, 0.9, 0.6, batch, interval, kimg)) == pytest.approx(step, rel=1e-6)
    assert float(ada_adjust(1.0, 0.1, 0.6, batch, interval, kimg)) == pytest.approx(1 - step, abs=1e-7)


def test_statistics_accumulate_over_calls_and_reset():
    ctl = AdaController(batch_size=4)
    ctl.accumulate(_logits(3, 1))
    ctl.accumulate(tf.constant([[2.0], [-1.0], [0.0], [4.0]]))  # signs 1, -1, 0, 1; zero counts
    assert float(ctl.sign_mean()) == pytest.approx((2 + 1) / 8)
    ctl.update(0.0)
    assert float(ctl.count.value) == 0 and float(ctl.sign_sum.value) == 0
    # Nothing seen since the reset: p stays.
    assert float(ctl.update(0.42)) == pytest.approx(0.42)


def test_inside_tf_function():
    ctl = AdaController(target=0.6, interval=2, ada_kimg=1, batch_size=10)
    p = tf.Variable(0.1)

    @tf.function
    def step(logits, adjust):
        ctl.accumulate(logits)
        if adjust:
            p.assign(ctl.update(p))

    step(_logits(10, 0), False)
    step(_logits(10, 0), True)
    assert float(p) == pytest.approx(0.1 + 10 * 2 / 1000)
    step(_logits(0, 10), True)
    assert float(p) == pytest.approx(0.1)


def test_rejects_missing_batch():
    with pytest.raises(ValueError, match="batch_size"):
        AdaController()
    assert np.isfinite(float(ada_adjust(0.0, -1.0, 0.6, 1, 1, 1)))
