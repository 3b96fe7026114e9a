"""The smaller CLI commands: dataset, layers, help (the heavier ones have their own files)."""

import json
import os
import subprocess
import sys

import numpy as np
from refdata import layer_spec, padding_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "sg3keras.cli"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _run(args, ok=True):
    r = subprocess.run(CLI + args, cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert (r.returncode == 0) == ok, r.stdout[-2000:] + r.stderr[-2000:]
    return r


def test_help_lists_every_command():
    out = _run(["--help"]).stdout
    for cmd in ["convert", "generate", "dataset", "train", "metrics", "export", "video",
                "sticking", "eqmap", "spectra", "layers", "demo"]:
        assert cmd in out, cmd


def test_dataset_command_writes_official_zip(tmp_path):
    from PIL import Image

    from sg3keras.data import ImageDataset
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.RandomState(0)
    for i in range(3):
        Image.fromarray(rng.randint(0, 256, (40, 48, 3), dtype=np.uint8)).save(src / f"{i}.png")
    r = _run(["dataset", "--source", str(src), "--dest", str(tmp_path / "d.zip"),
              "--resolution", "16", "--transform", "center-crop"])
    assert json.loads(r.stdout)
    ds = ImageDataset(str(tmp_path / "d.zip"))
    assert len(ds) == 3 and ds.resolution == 16 and ds.num_channels == 3
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    r = _run(["dataset", "--source", str(src), "--dest", str(tmp_path / "e.zip"),
              "--resolution", "16", "--transform", "center-crop"], ok=False)
    assert "bad.png" in r.stderr and "Traceback" not in r.stderr


def test_layers_command_prints_official_schedule(tmp_path):
    out = _run(["layers", "--cfg", "stylegan3-t", "--resolution", "1024"]).stdout
    assert layer_spec("stylegan3-t-1024", 7)["name"] in out
    assert padding_text(layer_spec("stylegan3-t-1024", 13)) in out
