"""Load a network from any source a user has: ``.keras``, official pickle, training run, a
pretrained name or a URL."""

import glob
import os
import pickle
import zipfile

from ..data.zipcheck import ZIP_ERRORS, archive_problem
from .pretrained import NetworkSourceError, resolve_network_file

__all__ = ["load_network", "load_networks", "locate_network", "NetworkLoadError",
           "network_file_kind"]


class NetworkLoadError(ValueError):
    pass


def _register_classes():
    # Importing the packages registers every sg3keras class with Keras serialization.
    from .. import layers, models  # noqa: F401


def network_file_kind(path):
    """``"keras"`` (a zip archive), ``"pkl"`` (a pickle) or None, from the file's first bytes
    (a URL's file name need not end in ``.keras`` / ``.pkl``)."""
    if path.endswith(".keras"):
        return "keras"
    if path.endswith(".pkl"):
        return "pkl"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return "keras"
    if head[:1] == b"\x80":
        return "pkl"
    return None


def locate_network(ref, flag="--network"):
    """``(local file, kind)`` for a reference; run directories -> newest snapshot."""
    try:
        path = resolve_network_file(ref, flag=flag)
    except NetworkSourceError as e:
        raise NetworkLoadError(str(e)) from None
    if os.path.isdir(path):
        snaps = sorted(glob.glob(os.path.join(path, "network-snapshot-*.keras")))
        if not snaps:
            raise NetworkLoadError(f"{flag} {ref}: a directory, but it holds no "
                                   "network-snapshot-*.keras (is it a training run?)")
        path = snaps[-1]
    kind = network_file_kind(path)
    if kind is None:
        raise NetworkLoadError(f"{flag} {ref}: expected a .keras file, an official .pkl, a "
                               "training run directory, a pretrained name or a URL")
    if os.path.getsize(path) == 0:
        raise NetworkLoadError(f"{flag} {ref}: the file {path} is empty; expected a .keras file "
                               "or an official .pkl")
    return path, kind


# What Keras, h5py and zipfile raise on a damaged .keras archive or a config that does not fit.
_KERAS_ERRORS = ZIP_ERRORS + (TypeError, AttributeError, IndexError, RuntimeError,
                              ArithmeticError)


def _keras_zip_problem(path):
    """Why ``path`` cannot be a .keras archive (a damaged zip, a member claiming sizes beyond the
    file: :func:`sg3keras.data.zipcheck.size_problem`), checked before Keras inflates anything;
    or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            return archive_problem(zf, path)
    except ZIP_ERRORS as e:
        return "not a zip archive" if not zipfile.is_zipfile(path) else \
            f"{type(e).__name__}: {e}"


def _load_keras(path, ref, flag):
    import keras
    _register_classes()
    what = _keras_zip_problem(path)
    if what is None:
        try:
            return keras.saving.load_model(path, safe_mode=True)
        except _KERAS_ERRORS as e:
            what = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    raise NetworkLoadError(f"{flag} {ref}: {path} is not a readable .keras network ({what}); "
                           "expected a .keras file saved by sg3keras / Keras 3") from None


def load_networks(ref, which=("G_ema",), flag="--network"):
    """``{name: model}`` for the requested networks of ``ref``, plus ``"source"``: the local
    file read. A ``.keras`` file (or run directory) holds one generator, returned for ``G`` and
    ``G_ema``; ``D`` is then absent from the result.

    Args:
        ref: a ``.keras`` file; an official NVIDIA ``.pkl`` (read as data, converted); a training
            run directory (its newest ``network-snapshot-*.keras``); a pretrained name
            (``sg3keras pretrained``); or an http(s) URL of either file kind (downloaded once into
            the cache).
        which: subset of ``("G", "D", "G_ema")``.
        flag: the option name used in error messages.
    """
    path, kind = locate_network(ref, flag)
    out = {"source": path}
    if kind == "keras":
        model = _load_keras(path, ref, flag)
        for name in which:
            if name != "D":
                out[name] = model
        return out
    from ..convert.official_pickle import load_official_pickle
    try:
        nets = load_official_pickle(path, networks=tuple(which))
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as e:
        raise NetworkLoadError(f"{flag} {ref}: {path} is not a readable network pickle "
                               f"({type(e).__name__}: {e}); expected an official NVIDIA .pkl"
                               ) from None
    except ValueError as e:
        msg = str(e)
        msg = msg if msg.startswith(flag) else f"{flag} {ref}: {msg}"
        if "expected" not in msg:
            msg += "; expected an official NVIDIA .pkl"
        raise NetworkLoadError(msg) from None
    out.update({name: nets[name] for name in which})
    out["official"] = nets
    return out


def load_network(ref, which="G_ema", flag="--network"):
    """Return one Keras model from ``ref`` (see :func:`load_networks` for what ``ref`` may be).

    Args:
        which: for pickles, ``"G_ema"`` (default), ``"G"`` or ``"D"``.
    """
    nets = load_networks(ref, (which,), flag=flag)
    if which not in nets:
        raise NetworkLoadError(f"{flag} {ref}: holds no {which} (a .keras file holds one "
                               "generator; use an official .pkl for D)")
    return nets[which]
