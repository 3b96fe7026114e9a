"""The fuzz harness: every reader of outside data, run on mutated files under a watchdog.

Each input is run in a worker process (``python tests/fuzz_harness.py --worker``) that has
imported the readers once; the parent feeds it one input at a time and classifies the result:

* ``loaded``: the reader returned;
* ``rejected``: the reader raised its documented error type (:data:`READERS`: the types the CLI
  turns into one ``Error:`` line), from sg3keras code (the innermost frame is in the package),
  with a message naming the file (or URL);
* ``crash``: any other exception, a documented type raised from inside a library, a message
  that names no file, a ``MemoryError`` anywhere in the exception chain, or the worker dying;
* ``hang``: no answer within ``timeout`` seconds (the worker is killed and restarted).

Memory: after warming a reader on its valid seed the worker caps its address space
(``RLIMIT_AS``) at its current size plus ``headroom`` bytes, so an allocation sized by a number
written in the file (a tensor claiming 2^40 elements, a zip bomb) fails as ``MemoryError``
instead of going unnoticed.

Inputs are reproducible: input ``i`` of reader ``r`` under campaign seed ``s`` is drawn from
``random.Random(f"{s}:{r}:{i}")`` (:func:`make_input`).
"""

import json
import os
import random
import select
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [p for p in (HERE, ROOT) if p not in sys.path]

import fuzz_mutate  # noqa: E402
import fuzz_seeds  # noqa: E402

# reader -> (seed kind, documented error types as dotted names, per-input timeout in seconds)
READERS = {
    "pickle": ("pickle", ("sg3keras.convert.pickle_reader.PickleFormatError",), 30),
    "convert": ("pickle", ("sg3keras.convert.pickle_reader.PickleFormatError", "ValueError"), 120),
    "keras": ("keras", ("sg3keras.networks.loading.NetworkLoadError",), 120),
    "dataset-zip": ("dataset-zip", ("sg3keras.data.dataset_tool.DatasetError",), 60),
    "dataset-dir": ("dataset-dir", ("sg3keras.data.dataset_tool.DatasetError",), 60),
    "projected-w": ("npz", ("ValueError",), 30),
    "torchscript": ("torchscript", ("sg3keras.detectors.loading.DetectorFormatError",), 30),
    "vgg16": ("torchscript", ("sg3keras.detectors.loading.DetectorFormatError",), 120),
    "inception": ("inception", ("sg3keras.detectors.loading.DetectorFormatError",), 60),
    "inception-pb": ("graphdef", ("sg3keras.detectors.loading.DetectorFormatError",), 60),
    "download": ("http", ("sg3keras.data.download.DownloadError",), 60),
}
OUTCOMES = ("loaded", "rejected", "crash", "hang")


# ------------------------------------------------------------------------------------------
# Inputs.

def make_input(reader, seeds, campaign_seed, index, workdir):
    """Write input ``index`` of ``reader`` under ``workdir``; returns ``(path, description)``.

    ``seeds``: the valid seeds of the reader's kind (:func:`fuzz_seeds.build`), bytes or
    ``{relpath: bytes}`` trees; input 0 of every campaign is the first seed unchanged."""
    rng = random.Random(f"{campaign_seed}:{reader}:{index}")
    k = rng.randrange(len(seeds))
    seed = seeds[k]
    if index == 0:
        data, desc = seeds[0], "valid seed"
    elif isinstance(seed, dict):
        data, desc = fuzz_mutate.mutate_tree(seed, rng)
    else:
        data, desc = fuzz_mutate.mutate(seed, rng)
    path = os.path.join(workdir, f"in{index}", fuzz_seeds.file_name(READERS[reader][0]))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_input(path, data)
    return path, f"seed {k}: {desc}"


def write_input(path, data):
    if isinstance(data, dict):
        for rel, blob in data.items():
            p = os.path.join(path, *rel.split("/"))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(blob)
        os.makedirs(path, exist_ok=True)
    else:
        with open(path, "wb") as f:
            f.write(data)


