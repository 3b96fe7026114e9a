"""Evaluate metrics with one replica and with a 2-replica MirroredStrategy on 2 logical CPUs.

Usage: ``dist_metrics.py OUT.json eq|features``. The logical devices are configured first
(TensorFlow must not be initialised before). Writes one JSON object: per case
``{"single": record, "mirrored": record, "seed1": record (some cases), "calls": [[key, rows
in, rows out], ...], "traced": [replica ids]}`` (the replica runner's calls during the mirrored
evaluation and the replicas that traced their functions); ``eq`` also writes ``"training"``,
the record of a TickCallback's snapshot metric under the strategy.
"""

import json
import os
import sys

import tensorflow as tf

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_fixtures import write_tiny_dataset  # noqa: E402

from sg3keras.data import ImageDataset  # noqa: E402
from sg3keras.metrics import distributed  # noqa: E402
from sg3keras.detectors.loading import Detector  # noqa: E402
from sg3keras.metrics.registry import calc_metric  # noqa: E402
from sg3keras.models import Generator  # noqa: E402


def tiny_generator():
    keras.utils.set_random_seed(0)
    return Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256,
                                 channel_max=16, z_dim=16, w_dim=16, impl="ref")


def tiny_detector(path):
    """A real :class:`Detector` around a small random conv net (features 12-d, 7 logits)."""
    keras.utils.set_random_seed(1)
    inp = keras.Input([None, None, 3])
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="tanh")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    feats = keras.layers.Dense(12, activation="tanh")(x)
    logits = keras.layers.Dense(7, kernel_initializer=keras.initializers.RandomNormal(
        stddev=30.0))(feats)
    model = keras.Model(inp, {"features": feats, "logits": logits})
    with open(path, "wb") as f:
        f.write(b"tiny detector")
    return Detector("tiny", model, path, feature_dim=12, num_classes=7)


CALLS, TRACED = [], set()
_map = distributed.ReplicaRunner.map


def _spy_map(self, key, fn, *arrays, per_replica=None):
    """Records the rows of every replica-runner call and the replicas that traced ``fn``."""

    def traced_fn(*args):
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        TRACED.add(int(tf.get_static_value(rid)))
        return fn(*args)

    out = _map(self, key, traced_fn, *arrays, per_replica=per_replica)
    CALLS.append([str(key), len(arrays[0]), len(out)])
    return out


distributed.ReplicaRunner.map = _spy_map


def main(out_path, group):
    tmp = os.path.dirname(os.path.abspath(out_path))
    os.environ["SG3KERAS_CACHE_DIR"] = ""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        g_mirrored = tiny_generator()      # variables mirrored: one EQ batch per replica
    g_plain = tiny_generator()             # plain variables: each batch split over replicas
    dataset = ImageDataset(write_tiny_dataset(os.path.join(tmp, "d.zip"), n=20))
    det = tiny_detector(os.path.join(tmp, "tiny.det"))
    # Uneven on purpose: 10 samples in batches of 4 are 3 batches (the second replica group is
    # padded); batches of 3 split 2 + 1 over the replicas; IS needs >= 2 samples per split.
    cases = {"eq": [("eqt50k_frac", g_mirrored, 4, 10), ("eqr50k", g_plain, 3, 10)],
             "features": [("fid50k_full", g_mirrored, 4, 10), ("kid50k_full", g_plain, 4, 10),
                          ("is50k", g_mirrored, 4, 22)]}[group]
    out = {}
    for name, G, batch, n in cases:
        kw = dict(dataset=dataset, num_samples=n, batch_size=batch, detector=det,
                  use_cache=False)
        single = calc_metric(name, G, **kw)
        assert not CALLS and not TRACED
        mirrored = calc_metric(name, G, strategy=strategy, **kw)
        tag = f"{name}-{'mirrored' if G is g_mirrored else 'plain'}-b{batch}"
        out[tag] = dict(single=single, mirrored=mirrored, calls=list(CALLS),
                        traced=sorted(TRACED))
        CALLS.clear()
        TRACED.clear()
        if name in ("eqt50k_frac", "fid50k_full"):   # how far apart two sample sets are
            out[tag]["seed1"] = calc_metric(name, G, seed=1, **kw)
        print(tag, single["results"], mirrored["results"], round(mirrored["total_time"], 1),
              flush=True)
    if group == "eq":
        out["training"] = training_snapshot_metrics(tmp, g_mirrored, strategy, dataset.path)
    with open(out_path, "w") as f:
        json.dump(out, f)


def training_snapshot_metrics(tmp, G, strategy, data):
    """The training loop's snapshot metrics run under the GAN's strategy: the JSONL record."""
    import types

    from train_fixtures import tiny_options

    from sg3keras.training.loop import TickCallback
    run_dir = os.path.join(tmp, "run")
    os.makedirs(run_dir)
    gan = types.SimpleNamespace(G_ema=G, distribute_strategy=strategy, label_table=None)
    opts = tiny_options(data=data, metrics=("eqt50k_int",), metrics_num_samples=6)
    cb = TickCallback(gan, run_dir, opts, cfg={}, log=print)
    cb._run_metrics(os.path.join(run_dir, "network-snapshot-000001.keras"), 0.001, 1)
    with open(os.path.join(run_dir, "metric-eqt50k_int.jsonl")) as f:
        record = json.loads(f.readline())
    single = calc_metric("eqt50k_int", G, dataset=None, num_samples=6)
    return dict(record=record, single=single, calls=len(CALLS))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
