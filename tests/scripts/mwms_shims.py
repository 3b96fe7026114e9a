"""Keras ``fit`` of the tiny GAN under a 2-worker MultiWorkerMirroredStrategy, with and without
the shims of :mod:`sg3keras.training.compat` (``tests/test_training_compat.py``).

Usage: mwms_shims.py   (TF_CONFIG naming 2 workers set by the caller; run one per worker)

Runs three one-step fits in one process and prints one line per stage:

    STAGE no-shims: OK | FAILED <exception type>: <message> IN <function names, innermost last>
    STAGE skip-symbolic-build: ...      (only compat.skip_symbolic_build applied)
    STAGE all-shims: ...                (compat.prepare_for_multiworker applied)

Long messages are shortened to their start and end (a PerReplica batch prints its numbers).

A failing stage fails identically on every worker before any collective runs (while Keras builds
or traces), so the workers stay in step for the next stage.
"""
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sg3keras.training import compat, distribute  # noqa: E402

strategy = distribute.make_strategy(workers=2)
assert distribute.is_multi_worker(strategy), "TF_CONFIG must name 2 workers"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

keras.config.disable_traceback_filtering()   # Keep Keras's frames: the test checks them.

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_fixtures import tiny_gan_config  # noqa: E402

from sg3keras.training.loop import build_gan  # noqa: E402

# build_gan applies the shims under a multi-worker strategy: build without them.
compat_prepare, compat.prepare_for_multiworker = compat.prepare_for_multiworker, lambda m: None
gan = build_gan(tiny_gan_config(batch=4, mbstd_group=1), None, strategy, seed=3, impl="ref")
compat.prepare_for_multiworker = compat_prepare
assert "_maybe_symbolic_build" not in vars(gan) and not gan.logs_as_vectors, "shims applied"

images = np.random.RandomState(0).uniform(-1, 1, size=(4, 16, 16, 3)).astype(np.float32)
ds = tf.data.Dataset.from_tensor_slices((images, np.zeros((4, 0), np.float32))).batch(4)


def stage(name):
    try:
        gan.fit(ds, epochs=1, steps_per_epoch=1, verbose=0,
                callbacks=[distribute.StartedCallback()])
        print(f"STAGE {name}: OK", flush=True)
    except Exception as e:  # noqa: BLE001 -- reported to the test, which checks the text.
        message = " ".join(str(e).split())
        if len(message) > 400:
            message = message[:150] + " ... " + message[-250:]
        frames = ",".join(f.name for f in traceback.extract_tb(e.__traceback__))
        print(f"STAGE {name}: FAILED {type(e).__name__}: {message} IN {frames}", flush=True)


stage("no-shims")
compat.skip_symbolic_build(gan)
stage("skip-symbolic-build")
compat.prepare_for_multiworker(gan)
stage("all-shims")