# ------------------------------------------------------------------------------------------
# The parent side: a worker under a watchdog.

class Worker:
    """A worker process fed one input at a time (restarted after a hang or a death)."""

    def __init__(self, seed_paths, headroom):
        self.seed_paths, self.headroom, self.proc = seed_paths, headroom, None

    def _start(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1",
                   PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(self.seed_paths),
             str(self.headroom)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, cwd=ROOT)

    def run(self, reader, path, timeout):
        """``{"outcome": ..., "detail": ...}`` for one input."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write((json.dumps([reader, path]) + "\n").encode())
        self.proc.stdin.flush()
        # The first input of a reader also imports and warms it up: allow for that.
        deadline = time.monotonic() + timeout + 120 * (reader not in getattr(self, "warm", ()))
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready = select.select([self.proc.stdout], [], [], max(0.0, left))[0]
            if not ready:
                self.close()
                return {"outcome": "hang", "detail": f"no answer within {timeout} s"}
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                code = self.proc.wait()
                self.proc = None
                return {"outcome": "crash", "detail": f"worker died (exit status {code})"}
            line += chunk
        self.warm = set(getattr(self, "warm", ())) | {reader}
        return json.loads(line)

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.warm = set()


def campaign(readers, inputs, campaign_seed, workdir, headroom=2 << 30, keep_crashes=None,
             log=None, seeds=None):
    """Run ``inputs[reader]`` inputs per reader; returns ``{reader: counts}`` where counts has
    one entry per :data:`OUTCOMES` plus ``inputs`` and ``failures`` (description, detail and,
    when ``keep_crashes`` is a folder, the kept input's path of every crash / hang)."""
    seeds = seeds or fuzz_seeds.build(workdir, {READERS[r][0] for r in readers})
    seed_paths = {r: seeds[READERS[r][0]][1] for r in readers}
    worker = Worker(seed_paths, headroom)
    results = {}
    try:
        for reader in readers:
            counts = dict.fromkeys(OUTCOMES, 0)
            counts.update(inputs=0, failures=[])
            start = time.monotonic()
            for i in range(inputs[reader]):
                indir = os.path.join(workdir, "inputs", reader)
                path, desc = make_input(reader, seeds[READERS[reader][0]][0], campaign_seed, i,
                                        indir)
                res = worker.run(reader, path, READERS[reader][2])
                counts[res["outcome"]] += 1
                counts["inputs"] += 1
                if res["outcome"] in ("crash", "hang"):
                    kept = _keep(path, keep_crashes, reader, campaign_seed, i)
                    counts["failures"].append({"index": i, "input": desc, "kept": kept,
                                               "outcome": res["outcome"],
                                               "detail": res["detail"]})
                    if log:
                        log(f"{reader} #{i} {res['outcome']}: {res['detail']} [{desc}]")
                shutil.rmtree(os.path.dirname(path), ignore_errors=True)
            counts["seconds"] = round(time.monotonic() - start, 1)
            results[reader] = counts
            if log:
                log(f"done {reader}: " + json.dumps({k: v for k, v in counts.items()
                                                      if k != "failures"}))
    finally:
        worker.close()
    return results


def _keep(path, folder, reader, campaign_seed, index):
    if folder is None:
        return None
    dest = os.path.join(folder, f"{reader}-s{campaign_seed}-{index}-{os.path.basename(path)}")
    if os.path.isdir(path):
        shutil.copytree(path, dest, dirs_exist_ok=True)
    else:
        os.makedirs(folder, exist_ok=True)
        shutil.copyfile(path, dest)
    return dest


def replay(reader, path, timeout=None, headroom=2 << 30, seed_paths=None):
    """Run one kept input (a regression file); returns the worker's answer."""
    worker = Worker(seed_paths or {}, headroom)
    try:
        return worker.run(reader, path, timeout or READERS[reader][2])
    finally:
        worker.close()


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    import fuzz_worker
    fuzz_worker.main(json.loads(sys.argv[2]), int(sys.argv[3]))
