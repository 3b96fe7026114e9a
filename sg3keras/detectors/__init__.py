"""The pretrained feature networks the metrics and the projector measure with, read offline.

* :mod:`sg3keras.detectors.loading`: finding and reading the weight files (TorchScript archives,
  TF GraphDefs; nothing executed, torch never imported), :func:`load_detector` and
  :class:`Detector` (batched, compiled feature extraction), :func:`load_vgg16_lpips`;
* :mod:`sg3keras.detectors.inception`: the 2015-12-05 Inception of every paper-comparable FID;
* :mod:`sg3keras.detectors.vgg16`: NVIDIA's VGG16 (precision/recall features) and its LPIPS head.

The names below are loaded on first use, so that importing this package stays cheap.
"""

from sg3keras.utils import lazy_exports

_EXPORTS = {
    "Detector": "sg3keras.detectors.loading",
    "DetectorNotFoundError": "sg3keras.detectors.loading",
    "DetectorFormatError": "sg3keras.detectors.loading",
    "load_detector": "sg3keras.detectors.loading",
    "find_detector_file": "sg3keras.detectors.loading",
    "load_vgg16_lpips": "sg3keras.detectors.loading",
    "vgg16_lpips_file": "sg3keras.detectors.loading",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
