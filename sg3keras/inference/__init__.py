"""Running a trained network: load it from any source, and generate images.

* :mod:`sg3keras.inference.networks`: :func:`load_network` (``.keras``, official ``.pkl``, a
  training run directory, a pretrained name or a URL);
* :mod:`sg3keras.inference.pretrained`: NVIDIA's published networks by name
  (:func:`list_pretrained`) and :func:`resolve_network_file` (download into the cache);
* :mod:`sg3keras.inference.generate`: :func:`generate_images` / :func:`write_images`
  (``gen_images.py`` semantics);
* :mod:`sg3keras.inference.projector`: :func:`project` (a real image into W, the method of
  stylegan2-ada-pytorch's ``projector.py``).
"""

import importlib

_EXPORTS = {"load_network": "sg3keras.inference.networks",
            "load_networks": "sg3keras.inference.networks",
            "NetworkLoadError": "sg3keras.inference.networks",
            "list_pretrained": "sg3keras.inference.pretrained",
            "resolve_network_file": "sg3keras.inference.pretrained",
            "generate_images": "sg3keras.inference.generate",
            "write_images": "sg3keras.inference.generate",
            "project": "sg3keras.inference.projector",
            "Projection": "sg3keras.inference.projector"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sg3keras.inference' has no attribute {name!r}")
