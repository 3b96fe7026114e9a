"""Train a tiny GAN for a few steps under a strategy and save every weight (distribution tests).

Usage: dist_train.py OUT.npz MODE [STEPS] [--fault die|stall --fault-at N --fault-worker I
                                          --stall-seconds S]
MODE = single | mirrored | multiworker. For multiworker, TF_CONFIG must be set by the caller.
Uses synthetic data identical across modes and prints ``step N done`` after every step.

``--fault die``: TF_CONFIG worker I SIGKILLs itself right after step N (0-based) finished;
``--fault stall``: it sleeps for S seconds there instead (alive, still heartbeating, but not
joining collectives), then goes on. Used to check that the workers end with errors, not hangs.
"""
import argparse
import dataclasses
import json
import os
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("mode", choices=["single", "mirrored", "multiworker"])
parser.add_argument("steps", type=int, nargs="?", default=2)
parser.add_argument("--fault", choices=["die", "stall"])
parser.add_argument("--fault-at", type=int, default=1)
parser.add_argument("--fault-worker", type=int, default=1)
parser.add_argument("--stall-seconds", type=float, default=3600)
args = parser.parse_args()
out, mode, steps = args.out, args.mode, args.steps

from sg3keras.training import distribute  # noqa: E402

strategy = distribute.make_strategy(gpus=2 if mode == "mirrored" else 1,
                                    workers=2 if mode == "multiworker" else 1,
                                    cpu_replicas=True)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_fixtures import tiny_gan_config  # noqa: E402

from sg3keras.training.loop import build_gan  # noqa: E402

WORKER = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0)


class Progress(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print(f"step {batch} done (worker {WORKER}) at {time.time():.1f}", flush=True)
        if args.fault and batch == args.fault_at and WORKER == args.fault_worker:
            if args.fault == "die":
                print(f"worker {WORKER}: SIGKILL myself", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            print(f"worker {WORKER}: stalling", flush=True)
            time.sleep(args.stall_seconds)
            print(f"worker {WORKER}: resuming", flush=True)


GLOBAL_BATCH = 8
cfg = tiny_gan_config(batch=GLOBAL_BATCH, mbstd_group=1)
# Adam's first steps are g / (|g| + eps): with the official eps = 1e-8 the rounding of a
# near-zero gradient element becomes a sizeable fraction of lr (measured 1.2e-3 after 2 steps on
# an AVX2 CPU, where oneDNN's reduction order differs more between batch 8 and 2 x 4 than on
# AVX-512). A larger eps keeps the single-vs-distributed comparison about distribution.
cfg["train"] = dataclasses.replace(cfg["train"], eps=1e-3)
gan = build_gan(cfg, None, strategy, seed=3, impl="ref")
rng = np.random.RandomState(0)
images = rng.uniform(-1, 1, size=(GLOBAL_BATCH * steps, 16, 16, 3)).astype(np.float32)
labels = np.zeros((GLOBAL_BATCH * steps, 0), np.float32)
ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(GLOBAL_BATCH)
gan.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0,
        callbacks=[distribute.StartedCallback(), distribute.WorkerWatchdog(), Progress()])
arrays = {f"{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(gan.G.trainable_variables)}
arrays.update({f"D{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(gan.D.trainable_variables)})
arrays.update({f"E{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(gan.G_ema.variables)})
arrays["step"] = np.asarray(gan.step.numpy())
if distribute.is_chief(strategy):
    np.savez(out, **arrays)
print("OK", mode, int(gan.step.numpy()))
