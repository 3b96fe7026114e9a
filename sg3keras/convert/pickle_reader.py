"""Read official NVlabs network pickles as data: numpy only, no torch, no code execution.

An official snapshot (``network-snapshot-*.pkl``) is a plain pickle of
``dict(G, D, G_ema, augment_pipe, training_set_kwargs)`` in which every network module is a
``torch_utils.persistence`` object (its defining source text plus its ``__dict__``) and every tensor
is a ``torch._utils._rebuild_tensor_v2`` call over a storage given as a legacy ``torch.save`` byte
stream. This module decodes that format with a restricted unpickler:

1. ``find_class`` resolves only an explicit allow-list; any other global raises
   :class:`UnsafePickleError` (nothing is imported, the embedded ``module_src`` is never executed).
2. A persistent object becomes a stub holding ``class_name`` and its ``state`` dict.
3. Each storage byte stream is parsed by :func:`_parse_storage_stream` (five pickles, then raw
   little-endian element data) with a nested unpickler that allows only ``torch.<Type>Storage``.
4. Tensors become numpy arrays (bounds-checked strided view over the storage, then copied).
5. Stubs are turned into :class:`OfficialModule` trees; ``EasyDict``/``OrderedDict`` become
   ``dict`` and numpy scalars Python scalars in metadata.

Public: :func:`read_official_pickle`, :class:`OfficialModule`, :class:`PickleFormatError`,
:class:`UnsafePickleError`.
"""

import dataclasses
import hashlib
import io
import os
import pickle
import pickletools
import re

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core import multiarray as _np_multiarray

__all__ = ["read_official_pickle", "OfficialModule", "PickleFormatError", "UnsafePickleError"]

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL = 1001

# torch legacy storage class name -> numpy dtype of its elements. BFloat16 is read as raw uint16
# and widened to float32 exactly (numpy has no bfloat16).
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}

_PLACEHOLDER_MODULE_RE = re.compile(r"source text of module '([\w.]+)'")
_STATE_SKIP = ("training", "_parameters", "_buffers", "_non_persistent_buffers_set", "_modules",
               "_init_args", "_init_kwargs")


class PickleFormatError(ValueError):
    """The file is not a readable official network pickle (truncated, wrong format, bad sizes)."""


class UnsafePickleError(PickleFormatError):
    """The pickle references a global (callable/class) outside the allow-list."""


@dataclasses.dataclass
class OfficialModule:
    """One ``torch.nn.Module`` of an official pickle, as plain data.

    Attributes:
        class_name: the persistent class name, e.g. ``"Generator"``.
        module_name: defining module if recoverable (from a placeholder source line), else None.
        module_src_sha256: sha256 of the embedded source text (never executed), or None.
        init_args / init_kwargs: constructor arguments (``_init_args`` / ``_init_kwargs``),
            plain Python containers and scalars (numpy arrays are kept).
        attrs: the other plain attributes of the module (ints, floats, str, lists, arrays, ...).
        parameters / buffers: direct tensors as numpy arrays (``None`` entries are kept out).
        non_persistent_buffers: names of buffers that ``state_dict`` leaves out.
        children: sub-modules by attribute name, in registration order.
        training: the module's ``training`` flag.
    """

    class_name: str
    module_name: str = None
    module_src_sha256: str = None
    init_args: tuple = ()
    init_kwargs: dict = dataclasses.field(default_factory=dict)
    attrs: dict = dataclasses.field(default_factory=dict)
    parameters: dict = dataclasses.field(default_factory=dict)
    buffers: dict = dataclasses.field(default_factory=dict)
    non_persistent_buffers: frozenset = frozenset()
    children: dict = dataclasses.field(default_factory=dict)
    training: bool = False

    def state_dict(self, prefix=""):
        """Tensors by dotted name, in torch ``state_dict`` order: parameters, persistent buffers,
        then each child recursively (``<child>.<name>``)."""
        out = dict()
        for name, value in self.parameters.items():
            out[prefix + name] = value
        for name, value in self.buffers.items():
            if name not in self.non_persistent_buffers:
                out[prefix + name] = value
        for name, child in self.children.items():
            out.update(child.state_dict(prefix + name + "."))
        return out


