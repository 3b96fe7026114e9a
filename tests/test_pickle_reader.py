"""Tests of sg3keras.convert.pickle_reader: official snapshot read as data, numpy only.

Expected tensors/kwargs come from the fixture (``pickle/network-snapshot-tiny.expected.npz`` and
``.json``, written by the official code). Re-pickled variants and attack payloads are produced by a
small pickle writer in this file (``_Writer``), independent of the reader.
"""

import collections
import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import refdata

from sg3keras.convert.pickle_reader import (OfficialModule, PickleFormatError, UnsafePickleError,
                                            read_official_pickle)

PKL = refdata.path("pickle", "network-snapshot-tiny.pkl")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = ("G", "D", "G_ema", "augment_pipe")
MAGIC = 0x1950A86A20F9469CFC6C


@pytest.fixture(scope="module")
def expected():
    return refdata.load_npz("pickle", "network-snapshot-tiny.expected")


@pytest.fixture(scope="module")
def snapshot():
    return read_official_pickle(PKL)


def _expected_net(expected, net):
    return {k[len(net) + 1:]: v for k, v in expected.items() if k.startswith(net + "/")}


def _assert_bit_equal(state, want, where):
    assert list(state) == list(want), f"{where}: names differ: {set(state) ^ set(want)}"
    for name, ref in want.items():
        got = state[name]
        assert got.dtype == ref.dtype and got.shape == ref.shape, (where, name, got.shape)
        assert got.tobytes() == ref.tobytes(), (where, name)


def _run(code, *args):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))


# ---------------------------------------------------------------------------------------------
# (1) the real snapshot, read in a process where torch cannot be imported and exec is disabled

_NO_TORCH_READER = r"""
import builtins, sys
import numpy as np
for mod in ("torch", "torch_utils", "dnnlib", "training"):
    sys.modules[mod] = None  # any import of these now raises ImportError
from sg3keras.convert.pickle_reader import read_official_pickle
def _forbidden(*a, **k):
    raise RuntimeError("exec/eval/compile called while reading a pickle")
saved = builtins.exec, builtins.eval, builtins.compile
builtins.exec = builtins.eval = builtins.compile = _forbidden
snap = read_official_pickle(sys.argv[1])
builtins.exec, builtins.eval, builtins.compile = saved
arrays = {net + "/" + k: v for net in ("G", "D", "G_ema", "augment_pipe")
          for k, v in snap[net].state_dict().items()}
with open(sys.argv[2], "wb") as f:
    np.savez(f, **arrays)
bad = [m for m in ("torch", "keras", "tensorflow", "jax") if sys.modules.get(m) is not None]
print("HEAVY:" + ",".join(bad))
"""


