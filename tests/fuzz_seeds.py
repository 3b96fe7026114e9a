"""Valid seed files for the fuzz campaigns, one list per kind of outside data.

:func:`build` returns ``{kind: (seeds, path of the first seed written under workdir)}``; a seed
is ``bytes`` (one file) or ``{relpath: bytes}`` (a dataset folder). Everything is made here
from tiny arrays (no torch, no network) except the official pickle, which is the fixture
``tests/reference/pickle/network-snapshot-tiny.pkl``; the ``.keras`` seed is that pickle's
G_ema converted and saved (TensorFlow, in a child process so the caller stays light).
"""

import io
import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PICKLE = os.path.join(HERE, "reference", "pickle", "network-snapshot-tiny.pkl")
FILE_NAMES = {"pickle": "network.pkl", "keras": "network.keras", "dataset-zip": "dataset.zip",
              "dataset-dir": "dataset", "npz": "projected_w.npz", "torchscript": "vgg16.pt",
              "inception": "inception-2015-12-05.pt", "graphdef": "classify_image_graph_def.pb",
              "http": "response.http"}
# The generator the projected_w reader checks against (tests/fuzz_worker.py builds a stand-in).
NUM_WS, W_DIM, NOISE = 16, 32, {"b8": 8}


def file_name(kind):
    return FILE_NAMES[kind]


# ------------------------------------------------------------------------------------------
# Hand-written pickles (TorchScript data.pkl): opcodes, so that no torch class is needed.

def _s(text):
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _i(v):
    return b"J" + struct.pack("<i", v)


