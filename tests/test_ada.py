"""ADA controller: p <- max(p + sign(E[sign(D(real))] - target) * batch*interval/(ada_kimg*1000), 0)."""

import numpy as np
import pytest
import tensorflow as tf

from sg3keras.training.ada import ada_adjust


def test_no_upper_bound_and_exact_target_holds():
    assert float(ada_adjust(1.0, 1.0, 0.6, 1000, 4, 1)) == pytest.approx(5.0)
    assert float(ada_adjust(0.3, 0.6, 0.6, 32, 4, 500)) == pytest.approx(0.3)


@pytest.mark.parametrize("batch,interval,kimg", [(32, 4, 500), (8, 1, 100), (256, 16, 20)])
def test_step_size_formula(batch, interval, kimg):
    step = batch * interval / (kimg * 1000)
    assert float(ada_adjust(0.0, 0.9, 0.6, batch, interval, kimg)) == pytest.approx(step, rel=1e-6)
    assert float(ada_adjust(1.0, 0.1, 0.6, batch, interval, kimg)) == pytest.approx(1 - step, abs=1e-7)


def test_p_rises_falls_and_clips_at_zero():
    assert float(ada_adjust(0.25, 0.8, 0.6, 32, 4, 500)) == pytest.approx(0.25 + 32 * 4 / 500_000,
                                                                         abs=1e-7)
    assert float(ada_adjust(0.01, 0.0, 0.6, 64, 4, 100)) == pytest.approx(0.01 - 64 * 4 / 100_000,
                                                                         abs=1e-7)
    assert float(ada_adjust(0.001, -1.0, 0.6, 64, 4, 100)) == 0.0
    assert np.isfinite(float(ada_adjust(0.0, -1.0, 0.6, 1, 1, 1)))


def test_inside_tf_function():
    p = tf.Variable(0.1)

    @tf.function
    def step(sign_mean):
        p.assign(ada_adjust(p, sign_mean, 0.6, 10, 2, 1))

    step(tf.constant(1.0))
    assert float(p) == pytest.approx(0.1 + 10 * 2 / 1000)
    step(tf.constant(-1.0))
    assert float(p) == pytest.approx(0.1)