def test_snapshot_reads_bit_exact_without_torch(tmp_path, expected):
    out = tmp_path / "state.npz"
    proc = _run(_NO_TORCH_READER, PKL, str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY:\n" in proc.stdout, proc.stdout  # no torch / keras / tensorflow imported
    with np.load(out) as f:
        got = {k: f[k] for k in f.files}
    for net in NETS:
        want = _expected_net(expected, net)
        _assert_bit_equal({k[len(net) + 1:]: v for k, v in got.items()
                           if k.startswith(net + "/")}, want, net)
    assert len(got) == sum(1 for k in expected if not k.startswith("io/"))


def _assert_plain(value, where):
    """Only builtin containers/scalars (and numpy arrays): no EasyDict, no numpy scalars."""
    if isinstance(value, dict):
        assert type(value) is dict, (where, type(value))
        for k, v in value.items():
            _assert_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _assert_plain(v, f"{where}[{i}]")
    else:
        assert value is None or type(value) in (bool, int, float, str, np.ndarray), (where, value)


# (2) kwargs and metadata
def test_init_kwargs_and_metadata(snapshot):
    meta = refdata.load_json("pickle", "network-snapshot-tiny")
    common = meta["common_kwargs"]
    g_kwargs = {k: v for k, v in meta["G_kwargs"].items() if k != "class_name"}
    d_kwargs = {k: v for k, v in meta["D_kwargs"].items() if k != "class_name"}
    for net, want, cls, module in (("G", g_kwargs, "Generator", "training.networks_stylegan3"),
                                   ("G_ema", g_kwargs, "Generator", "training.networks_stylegan3"),
                                   ("D", d_kwargs, "Discriminator", "training.networks_stylegan2")):
        m = snapshot[net]
        assert isinstance(m, OfficialModule) and m.class_name == cls and m.module_name == module
        assert m.init_kwargs == dict(want, **common), net
        _assert_plain(m.init_kwargs, net + ".init_kwargs")
        _assert_plain(m.attrs, net + ".attrs")
        assert m.init_args == ()
    assert snapshot["training_set_kwargs"] == meta["training_set_kwargs"]
    _assert_plain(snapshot["training_set_kwargs"], "training_set_kwargs")
    pipe = snapshot["augment_pipe"]
    assert pipe.class_name == "AugmentPipe"
    assert pipe.buffers["p"] == np.float32(meta["augment_pipe_p"])
    assert snapshot["G"].module_src_sha256 == hashlib.sha256(
        [p for p in meta["placeholders"] if "networks_stylegan3" in p][0].encode()).hexdigest()
    synth = snapshot["G_ema"].children["synthesis"]
    assert list(synth.attrs["layer_names"]) == [n for n in synth.children if n.startswith("L")]
    layer = synth.children[synth.attrs["layer_names"][0]]
    assert isinstance(layer.attrs["in_size"], np.ndarray) and type(layer.attrs["in_cutoff"]) is float


def test_reads_file_objects_and_non_seekable_streams(snapshot):
    with open(PKL, "rb") as f:
        data = f.read()

    class Pipe(io.RawIOBase):  # a stream without seek, like a socket or a pipe
        def __init__(self):
            self.buf = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            n = self.buf.readinto(b)
            return n

    for source in (io.BytesIO(data), io.BufferedReader(Pipe())):
        snap = read_official_pickle(source)
        _assert_bit_equal(snap["G_ema"].state_dict(), snapshot["G_ema"].state_dict(), "G_ema")


# ---------------------------------------------------------------------------------------------
# An independent writer of official-format pickles (pure-Python pickler, names chosen freely).

class _Global:
    """Pickled as the global ``module.name`` (the object itself never exists on load)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires reduce functions to be callable
        raise AssertionError("stand-in globals are never called")


class _Storage:
    """A storage, written as ``torch.storage._load_from_bytes(<legacy torch.save stream>)``."""

    def __init__(self, flat, type_name, **stream_options):
        self.flat, self.type_name, self.options = flat, type_name, stream_options


class _Tensor:
    def __init__(self, array, parameter=False, layout="C", metadata_arg=False, storage=None):
        self.array, self.parameter, self.layout = array, parameter, layout
        self.metadata_arg, self.storage = metadata_arg, storage


class _Module:
    def __init__(self, meta):
        self.meta = meta


class _FakeEasyDict(dict):
    pass


class _Writer(pickle._Pickler):
    """Pure-Python pickler writing tensors/modules the way official snapshots contain them."""

    def __init__(self, file, protocol, numpy_module="numpy._core.multiarray", pid=None):
        super().__init__(file, protocol)
        self.numpy_module, self.pid = numpy_module, pid
        self.renames = {id(_FakeEasyDict): ("dnnlib.util", "EasyDict")}
        multiarray = getattr(np, "_core", np).multiarray
        for name in ("_reconstruct", "scalar"):
            self.renames[id(getattr(multiarray, name))] = (numpy_module, name)

    def persistent_id(self, obj):
        return self.pid if isinstance(obj, _Storage) and self.pid else None

    def save(self, obj, save_persistent_id=True):
        target = (obj.module, obj.name) if isinstance(obj, _Global) else self.renames.get(id(obj))
        if target is None:
            return super().save(obj, save_persistent_id)
        if id(obj) in self.memo:
            self.write(self.get(self.memo[id(obj)][0]))
            return
        if self.proto >= 4:
            self.save(target[0])
            self.save(target[1])
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{target[0]}\n{target[1]}\n".encode())
        self.memoize(obj)

    def reducer_override(self, obj):
        if isinstance(obj, _Module):
            return _Global("torch_utils.persistence", "_reconstruct_persistent_obj"), (obj.meta,)
        if isinstance(obj, _Storage):
            return _Global("torch.storage", "_load_from_bytes"), (legacy_stream(
                obj.flat, obj.type_name, **obj.options),)
        if isinstance(obj, _Tensor):
            return self._tensor(obj)
        return NotImplemented

    def _tensor(self, t):
        hooks = collections.OrderedDict()
        if t.parameter:
            inner = _Tensor(t.array, False, t.layout, t.metadata_arg, t.storage)
            return _Global("torch._utils", "_rebuild_parameter"), (inner, False, hooks)
        a = np.asarray(t.array)
        pad = 3 if t.layout == "F" else 0  # non-zero offset and transposed strides
        flat = np.concatenate([np.zeros(pad, a.dtype), a.ravel(order=t.layout)])
        strides = np.cumprod((1,) + a.shape[:-1]) if t.layout == "F" else \
            np.cumprod((1,) + a.shape[::-1][:-1])[::-1]
        strides = strides[:a.ndim]  # a 0-d tensor has no strides
        storage = t.storage or _Storage(flat, _TYPE_NAMES[a.dtype.name])
        args = (storage, pad, tuple(a.shape), tuple(int(s) for s in strides), False, hooks)
        return _Global("torch._utils", "_rebuild_tensor_v2"), args + (({},) if t.metadata_arg
                                                                       else ())


_TYPE_NAMES = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
               "int64": "LongStorage", "int32": "IntStorage", "uint8": "ByteStorage",
               "int8": "CharStorage", "int16": "ShortStorage", "bool": "BoolStorage"}


def legacy_stream(flat, type_name, magic=MAGIC, protocol=1001, little_endian=True, count=None,
                  trailing=b"", sys_info_pickle=None, key="140234", dtype=None, numel=None,
                  storage_module="torch"):
    """A legacy torch.save stream of one storage: five pickles, then count + raw LE bytes."""
    f = io.BytesIO()
    sys_info = dict(protocol_version=1001, little_endian=little_endian,
                    type_sizes=dict(short=2, int=4, long=4))
    for obj in (magic, protocol):
        pickle.dump(obj, f, protocol=2)
    f.write(sys_info_pickle or pickle.dumps(sys_info, protocol=2))
    pid = ("storage", _Global(storage_module, type_name), key, "cpu",
           len(flat) if numel is None else numel, None)
    _Writer(f, 2, pid=pid).dump(_Storage(flat, type_name))
    pickle.dump([key], f, protocol=2)
    f.write(int(len(flat) if count is None else count).to_bytes(8, "little", signed=True))
    f.write(np.ascontiguousarray(flat, dtype=np.dtype(dtype or flat.dtype).newbyteorder("<"))
            .tobytes())
    f.write(trailing)
    return f.getvalue()


def _module_state(m, containers, layout):
    state = containers()
    state["training"] = m.training
    state["_parameters"] = containers((k, _Tensor(v, True, layout)) for k, v in
                                      m.parameters.items())
    state["_buffers"] = containers((k, _Tensor(v, False, layout)) for k, v in m.buffers.items())
    state["_non_persistent_buffers_set"] = set(m.non_persistent_buffers)
    state["_forward_hooks"] = collections.OrderedDict()
    state["_modules"] = containers((k, _as_written(c, containers, layout))
                                   for k, c in m.children.items())
    state.update(m.attrs)
    state["_init_args"] = m.init_args
    state["_init_kwargs"] = _FakeEasyDict(m.init_kwargs)
    return state


def _as_written(m, containers=dict, layout="C"):
    return _Module(dict(type="class", version=6, module_src=f"# placeholder for {m.class_name}\n",
                        class_name=m.class_name, state=_module_state(m, containers, layout)))


def dump(obj, protocol=4, numpy_module="numpy._core.multiarray"):
    f = io.BytesIO()
    _Writer(f, protocol, numpy_module).dump(obj)
    return f.getvalue()


def _write(tmp_path, data, name="x.pkl"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# (5) old-style (torch 1.9 / numpy 1.x) and new-style variants of the same snapshot
@pytest.mark.parametrize("protocol,numpy_module,containers,layout", [
    (2, "numpy.core.multiarray", collections.OrderedDict, "F"),
    (3, "numpy.core.multiarray", collections.OrderedDict, "C"),
    (4, "numpy._core.multiarray", dict, "F"),
])
def test_rewritten_variants_load(tmp_path, snapshot, expected, protocol, numpy_module,
                                 containers, layout):
    top = {net: _as_written(snapshot[net], containers, layout) for net in NETS}
    top["training_set_kwargs"] = _FakeEasyDict(snapshot["training_set_kwargs"])
    data = dump(top, protocol, numpy_module)
    assert numpy_module.encode() in data and b"OrderedDict" in data
    snap = read_official_pickle(_write(tmp_path, data, "old.pkl"))
    for net in NETS:
        _assert_bit_equal(snap[net].state_dict(), _expected_net(expected, net), net)
        _assert_plain(snap[net].init_kwargs, net)
    meta = refdata.load_json("pickle", "network-snapshot-tiny")
    assert snap["training_set_kwargs"] == meta["training_set_kwargs"]
    assert snap["G"].init_kwargs["magnitude_ema_beta"] == meta["G_kwargs"]["magnitude_ema_beta"]


def _tiny(buffers, **tensor_options):
    state = dict(training=False, _parameters={}, _non_persistent_buffers_set={"skip"},
                 _buffers={k: _Tensor(v, **tensor_options) for k, v in buffers.items()},
                 _modules={})
    return {"G": _Module(dict(type="class", version=6, module_src="", class_name="Generator",
                              state=state))}


@pytest.mark.parametrize("dtype", ["float64", "float16", "int64", "int32", "int16", "int8",
                                   "uint8", "bool"])
def test_storage_dtypes_and_metadata_arg(tmp_path, dtype):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(3, 4)) * 50).astype(dtype)
    snap = read_official_pickle(_write(tmp_path, dump(_tiny(
        {"a": a, "skip": a[:1]}, layout="F", metadata_arg=True))))
    got = snap["G"].state_dict()
    assert list(got) == ["a"] and got["a"].dtype == a.dtype and np.array_equal(got["a"], a)


def test_bfloat16_storage_widened_exactly(tmp_path):
    values = np.array([1.5, -2.0, 3.140625, 0.0, -0.0078125, 65280.0], np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact: low 16 bits are zero
    storage = _Storage(bits, "BFloat16Storage", dtype="<u2")
    snap = read_official_pickle(_write(tmp_path, dump(_tiny(
        {"a": bits.reshape(2, 3)}, storage=storage))))
    got = snap["G"].buffers["a"]
    assert got.dtype == np.float32 and np.array_equal(got, values.reshape(2, 3))


# ---------------------------------------------------------------------------------------------
# (3) security: crafted payloads, each of which creates a canary file when loaded by plain pickle

def _op_str(s):
    b = s.encode()
    return b"X" + len(b).to_bytes(4, "little") + b


def _op_call(module, name, *args, list_arg=None):
    body = b"".join(_op_str(a) for a in args)
    if list_arg is not None:
        body += b"](" + b"".join(_op_str(a) for a in list_arg) + b"e"
    return b"c" + f"{module}\n{name}\n".encode() + b"(" + body + b"tR"


def _in_snapshot(payload_ops):
    return b"\x80\x04}(" + _op_str("G") + payload_ops + b"u."


class _CopyFile:
    def __init__(self, src, dst):
        self.src, self.dst = src, dst

    def __reduce__(self):
        import shutil
        return shutil.copyfile, (self.src, self.dst)


def _payloads(tmp_path):
    """name -> (bytes given to the reader, global the reader must name, bytes that plain
    pickle.loads executes to create the canary, canary path)."""
    out = {}

    def canary(name):
        return str(tmp_path / f"canary_{name}")

    c = canary("os_system")
    ops = _op_call("os", "system", f"touch {c}")
    out["os_system"] = (_in_snapshot(ops), "os.system", b"\x80\x04" + ops + b".", c)
    c = canary("check_call")
    ops = _op_call("subprocess", "check_call", list_arg=["touch", c])
    out["check_call"] = (_in_snapshot(ops), "subprocess.check_call", b"\x80\x04" + ops + b".", c)
    for fn in ("eval", "exec"):
        c = canary(fn)
        ops = _op_call("builtins", fn, f"open({c!r}, 'w').close()")
        out[fn] = (_in_snapshot(ops), f"builtins.{fn}", b"\x80\x04" + ops + b".", c)
    c = canary("reduce")
    data = pickle.dumps({"G": _CopyFile(PKL, c)}, protocol=4)
    out["reduce"] = (data, "shutil.copyfile", data, c)
    c = canary("nested")
    inner = b"\x80\x02" + _op_call("posix", "system", f"touch {c}") + b"."
    flat = np.arange(4, dtype=np.float32)
    storage = _Storage(flat, "FloatStorage", sys_info_pickle=inner)
    data = dump(_tiny({"a": flat}, storage=storage))
    out["nested_storage"] = (data, "posix.system", inner, c)
    return out


PAYLOADS = ["os_system", "check_call", "eval", "exec", "reduce", "nested_storage"]


def test_payloads_are_real(tmp_path):
    """Plain pickle.loads of every payload really creates its canary (in a subprocess)."""
    payloads = _payloads(tmp_path)
    paths = []
    for name, (_, _, live, _) in payloads.items():
        paths.append(str(_write(tmp_path, live, f"live_{name}.pkl")))
    code = ("import pickle, sys\n"
            "for p in sys.argv[1:]:\n"
            "    pickle.loads(open(p, 'rb').read())\n")
    proc = _run(code, *paths)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, (_, _, _, c) in payloads.items():
        assert os.path.exists(c), f"payload {name} did not create its canary"


@pytest.mark.parametrize("name", PAYLOADS)
def test_payload_refused(tmp_path, name):
    data, global_name, _, c = _payloads(tmp_path)[name]
    path = _write(tmp_path, data, f"evil_{name}.pkl")
    with pytest.raises(UnsafePickleError) as info:
        read_official_pickle(path)
    assert global_name in str(info.value) and str(path) in str(info.value), str(info.value)
    assert not os.path.exists(c)


def test_module_src_is_never_executed(tmp_path):
    c = str(tmp_path / "canary_module_src")
    src = f"open({c!r}, 'w').close()\nclass Generator:\n    pass\n"
    proc = _run(f"exec({src!r})")  # the source is a real payload when exec'ed ...
    assert proc.returncode == 0 and os.path.exists(c), proc.stderr
    os.remove(c)
    top = _tiny({"a": np.ones(2, np.float32)})
    top["G"].meta["module_src"] = src
    snap = read_official_pickle(_write(tmp_path, dump(top)))  # ... but is only kept as text
    assert not os.path.exists(c)
    assert snap["G"].module_src_sha256 == hashlib.sha256(src.encode()).hexdigest()
    assert snap["G"].class_name == "Generator" and snap["G"].module_name is None


def _persistent_call_then_build():
    meta = (b"}(" + _op_str("type") + _op_str("class") + _op_str("class_name") +
            _op_str("Generator") + _op_str("state") + b"}u")
    return b"ctorch_utils.persistence\n_reconstruct_persistent_obj\n(" + meta + b"tR}b"


@pytest.mark.parametrize("case,match", [
    ("persistent_id", "persistent id"),
    ("object_dtype", "object"),
    ("tf_pickle", "dnnlib.tflib.network.Network.*TensorFlow"),
    ("getattr", "builtins.getattr"),
    ("storage_type", "torch.cuda.FloatStorage"),
    ("build_on_module", "BUILD"),
])
def test_other_unsafe_constructs(tmp_path, case, match):
    flat = np.ones(2, np.float32)
    data = {
        "persistent_id": lambda: b"\x80\x04}(" + _op_str("G") + _op_str("x") + b"Qu.",
        "object_dtype": lambda: _in_snapshot(b"cnumpy\ndtype\n(" + _op_str("O") + b"tR"),
        "tf_pickle": lambda: b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81.",
        "getattr": lambda: _in_snapshot(_op_call("builtins", "getattr", "a", "b")),
        "storage_type": lambda: dump(_tiny({"a": flat}, storage=_Storage(
            flat, "FloatStorage", storage_module="torch.cuda"))),
        "build_on_module": lambda: _in_snapshot(_persistent_call_then_build()),
    }[case]()
    path = _write(tmp_path, data)
    with pytest.raises(UnsafePickleError, match=match) as info:
        read_official_pickle(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# (4) truncated, foreign and malformed files

def _png_bytes():
    from PIL import Image
    b = io.BytesIO()
    Image.new("RGB", (4, 4)).save(b, format="PNG")
    return b.getvalue()


def _zip_bytes():
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"G": 1}))
    return b.getvalue()


@pytest.mark.parametrize("kind", ["cut0", "cut1", "cut100", "cut_third", "cut_half",
                                  "cut_end", "png", "zip", "text", "list_top", "no_networks"])
def test_truncated_and_foreign_files(tmp_path, kind):
    with open(PKL, "rb") as f:
        full = f.read()
    cuts = {"cut0": 0, "cut1": 1, "cut100": 100, "cut_third": len(full) // 3,
            "cut_half": len(full) // 2, "cut_end": len(full) - 1}
    if kind in cuts:
        data = full[:cuts[kind]]
    else:
        data = {"png": _png_bytes, "zip": _zip_bytes, "text": lambda: b"hello, world\n",
                "list_top": lambda: pickle.dumps([1, 2]),
                "no_networks": lambda: pickle.dumps({"training_set_kwargs": None})}[kind]()
    path = _write(tmp_path, data, f"bad_{kind}.pkl")
    with pytest.raises(PickleFormatError) as info:
        read_official_pickle(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, UnsafePickleError)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pkl"
    with pytest.raises(PickleFormatError, match="nope.pkl"):
        read_official_pickle(path)


@pytest.mark.parametrize("case,match", [
    ("magic", "magic number"),
    ("protocol", "protocol 1002"),
    ("big_endian", "little-endian"),
    ("count", "elements"),
    ("short_data", "elements"),
    ("trailing", "trailing"),
    ("out_of_bounds", "reaches element"),
])
def test_malformed_storage_streams(tmp_path, case, match):
    flat = np.arange(6, dtype=np.float32)
    tensor = flat.reshape(2, 3)
    options = {"magic": dict(magic=MAGIC + 1), "protocol": dict(protocol=1002),
               "big_endian": dict(little_endian=False), "count": dict(count=7),
               "trailing": dict(trailing=b"\0\0\0\0"), "out_of_bounds": {}}.get(case)
    if case == "short_data":  # header and count say 6 elements, the data holds 5
        storage = _Storage(flat[:5], "FloatStorage", numel=6, count=6)
    else:
        storage = _Storage(flat, "FloatStorage", **options)
    if case == "out_of_bounds":  # 2x4 strided over 6 elements would read past the storage
        tensor = np.zeros((2, 4), np.float32)
    path = _write(tmp_path, dump(_tiny({"a": tensor}, storage=storage)))
    with pytest.raises(PickleFormatError, match=match) as info:
        read_official_pickle(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# load_official_pickle: network selection, metadata, errors (converters replaced by recorders)

@pytest.fixture()
def recorded(monkeypatch):
    from sg3keras.convert import official_pickle
    calls = {}

    def fake_converter(key):
        def convert(state, init_kwargs):
            calls[key] = (state, init_kwargs)
            return f"model:{key}"
        return convert

    monkeypatch.setattr(official_pickle, "_converter", fake_converter)
    return official_pickle.load_official_pickle, calls


def test_load_official_pickle_hands_state_and_kwargs_to_converters(recorded, expected, snapshot):
    load, calls = recorded
    out = load(PKL)
    meta = refdata.load_json("pickle", "network-snapshot-tiny")
    assert sorted(calls) == ["D", "G", "G_ema"]
    for net in ("G", "D", "G_ema"):
        assert out[net] == f"model:{net}"
        state, kwargs = calls[net]
        _assert_bit_equal(state, _expected_net(expected, net), net)
        kind = "D_kwargs" if net == "D" else "G_kwargs"
        want = {k: v for k, v in meta[kind].items() if k != "class_name"}
        assert kwargs == dict(want, **meta["common_kwargs"])
    assert out["augment_p"] == float(np.float32(meta["augment_pipe_p"]))
    assert type(out["augment_p"]) is float
    assert out["augment_kwargs"] == snapshot["augment_pipe"].init_kwargs
    assert out["training_set_kwargs"] == meta["training_set_kwargs"]
    assert out["official"]["G_ema"].class_name == "Generator"


def test_load_official_pickle_selected_networks(recorded):
    load, calls = recorded
    out = load(PKL, networks=("G_ema",))
    assert list(calls) == ["G_ema"] and "G" not in out and "D" not in out
    for bad in ("G_ema", ("X",), ()):
        with pytest.raises(ValueError, match="networks"):
            load(PKL, networks=bad)


def test_load_official_pickle_missing_or_wrong_network(tmp_path, recorded, snapshot):
    load, _ = recorded
    only_ema = _write(tmp_path, dump({"G_ema": _as_written(snapshot["G_ema"])}), "ema.pkl")
    assert load(only_ema, networks=("G_ema",))["augment_p"] is None
    with pytest.raises(PickleFormatError, match=r"\['G', 'D'\] requested but not in the pickle") as info:
        load(only_ema)
    assert "ema.pkl" in str(info.value)
    swapped = _write(tmp_path, dump({"D": _as_written(snapshot["G"])}), "swapped.pkl")
    with pytest.raises(PickleFormatError, match="'D' is a 'Generator'"):
        load(swapped, networks=("D",))


def test_load_official_pickle_reports_missing_converter(monkeypatch):
    from sg3keras.convert import official_pickle
    monkeypatch.setitem(official_pickle._CONVERTERS, "D", (
        "Discriminator", "sg3keras.convert.no_such_module", "discriminator_from_official"))
    with pytest.raises(ImportError, match="no_such_module"):
        official_pickle.load_official_pickle(PKL, networks=("D",))


@pytest.mark.parametrize("meta,match", [
    (dict(type="function", class_name="Generator", state={}), "meta type 'function'"),
    (dict(type="class", state={}), "class_name"),
    (dict(type="class", class_name="Generator", state=[1]), "state dict"),
    (dict(type="class", class_name="Generator", state={}, module_src=b"x"), "module_src"),
])
def test_persistent_meta_validated(tmp_path, meta, match):
    path = _write(tmp_path, dump({"G": _Module(meta)}))
    with pytest.raises(PickleFormatError, match=match) as info:
        read_official_pickle(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# end to end: the snapshot's generators, converted, reproduce the official images

def test_load_official_pickle_networks_match_official_outputs(expected):
    from sg3keras.convert import load_official_pickle
    out = load_official_pickle(PKL)  # all of G, D, G_ema
    for net in ("G_ema", "G"):
        img = np.asarray(out[net](expected["io/z"]))
        ref = refdata.nchw_to_nhwc(expected[f"io/img_{net}"])
        assert img.shape == ref.shape
        np.testing.assert_allclose(img, ref, rtol=0, atol=1e-5, err_msg=net)
    logits = np.asarray(out["D"](refdata.nchw_to_nhwc(expected["io/img_G_ema"])))
    ref = expected["io/D_logits_of_img_G_ema"]
    assert logits.shape == ref.shape
    np.testing.assert_allclose(logits, ref, rtol=0, atol=1e-4)
