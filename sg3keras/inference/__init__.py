"""Running a trained network: generate images, project images into W.

* :mod:`sg3keras.inference.generate`: :func:`generate_images` / :func:`write_images`
  (``gen_images.py`` semantics);
* :mod:`sg3keras.inference.generate`: :func:`generate_images` / :func:`write_images`
  (``gen_images.py`` semantics);
* :mod:`sg3keras.inference.projector`: :func:`project` (a real image into W, the method of
  stylegan2-ada-pytorch's ``projector.py``).

Loading a network (:func:`load_network`, :func:`list_pretrained`, ...) lives one floor below, in
:mod:`sg3keras.networks`; the names are re-exported here.
"""

import importlib

_EXPORTS = {"load_network": "sg3keras.networks.loading",
            "load_networks": "sg3keras.networks.loading",
            "NetworkLoadError": "sg3keras.networks.loading",
            "list_pretrained": "sg3keras.networks.pretrained",
            "resolve_network_file": "sg3keras.networks.pretrained",
            "generate_images": "sg3keras.inference.generate",
            "write_images": "sg3keras.inference.generate",
            "project": "sg3keras.inference.projector",
            "Projection": "sg3keras.inference.projector"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sg3keras.inference' has no attribute {name!r}")
