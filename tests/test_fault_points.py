"""Kills at every write step (``sg3keras.utils.fault_point``): a child process is SIGKILLed at one fault point
of a checkpoint, snapshot, stats/metric record, dataset zip, download, FID statistics cache or
SavedModel export; afterwards the previous good state is intact, no partial file is taken for a
good one (a leftover temp file is ignored), and doing the write again succeeds.

Each child runs under ``timeout -s KILL``; it must die with SIGKILL (``timeout`` passes the
signal on) after printing ``FAULT <point>@<file>``, which proves the kill came from the point.
"""

import glob
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A stand-in trainer for the checkpoint writer: variables with numpy(), assign(), shape.
FAKE_TRAINER = '''
import numpy as np
class V:
    def __init__(self, a):
        self.a = np.asarray(a)
        self.shape = self.a.shape
    def numpy(self):
        return self.a
    def assign(self, v):
        self.a = np.asarray(v)
class Trainer:
    def __init__(self, x):
        self.vars = [("G/0000/w", V(np.full((64, 64), x, np.float32))),
                     ("trainer/step", V(np.array(x, np.float32)))]
    def checkpoint_variables(self):
        return self.vars
'''
_NS = {}
exec(FAKE_TRAINER, _NS)
Trainer = _NS["Trainer"]


def run_killed(code, fault, cwd, timeout=120):
    """Run ``code`` in a fresh Python with ``$SG3KERAS_FAULT=fault``; assert it was killed by
    that fault point; return its stderr."""
    env = dict(os.environ, SG3KERAS_FAULT=fault, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(["timeout", "-s", "KILL", str(timeout), sys.executable, "-c", code],
                       cwd=cwd, env=env, capture_output=True, text=True)
    point = fault.rsplit(":", 1)[0].split("@")[0]
    assert r.returncode in (-9, 137) and f"FAULT {point}@" in r.stderr, (r.returncode,
                                                                          r.stderr[-3000:])
    return r.stderr


def test_fault_spec():
    from sg3keras import utils
    assert utils.parse_faults("a.b@ckpt-*.npz:2, c:1") == [["a.b", "ckpt-*.npz", 2, 0],
                                                            ["c", None, 1, 0]]
    for bad in ["a", "a:0", "a:x", ":3", "@x:1"]:
        with pytest.raises(ValueError, match=r"\$SG3KERAS_FAULT: .* expected POINT\[@GLOB\]:N"):
            utils.parse_faults(bad)
    assert not utils.FAULTS_ARMED and utils.fault_point("atomic.begin", "x") is None   # no-op


def test_a_point_fires_on_its_nth_hit_of_a_matching_file(tmp_path):
    """Two writes of other files and one earlier write of a matching file pass; the second
    matching write dies before its rename: the first is in place, the second is not."""
    code = ("from sg3keras.utils import atomic_write_bytes as w\n"
            "w('a.bin', b'1'); w('ckpt-1.npz', b'2'); w('b.bin', b'3'); w('ckpt-2.npz', b'4')\n"
            "print('not reached')")
    err = run_killed(code, "atomic.before_rename@ckpt-*.npz:2", tmp_path)
    assert "FAULT atomic.before_rename@ckpt-2.npz" in err
    assert sorted(f for f in os.listdir(tmp_path) if not f.startswith(".")) == \
        ["a.bin", "b.bin", "ckpt-1.npz"]
    assert len(glob.glob(str(tmp_path / ".ckpt-2.npz.*.tmp"))) == 1    # left behind, hidden


# ---- checkpoints ----------------------------------------------------------------------------

CKPT_POINTS = [f"{p}@{f}" for f in ("ckpt-*.npz", "ckpt-*.json", "latest.json")
               for p in ("atomic.begin", "atomic.mid_write", "atomic.before_rename",
                         "atomic.after_rename")]


@pytest.mark.parametrize("point", CKPT_POINTS)
def test_checkpoint_killed_at_each_write_step(tmp_path, point):
    """Step 2 is saved; a child saving step 4 is killed at ``point``. ``latest.json`` then
    names a checkpoint that loads in full: step 2, or step 4 once its ``latest.json`` is in
    place (the ``.npz``, its record ``ckpt-*.json``, then ``latest.json``). Saving step 4 again (the resumed run) and step 6 work, and pruning keeps two."""
    from sg3keras.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    run = str(tmp_path / "run")
    save_checkpoint(run, Trainer(1.0), {"step": 2, "kimg": 0.008})
    code = (FAKE_TRAINER + "from sg3keras.training.checkpoint import save_checkpoint\n"
            f"save_checkpoint({run!r}, Trainer(2.0), {{'step': 4, 'kimg': 0.016}})\n")
    run_killed(code, point + ":1", tmp_path)
    done = point == "atomic.after_rename@latest.json"
    t = Trainer(0.0)
    path = latest_checkpoint(run)
    assert os.path.basename(path) == ("ckpt-00000004.npz" if done else "ckpt-00000002.npz")
    assert load_checkpoint(path, t)["step"] == (4 if done else 2)
    assert np.all(t.vars[0][1].a == (2.0 if done else 1.0))
    for p in glob.glob(os.path.join(run, "checkpoints", "ckpt-*.npz")):   # no partial file
        load_checkpoint(p, Trainer(0.0))                                  # under a good name
    save_checkpoint(run, Trainer(2.0), {"step": 4, "kimg": 0.016})
    save_checkpoint(run, Trainer(3.0), {"step": 6, "kimg": 0.024})
    assert load_checkpoint(latest_checkpoint(run), t)["step"] == 6 and t.vars[1][1].a == 3.0
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(run, "checkpoints", "*"))
                  ) == ["ckpt-00000004.json", "ckpt-00000004.npz", "ckpt-00000006.json",
                        "ckpt-00000006.npz", "latest.json"]       # each with its SHA-256 record


