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
   skipped, named and counted with ``skip_bad``); unreadable/truncated files likewise;
3. transform: none (resize to ``resolution`` with PIL LANCZOS when the size differs),
   ``center-crop`` (central square of side min(H, W), then LANCZOS resize), or ``center-crop-wide``
   (official semantics, see :func:`center_crop_wide`; images that are too small are dropped);
4. check the result is square, power-of-two and has the size/channels of the first kept image
   (an error, or with ``skip_bad`` the image is skipped and named);
5. encode as an uncompressed PNG named after the source index (so dropped images leave gaps in
   the numbering, as in the official tool) and record the label.

Labels: the source's ``dataset.json`` must label every image or none, and only files of the
source (the official tool drops all labels when one is missing; here that is an error).
The destination (``*.zip`` or an absent or empty directory; an existing ``.zip`` only with
``force``) is written to a temporary sibling and moved into place with ``os.replace``; on any
error nothing is left behind. Messages name the file and the ``sg3keras dataset`` flags.
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

from sg3keras.data.zipcheck import ZIP_ERRORS, size_problem
from sg3keras.utils import fault_point

__all__ = [
    "DatasetError",
    "CorruptImageError",
    "ImageModeError",
    "ImageSource",
    "DatasetWriter",
    "check_dest",
    "convert_dataset",
    "decode_error_reason",
    "center_crop",
    "center_crop_wide",
    "image_extensions",
    "is_power_of_two",
    "archive_name",
    "read_labels_json",
]

TRANSFORMS = (None, "center-crop", "center-crop-wide")
MODE_CHANNELS = {"L": 1, "RGB": 3}
_DECODE_ERRORS = (SyntaxError, PIL.Image.DecompressionBombError) + ZIP_ERRORS  # OSError, ...


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


def decode_error_reason(exc: BaseException, size: Optional[int] = None) -> str:
    """Why an image could not be read, in words (no Python object reprs)."""
    if size == 0:
        return "empty file (0 bytes)"
    if isinstance(exc, zipfile.BadZipFile):
        return f"damaged zip member ({exc})"
    if isinstance(exc, PIL.UnidentifiedImageError):
        return "not an image file PIL can read"
    msg = str(exc) or type(exc).__name__
    return msg.split(" <", 1)[0] if " object at 0x" in msg else msg


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
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
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
        elif os.path.isfile(self.path):
            self.kind = "zip"
            names = _zip_names(self.path)
        elif not os.path.exists(self.path):
            raise DatasetError(f"{self.path}: no such file or directory; expected a directory or "
                               "a .zip archive of images")
        else:
            raise DatasetError(f"{self.path}: expected a directory or a .zip archive of images")
        self._all_names = set(names)
        names = [n for n in names if os.path.splitext(n)[1].lower() in exts]
        self.names = sorted(names, key=(lambda n: n.split("/")) if path_order else None)
        self._zip = None
        self._zip_pid = None

    def read_image_bytes(self, name: str) -> bytes:
        """``read_bytes`` with a damaged zip member or unreadable file as CorruptImageError."""
        try:
            return self.read_bytes(name)
        except ZIP_ERRORS as exc:
            raise CorruptImageError(f"{self.where(name)}: cannot read image "
                                    f"({decode_error_reason(exc)}); expected a readable image "
                                    "file") from None

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def where(self, name: str) -> str:
        """Human-readable location of ``name`` for error messages."""
        return f"{self.path}:{name}" if self.kind == "zip" else os.path.join(self.path, name)

    def read_bytes(self, name: str) -> bytes:
        if self.kind == "zip":      # sizes checked against the archive first (no zip bombs)
            info = self._zipfile().getinfo(name)
            problem = size_problem(info, os.path.getsize(self.path))
            if problem:
                raise zipfile.BadZipFile(problem)
            return self._zipfile().read(info)
        with open(os.path.join(self.path, name), "rb") as f:
            return f.read()

    def labels(self) -> Optional[dict]:
        """``{relpath: label}`` from the root ``dataset.json``, or None if absent or null."""
        if "dataset.json" not in self._all_names:
            return None
        try:
            data = self.read_bytes("dataset.json")
        except ZIP_ERRORS as exc:
            raise DatasetError(f"{self.where('dataset.json')}: cannot read it "
                               f"({decode_error_reason(exc)}); expected a readable JSON file") \
                from None
        return read_labels_json(data, self.where("dataset.json"))

    def open_image(self, name: str, decode: bool = True) -> PIL.Image.Image:
        """Open ``name`` with PIL; ``decode`` loads all pixels. Raises DatasetError naming the file."""
        data = self.read_image_bytes(name)
        try:
            img = PIL.Image.open(io.BytesIO(data))
            if decode:
                img.load()
            return img
        except _DECODE_ERRORS as exc:
            raise CorruptImageError(f"{self.where(name)}: cannot read image "
                                    f"({decode_error_reason(exc, len(data))}); expected a "
                                    "readable image file") from None

    def probe(self, name: str, decode: bool = False) -> Tuple[int, int, str]:
        """``(width, height, mode)`` of ``name`` from its header only; ``decode``: read every
        byte (zip CRC checked) and decode all pixels."""
        if decode:
            img = self.open_image(name, decode=True)
            return img.width, img.height, img.mode
        try:
            if self.kind == "zip":
                stream = self._zipfile().open(name)
            else:
                stream = open(os.path.join(self.path, name), "rb")
            with stream, PIL.Image.open(stream) as img:
                return img.width, img.height, img.mode
        except _DECODE_ERRORS as exc:
            size = self._size(name)
            raise CorruptImageError(f"{self.where(name)}: cannot read image "
                                    f"({decode_error_reason(exc, size)}); expected a readable "
                                    "image file") from None

    def _size(self, name: str) -> Optional[int]:
        try:
            if self.kind == "zip":
                return self._zipfile().getinfo(name).file_size
            return os.path.getsize(os.path.join(self.path, name))
        except (OSError, KeyError, zipfile.BadZipFile):
            return None

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __len__(self):
        return len(self.names)


