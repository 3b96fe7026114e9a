"""Read official-format image datasets (ZIP or folder) as numpy arrays and as ``tf.data`` pipelines.

:class:`ImageDataset` mirrors the official ``ImageFolderDataset``:

* images are the files with an image extension, sorted by relative path; ``dataset.json``
  labels (``{"labels": [[relpath, label], ...]}``) become one-hot float32 vectors for integer
  labels (``label_dim = max + 1``) or float32 vectors for list labels;
* on open every header is checked with PIL (no pixel decoding unless ``verify=True``): one square,
  power-of-two resolution and one channel count (mode 'L' = 1, 'RGB' = 3). Errors name the file;
  ``skip_bad=True`` skips unreadable / wrong-mode files and counts them in ``num_skipped``;
* nothing is ever resized: a decoded image of another shape is an error;
* training reals are ``uint8 / 127.5 - 1`` float32 NHWC; metrics read native uint8
  (:meth:`ImageDataset.iter_uint8`, never flipped).

**Data order and resuming.** :meth:`ImageDataset.make_tf_dataset` defines one global stream of
item positions ``q = 0, 1, 2, ...``. With ``M = len(dataset) * (2 if mirror else 1)`` items per
epoch, position ``q`` maps to item ``perm_e(q mod M)`` of epoch ``e = q // M``, where ``perm_e`` is
a stateless pseudorandom permutation seeded by ``(seed, e)`` (``tf.random.experimental.
index_shuffle``; identity when ``shuffle=False``). Item ``i < n`` is image ``i``; item ``i >= n``
is image ``i - n`` flipped along x (official ``--mirror``). Global batch ``k`` holds positions
``[k*B, (k+1)*B)``. To resume training after ``k`` optimizer steps (global batches), build the
dataset with the same ``batch_size``/``seed``/``mirror``/``shuffle`` and ``start_batch=k``
(``k = cur_nimg // batch_size``): it yields exactly the batches the uninterrupted stream would have
yielded from step ``k`` on. Under ``tf.distribute`` (``input_context``), pipeline ``p`` of ``P``
takes positions ``q = p (mod P)`` and yields per-replica batches, so the pipelines of one global
step together hold exactly global batch ``k``.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf

from sg3keras.data.dataset_tool import (
    MODE_CHANNELS,
    CorruptImageError,
    DatasetError,
    ImageModeError,
    ImageSource,
    check_labels,
    is_power_of_two,
)

__all__ = ["ImageDataset", "DatasetError"]

_TF_DECODABLE = (".png", ".jpg", ".jpeg", ".bmp")
MAX_CLASSES = 1 << 20     # class labels index one-hot vectors of max(label) + 1 floats


def _parse_labels(raw: Optional[dict], names, where: str, all_names=None):
    """Raw labels aligned with ``names``: int64 [n] class indices, float32 [n, d], or None.

    Every image needs a label, and every label must name an image file of ``all_names``."""
    if raw is None:
        return None
    check_labels(raw, names if all_names is None else all_names, names, where, what="dataset",
                 unlabelled_hint="\"labels\": null, or train with --cond 0")
    values = [raw[n] for n in names]
    if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                      for v in values):
        if min(values) < 0:
            raise DatasetError(f"{where}: class labels must be >= 0, got {int(min(values))}")
        if max(values) >= MAX_CLASSES:       # the one-hot vectors are max + 1 long
            raise DatasetError(f"{where}: class label {int(max(values))} is too large; expected "
                               f"class indices below {MAX_CLASSES}")
        return np.array(values, np.int64)
    try:
        arr = np.array(values)
    except ValueError:
        arr = np.array(values, dtype=object)
    if arr.ndim == 2 and arr.dtype != object and np.issubdtype(arr.dtype, np.number):
        return arr.astype(np.float32)
    raise DatasetError(f"{where}: expected integer class labels or equal-length float vectors")


class ImageDataset:
    """An official-format dataset (``.zip`` or folder of images with optional ``dataset.json``).

    Args:
        path: ZIP archive or directory.
        resolution: expected resolution (None: taken from the first image). Never resized.
        use_labels: read ``dataset.json`` labels (False: unconditional, ``label_dim == 0``).
        skip_bad: skip unreadable files and images whose mode is not 'L'/'RGB' (counted in
            ``num_skipped``) instead of raising.
        verify: read and decode every image once on open (slow; also catches truncated
            files and damaged zip members).

    Example:
        >>> ds = ImageDataset("ffhq-256.zip")
        >>> tfds = ds.make_tf_dataset(batch_size=32, mirror=True, seed=0, start_batch=0)
        >>> images, labels = next(iter(tfds))   # [32, 256, 256, 3] in [-1, 1], [32, c_dim]
    """

    def __init__(self, path, resolution: Optional[int] = None, use_labels: bool = True,
                 skip_bad: bool = False, verify: bool = False):
        self.path = os.fspath(path)
        self.use_labels = use_labels
        self.skip_bad = skip_bad
        self.verify = verify
        self.source = ImageSource(self.path)
        self.num_skipped = {"corrupt": 0, "mode": 0}
        self.names = self._scan(resolution)
        raw = self.source.labels() if use_labels else None
        self._labels = _parse_labels(raw, self.names, self.source.where("dataset.json"),
                                     self.source.names)
        self._label_dim = 0
        if self._labels is not None:
            is_class = self._labels.dtype == np.int64
            self._label_dim = int(self._labels.max()) + 1 if is_class else self._labels.shape[1]

    def _scan(self, resolution):
        names, first, first_name = [], None, None
        for name in self.source.names:
            try:
                w, h, mode = self.source.probe(name, decode=self.verify)
                if mode not in MODE_CHANNELS:
                    raise ImageModeError(f"{self.source.where(name)}: unsupported image mode "
                                         f"{mode!r}; expected 'L' (grayscale) or 'RGB'")
            except (CorruptImageError, ImageModeError) as exc:
                if not self.skip_bad:
                    raise
                self.num_skipped["mode" if isinstance(exc, ImageModeError) else "corrupt"] += 1
                continue
            where = self.source.where(name)
            if w != h or not is_power_of_two(w):
                raise DatasetError(f"{where}: image is {w}x{h}; expected a square power-of-two "
                                   "size (re-create the dataset with `sg3keras dataset "
                                   "--resolution R`)")
            attrs = (w, MODE_CHANNELS[mode])
            if first is None:
                first, first_name = attrs, where
                if resolution is not None and w != resolution:
                    raise DatasetError(f"{where}: image is {w}x{h}; expected {resolution}x"
                                       f"{resolution} (images are never resized; re-create the "
                                       f"dataset with `sg3keras dataset --resolution "
                                       f"{resolution}`)")
            elif attrs != first:
                raise DatasetError(f"{where}: image is {w}x{h} with {attrs[1]} channel(s); "
                                   f"expected {first[0]}x{first[0]} with {first[1]} like the "
                                   f"first image {first_name} (re-create the dataset with "
                                   "`sg3keras dataset`, which resizes with --resolution and "
                                   "skips odd images with --skip-bad)")
            names.append(name)
        if not names:
            raise DatasetError(f"{self.path}: no usable images found; expected square "
                               "power-of-two PNG/JPEG images (see `sg3keras dataset`)")
        self._resolution, self._channels = first
        return names

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(os.path.normpath(self.path)))[0]

    @property
    def resolution(self) -> int:
        return self._resolution

    @property
    def num_channels(self) -> int:
        return self._channels

    @property
    def image_shape(self):
        return (self._resolution, self._resolution, self._channels)

    @property
    def has_labels(self) -> bool:
        return self._labels is not None

    @property
    def label_dim(self) -> int:
        return self._label_dim

    def __len__(self) -> int:
        return len(self.names)

    # ------------------------------------------------------------------ numpy access
    def get_image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 [H, W, C] at native resolution."""
        name = self.names[i]
        img = np.asarray(self.source.open_image(name, decode=True))
        if img.ndim == 2:
            img = img[:, :, np.newaxis]
        if img.shape != self.image_shape:
            raise DatasetError(f"{self.source.where(name)}: decoded shape {img.shape}; expected "
                               f"{self.image_shape}")
        return img

    def get_label(self, i: int) -> np.ndarray:
        """Label ``i`` as float32 [label_dim] (one-hot for class labels; [0] without labels)."""
        if self._labels is None:
            return np.zeros([0], np.float32)
        if self._labels.dtype == np.int64:
            onehot = np.zeros([self.label_dim], np.float32)
            onehot[self._labels[i]] = 1
            return onehot
        return self._labels[i].copy()

    def get_labels(self, indices) -> np.ndarray:
        return np.stack([self.get_label(int(i)) for i in indices]).reshape(-1, self.label_dim)

    def sample_labels(self, n: int, rng) -> np.ndarray:
        """``n`` labels of uniformly drawn dataset images, float32 [n, label_dim].

        ``rng``: ``np.random.Generator``, ``np.random.RandomState`` or an int seed.
        """
        if not isinstance(rng, (np.random.Generator, np.random.RandomState)):
            rng = np.random.default_rng(rng)
        draw = rng.integers if isinstance(rng, np.random.Generator) else rng.randint
        return self.get_labels(draw(0, len(self), size=n))

    def iter_uint8(self, batch_size: int, max_items: Optional[int] = None) -> Iterator[np.ndarray]:
        """Images in dataset order as uint8 [b, H, W, C] batches (last one may be short); no flip."""
        if batch_size < 1:
            raise DatasetError(f"batch_size={batch_size}: expected >= 1")
        n = len(self) if max_items is None else min(max_items, len(self))
        for start in range(0, n, batch_size):
            yield np.stack([self.get_image(i) for i in range(start, min(start + batch_size, n))])

    # ------------------------------------------------------------------ tf.data
    def _read_fn(self):
        """``raw index -> encoded bytes`` as a TF function."""
        if self.source.kind == "dir":
            paths = tf.constant([os.path.join(self.path, *n.split("/")) for n in self.names])
            return lambda i: tf.io.read_file(tf.gather(paths, i))

        def read(i):
            return np.array(self.source.read_image_bytes(self.names[int(i)]), dtype=object)

        return lambda i: tf.reshape(tf.numpy_function(read, [i], tf.string, stateful=False), [])

    def _decode_fn(self):
        """``(raw index, bytes) -> uint8 [H, W, C]``, checked against the dataset shape."""
        shape, c = self.image_shape, self._channels
        names = tf.constant([self.source.where(n) for n in self.names])
        tf_ok = all(os.path.splitext(n)[1].lower() in _TF_DECODABLE for n in self.names)

        def pil_decode(i):
            return self.get_image(int(i))

        def decode(i, data):
            if tf_ok:
                img = tf.io.decode_image(data, channels=c, dtype=tf.uint8, expand_animations=False)
            else:
                img = tf.numpy_function(pil_decode, [i], tf.uint8, stateful=False)
            ok = tf.reduce_all(tf.equal(tf.shape(img), tf.constant(shape, tf.int32)))
            check = tf.debugging.Assert(ok, [tf.gather(names, i), "decoded shape", tf.shape(img),
                                             f"expected {shape}; images are never resized"])
            with tf.control_dependencies([check]):
                return tf.ensure_shape(tf.identity(img), shape)

        return decode

    def _label_fn(self):
        if self._labels is None:
            return lambda i: tf.zeros([0], tf.float32)
        table = tf.constant(self._labels)
        if self._labels.dtype == np.int64:
            depth = self.label_dim
            return lambda i: tf.one_hot(tf.gather(table, i), depth, dtype=tf.float32)
        return lambda i: tf.gather(table, i)

    def make_tf_dataset(self, batch_size: int, shuffle: bool = True, seed: int = 0,
                        mirror: bool = False, repeat: bool = True, input_context=None,
                        start_batch: int = 0, num_parallel_calls=tf.data.AUTOTUNE) -> tf.data.Dataset:
        """``tf.data.Dataset`` of ``(images float32 [b, H, W, C] in [-1, 1], labels [b, c_dim])``.

        Steps: global positions (see module docstring; from ``start_batch * batch_size``, strided
        per input pipeline) -> item index via the seeded per-epoch permutation -> read file ->
        decode (never resized) -> x-flip for mirrored items -> ``x / 127.5 - 1`` -> batch
        (``drop_remainder=repeat``) -> prefetch.

        Args:
            batch_size: global batch size B (per-replica batch comes from ``input_context``).
            shuffle: shuffle each epoch with a permutation seeded by ``(seed, epoch)``.
            seed: shuffle seed.
            mirror: official ``--mirror``: length doubles, item ``i >= n`` is image ``i-n`` flipped.
            repeat: infinite stream of full batches; False: one epoch, last batch may be short.
            input_context: ``tf.distribute.InputContext`` to shard by input pipeline.
            start_batch: skip the first ``start_batch`` global batches (resume position).
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DatasetError(f"batch_size={batch_size!r}: expected a positive int")
        if not isinstance(start_batch, (int, np.integer)) or start_batch < 0:
            raise DatasetError(f"start_batch={start_batch!r}: expected an int >= 0")
        n = len(self)
        m = n * (2 if mirror else 1)
        pipes, pipe_id, local_batch = 1, 0, int(batch_size)
        if input_context is not None:
            pipes, pipe_id = input_context.num_input_pipelines, input_context.input_pipeline_id
            local_batch = input_context.get_per_replica_batch_size(int(batch_size))
        start = int(start_batch) * int(batch_size) + pipe_id
        if repeat:
            pos = tf.data.Dataset.counter(start=start, step=pipes, dtype=tf.int64)
        else:
            pos = tf.data.Dataset.range(start, m, pipes, output_type=tf.int64)
        seed_t = tf.constant(int(seed), tf.int64)

        def item(q):
            epoch, j = q // m, q % m
            if shuffle:
                j = tf.random.experimental.index_shuffle(
                    j, seed=tf.stack([seed_t, epoch]), max_index=tf.constant(m - 1, tf.int64))
            return j % n, j >= n

        read, decode, label = self._read_fn(), self._decode_fn(), self._label_fn()

        def load(raw, flip):
            img = decode(raw, read(raw))
            img = tf.cond(flip, lambda: tf.reverse(img, axis=[1]), lambda: img)
            return tf.cast(img, tf.float32) / 127.5 - 1.0, label(raw)

        ds = pos.map(item).map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
        ds = ds.batch(local_batch, drop_remainder=repeat)
        return ds.prefetch(tf.data.AUTOTUNE)

    def close(self):
        self.source.close()