# ---- stats.jsonl and metric-*.jsonl ---------------------------------------------------------

@pytest.mark.parametrize("point", ["append.mid", "append.after"])
def test_stats_line_killed_then_resume_cuts_back(tmp_path, point):
    """A kill while (or right after) appending tick 2's line, before its checkpoint: the
    readers see tick 1 (or ticks 1-2), and the resume's cut back to the checkpoint (tick 1)
    followed by the redone tick 2 leaves each tick once."""
    from sg3keras.runs.stats import append_line, read_stats, tick_of, truncate_after
    run = tmp_path / "run"
    run.mkdir()
    rec = lambda t: {"Progress/tick": {"num": 1, "mean": t, "std": 0}}   # noqa: E731
    append_line(run / "stats.jsonl", rec(1), 1.0)
    code = ("from sg3keras.runs.stats import append_line\n"
            f"append_line({str(run / 'stats.jsonl')!r}, "
            "{'Progress/tick': {'num': 1, 'mean': 2, 'std': 0}}, 2.0)\n")
    run_killed(code, f"{point}@stats.jsonl:1", tmp_path)
    assert [tick_of(r) for r in read_stats(run)] == ([1] if point == "append.mid" else [1, 2])
    truncate_after(run, 1)
    append_line(run / "stats.jsonl", rec(2), 3.0)
    assert [tick_of(r) for r in read_stats(run)] == [1, 2]


def test_metric_record_killed_mid_line_loses_only_that_record(tmp_path):
    """A kill in the middle of appending a metric record leaves a cut line; the next record
    appended (the evaluation done again) starts on a line of its own and is read back."""
    from sg3keras.runs.stats import read_metrics
    from sg3keras.utils import append_bytes
    path = tmp_path / "metric-fid50k_full.jsonl"
    line = lambda v: (json.dumps({"results": {"fid50k_full": v}}) + "\n").encode()  # noqa: E731
    append_bytes(path, line(10.0))
    code = ("from sg3keras.utils import append_bytes\n"
            f"append_bytes({str(path)!r}, {line(9.0)!r})\n")
    run_killed(code, "append.mid@metric-*.jsonl:1", tmp_path)
    assert [r["results"]["fid50k_full"] for r in read_metrics(tmp_path)["fid50k_full"]] == [10.0]
    append_bytes(path, line(8.0))
    assert [r["results"]["fid50k_full"] for r in read_metrics(tmp_path)["fid50k_full"]] == \
        [10.0, 8.0]


# ---- dataset zips ------------------------------------------------------------------------------