class _PersistentStub:
    """What ``_reconstruct_persistent_obj(meta)`` returns during unpickling; refuses BUILD."""

    __slots__ = ("meta",)

    def __init__(self, meta):
        self.meta = meta

    def __setstate__(self, state):
        raise UnsafePickleError("a persistent object received extra state (BUILD opcode); "
                                "official pickles never do this")


class _StorageRef:
    """Placeholder for the storage persistent id inside a legacy torch.save stream."""

    def __init__(self, key, type_name, numel, view):
        self.key, self.type_name, self.numel, self.view = key, type_name, numel, view
        self.dtype = np.dtype(_STORAGE_DTYPES[type_name]).newbyteorder("<")


_NDARRAY = object()  # stand-in for numpy.ndarray: only usable as _reconstruct's subtype argument


def _check_dtype(dt, where):
    if dt.hasobject:
        raise UnsafePickleError(f"{where}: object arrays/dtypes are not allowed in a network pickle")
    return dt


def _np_dtype(*args):
    return _check_dtype(np.dtype(*args), "numpy.dtype")


def _np_reconstruct(subtype, shape, dtype):
    if subtype is not _NDARRAY:
        raise UnsafePickleError(f"numpy _reconstruct with subtype {subtype!r}; only numpy.ndarray")
    _check_dtype(np.dtype(dtype), "numpy _reconstruct")
    return _np_multiarray._reconstruct(np.ndarray, shape, dtype)


def _np_scalar(dtype, *data):
    _check_dtype(dtype, "numpy scalar")
    return _np_multiarray.scalar(dtype, *data)


def _codecs_encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is allowed only as (str, 'latin1')")
    return text.encode("latin1")


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *extra_state):
    if not isinstance(data, np.ndarray):
        raise PickleFormatError(f"_rebuild_parameter expects a tensor, got {type(data).__name__}")
    return data


