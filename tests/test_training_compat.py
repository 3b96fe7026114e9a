"""The Keras shims of :mod:`sg3keras.training.compat`: each one still works and is still needed.

A failure here after a Keras/TensorFlow upgrade says which way things moved:

* "... stopped working": the Keras internal a shim leans on changed -- update the shim;
* "Keras fixed ...: remove the shim" / "... accepted now": the problem it works around is gone --
  remove the shim (and this test).

Where the shims carry real training: ``test_distributed.py`` (MirroredStrategy and the 2-worker
MultiWorkerMirroredStrategy runs match a single-replica run) and ``test_training.py`` (lazy
regularisation through the phase dispatch).
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import multiworker as mw
from sg3keras.training import compat

pytestmark = pytest.mark.slow   # Multi-process / fresh-process / subprocess: `make test` only.

SHIMS_SCRIPT = os.path.join(mw.ROOT, "tests", "scripts", "mwms_shims.py")


class _Tiny(keras.Model):
    """y = x @ w (w = ones [2, 1]) trained by SGD(lr 0.1) in a hand-written step."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones",
                                        dtype="float32")
        self.dense.build((None, 2))
        self.opt = keras.optimizers.SGD(learning_rate=0.1)
        self.opt.build(self.dense.trainable_variables)
        self.ran = self.add_weight(name="ran", shape=(), initializer="zeros", trainable=False,
                                   aggregation="only_first_replica")
        self.built = True

    def sgd_step(self, x, scale):
        """loss = scale * sum(x @ w): the gradient of every weight is scale * sum(x column)."""
        variables = self.dense.trainable_variables
        with tf.GradientTape() as tape:
            loss = scale * tf.reduce_sum(self.dense(x))
        self.opt.apply(tape.gradient(loss, variables), variables)
        return loss


def _ones_dataset():
    return tf.data.Dataset.from_tensor_slices(np.ones((8, 2), np.float32)).batch(2)


def _one_device_strategy():
    """A real ``tf.distribute`` strategy (optimizer steps go through ``merge_call``) that needs
    no start-up configuration, so it runs inside the pytest process."""
    return tf.distribute.MirroredStrategy(["/cpu:0"])


def test_phase_dispatch_runs_the_chosen_compiled_step_under_a_strategy():
    strategy = _one_device_strategy()
    with strategy.scope():
        model = _Tiny()

        def step_for(key):
            def step(x):
                loss = model.sgd_step(x, float(key))
                model.ran.assign(model.ran * 10 + key)   # Records the order of the steps run.
                return {"key": tf.constant(float(key)), "loss": loss}
            return step

        model.compile()
    choices = iter([1, 2, 2, 1])
    compat.install_phase_dispatch(model, {1: step_for(1), 2: step_for(2)}, lambda: next(choices))
    history = model.fit(_ones_dataset(), epochs=1, steps_per_epoch=4, verbose=0,
                        shuffle=False)
    assert int(model.ran.numpy()) == 1221
    # Every step ran its optimizer update: w -= 0.1 * key * 2 (batch of 2 ones) for keys 1,2,2,1.
    np.testing.assert_allclose(model.dense.kernel.numpy(), np.full((2, 1), 1 - 0.2 * 6),
                               rtol=0, atol=1e-6)
    assert history.history["key"] == [1.0]


def test_optimizer_step_inside_tf_cond_is_still_refused_under_a_strategy():
    """Why install_phase_dispatch exists: lazy regularisation cannot be a tf.cond around an
    optimizer step inside one compiled train_step."""

    class CondStep(_Tiny):
        def train_step(self, x):
            loss = tf.cond(self.ran % 2 == 0, lambda: self.sgd_step(x, 1.0),
                           lambda: tf.constant(0.0))
            self.ran.assign_add(1.0)
            return {"loss": loss}

    strategy = _one_device_strategy()
    with strategy.scope():
        model = CondStep()
        model.compile()
    try:
        model.fit(_ones_dataset(), epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    except RuntimeError as e:
        assert "`merge_call` called while defining a new graph or a tf.function" in str(e), e
    else:
        pytest.fail("Keras/TensorFlow accept an optimizer step inside tf.cond under a strategy "
                    "now: StyleGAN.train_step could select its regularisation phases with "
                    "tf.cond; remove the shim compat.install_phase_dispatch")


def _stage(out, name):
    lines = [line for line in out.splitlines() if line.startswith(f"STAGE {name}: ")]
    assert len(lines) == 1, out[-4000:]
    return lines[0][len(f"STAGE {name}: "):]


@pytest.mark.slow
def test_multiworker_shims_still_needed_and_still_working(tmp_path):
    """Keras 3.15 ``fit`` under a 2-worker MultiWorkerMirroredStrategy (keras-team/keras#20585):
    without shims the symbolic build fails reducing a PerReplica batch; with only that skipped,
    ``reduce_per_replica`` fails on the scalar logs; with both shims, fit runs. (A 1-worker
    cluster does not reproduce either failure: Keras reduces only in multi-worker mode.)"""
    procs = mw.start_workers([SHIMS_SCRIPT], timeout=400)
    outs = [p.communicate()[0] for p in procs]
    for proc, out in zip(procs, outs):
        assert proc.returncode == 0, out[-4000:]
        none = _stage(out, "no-shims")
        if none == "OK":
            pytest.fail("Keras fixed keras-team/keras#20585 (symbolic build of a PerReplica "
                        "batch under MultiWorkerMirroredStrategy): remove the shim "
                        "compat.skip_symbolic_build")
        assert none.startswith("FAILED ValueError: Attempt to convert a value (PerReplica:"), \
            f"the failure without shims changed: {none}"
        assert "with an unsupported type (<class 'tensorflow.python.distribute.values." \
            "PerReplica'>) to a Tensor" in none and ",_maybe_symbolic_build," in none, none

        skipped = _stage(out, "skip-symbolic-build")
        if skipped == "OK":
            pytest.fail("Keras fixed keras-team/keras#20585 (reduce_per_replica of scalar logs "
                        "under MultiWorkerMirroredStrategy): remove the shim "
                        "compat.use_vector_logs and StyleGAN.logs_as_vectors")
        assert skipped.startswith("FAILED ValueError: Invalid reduction dimension 0 for input "
                                  "with 0 dimensions"), \
            f"the failure with only the symbolic build skipped changed: {skipped}"
        assert ",reduce_per_replica," in skipped, skipped

        assert _stage(out, "all-shims") == "OK", "the MultiWorkerMirroredStrategy shims " \
            "stopped working: update compat.prepare_for_multiworker"
