"""``sg3keras metrics``: evaluate registered metrics on a network, print and append JSONL."""

import contextlib
import json
import os
import sys
import time

__all__ = ["evaluate", "check_dataset"]


def evaluate(network, metric_names, data=None, mirror=False, num_samples=None, gpus=1,
             detector_dir=None, batch_size=4, cpu_replicas=False):
    """Yield one printable line per metric; append ``metric-<name>.jsonl`` beside the network.

    Before anything is evaluated the inputs are checked against each other: metrics that
    compare with real images (FID, KID, precision/recall) need a dataset of the network's
    resolution and channel count, and a conditional network needs a dataset with labels of
    its ``c_dim`` (errors name the flag, the file and what was expected).

    Args:
        network: ``.keras`` file, official ``.pkl``, a training run directory, a pretrained
            name or a URL (results of the last two are printed, not appended, as official).
        metric_names: registered names (``fid50k_full``, ``eqt50k_int``, ...).
        data: dataset zip/folder for feature metrics (default: the training run's ``--data``).
        mirror: recorded for compatibility; real statistics never use x-flips (as official).
        num_samples: override of the number of generated samples (recorded in the result).
        gpus: replicas to spread the evaluation over: ``MirroredStrategy`` over that many
            GPUs, or logical CPU devices on a machine without GPUs (TensorFlow backend; create
            it before anything else initialises TensorFlow). Recorded as ``num_gpus`` (the
            replica count actually used).
        cpu_replicas: allow ``gpus`` logical CPU replicas on a machine without GPUs.
        detector_dir: directory holding the Inception / VGG16 detector files.
    """
    from sg3keras.metrics.registry import (METRICS, append_jsonl, calc_metric, is_valid_metric,
                                           list_metrics)
    from sg3keras.networks.loading import load_network

    bad = [m for m in metric_names if not is_valid_metric(m)]
    if bad:
        raise ValueError(f"--metrics: unknown metric(s) {bad}; expected names from "
                         f"{', '.join(list_metrics(True))}")
    run_dir = network if os.path.isdir(network) else os.path.dirname(os.path.abspath(network)) \
        if os.path.isfile(network) else None
    data_flag = "--data"
    if data is None and run_dir is not None:
        opts_path = os.path.join(run_dir, "training_options.json")
        if os.path.exists(opts_path):
            with open(opts_path) as f:
                data = json.load(f).get("data")
            data_flag = f"--data (from {opts_path})"
    needs_reals = [m for m in metric_names if METRICS[m].uses_real_images]
    if needs_reals and not data:
        raise ValueError(f"--metrics {','.join(needs_reals)}: compares with real images; "
                         "expected --data DATASET (a .zip or folder)")
    if data and not os.path.exists(data):
        raise ValueError(f"{data_flag} {data}: no such file or directory; expected a dataset "
                         ".zip or folder")
    strategy = _strategy(gpus, cpu_replicas)
    # Inside the scope the networks' variables are mirrored onto every replica.
    scope = strategy.scope if strategy is not None else contextlib.nullcontext
    with scope():
        G = load_network(network)
    dataset = None
    if data:
        from sg3keras.data import ImageDataset
        dataset = ImageDataset(data, use_labels=G.c_dim > 0)
        check_dataset(G, dataset, bool(needs_reals), where=f"{data_flag} {data}")
    for name in metric_names:
        with scope():
            result = calc_metric(name, G, dataset=dataset, num_samples=num_samples,
                                 detector_dir=detector_dir, batch_size=batch_size,
                                 snapshot_pkl=os.path.basename(network.rstrip("/")),
                                 progress=_Progress(name), strategy=strategy)
        if run_dir is not None:
            append_jsonl(os.path.join(run_dir, f"metric-{name}.jsonl"), result)
        yield json.dumps(result)


def check_dataset(G, dataset, compares_images=True, where="--data"):
    """ValueError unless ``dataset`` fits ``G``: labels of ``G.c_dim`` for a conditional
    network, and (``compares_images``) the network's resolution and channel count."""
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    if c_dim > 0 and not dataset.has_labels:
        raise ValueError(f"{where}: has no labels, but the network is conditional (c_dim={c_dim}); "
                         "expected a dataset with a dataset.json of labels")
    if c_dim > 0 and dataset.label_dim != c_dim:
        raise ValueError(f"{where}: labels have {dataset.label_dim} classes/dimensions; expected "
                         f"{c_dim} like the network's c_dim")
    if not compares_images:
        return
    want = (int(G.img_resolution), int(G.img_channels))
    have = (int(dataset.resolution), int(dataset.num_channels))
    if have != want:
        raise ValueError(f"{where}: images are {have[0]}x{have[0]} with {have[1]} channel(s); "
                         f"expected {want[0]}x{want[0]} with {want[1]} like the network")


def _strategy(gpus, cpu_replicas=False):
    """``None`` for one replica, else the ``tf.distribute`` strategy for ``--gpus``."""
    if int(gpus) <= 1:
        return None
    import keras
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"--gpus={gpus} needs the TensorFlow backend (KERAS_BACKEND="
                         f"{keras.backend.backend()})")
    from sg3keras.metrics.distributed import make_eval_strategy
    return make_eval_strategy(gpus, cpu_replicas=cpu_replicas)


class _Progress:
    """Prints ``<metric> <phase>: done/total`` to stderr at most every 5 seconds."""

    def __init__(self, name):
        self.name, self.last = name, 0.0

    def __call__(self, phase, done, total):
        now = time.time()
        if now - self.last >= 5 or done >= total:
            self.last = now
            sys.stderr.write(f"{self.name} {phase}: {done}/{total}\n")
            sys.stderr.flush()
