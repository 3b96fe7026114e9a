"""Train a tiny GAN for a few steps under a strategy and save every weight (distribution tests).

Usage: dist_train.py OUT.npz MODE [STEPS]   MODE = single | mirrored | multiworker
For multiworker, TF_CONFIG must be set by the caller. Uses synthetic data identical across modes.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

out, mode = sys.argv[1], sys.argv[2]
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 2

from sg3keras.training import distribute  # noqa: E402

strategy = distribute.make_strategy(gpus=2 if mode == "mirrored" else 1,
                                    workers=2 if mode == "multiworker" else 1,
                                    collective_timeout=60)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_fixtures import tiny_gan_config  # noqa: E402

from sg3keras.training.loop import build_gan  # noqa: E402

GLOBAL_BATCH = 8
cfg = tiny_gan_config(batch=GLOBAL_BATCH, mbstd_group=1)
gan = build_gan(cfg, None, strategy, seed=3, impl="ref")
rng = np.random.RandomState(0)
images = rng.uniform(-1, 1, size=(GLOBAL_BATCH * steps, 16, 16, 3)).astype(np.float32)
labels = np.zeros((GLOBAL_BATCH * steps, 0), np.float32)
ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(GLOBAL_BATCH)
gan.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[distribute.StartedCallback()])
arrays = {f"{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(gan.G.trainable_variables)}
arrays.update({f"D{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(gan.D.trainable_variables)})
arrays.update({f"E{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(gan.G_ema.variables)})
arrays["step"] = np.asarray(gan.step.numpy())
if distribute.is_chief(strategy):
    np.savez(out, **arrays)
print("OK", mode, int(gan.step.numpy()))
