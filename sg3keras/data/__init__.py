"""Training data: reading datasets, the dataset tool, and the demo data.

* :mod:`sg3keras.data.dataset`: :class:`ImageDataset`, the official ``ImageFolderDataset``
  format (zip or folder + ``dataset.json``) as a ``tf.data`` pipeline (TensorFlow);
* :mod:`sg3keras.data.dataset_tool`: ``sg3keras dataset`` (official ``dataset_tool.py``), numpy
  and PIL only;
* :mod:`sg3keras.data.demo`: the bundled demo photographs of ``make demo``;
* :mod:`sg3keras.data.download`: the download cache (pretrained networks, detector weights).

``ImageDataset`` and ``DatasetError`` are loaded on first use, so that the dataset tool does not
import TensorFlow.
"""

import importlib

_EXPORTS = {"ImageDataset": "sg3keras.data.dataset", "DatasetError": "sg3keras.data.dataset_tool"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sg3keras.data' has no attribute {name!r}")
