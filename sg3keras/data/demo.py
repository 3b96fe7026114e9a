"""A small real-image demo dataset built offline from photographs shipped inside scikit-image.

``make_demo_dataset`` takes deterministic random square crops of a few bundled photographs,
resizes each with PIL LANCZOS to ``resolution`` and writes them in the official dataset format
(:class:`sg3keras.data.dataset_tool.DatasetWriter`), optionally labelled with the index of the source
photograph (a conditional demo with ``len(DEMO_IMAGES)`` classes).

Images used (``skimage.data``, bundled in the scikit-image wheel; licences as stated in the
scikit-image docstrings of version 0.26):

=====================  =======================================================================
``astronaut``          NASA, Eileen Collins portrait; public domain (no known copyright).
``chelsea``            Chelsea the cat; CC0, photographer Stefan van der Walt.
``coffee``             coffee cup, courtesy of Pikolo Espresso Bar; CC0, photographer Rachel
                       Michetti.
``rocket``             SpaceX launch photo; released by SpaceX into the public domain.
``hubble_deep_field``  NASA / HubbleSite; public domain.
``retina``             fundus photograph by Mikael Häggström (Wikimedia Commons); CC0 1.0.
=====================  =======================================================================

scikit-image itself is BSD-3-Clause. It is an optional dependency (``pip install scikit-image``).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import PIL.Image

from sg3keras.data.dataset_tool import DatasetError, DatasetWriter, is_power_of_two

__all__ = ["DEMO_IMAGES", "load_demo_photos", "make_demo_dataset"]

DEMO_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina")


def load_demo_photos():
    """The bundled RGB photographs as a list of uint8 [H, W, 3] arrays (order of DEMO_IMAGES)."""
    try:
        import skimage.data
    except ImportError:
        raise DatasetError("make_demo_dataset needs scikit-image (pip install scikit-image)") from None
    photos = []
    for name in DEMO_IMAGES:
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise DatasetError(f"skimage.data.{name}: expected uint8 RGB, got {img.dtype} {img.shape}")
        photos.append(img)
    return photos


def make_demo_dataset(dest_zip, resolution: int = 32, num_images: int = 2000, seed: int = 0,
                      labels: bool = True, min_crop: Optional[int] = None) -> dict:
    """Write ``num_images`` crops of the bundled photos to ``dest_zip`` in the official format.

    Steps, per image ``i`` with ``rng = np.random.default_rng(seed)`` drawn in order: pick a photo
    uniformly; crop side ``s`` uniform in ``[min_crop, min(H, W) // 2]`` (``min_crop`` defaults to
    ``2 * resolution``, capped at that upper bound); top-left corner uniform over valid positions;
    LANCZOS resize to ``resolution``; label = photo index (when ``labels``).

    Returns:
        dict ``dest, num_images, resolution, channels, label_dim``.
    """
    if not is_power_of_two(resolution):
        raise DatasetError(f"resolution={resolution!r}: expected a power-of-two int")
    if not isinstance(num_images, (int, np.integer)) or num_images < 1:
        raise DatasetError(f"num_images={num_images!r}: expected a positive int")
    photos = load_demo_photos()
    rng = np.random.default_rng(seed)
    with DatasetWriter(dest_zip) as writer:
        for idx in range(num_images):
            k = int(rng.integers(len(photos)))
            photo = photos[k]
            h, w = photo.shape[:2]
            hi = min(h, w) // 2
            lo = min(min_crop if min_crop is not None else 2 * resolution, hi)
            s = int(rng.integers(lo, hi + 1))
            y, x = int(rng.integers(h - s + 1)), int(rng.integers(w - s + 1))
            crop = PIL.Image.fromarray(photo[y:y + s, x:x + s])
            img = np.asarray(crop.resize((resolution, resolution), PIL.Image.Resampling.LANCZOS))
            writer.add(idx, img, k if labels else None)
    return dict(dest=os.path.abspath(os.fspath(dest_zip)), num_images=num_images,
                resolution=resolution, channels=3, label_dim=len(photos) if labels else 0)
