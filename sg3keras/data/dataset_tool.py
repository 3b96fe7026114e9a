"""Write image datasets in the official StyleGAN2-ADA / StyleGAN3 dataset format (no TensorFlow).

The format (official ``dataset_tool.py``) is a ZIP archive (``ZIP_STORED``) or a directory
holding uncompressed PNGs (``compress_level=0``) named ``{idx//1000:05d}/img{idx:08d}.png`` plus a
``dataset.json`` file ``{"labels": [[relpath, label], ...]}``, or ``{"labels": null}`` unless every
image has a label. All images share one square, power-of-two size with 1 ('L') or 3 ('RGB')
channels. Labels are integers (class index, one-hot at training time) or float vectors.

Conversion steps (:func:`convert_dataset`), per source image in sorted order:

1. list the image files of the source (a directory, recursive, or a ZIP archive) by extension
   (every extension PIL can open) and read optional labels from the source's ``dataset.json``;
   keep only the first ``max_images`` files;
2. decode with PIL; mode 'L' stays 1 channel, 'RGB' 3 channels, any other mode is an error (or is
   skipped and counted with ``skip_bad``); unreadable/truncated files likewise;
3. transform: none (resize to ``resolution`` with PIL LANCZOS when the size differs),
   ``center-crop`` (central square of side min(H, W), then LANCZOS resize), or ``center-crop-wide``
   (official semantics, see :func:`center_crop_wide`; images that are too small are dropped);
4. check the result is square, power-of-two and has the size/channels of the first kept image;
5. encode as an uncompressed PNG named after the source index (so dropped images leave gaps in
   the numbering, as in the official tool) and record the label.

The destination (``*.zip`` or a directory that is absent or empty) is written to a temporary
sibling and moved into place with ``os.replace``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from typing import Any, Optional, Tuple, Union

import numpy as np
import PIL.Image

__all__ = [
    "DatasetError",
    "CorruptImageError",
    "ImageModeError",
    "ImageSource",
    "DatasetWriter",
    "convert_dataset",
    "center_crop",
    "center_crop_wide",
    "image_extensions",
    "is_power_of_two",
    "archive_name",
    "read_labels_json",
]

TRANSFORMS = (None, "center-crop", "center-crop-wide")
MODE_CHANNELS = {"L": 1, "RGB": 3}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, PIL.Image.DecompressionBombError)


class DatasetError(ValueError):
    """A dataset file or argument is invalid; the message names it and says what was expected."""


class CorruptImageError(DatasetError):
    """An image file cannot be opened or decoded (corrupt, truncated, not an image)."""


class ImageModeError(DatasetError):
    """An image has a PIL mode other than 'L' or 'RGB' (e.g. RGBA, CMYK, palette)."""


def image_extensions() -> frozenset:
    """Lower-case file extensions (with dot) that PIL can open, as the official tools use."""
    PIL.Image.init()
    return frozenset(ext.lower() for ext in PIL.Image.registered_extensions())


def is_power_of_two(n: int) -> bool:
    return isinstance(n, (int, np.integer)) and n > 0 and (n & (n - 1)) == 0


def archive_name(idx: int) -> str:
    """Official output name of image ``idx``: ``00012/img00012345.png`` (1000 images per folder)."""
    s = f"{idx:08d}"
    return f"{s[:5]}/img{s}.png"


def read_labels_json(data: bytes, where: str) -> Optional[dict]:
    """Parse a ``dataset.json`` blob into ``{relpath: label}`` or ``None`` for ``"labels": null``."""
    try:
        meta = json.loads(data)
        labels = meta["labels"]
        if labels is None:
            return None
        return {str(name).replace("\\", "/"): label for name, label in labels}
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(
            f"{where}: expected JSON {{\"labels\": [[relpath, label], ...] or null}} ({exc})"
        ) from None


class ImageSource:
    """Sorted image files of a directory tree or a ZIP archive, plus their ``dataset.json`` labels.

    Args:
        path: directory or ``.zip`` file.
        path_order: sort directory entries by path components (as the official converter does
            with ``pathlib``); otherwise by plain relative-path strings (the official reader).
    Names use ``/`` separators relative to the root. The ZIP handle is opened lazily per process
    and may be shared by threads (``zipfile`` serialises reads on a shared handle).
    """

    def __init__(self, path: Union[str, os.PathLike], path_order: bool = False):
        self.path = os.fspath(path)
        exts = image_extensions()
        if os.path.isdir(self.path):
            self.kind = "dir"
            names = []
            for root, _dirs, files in os.walk(self.path):
                for f in files:
                    rel = os.path.relpath(os.path.join(root, f), self.path).replace(os.sep, "/")
                    names.append(rel)
        elif os.path.isfile(self.path) and zipfile.is_zipfile(self.path):
            self.kind = "zip"
            with zipfile.ZipFile(self.path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        else:
            raise DatasetError(f"{self.path}: expected a directory or a .zip archive of images")
        self._all_names = set(names)
        names = [n for n in names if os.path.splitext(n)[1].lower() in exts]
        self.names = sorted(names, key=(lambda n: n.split("/")) if path_order else None)
        self._zip = None
        self._zip_pid = None

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def where(self, name: str) -> str:
        """Human-readable location of ``name`` for error messages."""
        return f"{self.path}:{name}" if self.kind == "zip" else os.path.join(self.path, name)

    def read_bytes(self, name: str) -> bytes:
        if self.kind == "zip":
            return self._zipfile().read(name)
        with open(os.path.join(self.path, name), "rb") as f:
            return f.read()

    def labels(self) -> Optional[dict]:
        """``{relpath: label}`` from the root ``dataset.json``, or None if absent or null."""
        if "dataset.json" not in self._all_names:
            return None
        return read_labels_json(self.read_bytes("dataset.json"), self.where("dataset.json"))

    def open_image(self, name: str, decode: bool = True) -> PIL.Image.Image:
        """Open ``name`` with PIL; ``decode`` loads all pixels. Raises DatasetError naming the file."""
        try:
            img = PIL.Image.open(io.BytesIO(self.read_bytes(name)))
            if decode:
                img.load()
            return img
        except _DECODE_ERRORS as exc:
            raise CorruptImageError(f"{self.where(name)}: cannot read image ({exc})") from None

    def probe(self, name: str, decode: bool = False) -> Tuple[int, int, str]:
        """``(width, height, mode)`` of ``name`` from its header only (all pixels if ``decode``)."""
        try:
            if self.kind == "zip":
                stream = self._zipfile().open(name)
            else:
                stream = open(os.path.join(self.path, name), "rb")
            with stream, PIL.Image.open(stream) as img:
                if decode:
                    img.load()
                return img.width, img.height, img.mode
        except _DECODE_ERRORS as exc:
            raise CorruptImageError(f"{self.where(name)}: cannot read image ({exc})") from None

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __len__(self):
        return len(self.names)


def center_crop(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Central square of side ``min(H, W)`` (rows/cols ``(S - c)//2 : (S + c)//2``), LANCZOS to WxH."""
    h, w = img.shape[:2]
    c = min(h, w)
    img = img[(h - c) // 2:(h + c) // 2, (w - c) // 2:(w + c) // 2]
    return np.asarray(PIL.Image.fromarray(img).resize((width, height), PIL.Image.Resampling.LANCZOS))


def center_crop_wide(img: np.ndarray, width: int, height: int) -> Optional[np.ndarray]:
    """Official ``center-crop-wide``: returns a ``width x width`` letterboxed image or None (dropped).

    Steps: ``ch = round(width * H / W)`` (the height of the whole image scaled to ``width``); the
    image is dropped when ``W < width`` or ``ch < height``; rows ``(H - ch)//2 : (H + ch)//2`` of the
    *source* are kept (note: ``ch`` counts output-scale rows, a quirk kept for parity), resized with
    LANCZOS to ``width x height`` and pasted into rows ``(width - height)//2 : (width + height)//2``
    of a black ``width x width`` canvas.
    """
    h, w = img.shape[:2]
    ch = int(np.round(width * h / w))
    if w < width or ch < height:
        return None
    img = img[(h - ch) // 2:(h + ch) // 2]
    img = np.asarray(PIL.Image.fromarray(img).resize((width, height), PIL.Image.Resampling.LANCZOS))
    canvas = np.zeros((width, width) + img.shape[2:], dtype=np.uint8)
    canvas[(width - height) // 2:(width + height) // 2] = img
    return canvas


def _resize(img: np.ndarray, width: Optional[int], height: Optional[int]) -> np.ndarray:
    if width is None or (img.shape[1] == width and img.shape[0] == height):
        return img
    return np.asarray(PIL.Image.fromarray(img).resize((width, height), PIL.Image.Resampling.LANCZOS))


def _output_size(resolution, transform) -> Tuple[Optional[int], Optional[int]]:
    """Validate ``resolution``/``transform`` and return the (width, height) the transform targets."""
    if transform not in TRANSFORMS:
        raise DatasetError(f"transform={transform!r}: expected one of {TRANSFORMS}")
    if resolution is None:
        if transform is not None:
            raise DatasetError(f"transform={transform!r} requires resolution=")
        return None, None
    if isinstance(resolution, (int, np.integer)):
        width = int(resolution)
        height = width // 2 if transform == "center-crop-wide" else width
    elif isinstance(resolution, (tuple, list)) and len(resolution) == 2:
        width, height = (int(x) for x in resolution)
        if transform != "center-crop-wide" and width != height:
            raise DatasetError(f"resolution={resolution!r}: expected a square size (width == height)")
    else:
        raise DatasetError(f"resolution={resolution!r}: expected an int R (RxR) or (width, height)")
    if not is_power_of_two(width):
        raise DatasetError(f"resolution={resolution!r}: expected a power-of-two width")
    if not 0 < height <= width:
        raise DatasetError(f"resolution={resolution!r}: expected 0 < height <= width")
    return width, height


class DatasetWriter:
    """Write images in the official layout to ``dest`` (``*.zip`` or an absent/empty directory).

    Use as a context manager: everything goes to a temporary sibling, which ``close`` renames into
    place (``os.replace``); on an exception the temporary output is deleted.
    """

    def __init__(self, dest: Union[str, os.PathLike]):
        self.dest = os.path.abspath(os.fspath(dest))
        self.is_zip = self.dest.lower().endswith(".zip")
        parent = os.path.dirname(self.dest)
        if os.path.isdir(self.dest) and os.listdir(self.dest):
            raise DatasetError(f"dest {self.dest}: directory must be empty or absent")
        if self.is_zip and os.path.isdir(self.dest):
            raise DatasetError(f"dest {self.dest}: is a directory, expected a .zip file path")
        os.makedirs(parent, exist_ok=True)
        self.labels = []
        umask = os.umask(0)
        os.umask(umask)
        if self.is_zip:
            fd, self._tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-", suffix=".zip")
            os.close(fd)
            os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp's 0600 would survive os.replace
            self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_STORED)
        else:
            self._tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-dataset-")
            os.chmod(self._tmp, 0o777 & ~umask)

    def _put(self, name: str, data: bytes):
        if self.is_zip:
            self._zip.writestr(name, data, compress_type=zipfile.ZIP_STORED)
        else:
            path = os.path.join(self._tmp, *name.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)

    def add(self, idx: int, img: np.ndarray, label: Any = None):
        """Store uint8 ``img`` ([H, W] or [H, W, 1|3]) as ``archive_name(idx)`` with ``label``."""
        img = np.asarray(img)
        if img.dtype != np.uint8:
            raise DatasetError(f"image {idx}: expected uint8 pixels, got {img.dtype}")
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
            raise DatasetError(f"image {idx}: expected [H, W], [H, W, 1] or [H, W, 3], got {img.shape}")
        buf = io.BytesIO()
        PIL.Image.fromarray(img).save(buf, format="png", compress_level=0, optimize=False)
        name = archive_name(idx)
        self._put(name, buf.getvalue())
        self.labels.append([name, label])

    def close(self) -> bool:
        """Write ``dataset.json`` and move the output into place; returns whether labels were kept."""
        has_labels = all(lab is not None for _, lab in self.labels)
        meta = {"labels": self.labels if has_labels else None}
        self._put("dataset.json", json.dumps(meta).encode("utf-8"))
        if self.is_zip:
            self._zip.close()
        os.replace(self._tmp, self.dest)
        return has_labels

    def abort(self):
        if self.is_zip:
            self._zip.close()
            os.remove(self._tmp)
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def _load_array(src: ImageSource, name: str) -> np.ndarray:
    """Decode ``name`` to uint8 [H, W] ('L') or [H, W, 3] ('RGB'); DatasetError otherwise."""
    img = src.open_image(name, decode=True)
    if img.mode not in MODE_CHANNELS:
        raise ImageModeError(
            f"{src.where(name)}: unsupported image mode {img.mode!r}; expected 'L' (grayscale) or "
            "'RGB' (convert RGBA/CMYK/palette images first, or pass skip_bad=True)"
        )
    return np.asarray(img)


def _transform(arr, transform, width, height):
    if transform is None:
        return _resize(arr, width, height)
    if transform == "center-crop":
        return center_crop(arr, width, height)
    return center_crop_wide(arr, width, height)


def _check_output(where: str, arr: np.ndarray, first: Optional[tuple]) -> tuple:
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if h != w:
        raise DatasetError(f"{where}: image is {w}x{h} after transform; expected a square image "
                           "(use resolution= and/or transform='center-crop')")
    if not is_power_of_two(w):
        raise DatasetError(f"{where}: image is {w}x{h}; expected a power-of-two size "
                           "(use resolution=)")
    attrs = (w, channels)
    if first is not None and attrs != first:
        raise DatasetError(f"{where}: image is {w}x{h} with {channels} channel(s); expected "
                           f"{first[0]}x{first[0]} with {first[1]} like the first image "
                           "(use resolution= to resize all images)")
    return attrs


def convert_dataset(source, dest, resolution=None, transform: Optional[str] = None,
                    max_images: Optional[int] = None, skip_bad: bool = False) -> dict:
    """Convert a folder or ZIP of images into the official dataset format (see module docstring).

    Args:
        source: directory (recursive) or ``.zip`` of images, optional ``dataset.json`` labels.
        dest: output ``*.zip`` (ZIP_STORED) or a directory that is absent or empty.
        resolution: int R for RxR output (``center-crop-wide``: R wide, R/2 high, letterboxed), or
            ``(width, height)``; None keeps the native size (which must then be valid).
        transform: None, ``"center-crop"`` or ``"center-crop-wide"``.
        max_images: convert only the first N source images.
        skip_bad: skip (and count) unreadable images and images whose mode is not 'L'/'RGB'.
    Returns:
        dict with ``dest, num_images, num_source, resolution, channels, has_labels,
        skipped_corrupt, skipped_mode, dropped_too_small``.
    """
    width, height = _output_size(resolution, transform)
    if max_images is not None and (not isinstance(max_images, (int, np.integer)) or max_images < 1):
        raise DatasetError(f"max_images={max_images!r}: expected a positive int or None")
    src = ImageSource(source, path_order=True)
    names = src.names[:max_images] if max_images is not None else src.names
    if not names:
        raise DatasetError(f"{src.path}: no image files found")
    labels = src.labels() or {}
    counts = dict(skipped_corrupt=0, skipped_mode=0, dropped_too_small=0)
    first = None
    try:
        with DatasetWriter(dest) as writer:
            for idx, name in enumerate(names):
                try:
                    arr = _load_array(src, name)
                except (CorruptImageError, ImageModeError) as exc:
                    if not skip_bad:
                        raise
                    bad = "skipped_mode" if isinstance(exc, ImageModeError) else "skipped_corrupt"
                    counts[bad] += 1
                    continue
                arr = _transform(arr, transform, width, height)
                if arr is None:
                    counts["dropped_too_small"] += 1
                    continue
                first = _check_output(src.where(name), arr, first)
                writer.add(idx, arr, labels.get(name))
            if first is None:
                raise DatasetError(f"{src.path}: no usable images (all skipped or dropped)")
            has_labels = bool(writer.labels) and all(l is not None for _, l in writer.labels)
            num_images = len(writer.labels)
    finally:
        src.close()
    return dict(dest=os.path.abspath(os.fspath(dest)), num_images=num_images,
                num_source=len(names), resolution=first[0], channels=first[1],
                has_labels=has_labels, **counts)
