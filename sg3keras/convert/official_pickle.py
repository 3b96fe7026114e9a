"""Load an official NVlabs network pickle as sg3keras Keras models (no torch, nothing executed).

:func:`load_official_pickle` reads the pickle as data with
:func:`sg3keras.convert.pickle_reader.read_official_pickle` and hands each network's state dict and
``init_kwargs`` to :func:`sg3keras.convert.generator_from_official` (G, G_ema) or
:func:`sg3keras.convert.discriminator_from_official` (D).
"""

import importlib
import os

import numpy as np

from sg3keras.convert.pickle_reader import OfficialModule, PickleFormatError, read_official_pickle
from sg3keras.utils import save_keras_atomic

__all__ = ["load_official_pickle", "convert_pickle"]

# network key -> (expected official class name, converter module, converter function)
_CONVERTERS = {
    "G": ("Generator", "sg3keras.convert.generator", "generator_from_official"),
    "G_ema": ("Generator", "sg3keras.convert.generator", "generator_from_official"),
    "D": ("Discriminator", "sg3keras.convert.discriminator", "discriminator_from_official"),
}
_ALL_NETWORKS = ("G", "D", "G_ema")


def _converter(key):
    _cls, module_name, fn_name = _CONVERTERS[key]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError(f"cannot convert network {key!r}: {module_name} is not available "
                          f"({e})") from e
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise ImportError(f"cannot convert network {key!r}: {module_name} has no {fn_name}")
    return fn


def _augment_p(pipe, where):
    if pipe is None or "p" not in pipe.buffers:
        return None
    p = np.asarray(pipe.buffers["p"])
    if p.size != 1:
        raise PickleFormatError(f"{where}: augment_pipe buffer 'p' has shape {p.shape}, "
                                f"expected a scalar")
    return float(p.reshape(-1)[0])


def load_official_pickle(path, networks=_ALL_NETWORKS):
    """Read an official snapshot and convert its networks to Keras models.

    Steps: read the pickle as data (allow-listed globals only); check each requested network is
    present and of the expected class; convert it from its state dict and ``init_kwargs``; collect
    the ADA probability and kwargs and the training-set kwargs.

    Args:
        path: path (or binary file object) of a ``network-snapshot-*.pkl`` / pretrained pickle.
        networks: which of ``"G"``, ``"D"``, ``"G_ema"`` to convert (default all three); e.g.
            ``("G_ema",)`` for inference. Each requested network must be in the pickle.

    Returns:
        dict with one Keras model per requested network, ``training_set_kwargs`` (dict or None),
        ``augment_p`` (float or None), ``augment_kwargs`` (dict or None) and ``official`` (the raw
        :class:`OfficialModule` of every network in the pickle, converted or not).
    """
    if isinstance(networks, str) or not all(n in _ALL_NETWORKS for n in networks) \
            or len(networks) == 0:
        raise ValueError(f"networks must be a non-empty sequence drawn from {_ALL_NETWORKS}, "
                         f"got {networks!r}")
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else \
        str(getattr(path, "name", "<file object>"))
    data = read_official_pickle(path)
    pipe = data.get("augment_pipe")
    out = {
        "training_set_kwargs": data.get("training_set_kwargs"),
        "augment_p": _augment_p(pipe, where),
        "augment_kwargs": dict(pipe.init_kwargs) if pipe is not None else None,
        "official": {k: data.get(k) for k in _ALL_NETWORKS + ("augment_pipe",)},
    }
    networks = tuple(dict.fromkeys(networks))
    missing = [k for k in networks if not isinstance(data.get(k), OfficialModule)]
    if missing:
        raise PickleFormatError(f"{where}: network(s) {missing} requested but not in the pickle "
                                f"(it holds {[k for k in _ALL_NETWORKS if data.get(k)]})")
    for key in networks:
        module, expected_cls = data[key], _CONVERTERS[key][0]
        if module.class_name != expected_cls:
            raise PickleFormatError(f"{where}: network {key!r} is a {module.class_name!r}, "
                                    f"expected {expected_cls!r}")
    for key in networks:
        module = data[key]
        try:
            model = _converter(key)(module.state_dict(), dict(module.init_kwargs))
        except (ValueError, TypeError, ArithmeticError) as e:   # tensors / kwargs that do not fit
            raise PickleFormatError(f"{where}: network {key!r}: {e}") from None
        if hasattr(model, "metadata"):     # sg3keras models record their source
            model.metadata = _source_metadata(where, key, module, out)
        out[key] = model
    return out


def _plain(v):
    """JSON-able copy of official metadata (numpy scalars/arrays become Python values)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _source_metadata(where, key, module, out):
    return _plain({"source": os.path.basename(where), "network": key,
                   "official_class": module.class_name, "init_kwargs": module.init_kwargs,
                   "training_set_kwargs": out["training_set_kwargs"],
                   "augment_p": out["augment_p"]})


def convert_pickle(src, dest, networks=("G_ema",), force=False):
    """Write official networks as ``.keras`` files; returns the written paths.

    One network: ``dest`` is the ``.keras`` file. Several: ``dest`` is a directory receiving
    ``<network>.keras``. Each model records its source in ``model.metadata`` (part of its Keras
    config), next to the architecture config (resolution, c_dim, ...). Existing files are
    replaced only with ``force``; the destination is checked before the pickle is read.
    """
    dest = os.fspath(dest)
    if len(networks) == 1:
        if not dest.endswith(".keras"):
            raise ValueError(f"DEST {dest}: expected a .keras file name (or use --all with a "
                             "directory)")
        targets = {networks[0]: dest}
    else:
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise ValueError(f"DEST {dest}: exists and is not a directory; expected a directory "
                             "for --all")
        targets = {k: os.path.join(dest, f"{k}.keras") for k in networks}
    for path in targets.values():
        if os.path.isdir(path):
            raise ValueError(f"DEST {path}: is a directory; expected a .keras file name")
        if os.path.lexists(path) and not force:
            raise ValueError(f"DEST {path}: already exists; pass --force to replace it")
    nets = load_official_pickle(src, networks=networks)
    for key, path in targets.items():
        save_keras_atomic(nets[key], path)
    return list(targets.values())
