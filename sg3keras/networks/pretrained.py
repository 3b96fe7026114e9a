"""NVIDIA's published networks by name, and turning any network reference into a local file.

A reference is a catalogue name (:data:`sg3keras.config.PRETRAINED`, e.g.
``stylegan3-r-afhqv2-512x512``, with or without ``.pkl``), an ``http(s)://`` URL, or a local path.
Names and URLs are downloaded once into ``<cache>/networks/`` (:mod:`sg3keras.data.download`).
"""

import difflib
import os

from ..config import PRETRAINED
from ..data.download import DownloadError, cached_file, download, is_url

__all__ = ["PRETRAINED", "list_pretrained", "resolve_network_file", "NetworkSourceError"]


class NetworkSourceError(ValueError):
    """A network reference that is neither a file, a catalogue name nor a reachable URL."""


def list_pretrained():
    """``[(name, cfg, resolution, url, cached path or None)]`` for the whole catalogue."""
    out = []
    for name, p in PRETRAINED.items():
        path = cached_file(p.url, "networks")
        out.append((name, p.cfg, p.resolution, p.url, path if os.path.isfile(path) else None))
    return out


def _catalogue_entry(ref):
    name = ref[:-4] if ref.endswith(".pkl") else ref
    return PRETRAINED.get(name)


def resolve_network_file(ref, flag="--network", progress=True, log=None):
    """Return a local path for ``ref`` (file / directory, catalogue name or URL).

    Raises:
        NetworkSourceError: nothing exists at ``ref`` and it is no catalogue name or URL (the
            message suggests close catalogue names), or the download failed (the message says
            where to put the file by hand).
    """
    ref = os.fspath(ref)
    if os.path.exists(ref):
        return ref
    entry = None if os.sep in ref else _catalogue_entry(ref)
    url = entry.url if entry is not None else ref if is_url(ref) else None
    if url is None:
        close = difflib.get_close_matches(ref.removesuffix(".pkl"), PRETRAINED, n=3)
        hint = (f"; did you mean {' or '.join(close)}?" if close else
                "; expected a file, a training run directory, an http(s) URL or a pretrained "
                "name (`sg3keras pretrained` lists them)")
        raise NetworkSourceError(f"{flag} {ref}: no such file or directory" + hint)
    try:
        return download(url, cached_file(url, "networks"),
                        sha256=entry.sha256 if entry is not None else None,
                        progress=progress, log=log)
    except DownloadError as e:
        raise NetworkSourceError(f"{flag} {ref}: {e}") from None
