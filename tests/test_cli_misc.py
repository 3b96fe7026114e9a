"""The smaller CLI commands: dataset, layers, help (the heavier ones have their own files)."""

import json

import numpy as np
from refdata import layer_spec, padding_text

from helpers import CLI, ROOT, run_cli, run_cli_process


def _run(args, ok=True):
    r = run_cli_process(*args)
    assert (r.returncode == 0) == ok, r.stdout[-2000:] + r.stderr[-2000:]
    return r


def test_help_lists_every_command():
    out = _run(["--help"]).stdout
    for cmd in ["convert", "generate", "dataset", "train", "metrics", "export", "video",
                "sticking", "eqmap", "spectra", "layers", "demo", "runs", "pretrained"]:
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


def test_layers_and_dataset_print_no_tensorflow_start_up_lines(tmp_path):
    """As a user runs them (no TF_CPP_MIN_LOG_LEVEL of their own): stderr stays empty."""
    import os
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    r = run_cli_process("layers", "--cfg", "stylegan3-t", "--resolution", "16", env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
    from PIL import Image
    (tmp_path / "src").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "src" / "a.png")
    r = run_cli_process("dataset", "--source", tmp_path / "src", "--dest", tmp_path / "d.zip",
                        env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]


def test_a_closed_pipe_is_no_error():
    """``sg3keras pretrained | head -1``: the reader closes the pipe; no ``Error:`` line."""
    import subprocess
    p = subprocess.Popen(CLI + ["pretrained"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.close()                         # before the command writes its list
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141 and err == "", err


def test_cli_import_is_light():
    """``sg3keras --help`` stays instant: the commands read the picture tools' defaults from
    the tool functions, so importing the CLI imports the tool modules, never TensorFlow."""
    import subprocess
    import sys
    code = ("import sys, sg3keras.cli\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'torch', 'jax') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_reported_errors_are_their_own_message(tmp_path, monkeypatch):
    """A type a command ``reports`` (here spectra's RuntimeError) is its message as one line
    (with --debug: the exception); a type it does not report stays 'unexpected'."""
    import sg3keras.cli.pictures as pictures
    from sg3keras.cli._app import _is_one_of

    def missing(*args, **kwargs):
        raise RuntimeError("matplotlib is missing\n(pip install matplotlib)")

    monkeypatch.setattr(pictures, "write_spectra", missing)
    args = ["spectra", "--data", tmp_path, "--outdir", tmp_path / "s"]
    r = run_cli(*args)
    assert (r.exit_code, r.stderr) == (1, "Error: matplotlib is missing; (pip install "
                                          "matplotlib)\n")
    assert isinstance(run_cli("--debug", *args).exception, RuntimeError)
    monkeypatch.setattr(pictures, "write_spectra", lambda *a, **k: {}["paths"])
    assert run_cli(*args).stderr.startswith("Error: KeyError: 'paths' (unexpected;")
    # Classes, or dotted names of classes in modules that import TensorFlow.
    assert _is_one_of(FileNotFoundError("x"), ("builtins.OSError",))
    assert not _is_one_of(KeyError("x"), (RuntimeError, "builtins.ValueError"))


def test_pretrained_list_and_runs_import_no_tensorflow(tmp_path):
    """The static catalogue (and the run listing) print without TensorFlow's ~30 s import."""
    code = ("import sys; from sg3keras.cli import main\n"
            "for args in (['pretrained'], ['runs', sys.argv[1]]):\n"
            "    try: main(args)\n"
            "    except SystemExit: pass\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules, file=sys.stderr)")
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert "stylegan3-r-afhqv2-512x512" in r.stdout, r.stdout + r.stderr
    assert r.stderr.splitlines()[-1] == "False False", r.stderr
    assert "no training runs" in r.stderr
