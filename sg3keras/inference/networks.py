"""Load a network from any source a user has: ``.keras``, official pickle, or training run."""

import glob
import os

__all__ = ["load_network", "NetworkLoadError"]


class NetworkLoadError(ValueError):
    pass


def _register_classes():
    # Importing the packages registers every sg3keras class with Keras serialization.
    import sg3keras.layers  # noqa: F401
    import sg3keras.models  # noqa: F401


def load_network(path, which="G_ema"):
    """Return a Keras model from ``path``.

    Args:
        path: a ``.keras`` file; an official NVIDIA ``.pkl`` (read as data, converted); or a
            training run directory (its newest ``network-snapshot-*.keras``).
        which: for pickles, ``"G_ema"`` (default), ``"G"`` or ``"D"``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise NetworkLoadError(f"--network {path}: no such file or directory")
    if os.path.isdir(path):
        snaps = sorted(glob.glob(os.path.join(path, "network-snapshot-*.keras")))
        if not snaps:
            raise NetworkLoadError(f"--network {path}: a directory, but it holds no "
                                   "network-snapshot-*.keras (is it a training run?)")
        path = snaps[-1]
    if path.endswith(".keras"):
        import keras
        _register_classes()
        return keras.saving.load_model(path, safe_mode=True)
    if path.endswith(".pkl"):
        from sg3keras.convert.official_pickle import load_official_pickle
        nets = load_official_pickle(path, networks=(which,))
        return nets[which]
    raise NetworkLoadError(f"--network {path}: expected a .keras file, an official .pkl, or a "
                           "training run directory")
