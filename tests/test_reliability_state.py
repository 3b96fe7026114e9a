"""Reliability of a run's state: checksummed checkpoints and snapshots (a damaged one is found
and the newest good one used), a full or read-only disk (one line naming the file, the last good
checkpoint untouched), damaged ``training_options.json`` / ``latest.json``, the signal handler.

The checkpoint tests use a stand-in trainer (numpy arrays, no TensorFlow); the runs that train
are in test_reliability_runs.py.
"""

import errno
import json
import os
import signal

import numpy as np
import pytest

from sg3keras.training import checkpoint as ck
from sg3keras.training import interrupt


class _Var:
    def __init__(self, value):
        self.value = np.array(value, np.float32)
        self.shape = self.value.shape

    def numpy(self):
        return self.value

    def assign(self, value):
        assert value.shape == self.shape
        self.value = np.array(value)


class _Trainer:
    """``checkpoint_variables()`` as the GAN has it, over two small arrays."""

    def __init__(self, fill=0.0):
        self.vars = [("G/w", _Var(np.full([3, 4], fill))), ("D/b", _Var(np.full([5], -fill)))]

    def checkpoint_variables(self):
        return self.vars

    def fill(self):
        return float(self.vars[0][1].value[0, 0])


def _save(run_dir, step, **kw):
    meta = dict(step=step, tick=step // 2, kimg=step * 4 / 1000.0, nimg=step * 4)
    return ck.save_checkpoint(str(run_dir), _Trainer(float(step)), meta, **kw)


def _files(run_dir):
    return sorted(os.listdir(os.path.join(run_dir, "checkpoints")))


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_checkpoint_records_its_sha256_and_keeps_two(tmp_path):
    for step in (2, 4, 6):
        path = _save(tmp_path, step)
    assert _files(tmp_path) == ["ckpt-00000004.json", "ckpt-00000004.npz", "ckpt-00000006.json",
                                "ckpt-00000006.npz", "latest.json"]
    import hashlib
    latest = json.loads(_bytes(tmp_path / "checkpoints" / "latest.json"))
    data = _bytes(path)
    assert latest["file"] == "ckpt-00000006.npz" and latest["step"] == 6
    assert latest["sha256"] == hashlib.sha256(data).hexdigest() and latest["size"] == len(data)
    assert json.loads(_bytes(tmp_path / "checkpoints" / "ckpt-00000006.json")) == latest
    t = _Trainer()
    meta, got, newest = ck.restore_latest(str(tmp_path), t, report=pytest.fail)
    assert (meta["step"], got, newest, t.fill()) == (6, path, 6, 6.0)


def _flip_byte(path, offset):
    data = bytearray(_bytes(path))
    data[offset] ^= 0x01
    with open(path, "wb") as f:
        f.write(bytes(data))


@pytest.mark.parametrize("damage", ["bitflip", "truncated", "missing"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, damage):
    for step in (2, 4):
        path = _save(tmp_path, step)
    if damage == "bitflip":        # in the middle of an array: the zip itself still opens
        _flip_byte(path, os.path.getsize(path) // 2)
    elif damage == "truncated":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 100)
    else:
        os.remove(path)
    lines, t = [], _Trainer()
    meta, got, newest = ck.restore_latest(str(tmp_path), t, report=lines.append)
    assert meta["step"] == 2 and got.endswith("ckpt-00000002.npz") and newest == 4
    assert t.fill() == 2.0
    assert len(lines) == 1 and path in lines[0] and "skipped" in lines[0], lines


def test_latest_json_not_json_is_one_line_and_the_newest_good_checkpoint_is_used(tmp_path):
    for step in (2, 4):
        _save(tmp_path, step)
    latest = tmp_path / "checkpoints" / "latest.json"
    latest.write_bytes(b"\x00\x00{not json")
    with pytest.raises(ck.CorruptCheckpointError, match="latest.json is damaged"):
        ck.read_latest(str(tmp_path))
    lines, t = [], _Trainer()
    meta, _, _ = ck.restore_latest(str(tmp_path), t, report=lines.append)
    assert meta["step"] == 4 and t.fill() == 4.0
    assert len(lines) == 1 and str(latest) in lines[0], lines
    # ... and a damaged record of the newest makes it fall back once more.
    (tmp_path / "checkpoints" / "ckpt-00000004.json").write_text("[1, 2")
    lines = []
    meta, _, _ = ck.restore_latest(str(tmp_path), _Trainer(), report=lines.append)
    assert meta["step"] == 2 and len(lines) == 2 and "ckpt-00000004.json" in lines[1], lines


def test_no_good_checkpoint_is_one_error_naming_the_folder(tmp_path):
    for step in (2, 4):
        path = _save(tmp_path, step)
        _flip_byte(path, os.path.getsize(path) // 2)
    lines = []
    with pytest.raises(ck.CorruptCheckpointError) as e:
        ck.restore_latest(str(tmp_path), _Trainer(), report=lines.append)
    assert str(tmp_path / "checkpoints") in str(e.value) and "step 0" in str(e.value)
    assert len(lines) == 2


def test_no_checkpoint_at_all_restores_nothing(tmp_path):
    assert ck.restore_latest(str(tmp_path), _Trainer(), report=pytest.fail) == (None, None, None)


def test_checkpoint_of_an_older_version_without_records_still_loads(tmp_path):
    path = _save(tmp_path, 2)
    os.remove(tmp_path / "checkpoints" / "ckpt-00000002.json")
    info = json.loads(_bytes(tmp_path / "checkpoints" / "latest.json"))
    for k in ("sha256", "size"):
        del info[k]
    (tmp_path / "checkpoints" / "latest.json").write_text(json.dumps(info))
    t = _Trainer()
    meta, got, _ = ck.restore_latest(str(tmp_path), t, report=pytest.fail)
    assert got == path and t.fill() == 2.0


def test_going_back_to_an_older_checkpoint_removes_the_newer_ones(tmp_path):
    """After a fall-back resume, the next checkpoint removes the damaged newer one (its ticks
    are being trained again) and keeps the one before it."""
    for step in (2, 4, 6):
        _save(tmp_path, step)
    _save(tmp_path, 5)
    assert _files(tmp_path) == ["ckpt-00000004.json", "ckpt-00000004.npz", "ckpt-00000005.json",
                                "ckpt-00000005.npz", "latest.json"]


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS", "EDQUOT", "EFBIG"])
@pytest.mark.parametrize("at", ["npz", "record", "latest"])
def test_full_or_read_only_disk_keeps_the_last_checkpoint(tmp_path, monkeypatch, code, at):
    """A write that fails for lack of space (or a read-only disk) is one StorageError naming the
    file; the previous checkpoint and latest.json are untouched and still restore."""
    _save(tmp_path, 2)
    before = {n: _bytes(tmp_path / "checkpoints" / n) for n in _files(tmp_path)}
    err = getattr(errno, code)
    real_bytes, real_json = ck.atomic_write_bytes, ck.atomic_write_json

    def failing(real, name):
        def write(path, data):
            if os.path.basename(path).endswith(name):
                raise OSError(err, os.strerror(err))        # as a file's write() raises it
            return real(path, data)
        return write
    monkeypatch.setattr(ck, "atomic_write_bytes",
                        failing(real_bytes, ".npz" if at == "npz" else "never"))
    monkeypatch.setattr(ck, "atomic_write_json", failing(
        real_json, {"npz": "never", "record": "04.json", "latest": "latest.json"}[at]))
    with pytest.raises(ck.StorageError) as e:
        _save(tmp_path, 4)
    target = {"npz": "ckpt-00000004.npz", "record": "ckpt-00000004.json",
              "latest": "latest.json"}[at]
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "checkpoints" / target) in msg and code in msg
    assert e.value.errno == err and isinstance(e.value, OSError)
    for name, data in before.items():
        assert _bytes(tmp_path / "checkpoints" / name) == data, name
    monkeypatch.undo()
    t = _Trainer()
    meta, _, _ = ck.restore_latest(str(tmp_path), t, report=pytest.fail)
    assert meta["step"] == 2 and t.fill() == 2.0
    _save(tmp_path, 4)            # space again: the run goes on
    assert ck.read_latest(str(tmp_path))["step"] == 4


def test_other_write_errors_stay_what_they_are(tmp_path):
    with pytest.raises(PermissionError):
        with ck.writing(str(tmp_path / "x"), "checkpoint"):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_snapshot_sums_find_a_damaged_snapshot(tmp_path):
    from sg3keras.training.ticks import SNAPSHOT_SUMS, record_snapshot, snapshot_damaged
    a, b = tmp_path / "network-snapshot-000000.016.keras", tmp_path / "network-snapshot-000001.keras"
    a.write_bytes(b"a" * 1000)
    b.write_bytes(b"b" * 1000)
    record_snapshot(str(tmp_path), str(a))
    record_snapshot(str(tmp_path), str(b))
    import hashlib
    lines = (tmp_path / SNAPSHOT_SUMS).read_text().splitlines()    # sha256sum -c format
    assert lines == [f"{hashlib.sha256(b'a' * 1000).hexdigest()}  {a.name}",
                     f"{hashlib.sha256(b'b' * 1000).hexdigest()}  {b.name}"]
    assert not snapshot_damaged(str(tmp_path), str(a))
    a.write_bytes(b"a" * 999)
    assert snapshot_damaged(str(tmp_path), str(a)) and not snapshot_damaged(str(tmp_path), str(b))
    c = tmp_path / "network-snapshot-000002.keras"        # written by an older version
    c.write_bytes(b"c")
    assert not snapshot_damaged(str(tmp_path), str(c))


def _run_dir(tmp_path, options):
    run = tmp_path / "00000-run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "training_options.json").write_bytes(options)
    return run


@pytest.mark.parametrize("content", [b"{\"cfg\": \"stylegan3-t\", ", b"\xff\xfe\x00", b"[1, 2]"])
def test_damaged_training_options_is_one_line_naming_the_file(tmp_path, content):
    from helpers import run_cli
    run = _run_dir(tmp_path, content)
    r = run_cli("train", "--resume", run)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(run / "training_options.json") in lines[0], r.stderr
    assert "damaged" in lines[0] and "Traceback" not in r.output


def test_stop_request_defers_the_first_signal_only_while_training():
    stop = interrupt.StopRequest()
    with pytest.raises(interrupt.RunInterrupted) as e:      # before training: at once
        stop.handler(signal.SIGTERM, None)
    assert e.value.exit_status == 143 and isinstance(e.value, KeyboardInterrupt)
    stop = interrupt.StopRequest()
    stop.deferring = True
    stop.handler(signal.SIGINT, None)                       # while training: a request
    assert stop.requested and stop.signum == signal.SIGINT
    with pytest.raises(interrupt.RunInterrupted) as e:      # the second one: at once
        stop.handler(signal.SIGINT, None)
    assert e.value.exit_status == 130


def test_graceful_stop_puts_the_previous_handlers_back():
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    with interrupt.graceful_stop() as stop:
        assert signal.getsignal(signal.SIGINT) == stop.handler
        assert signal.getsignal(signal.SIGTERM) == stop.handler
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before


def test_stopped_message_names_the_checkpoint_and_the_resume_command(tmp_path):
    run = _run_dir(tmp_path / "my runs", b"{}")
    e = interrupt.stopped(signal.SIGINT, str(run), True)
    assert "no checkpoint yet" in str(e) and "step 0" in str(e)
    assert str(e).endswith(f"sg3keras train --resume '{run}'")
    _save(run, 2)
    e = interrupt.stopped(signal.SIGTERM, str(run), True)
    assert "SIGTERM" in str(e) and str(run / "checkpoints" / "ckpt-00000002.npz") in str(e)
    assert str(e).endswith(f"sg3keras train --resume '{run}'") and e.exit_status == 143
    assert "run the same command again" in str(interrupt.stopped(signal.SIGINT, None, False))


def test_fid_statistics_cache_follows_sg3keras_cache(tmp_path, monkeypatch):
    """The real-image statistics of a metric are written under ``$SG3KERAS_CACHE`` (not the home
    cache) and read back from there."""
    from sg3keras.metrics import registry
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("SG3KERAS_CACHE_DIR", raising=False)
    monkeypatch.setenv("SG3KERAS_CACHE", str(tmp_path / "cache"))
    images = np.random.RandomState(0).randint(0, 256, [6, 8, 8, 3]).astype(np.uint8)
    data_file = tmp_path / "data.zip"
    data_file.write_bytes(b"stands for the dataset file (the cache key uses its path and time)")

    class Dataset:
        path = str(data_file)

        def __len__(self):
            return len(images)

        def iter_uint8(self, batch):
            for i in range(0, len(images), batch):
                yield images[i:i + batch]

    class Detector:
        name, calls = "mean_rgb", 0

        def features(self, x):
            Detector.calls += 1
            return x.reshape(len(x), -1, 3).mean(1)

    spec = registry.METRICS["fid50k_full"]
    stats = registry._real_stats(Dataset(), Detector(), spec, dict(capture_mean_cov=True), True,
                                 None)
    written = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs
               if f.endswith(".npz")]
    assert len(written) == 1 and written[0].startswith(str(tmp_path / "cache" / "gan-metrics"))
    assert not (tmp_path / "home").exists()
    again = registry._real_stats(Dataset(), Detector(), spec, dict(capture_mean_cov=True), True,
                                 None)
    assert Detector.calls == 1          # the second time from the cache
    np.testing.assert_array_equal(again.raw_mean, stats.raw_mean)


def test_resume_drops_metric_records_of_snapshots_after_the_checkpoint(tmp_path):
    """Going back to an older checkpoint (the newest was damaged) leaves metric records of
    snapshots whose ticks run again: they go, as the stats.jsonl lines of those ticks do."""
    from sg3keras.training.ticks import prepare_resume
    recs = [{"results": {"fid50k_full": v}, "snapshot_pkl": f"network-snapshot-{tag}.keras"}
            for v, tag in [(9.0, "000000.016"), (8.0, "000000.032"), (7.0, "000000.048")]]
    path = tmp_path / "metric-fid50k_full.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"results": ')
    other = tmp_path / "metric-kid50k_full.jsonl"
    other.write_text(json.dumps(recs[0]) + "\n")
    lines = []
    prepare_resume(str(tmp_path), {"tick": 2, "kimg": 0.032}, lines.append)
    assert [json.loads(ln) for ln in path.read_text().splitlines()] == recs[:2]
    assert other.read_text() == json.dumps(recs[0]) + "\n"
    assert len(lines) == 1 and "metric-fid50k_full.jsonl: dropped 2 record(s)" in lines[0], lines


def test_dataset_zip_on_a_full_disk_is_one_line_naming_it(tmp_path):
    """``sg3keras dataset`` in a process whose file-size limit is below the zip's size (a write
    past it fails with EFBIG, as on a full disk): one line naming the zip, nothing left behind."""
    import subprocess
    import sys

    from helpers import ROOT
    from train_fixtures import write_tiny_dataset
    src = write_tiny_dataset(tmp_path / "src.zip", n=24, resolution=32)
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "dataset.zip"
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384)); "
            "from sg3keras.cli import main; sys.argv[0] = 'sg3keras'; main()")
    r = subprocess.run([sys.executable, "-c", code, "dataset", "--source", src, "--dest", dest],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0] == f"Error: {dest}: File too large", lines
    assert os.listdir(out) == []


def test_snapshot_on_a_full_disk_is_a_storage_error_naming_it(tmp_path, monkeypatch):
    """The snapshot write of a tick end goes through the same wrapper as the checkpoint's."""
    from types import SimpleNamespace

    from sg3keras.training import ticks

    def full(model, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(ticks, "save_keras_atomic", full)
    path = ticks.snapshot_path(str(tmp_path), 0.016)
    fake = SimpleNamespace(gan=SimpleNamespace(G_ema=None), run_dir=str(tmp_path))
    with pytest.raises(ck.StorageError) as e:
        ticks.TickCallback._snapshot(fake, path, 0.016, 16)
    assert str(e.value) == f"cannot write snapshot {path}: {os.strerror(errno.ENOSPC)} (ENOSPC)"
    assert not os.path.exists(tmp_path / ticks.SNAPSHOT_SUMS)