def _as_ints(seq, what):
    if not isinstance(seq, (tuple, list)) or not all(isinstance(v, int) for v in seq):
        raise PickleFormatError(f"tensor {what} must be a tuple of ints, got {seq!r}")
    return tuple(seq)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """Bounds-checked strided copy out of a storage array (offset/strides in elements)."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise PickleFormatError("_rebuild_tensor_v2 expects a storage from _load_from_bytes")
    size, stride = _as_ints(size, "size"), _as_ints(stride, "stride")
    if len(size) != len(stride) or not isinstance(storage_offset, int):
        raise PickleFormatError(f"tensor size {size} / stride {stride} / offset "
                                f"{storage_offset!r} are inconsistent")
    if storage_offset < 0 or any(v < 0 for v in size + stride):
        raise PickleFormatError(f"tensor with negative size/stride/offset: {size} {stride}")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.shape[0]:
        raise PickleFormatError(f"tensor size {size} stride {stride} offset {storage_offset} "
                                f"reaches element {last} of a storage with {storage.shape[0]}")
    base = storage[storage_offset:]
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(base, size, tuple(s * item for s in stride),
                                           writeable=False)
    return np.array(view, copy=True)


class _StorageUnpickler(pickle.Unpickler):
    """Nested unpickler for one legacy torch.save stream: only torch.<Type>Storage globals."""

    def __init__(self, file, where):
        super().__init__(file)
        self.where = where
        self.refs = []

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return ("storage_type", name)
        raise UnsafePickleError(f"refusing global '{module}.{name}' inside a tensor storage "
                                f"stream in {self.where}; only torch.<Type>Storage is allowed")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise PickleFormatError(f"unexpected persistent id {pid!r} in a storage stream "
                                    f"in {self.where}")
        _, stype, key, _location, numel, view = pid
        if not (isinstance(stype, tuple) and stype[:1] == ("storage_type",)):
            raise PickleFormatError(f"storage type {stype!r} is not a torch storage class")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise PickleFormatError(f"bad storage key/numel {key!r}/{numel!r} in {self.where}")
        ref = _StorageRef(key, stype[1], numel, view)
        self.refs.append(ref)
        return ref


def _parse_storage_stream(data, where):
    """Decode one legacy (non-zip) ``torch.save`` stream holding a single storage.

    Steps: magic-number pickle; protocol 1001 pickle; sys-info pickle (must be little endian);
    the storage pickle (one persistent id ``('storage', torch.XStorage, key, location, numel,
    view)``); the key-list pickle; then per key an int64 LE element count and the raw bytes.
    Returns a 1-D numpy array (BFloat16 widened exactly to float32).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise PickleFormatError(f"_load_from_bytes expects bytes in {where}")
    f = io.BytesIO(data)
    header = [_load_checked(_StorageUnpickler(f, where), f, where) for _ in range(3)]
    if header[0] != _TORCH_MAGIC:
        raise PickleFormatError(f"storage stream in {where} has the wrong magic number "
                                f"{header[0]!r} (expected legacy torch.save data)")
    if header[1] != _TORCH_PROTOCOL:
        raise PickleFormatError(f"storage stream in {where} has protocol {header[1]!r}, "
                                f"expected {_TORCH_PROTOCOL}")
    if not isinstance(header[2], dict) or header[2].get("little_endian") is not True:
        raise PickleFormatError(f"storage stream in {where} is not little-endian: {header[2]!r}")
    unp = _StorageUnpickler(f, where)
    obj = _load_checked(unp, f, where)
    keys = _load_checked(_StorageUnpickler(f, where), f, where)
    refs = {r.key: r for r in unp.refs}
    if not isinstance(obj, _StorageRef) or not isinstance(keys, list) or set(keys) != set(refs):
        raise PickleFormatError(f"storage stream in {where} does not hold exactly one storage")
    arrays = dict()
    for key in keys:
        ref = refs[key]
        count = int.from_bytes(_read_exact(f, 8, where), "little", signed=True)
        itemsize = ref.dtype.itemsize
        if count != ref.numel or count * itemsize > len(data) - f.tell():
            raise PickleFormatError(f"storage {key!r} in {where}: header says {ref.numel} "
                                    f"elements, data says {count}, {len(data) - f.tell()} bytes left")
        raw = _read_exact(f, count * itemsize, where)
        arrays[key] = np.frombuffer(raw, ref.dtype).copy()
    if f.tell() != len(data):
        raise PickleFormatError(f"storage stream in {where} has {len(data) - f.tell()} "
                                f"trailing bytes")
    out = arrays[obj.key]
    if obj.view is not None:  # old torch: (view_key, offset, view_size)
        _vkey, offset, vsize = obj.view
        if not (isinstance(offset, int) and isinstance(vsize, int) and 0 <= offset
                and 0 <= vsize and offset + vsize <= out.shape[0]):
            raise PickleFormatError(f"storage view {obj.view!r} out of range in {where}")
        out = out[offset:offset + vsize]
    if obj.type_name == "BFloat16Storage":  # exact widening: bfloat16 = top 16 bits of float32
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out.astype(out.dtype.newbyteorder("="), copy=False)


def _load_checked(unpickler, f, where):
    _check_lengths(f, f"storage stream in {where}")
    return unpickler.load()


def _read_exact(f, n, where):
    b = f.read(n)
    if len(b) != n:
        raise PickleFormatError(f"storage stream in {where} is truncated")
    return b