def _zip_names(path: str) -> list:
    """File names in the archive ``path``, or a DatasetError saying why it is not one."""
    if os.path.getsize(path) == 0:
        raise DatasetError(f"{path}: empty file (0 bytes); expected a directory or a .zip "
                           "archive of images")
    with open(path, "rb") as f:
        magic = f.read(4)
    try:
        with zipfile.ZipFile(path) as zf:
            return [n for n in zf.namelist() if not n.endswith("/")]
    except ZIP_ERRORS as exc:
        if path.lower().endswith(".zip") or magic.startswith(b"PK"):
            raise DatasetError(f"{path}: not a readable .zip archive ({exc}; truncated or "
                               "damaged?); expected a complete .zip of images") from None
        raise DatasetError(f"{path}: expected a directory or a .zip archive of images") from None


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
        raise DatasetError(f"--transform {transform!r}: expected one of "
                           f"{', '.join(t for t in TRANSFORMS if t)}")
    if resolution is None:
        if transform is not None:
            raise DatasetError(f"--transform {transform} requires --resolution (the output size)")
        return None, None
    if isinstance(resolution, (int, np.integer)):
        width = int(resolution)
        height = width // 2 if transform == "center-crop-wide" else width
    elif isinstance(resolution, (tuple, list)) and len(resolution) == 2:
        width, height = (int(x) for x in resolution)
        if transform != "center-crop-wide" and width != height:
            raise DatasetError(f"--resolution {resolution!r}: expected a square size "
                               "(width == height)")
    else:
        raise DatasetError(f"--resolution {resolution!r}: expected an int R (RxR) or "
                           "(width, height)")
    if not is_power_of_two(width):
        raise DatasetError(f"--resolution {resolution!r}: expected a power of two (e.g. 64, 256, "
                           "1024)")
    if not 0 < height <= width:
        raise DatasetError(f"--resolution {resolution!r}: expected 0 < height <= width")
    return width, height


def _make_parents(path: str) -> list:
    """Create the missing parent directories of ``path``; return them, outermost first.

    A parent that exists but is not a directory is a DatasetError naming it."""
    missing, d = [], os.path.dirname(path)
    while d and not os.path.exists(d):
        missing.append(d)
        d = os.path.dirname(d)
    if d and not os.path.isdir(d):
        raise DatasetError(f"--dest {path}: {d} is a file, expected a directory")
    for m in reversed(missing):
        os.mkdir(m)
    return list(reversed(missing))


