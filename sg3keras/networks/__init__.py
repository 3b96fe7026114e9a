"""Getting a trained network from any source a user has, for every command that runs one.

* :mod:`sg3keras.networks.loading`: :func:`load_network` / :func:`load_networks` (``.keras``,
  official ``.pkl``, a training run directory, a pretrained name or a URL),
  :func:`locate_network`, :class:`NetworkLoadError`;
* :mod:`sg3keras.networks.pretrained`: NVIDIA's published networks by name
  (:func:`list_pretrained`) and :func:`resolve_network_file` (download into the cache).

The names below are loaded on first use, so that importing this package stays cheap.
"""

from sg3keras.utils import lazy_exports

_EXPORTS = {
    "load_network": "sg3keras.networks.loading",
    "load_networks": "sg3keras.networks.loading",
    "locate_network": "sg3keras.networks.loading",
    "network_file_kind": "sg3keras.networks.loading",
    "NetworkLoadError": "sg3keras.networks.loading",
    "list_pretrained": "sg3keras.networks.pretrained",
    "resolve_network_file": "sg3keras.networks.pretrained",
    "NetworkSourceError": "sg3keras.networks.pretrained",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