def _g(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tup(items):
    return b"(" + b"".join(items) + b"t"


def _tensor(key, shape):
    numel = int(np.prod(shape))
    stride = [int(np.prod(shape[k + 1:])) for k in range(len(shape))]
    pid = _tup([_s("storage"), _g("torch", "FloatStorage"), _s(key), _s("cpu"), _i(numel)])
    return (_g("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"Q" + _i(0)
            + _tup([_i(v) for v in shape]) + _tup([_i(v) for v in stride]) + b"\x89"
            + _g("collections", "OrderedDict") + b")R" + b"tR")


def _module(qualname, items):
    """A TorchScript object: ``__torch__.<qualname>`` built empty, then its state dict set."""
    body = b"".join(_s(k) + v for k, v in items)
    return _g(f"__torch__.{qualname}", qualname.split(".")[-1]) + b")\x81}(" + body + b"ub"


def torchscript_archive(tensors, prefix="archive"):
    """A TorchScript-format zip: ``<prefix>/data.pkl`` (module ``layers`` holding the tensors
    named ``layers.<x>.<y>``, the others at the top) plus ``<prefix>/data/<key>`` storages."""
    rng = np.random.default_rng(0)
    storages, layers, top, children = {}, {}, [], {}
    for name, shape in tensors.items():
        key = str(len(storages))
        storages[key] = rng.uniform(0.1, 1.0, int(np.prod(shape))).astype("<f4").tobytes()
        parts = name.split(".")
        if parts[0] == "layers":
            children.setdefault(parts[1], []).append((parts[2], _tensor(key, shape)))
        else:
            top.append((name, _tensor(key, shape)))
    for child, items in children.items():
        layers[child] = _module(f"m.{child}", items)
    top.append(("layers", _module("m.Layers", list(layers.items()))))
    data_pkl = b"\x80\x02" + _module("m.Net", top) + b"."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", data_pkl)
        for key, blob in storages.items():
            z.writestr(f"{prefix}/data/{key}", blob)
        z.writestr(f"{prefix}/version", "3\n")
    return buf.getvalue()


def _vgg_tensors(widths=(2, 2, 3, 3, 3)):
    from sg3keras.detectors import vgg16
    out, cin = {}, 3
    for name, c in vgg16.conv_names(widths):
        out[f"layers.{name}.weight"], out[f"layers.{name}.bias"] = (c, cin, 3, 3), (c,)
        cin = c
    widths_of = dict(vgg16.conv_names(widths))
    for k, conv in enumerate(vgg16.LPIPS_TAPS):
        out[f"lpips{k}"] = (1, widths_of[conv], 1, 1)
    return out


def _inception_names():
    from sg3keras.detectors import inception
    return [(spec[0], spec[1]) for spec in inception.conv_specs()]


# ------------------------------------------------------------------------------------------
# Seeds per kind.

def _png(rng, size=8, mode="RGB"):
    from PIL import Image
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buf, format="PNG")
    return buf.getvalue()


def _dataset_trees():
    rng = np.random.default_rng(1)
    names = [f"00000/img{i:08d}.png" for i in range(4)]
    a = {n: _png(rng) for n in names}
    a["dataset.json"] = json.dumps({"labels": [[n, i % 3] for i, n in enumerate(names)]}).encode()
    b = {n: _png(rng, mode="L") for n in names}
    b["dataset.json"] = json.dumps({"labels": [[n, [0.5, -1.0]] for n in names]}).encode()
    return [a, b]


def _zip(tree, method):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name in sorted(tree):
            z.writestr(name, tree[name])
    return buf.getvalue()


def _npz(compressed):
    rng = np.random.default_rng(2)
    arrays = {"w": rng.standard_normal((2, NUM_WS, W_DIM)).astype(np.float32)}
    arrays.update({f"noise.{k}": rng.standard_normal((r, r)).astype(np.float32)
                   for k, r in NOISE.items()})
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _graphdef():
    import tensorflow as tf
    graph = tf.compat.v1.GraphDef()
    for i, (_name, scope) in enumerate(_inception_names()[:4]):
        for key, shape in (("conv2d_params", (1, 1, 3, 2)), ("batchnorm/beta", (2,))):
            node = graph.node.add()
            node.name, node.op = f"{scope}/{key}", "Const"
            value = np.full(shape, 0.5 + i, np.float32)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            node.attr["dtype"].type = tf.float32.as_datatype_enum
    return graph.SerializeToString()


def _http():
    body = bytes(range(256)) * 8
    plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " \
        + str(len(body)).encode() + b"\r\n\r\n" + body
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" \
        + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    return [plain, chunked, b"HTTP/1.0 200 OK\r\n\r\n" + body]


_KERAS_SCRIPT = r"""
import sys
from sg3keras.convert.official_pickle import load_official_pickle
from sg3keras.utils import save_keras_atomic
save_keras_atomic(load_official_pickle(sys.argv[1], networks=("G_ema",))["G_ema"], sys.argv[2])
"""


def _keras(workdir):
    path = os.path.join(workdir, "seed-network.keras")
    if not os.path.exists(path):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1",
                   PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        subprocess.run([sys.executable, "-c", _KERAS_SCRIPT, PICKLE, path], check=True, env=env,
                       cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=600)
    with open(path, "rb") as f:
        return [f.read()]


def _seeds(kind, workdir):
    if kind == "pickle":
        with open(PICKLE, "rb") as f:
            return [f.read()]
    if kind == "keras":
        return _keras(workdir)
    if kind == "dataset-zip":
        a, b = _dataset_trees()
        return [_zip(a, zipfile.ZIP_STORED), _zip(b, zipfile.ZIP_DEFLATED)]
    if kind == "dataset-dir":
        return _dataset_trees()
    if kind == "npz":
        return [_npz(False), _npz(True)]
    if kind == "torchscript":
        archive = torchscript_archive(_vgg_tensors())
        import pickle
        return [archive, pickle.dumps({"archive": archive, "note": "x"}, protocol=4)]
    if kind == "inception":
        tensors = {}
        for name, _scope in _inception_names():
            tensors[f"layers.{name}.weight"] = (2, 1, 1, 1)
            for k in ("beta", "mean", "var"):
                tensors[f"layers.{name}.{k}"] = (2,)
        return [torchscript_archive(tensors)]
    if kind == "graphdef":
        return [_graphdef()]
    if kind == "http":
        return _http()
    raise ValueError(f"unknown seed kind {kind!r}")


def build(workdir, kinds):
    """``{kind: (seeds, path of seed 0 written under workdir/seeds)}`` for ``kinds``."""
    from fuzz_harness import write_input
    out = {}
    for kind in sorted(kinds):
        seeds = _seeds(kind, workdir)
        path = os.path.join(workdir, "seeds", kind, file_name(kind))
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_input(path, seeds[0])
        out[kind] = (seeds, path)
    return out