def check_dest(dest: Union[str, os.PathLike], force: bool = False) -> str:
    """Absolute ``dest`` if it may be written: a ``*.zip`` path that does not exist (or does,
    with ``force``), or a directory that is absent or empty. DatasetError otherwise."""
    dest = os.path.abspath(os.fspath(dest))
    is_zip = dest.lower().endswith(".zip")
    if is_zip and os.path.isdir(dest):
        raise DatasetError(f"--dest {dest}: is a directory, expected a .zip file path")
    if is_zip and os.path.lexists(dest) and not force:
        raise DatasetError(f"--dest {dest}: already exists; pass --force to replace it")
    if not is_zip and os.path.lexists(dest) and not os.path.isdir(dest):
        raise DatasetError(f"--dest {dest}: exists and is not a directory; expected a .zip path "
                           "or an absent or empty directory")
    if not is_zip and os.path.isdir(dest) and os.listdir(dest):
        raise DatasetError(f"--dest {dest}: directory must be empty or absent (or give a .zip "
                           "path)")
    parent = os.path.dirname(dest)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise DatasetError(f"--dest {dest}: {parent} is a file, expected a directory")
    return dest


class DatasetWriter:
    """Write images in the official layout to ``dest`` (``*.zip`` or an absent/empty directory;
    an existing ``*.zip`` only with ``force``).

    Use as a context manager: everything goes to a temporary sibling, which ``close`` renames into
    place (``os.replace``); on an exception the temporary output, and any parent directory
    created for it, is deleted.
    """

    def __init__(self, dest: Union[str, os.PathLike], force: bool = False):
        self.dest = check_dest(dest, force)
        self.is_zip = self.dest.lower().endswith(".zip")
        parent = os.path.dirname(self.dest)
        self._made = _make_parents(self.dest)
        self.labels = []
        umask = os.umask(0)
        os.umask(umask)
        self._tmp = self._zip = None
        try:
            if self.is_zip:
                fd, self._tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-", suffix=".zip")
                os.close(fd)
                os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp's 0600 would survive os.replace
                self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_STORED)
            else:
                self._tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-dataset-")
                os.chmod(self._tmp, 0o777 & ~umask)
        except BaseException:
            self.abort()
            raise

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
        fault_point("dataset.mid", self.dest)

    def close(self) -> bool:
        """Write ``dataset.json`` and move the output into place; returns whether labels were kept.

        If the move fails, the temporary output is removed and the error raised."""
        has_labels = all(lab is not None for _, lab in self.labels)
        meta = {"labels": self.labels if has_labels else None}
        try:
            self._put("dataset.json", json.dumps(meta).encode("utf-8"))
            if self.is_zip:
                self._zip.close()
            fault_point("dataset.before_rename", self.dest)
            os.replace(self._tmp, self.dest)
        except BaseException:
            self.abort()
            raise
        return has_labels

    def abort(self):
        """Remove the temporary output and the parent directories this writer created."""
        if self._zip is not None:
            try:
                self._zip.close()
            except OSError:     # its buffer cannot be flushed either (a full disk)
                pass
        if self._tmp is not None and os.path.isdir(self._tmp):
            shutil.rmtree(self._tmp, ignore_errors=True)
        elif self._tmp is not None and os.path.exists(self._tmp):
            os.remove(self._tmp)
        for d in reversed(self._made):
            try:
                os.rmdir(d)
            except OSError:
                break

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
            "'RGB' (convert RGBA/CMYK/palette images to RGB first, or pass --skip-bad)"
        )
    return np.asarray(img)


def _transform(arr, transform, width, height):
    if transform is None:
        return _resize(arr, width, height)
    if transform == "center-crop":
        return center_crop(arr, width, height)
    return center_crop_wide(arr, width, height)


def _check_output(where: str, arr: np.ndarray, first: Optional[tuple]) -> tuple:
    """``(size, channels)`` of a transformed image; DatasetError unless it is square, a power of
    two and (``first = (size, channels, name)``) like the first kept image."""
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if h != w:
        raise DatasetError(f"{where}: image is {w}x{h}; expected a square image (pass "
                           "--resolution R --transform center-crop to crop and resize)")
    if not is_power_of_two(w):
        raise DatasetError(f"{where}: image is {w}x{h}; expected a power-of-two size (pass "
                           "--resolution R to resize every image)")
    if first is not None and w != first[0]:
        raise DatasetError(f"{where}: image is {w}x{h}; expected {first[0]}x{first[0]} like the "
                           f"first image {first[2]} (pass --resolution R to resize every image, "
                           "or --skip-bad)")
    if first is not None and channels != first[1]:
        kinds = {1: "grayscale", 3: "RGB"}
        raise DatasetError(f"{where}: {kinds[channels]} image ({channels} channel(s)); expected "
                           f"{first[1]} channel(s) like the first image {first[2]} (convert it to "
                           f"{kinds[first[1]]}, or pass --skip-bad)")
    return w, channels


