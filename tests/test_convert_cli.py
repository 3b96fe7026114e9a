"""`sg3keras convert` and `sg3keras generate` on the official-format pickle fixture.

The converted `.keras` files are loaded in a fresh process (safe mode, nothing but `import
sg3keras` for class registration) and must reproduce the official outputs stored beside the
pickle; `generate` must reproduce `to_uint8(G(z_from_seed))` computed here independently.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import refdata
from helpers import ROOT, run_cli_process

pytestmark = pytest.mark.slow   # Subprocess CLI runs: `make test` only.

PKL = refdata.path("pickle", "network-snapshot-tiny.pkl")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

CHECK = r"""
import json, sys
import numpy as np
import keras
import sg3keras.models  # registers the classes; no other sg3keras code is used
d = np.load(sys.argv[1])
out = {}
G = keras.saving.load_model(sys.argv[2], safe_mode=True)
out["img"] = float(np.abs(np.asarray(G(d["io/z"])) - d["io/img_G_ema"].transpose(0, 2, 3, 1)).max())
out["metadata"] = G.metadata
out["config"] = G.get_config()["config"]
if len(sys.argv) > 3:
    D = keras.saving.load_model(sys.argv[3], safe_mode=True)
    logits = np.asarray(D(d["io/img_G_ema"].transpose(0, 2, 3, 1)))
    out["logits"] = float(np.abs(logits - d["io/D_logits_of_img_G_ema"]).max())
print(json.dumps(out))
"""


def _ok(r):
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


def _run(*args):
    """``sg3keras ARGS`` in a fresh process, which must succeed: its stdout."""
    return _ok(run_cli_process(*args, timeout=400))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    d = tmp_path_factory.mktemp("conv")
    _run("convert", PKL, d / "g_ema.keras")
    _run("convert", PKL, d / "all", "--all")
    return d


def test_convert_reproduces_official_outputs_in_fresh_process(converted):
    for args in ([converted / "g_ema.keras"], [converted / "all" / "G_ema.keras",
                                               converted / "all" / "D.keras"]):
        out = json.loads(_ok(subprocess.run([sys.executable, "-c", CHECK, refdata.path(
            "pickle", "network-snapshot-tiny.expected.npz")] + [str(a) for a in args], cwd=ROOT,
            env=ENV, capture_output=True, text=True, timeout=400)).strip().splitlines()[-1])
        assert out["img"] <= 1e-5, out
        if "logits" in out:
            assert out["logits"] <= 1e-4, out
        meta = out["metadata"]
        assert meta["source"] == "network-snapshot-tiny.pkl" and meta["network"] == "G_ema"
        assert meta["official_class"] == "Generator" and "init_kwargs" in meta
        assert out["config"]["img_resolution"] == 16 and out["config"]["c_dim"] == 0
    assert sorted(os.listdir(converted / "all")) == ["D.keras", "G.keras", "G_ema.keras"]


def test_convert_errors(tmp_path):
    r = run_cli_process("convert", PKL, tmp_path / "x.h5")
    assert r.returncode != 0 and ".keras" in r.stderr
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a pickle")
    r = run_cli_process("convert", bad, tmp_path / "y.keras")
    assert r.returncode != 0 and "bad.pkl" in r.stderr and "Traceback" not in r.stderr


def test_generate_from_pickle_and_keras_matches_independent_computation(converted, tmp_path):
    from PIL import Image

    from sg3keras.convert import load_official_pickle
    from sg3keras.utils import z_from_seed
    G = load_official_pickle(PKL, networks=("G_ema",))["G_ema"]
    _run("generate", "--network", PKL, "--seeds", "0-2", "--trunc", "0.7",
         "--outdir", tmp_path / "pkl")
    _run("generate", "--network", converted / "g_ema.keras", "--seeds", "0-2",
         "--trunc", "0.7", "--outdir", tmp_path / "keras")
    for seed in range(3):
        # gen_images.py: the transform is replaced by inv(make_transform(0, 0)) = identity.
        G.synthesis.input.transform.assign(np.eye(3, dtype=np.float32))
        img = np.asarray(G(z_from_seed(seed, G.z_dim), truncation_psi=0.7))[0]
        want = np.clip(img * 127.5 + 128, 0, 255).astype(np.uint8)
        for sub in ("pkl", "keras"):
            got = np.asarray(Image.open(tmp_path / sub / f"seed{seed:04d}.png"))
            assert got.shape == want.shape
            assert np.abs(got.astype(int) - want).max() <= 1, (sub, seed)


def test_generate_transform_and_grid(converted, tmp_path):
    from PIL import Image
    net = str(converted / "g_ema.keras")
    _run("generate", "--network", net, "--seeds", "5", "--outdir", tmp_path / "a")
    _run("generate", "--network", net, "--seeds", "5", "--translate", "0.25,0",
         "--outdir", tmp_path / "b")
    _run("generate", "--network", net, "--seeds", "0-3", "--grid", "--outdir", tmp_path / "g")
    a = np.asarray(Image.open(tmp_path / "a" / "seed0005.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "b" / "seed0005.png")).astype(int)
    assert np.abs(a - b).max() >= 2          # the input transform moved the content
    import keras

    import sg3keras.models  # noqa: F401
    from sg3keras.utils import z_from_seed
    G = keras.saving.load_model(net)
    G.set_transform(translate=(0.25, 0.0))
    want = np.clip(np.asarray(G(z_from_seed(5, G.z_dim)))[0] * 127.5 + 128, 0, 255).astype(int)
    assert np.abs(b - want).max() <= 1
    assert Image.open(tmp_path / "g" / "grid.png").size == (32, 32)
    r = run_cli_process("generate", "--network", net, "--seeds", "x-1", "--outdir",
                        tmp_path / "e")
    assert r.returncode != 0 and "--seeds" in r.stderr
