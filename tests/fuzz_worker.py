"""The worker side of the fuzz harness (tests/fuzz_harness.py): reads ``[reader, path]`` lines
on stdin, runs the reader on the file and answers one JSON line per input."""

import gc
import json
import os
import resource
import socket
import sys
import threading
import traceback

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sg3keras")


class _StandInG:
    """What :func:`load_projected_w` needs of a generator (sizes of the seed in fuzz_seeds)."""

    def __init__(self):
        import fuzz_seeds
        self.num_ws, self.w_dim, self._noise = fuzz_seeds.NUM_WS, fuzz_seeds.W_DIM, \
            fuzz_seeds.NOISE

    def noise_inputs(self):
        return list(self._noise.items())


class _Server:
    """A one-response-per-connection HTTP server: sends the bytes of ``self.body`` and closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port, self.body = self.sock.getsockname()[1], b""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            conn, _ = self.sock.accept()
            try:
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(self.body)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                conn.close()


_STATE = {"n": 0}


def _download(path):
    from sg3keras.data.download import DownloadError, download
    server = _STATE.get("server") or _STATE.setdefault("server", _Server())
    with open(path, "rb") as f:
        server.body = f.read()
    _STATE["n"] += 1
    url = f"http://127.0.0.1:{server.port}/n{_STATE['n']}/file.bin"
    dest = os.path.join(os.path.dirname(path), "cache", "file.bin")
    try:
        download(url, dest, progress=False, timeout=5, log=lambda m: None)
    except DownloadError as e:
        left = os.listdir(os.path.dirname(dest)) if os.path.isdir(os.path.dirname(dest)) else []
        if left:
            raise AssertionError(f"a failed download left {left} in the cache") from e
        raise
    if not os.path.isfile(dest):
        raise AssertionError("download returned but wrote no file")


def _dataset(path):
    from sg3keras.data.dataset import ImageDataset
    ds = ImageDataset(path)
    try:
        for i in range(len(ds)):
            ds.get_image(i)
            ds.get_label(i)
    finally:
        ds.close()


def _reader(name):
    """``fn(path)`` running reader ``name`` (imports done here, once)."""
    if name == "pickle":
        from sg3keras.convert.pickle_reader import read_official_pickle
        return read_official_pickle
    if name == "convert":
        from sg3keras.convert.official_pickle import load_official_pickle
        return load_official_pickle
    if name == "keras":
        from sg3keras.networks.loading import load_network
        return load_network
    if name in ("dataset-zip", "dataset-dir"):
        return _dataset
    if name == "projected-w":
        from sg3keras.inference.projector import load_projected_w
        g = _StandInG()
        return lambda path: load_projected_w(path, g)
    if name == "torchscript":
        from sg3keras.detectors.loading import read_torchscript_tensors
        return read_torchscript_tensors
    if name == "vgg16":
        from sg3keras.detectors.loading import load_vgg16_lpips
        return load_vgg16_lpips
    if name in ("inception", "inception-pb"):
        from sg3keras.detectors.loading import load_detector
        return lambda path: load_detector("inception", detector_dir=path)
    if name == "download":
        return _download
    raise ValueError(f"unknown reader {name!r}")


def _names(e):
    return {f"{c.__module__}.{c.__qualname__}" for c in type(e).__mro__}


def _chain(e):
    seen = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def _innermost(e):
    tb, last = e.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return (last.tb_frame.f_code.co_filename, last.tb_lineno) if last else ("?", 0)


def classify(e, documented, path):
    """``(outcome, detail)`` of an exception raised by a reader on ``path``."""
    where, line = _innermost(e)
    short = f"{os.path.relpath(where, os.path.dirname(PKG))}:{line}"
    text = str(e).splitlines()[0][:300] if str(e) else ""
    detail = f"{type(e).__name__} at {short}: {text}"
    if any(isinstance(x, MemoryError) for x in _chain(e)):
        return "crash", "memory: " + detail
    wanted = {n if "." in n else f"builtins.{n}" for n in documented}
    if not (_names(e) & wanted):
        return "crash", detail
    if not os.path.abspath(where).startswith(PKG + os.sep):
        return "crash", "raised inside a library: " + detail
    name = os.path.basename(path)
    if name not in str(e) and "127.0.0.1" not in str(e):
        return "crash", "message names no file: " + detail
    return "rejected", detail


def _address_space():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _after(name):
    if name in ("convert", "keras", "vgg16", "inception", "inception-pb"):
        import keras

        from sg3keras.detectors.loading import clear_detector_cache
        clear_detector_cache()
        keras.backend.clear_session()
    gc.collect()


def _setup(name, seed_path, headroom):
    """Import reader ``name``, warm it on its valid seed, then cap the address space."""
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
    reader = _reader(name)
    if seed_path:
        try:
            reader(seed_path)
        except Exception:
            pass
        _after(name)
    if headroom > 0:
        limit = _address_space() + headroom
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    return reader


def _run(reader, path, documented):
    """The answer for one input: ``{"outcome": ..., "detail": ...}``."""
    try:
        reader(path)
        return {"outcome": "loaded", "detail": ""}
    except AssertionError as e:
        return {"outcome": "crash", "detail": f"invariant: {e}"}
    except RecursionError as e:
        return {"outcome": "crash", "detail": f"RecursionError: {str(e)[:200]}"}
    except Exception as e:
        outcome, detail = classify(e, documented, path)
        if os.environ.get("SG3KERAS_FUZZ_TRACEBACK") and outcome == "crash":
            traceback.print_exception(e)
        return {"outcome": outcome, "detail": detail}


def main(seed_paths, headroom):
    from fuzz_harness import READERS
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)                        # stray prints must not reach the answers
    readers = {}
    for line in sys.stdin:
        name, path = json.loads(line)
        if name not in readers:
            readers[name] = _setup(name, seed_paths.get(name), headroom)
        res = _run(readers[name], path, READERS[name][1])
        _after(name)
        proto.write(json.dumps(res) + "\n")
        proto.flush()