DATASET_CHILD = '''
import numpy as np
from sg3keras.data.dataset_tool import DatasetWriter
with DatasetWriter({dest!r}, force=True) as w:
    for i in range({n}):
        w.add(i, np.full((8, 8, 3), i, np.uint8))
'''


def _write_dataset(dest, n):
    exec(DATASET_CHILD.format(dest=str(dest), n=n), {})


@pytest.mark.parametrize("point", ["dataset.mid:3", "dataset.before_rename:1"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "over-old"])
def test_dataset_zip_killed_is_never_taken_for_a_dataset(tmp_path, point, existing):
    """The dataset tool killed after 3 images or with the zip complete but not renamed: the
    destination is absent (or the previous zip, intact); the half-written temp zip is hidden
    and not read as a dataset; making the dataset again works."""
    from sg3keras.data import ImageDataset
    dest = tmp_path / "data" / "faces.zip"
    if existing:
        _write_dataset(dest, 2)
    run_killed(DATASET_CHILD.format(dest=str(dest), n=6), point, tmp_path)
    if existing:
        assert len(ImageDataset(str(dest))) == 2
    else:
        assert not dest.exists()
    assert [f for f in os.listdir(dest.parent) if not f.startswith(".")] == \
        (["faces.zip"] if existing else [])
    _write_dataset(dest, 6)
    ds = ImageDataset(str(dest))
    assert len(ds) == 6 and int(ds.get_image(5)[0, 0, 0]) == 5
    with zipfile.ZipFile(dest) as z:
        assert z.testzip() is None


# ---- downloads (the download cache) -----------------------------------------------------------

@pytest.fixture
def server():
    """A local HTTP server of one 3 MiB body (more than one 1 MiB download block)."""
    body = np.random.RandomState(0).bytes(3 << 20)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/net.pkl", body
    httpd.shutdown()


@pytest.mark.parametrize("point", ["download.mid:1", "download.before_rename:1"])
def test_download_killed_leaves_no_cache_entry(tmp_path, server, point):
    """A download killed after its first block or complete but not renamed leaves no file under
    the cache name (a hidden ``.part``, which is not used); the next download fills it."""
    from sg3keras.data.download import download
    url, body = server
    dest = tmp_path / "cache" / "net.pkl"
    code = (f"from sg3keras.data.download import download\n"
            f"download({url!r}, {str(dest)!r}, progress=False, log=lambda m: None)\n")
    run_killed(code, point, tmp_path)
    assert not dest.exists()
    assert [f for f in os.listdir(dest.parent) if not f.startswith(".")] == []
    sha = hashlib.sha256(body).hexdigest()
    assert download(url, str(dest), sha256=sha, progress=False, log=lambda m: None) == str(dest)
    assert dest.read_bytes() == body


# ---- FID reference statistics (the metrics cache) ------------------------------------------

@pytest.mark.slow     # the child imports the metrics package (TensorFlow)
@pytest.mark.parametrize("point", ["atomic.mid_write", "atomic.before_rename"])
def test_feature_stats_cache_killed_is_recomputed(tmp_path, point):
    """A cache entry of real-image statistics killed while being saved is absent afterwards
    (the metric recomputes it); saving it again gives a file that loads to the same numbers."""
    from sg3keras.metrics.feature_math import FeatureStats
    path = tmp_path / "stats.npz"
    code = ("import numpy as np\nfrom sg3keras.metrics.feature_math import FeatureStats\n"
            "s = FeatureStats(capture_mean_cov=True)\n"
            "s.append(np.arange(12, dtype=np.float32).reshape(3, 4))\n"
            f"s.save({str(path)!r})\n")
    run_killed(code, point + "@stats.npz:1", tmp_path)
    assert not path.exists()
    s = FeatureStats(capture_mean_cov=True)
    s.append(np.arange(12, dtype=np.float32).reshape(3, 4))
    s.save(str(path))
    mean, _ = FeatureStats.load(str(path)).get_mean_cov()
    assert np.array_equal(mean, [4, 5, 6, 7])


# ---- snapshots (.keras) and SavedModel exports ---------------------------------------------

SNAPSHOT_CHILD = '''
import keras
from sg3keras.utils import save_keras_atomic
keras.utils.set_random_seed({seed})
m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
save_keras_atomic(m, {path!r})
'''