def check_labels(labels: Optional[dict], all_names, names, where: str, what="source",
                 unlabelled_hint="\"labels\": null for an unlabelled dataset"):
    """Every image of ``names`` has a label and every label names an image of ``all_names``
    (the reader and the dataset tool share this check; ``what`` / ``unlabelled_hint`` word it)."""
    if labels is None:
        return
    extra = sorted(set(labels) - set(all_names))
    if extra:
        raise DatasetError(f"{where}: label for {extra[0]!r}, which is not an image file of the "
                           f"{what} ({len(extra)} such entries); expected one entry per image")
    missing = [n for n in names if n not in labels]
    if missing:
        raise DatasetError(f"{where}: no label for image {missing[0]!r} ({len(missing)} of "
                           f"{len(names)} unlabelled); expected a label for every image (or "
                           f"{unlabelled_hint})")


def convert_dataset(source, dest, resolution=None, transform: Optional[str] = None,
                    max_images: Optional[int] = None, skip_bad: bool = False,
                    force: bool = False) -> dict:
    """Convert a folder or ZIP of images into the official dataset format (see module docstring).

    Args:
        source: directory (recursive) or ``.zip`` of images, optional ``dataset.json`` labels.
        dest: output ``*.zip`` (ZIP_STORED) or a directory that is absent or empty.
        resolution: int R for RxR output (``center-crop-wide``: R wide, R/2 high, letterboxed), or
            ``(width, height)``; None keeps the native size (which must then be valid).
        transform: None, ``"center-crop"`` or ``"center-crop-wide"``.
        max_images: convert only the first N source images.
        skip_bad: skip unreadable images, images whose mode is not 'L'/'RGB' and images whose
            size or channel count differs from the first kept image (each is named in
            ``skipped``) instead of raising.
        force: replace an existing ``*.zip`` destination.
    Returns:
        dict with ``dest, num_images, num_source, resolution, channels, has_labels,
        skipped_corrupt, skipped_mode, skipped_mismatch, dropped_too_small`` and ``skipped``
        (``[{"file", "reason"}]`` for every skipped or dropped image).
    """
    width, height = _output_size(resolution, transform)
    if max_images is not None and (not isinstance(max_images, (int, np.integer)) or max_images < 1):
        raise DatasetError(f"--max-images {max_images!r}: expected a positive integer")
    check_dest(dest, force)
    src = ImageSource(source, path_order=True)
    try:
        return _convert(src, dest, width, height, transform, max_images, skip_bad, force)
    finally:
        src.close()


def _convert(src, dest, width, height, transform, max_images, skip_bad, force):
    names = src.names[:max_images] if max_images is not None else src.names
    if not names:
        raise DatasetError(f"{src.path}: no image files found; expected images with an extension "
                           "PIL can open (.png, .jpg, ...)")
    labels = src.labels()
    check_labels(labels, src.names, names, src.where("dataset.json"))
    labels = labels or {}
    counts = dict(skipped_corrupt=0, skipped_mode=0, skipped_mismatch=0, dropped_too_small=0)
    skipped = []
    first = None
    with DatasetWriter(dest, force=force) as writer:
        for idx, name in enumerate(names):
            where = src.where(name)
            try:
                arr = _transform(_load_array(src, name), transform, width, height)
                if arr is None:
                    counts["dropped_too_small"] += 1
                    skipped.append(dict(file=where, reason="too small for --transform "
                                                           "center-crop-wide (dropped)"))
                    continue
                attrs = _check_output(where, arr, first)
            except DatasetError as exc:
                if not skip_bad and isinstance(exc, CorruptImageError):
                    raise CorruptImageError(f"{exc} (fix or remove it, or pass --skip-bad)") \
                        from None
                if not skip_bad:
                    raise
                kind = ("corrupt" if isinstance(exc, CorruptImageError) else
                        "mode" if isinstance(exc, ImageModeError) else "mismatch")
                counts[f"skipped_{kind}"] += 1
                skipped.append(dict(file=where, reason=str(exc)[len(where) + 2:]))
                continue
            first = first or attrs + (where,)
            writer.add(idx, arr, labels.get(name))
        if first is None:
            why = f"; the first, {skipped[0]['file']}: {skipped[0]['reason']}" if skipped else ""
            raise DatasetError(f"{src.path}: no usable images (all {len(names)} skipped or "
                               f"dropped{why}); expected at least one")
        has_labels = bool(writer.labels) and all(l is not None for _, l in writer.labels)
        num_images = len(writer.labels)
    return dict(dest=writer.dest, num_images=num_images, num_source=len(names),
                resolution=first[0], channels=first[1], has_labels=has_labels, **counts,
                skipped=skipped)