class _SnapshotUnpickler(pickle.Unpickler):
    """Top-level restricted unpickler for an official snapshot."""

    def __init__(self, file, where):
        super().__init__(file)
        self.where = where
        self.allowed = {
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): self._persistent_obj,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
            ("torch.storage", "_load_from_bytes"): self._load_from_bytes,
            ("torch", "Size"): tuple,
            ("collections", "OrderedDict"): dict,
            ("dnnlib.util", "EasyDict"): dict,
            ("builtins", "set"): set, ("__builtin__", "set"): set,
            ("builtins", "frozenset"): frozenset, ("__builtin__", "frozenset"): frozenset,
            ("builtins", "slice"): slice, ("__builtin__", "slice"): slice,
            ("_codecs", "encode"): _codecs_encode,
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): _np_dtype,
        }
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            self.allowed[(mod, "_reconstruct")] = _np_reconstruct
            self.allowed[(mod, "scalar")] = _np_scalar

    def find_class(self, module, name):
        fn = self.allowed.get((module, name))
        if fn is None:
            hint = ""
            if module.startswith("dnnlib.tflib"):
                hint = " (this is a TensorFlow-era StyleGAN pickle, which is not supported)"
            raise UnsafePickleError(f"refusing global '{module}.{name}' in {self.where}: not on "
                                    f"the allow-list of an official network pickle{hint}")
        return fn

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refusing persistent id {pid!r} in {self.where}: official "
                                f"network pickles contain none")

    def _load_from_bytes(self, data):
        return _parse_storage_stream(data, self.where)

    def _persistent_obj(self, meta):
        if not isinstance(meta, dict) or meta.get("type") != "class":
            raise PickleFormatError(f"persistent object in {self.where} has meta type "
                                    f"{meta.get('type') if isinstance(meta, dict) else meta!r}, "
                                    f"expected 'class'")
        if not isinstance(meta.get("class_name"), str) or not isinstance(meta.get("state"), dict):
            raise PickleFormatError(f"persistent object in {self.where} lacks a class_name "
                                    f"string or a state dict")
        src = meta.get("module_src")
        if src is not None and not isinstance(src, str):
            raise PickleFormatError(f"persistent object in {self.where}: module_src is not text")
        return _PersistentStub(meta)  # module_src is kept as inert text, never executed


def _plain(value, memo):
    """EasyDict/OrderedDict -> dict, numpy scalars -> Python scalars, stubs -> OfficialModule."""
    if isinstance(value, _PersistentStub):
        return _to_module(value, memo)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v, memo) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(_plain(v, memo) for v in value)
    if isinstance(value, np.ndarray):
        _check_dtype(value.dtype, "array")
        return value
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, slice)):
        return value
    raise PickleFormatError(f"unexpected object of type {type(value).__name__} in the pickle")


def _tensor_dict(d, what, class_name):
    if not isinstance(d, dict):
        raise PickleFormatError(f"{class_name}.{what} is not a dict")
    out = dict()
    for k, v in d.items():
        if v is None:
            continue
        if not isinstance(v, np.ndarray):
            raise PickleFormatError(f"{class_name}.{what}[{k!r}] is not a tensor")
        out[k] = v
    return out


def _to_module(stub, memo):
    if id(stub) in memo:
        return memo[id(stub)]
    meta, state = stub.meta, stub.meta["state"]
    name = meta["class_name"]
    src = meta.get("module_src")
    match = _PLACEHOLDER_MODULE_RE.search(src or "")
    mod = OfficialModule(class_name=name, module_name=match.group(1) if match else None,
                         module_src_sha256=hashlib.sha256(src.encode()).hexdigest() if src else None)
    memo[id(stub)] = mod
    mod.training = bool(state.get("training", False))
    mod.parameters = _tensor_dict(state.get("_parameters", {}), "_parameters", name)
    mod.buffers = _tensor_dict(state.get("_buffers", {}), "_buffers", name)
    mod.non_persistent_buffers = frozenset(state.get("_non_persistent_buffers_set", ()))
    children = state.get("_modules", {})
    if not isinstance(children, dict):
        raise PickleFormatError(f"{name}._modules is not a dict")
    for k, child in children.items():
        if child is None:
            continue
        if not isinstance(child, _PersistentStub):
            raise PickleFormatError(f"{name}._modules[{k!r}] is not a persistent module")
        mod.children[k] = _to_module(child, memo)
    init_args, init_kwargs = state.get("_init_args") or (), state.get("_init_kwargs") or {}
    if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict):
        raise PickleFormatError(f"{name}: _init_args/_init_kwargs are not a tuple/dict")
    mod.init_args = tuple(_plain(init_args, memo))
    mod.init_kwargs = _plain(init_kwargs, memo)
    for k, v in state.items():
        if k in _STATE_SKIP or (k.startswith("_") and "hook" in k):
            continue
        mod.attrs[k] = _plain(v, memo)
    return mod