@pytest.mark.slow     # three fresh processes that import Keras
def test_snapshot_killed_at_each_write_step(tmp_path):
    """A snapshot ``.keras`` killed half written (the temp file cut to half), written but not
    renamed, or renamed: the run directory's newest snapshot is then the previous one or the
    complete new one, never a partial file; writing it again works."""
    import keras

    from sg3keras.networks.loading import locate_network
    old = tmp_path / "network-snapshot-000000.004.keras"
    new = tmp_path / "network-snapshot-000000.008.keras"
    exec(SNAPSHOT_CHILD.format(seed=1, path=str(old)), {})
    for point in ["atomic.mid_write", "atomic.before_rename", "atomic.after_rename"]:
        if new.exists():
            new.unlink()
        run_killed(SNAPSHOT_CHILD.format(seed=2, path=str(new)),
                   f"{point}@network-snapshot-*.keras:1", tmp_path, timeout=300)
        done = point == "atomic.after_rename"
        assert locate_network(str(tmp_path))[0] == str(new if done else old), point
        for snap in glob.glob(str(tmp_path / "network-snapshot-*.keras")):
            keras.models.load_model(snap)
    assert len(glob.glob(str(tmp_path / ".network-snapshot-*.tmp.keras"))) == 2   # hidden
    exec(SNAPSHOT_CHILD.format(seed=2, path=str(new)), {})
    assert keras.models.load_model(str(new)).count_params() == 10


EXPORT_CHILD = '''
import sys
sys.path.insert(0, {tests!r})
from test_export import _tiny_sg2
from sg3keras.export import export_savedmodel
export_savedmodel(_tiny_sg2(), {out!r}, "sg2")
'''


@pytest.mark.slow     # a fresh process that exports a SavedModel, then another export here
def test_savedmodel_export_killed_before_publishing(tmp_path):
    """An export killed with the SavedModel written to its temp directory but not renamed to
    its version: no version directory exists (TF Serving sees nothing); the hidden temp
    directory is not counted, and the next export is version 1."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_export import _tiny_sg2

    from sg3keras.export import export_savedmodel
    out = tmp_path / "models"
    run_killed(EXPORT_CHILD.format(tests=os.path.dirname(os.path.abspath(__file__)),
                                   out=str(out)), "export.before_rename:1", tmp_path, timeout=600)
    names = os.listdir(out / "sg2")
    assert len(names) == 1 and names[0].startswith(".export-")       # the temp dir, hidden
    assert export_savedmodel(_tiny_sg2(), str(out), "sg2").endswith(os.path.join("sg2", "1"))
    assert os.path.exists(out / "sg2" / "1" / "saved_model.pb")


@pytest.mark.slow     # two tiny training launches
def test_grid_killed_after_its_snapshot_is_written_on_resume(tmp_path):
    """A kill between a snapshot's ``.keras`` and its ``fakes*.png`` grid: the resumed run
    writes the grid (from the checkpoint of the same tick) instead of taking the snapshot as
    done without it."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train_fixtures import write_tiny_dataset
    data = write_tiny_dataset(tmp_path / "tiny16.zip", n=16)
    code = ("import sys; sys.path.insert(0, {tests!r})\n"
            "from train_fixtures import tiny_options\n"
            "from sg3keras.training.loop import train\n"
            "train(tiny_options(outdir={out!r}, data={data!r}, kimg=0.008, tick=0.004, snap=1,"
            "{resume}), log=print)\n")
    tests = os.path.dirname(os.path.abspath(__file__))
    out = str(tmp_path / "runs")
    run_killed(code.format(tests=tests, out=out, data=data, resume=""),
               "atomic.mid_write@fakes000000.004.png:1", tmp_path, timeout=600)
    run_dir = glob.glob(os.path.join(out, "00000-*"))[0]
    assert os.path.exists(os.path.join(run_dir, "network-snapshot-000000.004.keras"))
    assert not os.path.exists(os.path.join(run_dir, "fakes000000.004.png"))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(["timeout", "-s", "KILL", "600", sys.executable, "-c",
                        code.format(tests=tests, out=out, data=data,
                                    resume=f"resume={run_dir!r}")],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "fakes000000.004.png was missing" in r.stdout, r.stdout[-2000:]
    for tag in ("000000.004", "000000.008"):
        assert os.path.exists(os.path.join(run_dir, f"fakes{tag}.png")), tag
