"""Shared helpers: atomic writes keep old files on failure and give new files the user's umask."""

import json
import os

import numpy as np
import pytest

from sg3keras.utils import atomic_path, atomic_write_json, format_time, to_uint8


def _mode(path):
    return os.stat(path).st_mode & 0o777


def test_atomic_path_uses_the_umask_and_replaces():
    old = os.umask(0o027)
    try:
        import tempfile
        d = tempfile.mkdtemp()
        out = os.path.join(d, "sub", "f.bin")
        with atomic_path(out, suffix=".bin") as tmp:
            assert os.path.dirname(tmp) == os.path.dirname(out) and tmp != out
            with open(tmp, "wb") as f:
                f.write(b"new")
        assert open(out, "rb").read() == b"new" and _mode(out) == 0o640
        assert os.listdir(os.path.dirname(out)) == ["f.bin"]
    finally:
        os.umask(old)


def test_atomic_path_keeps_the_old_file_on_error(tmp_path):
    out = tmp_path / "keep.json"
    atomic_write_json(out, {"a": 1})
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(out) as tmp:
            open(tmp, "w").write("partial")
            raise RuntimeError("boom")
    assert json.loads(out.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["keep.json"]


def test_to_uint8_numpy_and_tensor_agree():
    import keras
    x = np.array([[-1.0, -0.999, 0.0, 0.5, 1.0, 1.01, 3.0, -7.0]], np.float32)
    want = np.clip(x * 127.5 + 128, 0, 255).astype(np.uint8)    # the official formula
    np.testing.assert_array_equal(to_uint8(x), want)
    assert isinstance(to_uint8(x), np.ndarray)
    np.testing.assert_array_equal(np.asarray(to_uint8(keras.ops.convert_to_tensor(x))), want)


@pytest.mark.parametrize("sec,text", [(0, "0s"), (59.4, "59s"), (61, "1m 01s"),
                                      (3600 * 2 + 61, "2h 01m 01s"),
                                      (86400 + 3600 + 120, "1d 01h 02m")])
def test_format_time(sec, text):
    assert format_time(sec) == text