def read_official_pickle(path_or_file):
    """Read an official network pickle without torch and without executing anything.

    Steps: unpickle with the allow-list (storages parsed, tensors rebuilt as numpy); check the
    top level is a dict; convert persistent objects to :class:`OfficialModule` and metadata to
    plain Python; add ``augment_pipe`` / ``training_set_kwargs`` / missing networks as None.

    Args:
        path_or_file: a path (str / os.PathLike) or a binary file object.

    Returns:
        dict with ``G``, ``D``, ``G_ema`` (OfficialModule or None), ``augment_pipe``
        (OfficialModule or None), ``training_set_kwargs`` (dict or None) and any other plain
        top-level entries.

    Raises:
        UnsafePickleError: a global outside the allow-list (the message names it and the file).
        PickleFormatError: truncated / not a pickle / malformed tensors (the message names the file).
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        where = os.fspath(path_or_file)
        try:
            with open(where, "rb") as f:
                return _read(f, where)
        except OSError as e:
            raise PickleFormatError(f"cannot read network pickle {where}: {e}") from e
    if not hasattr(path_or_file, "read"):
        raise TypeError(f"read_official_pickle expects a path or a binary file object, got "
                        f"{type(path_or_file).__name__}")
    return _read(path_or_file, str(getattr(path_or_file, "name", "<file object>")))


class _Clamped:
    """A seekable binary file whose ``read(n)`` never asks for more than the bytes left, so a
    length written in the pickle (``BINBYTES``, ``BINUNICODE8``, ...) cannot size a buffer
    beyond the file's real size."""

    def __init__(self, f):
        self.f = f
        pos = f.tell()
        self.size = f.seek(0, io.SEEK_END)
        f.seek(pos)

    def read(self, n=-1):
        left = max(0, self.size - self.f.tell())
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def readline(self, *args):
        return self.f.readline(*args)

    def seek(self, *args):
        return self.f.seek(*args)

    def tell(self):
        return self.f.tell()


def _check_lengths(f, where):
    """Walk the opcodes of the pickle at ``f``'s position, building nothing: every length it
    claims (``BINBYTES``, ``BINUNICODE8``, ``LONG4``, ...) must fit in the bytes really left,
    because the unpickler allocates a buffer of that length before reading. Rewinds ``f``."""
    pos = f.tell()
    try:
        for _ in pickletools.genops(f):
            pass
    except Exception as e:      # pickletools reports a short read or a bad opcode as ValueError
        raise PickleFormatError(f"{where} is not a readable network pickle ({e})") from None
    f.seek(pos)


def _read(f, where):
    if not (hasattr(f, "seekable") and f.seekable()):
        f = io.BytesIO(f.read())
    f = _Clamped(f)
    head = f.read(4)
    f.seek(-len(head), io.SEEK_CUR)
    if head.startswith(b"PK\x03\x04"):
        raise PickleFormatError(f"{where} is a zip archive (e.g. a torch.save checkpoint), not "
                                f"an official network pickle")
    if len(head) < 2 or head[0] != pickle.PROTO[0] or not 2 <= head[1] <= 5:
        raise PickleFormatError(f"{where} is not a network pickle (it starts with {head!r}; "
                                f"expected a pickle of protocol 2 to 5)")
    _check_lengths(f, where)
    try:
        raw = _SnapshotUnpickler(f, where).load()
    except PickleFormatError as e:
        if where in str(e):
            raise
        raise type(e)(f"{where}: {e}") from e
    except Exception as e:  # truncated, not a pickle, wrong call signatures, ...
        raise PickleFormatError(f"{where} is not a readable network pickle "
                                f"({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict):
        raise PickleFormatError(f"{where}: expected a dict of networks at the top level, got "
                                f"{type(raw).__name__}")
    try:
        out = _plain(raw, dict())
    except PickleFormatError as e:
        raise type(e)(f"{where}: {e}") from e
    except RecursionError as e:
        raise PickleFormatError(f"{where}: structure nested too deeply") from e
    for key in ("G", "D", "G_ema", "augment_pipe", "training_set_kwargs"):
        out.setdefault(key, None)
    for key in ("G", "D", "G_ema", "augment_pipe"):
        if out[key] is not None and not isinstance(out[key], OfficialModule):
            raise PickleFormatError(f"{where}: entry {key!r} is {type(out[key]).__name__}, "
                                    f"expected a persistent network module")
    if all(out[k] is None for k in ("G", "D", "G_ema")):
        raise PickleFormatError(f"{where}: contains none of the networks 'G', 'D', 'G_ema'")
    return out
