"""Export for serving (sg3keras/export.py): SavedModel signatures reproduce the Keras model.

Expected values come from the Keras generators run in this process (``G(...)``,
``generate_images``, ``z_from_seed``); the SavedModels are run in a fresh process that imports
only TensorFlow and numpy (``tests/export_check.py``).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow   # Multi-process / fresh-process / subprocess: `make test` only.

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PKL = os.path.join(HERE, "reference", "pickle", "network-snapshot-tiny.pkl")
SAVEDMODELS = os.path.join(ROOT, "savedmodels")
BIN = os.path.dirname(sys.executable)
SEEDS = [0, 1, 42, 2**31 - 1, 2**32 - 1]
TINY = dict(img_resolution=16, channel_base=256, channel_max=16, z_dim=16, w_dim=16)


def _tiny(preset, c_dim=0, seed=0):
    """A tiny random StyleGAN3 with images mostly inside [-1, 1]: the input affine gets random
    weights (w then steers the Fourier features), the layers' style affines are damped, every
    layer's ``magnitude_ema`` is set to the mean square of its input (a trained network's state;
    at init it is 1 and the activations grow until they hit the clamp), and ToRGB's bias centres
    the output."""
    import keras
    from sg3keras.models.generator import Generator
    keras.utils.set_random_seed(seed)   # ``seed=`` fixes only the Fourier features, not weights
    G = Generator.from_preset(preset, c_dim=c_dim, seed=seed, **TINY)
    rng = np.random.RandomState(seed)
    affine = G.synthesis.input.affine
    affine.weight.assign(rng.randn(*affine.weight.shape).astype(np.float32) * 0.5)
    z = rng.randn(8, G.z_dim).astype(np.float32)
    c = _onehot(np.arange(8) % max(c_dim, 1), c_dim) if c_dim else None
    for layer in G.synthesis.synthesis_layers:  # milder styles: similar magnitudes per sample
        layer.affine.weight.assign(layer.affine.weight.numpy() * 0.1)
    ws = G.mapping(z, c)
    G.mapping.w_avg.assign(np.asarray(ws[:, 0]).mean(axis=0))
    x = G.synthesis.input(ws[:, 0])
    for i, layer in enumerate(G.synthesis.synthesis_layers):
        layer.magnitude_ema.assign(float(np.mean(np.square(np.asarray(x)))))
        x_in, x = x, layer(x, ws[:, i + 1])
    last = G.synthesis.synthesis_layers[-1]      # ToRGB is linear in rsqrt(magnitude_ema)
    std = float(np.std(np.asarray(x) * G.config.output_scale))
    last.magnitude_ema.assign(float(last.magnitude_ema.numpy()) * (std / 0.4) ** 2)
    x = np.asarray(last(x_in, ws[:, -1]))         # then centre it with ToRGB's bias
    last.bias.assign(last.bias.numpy() - x.mean(axis=(0, 1, 2)))
    return G


def _tiny_sg2(seed=4, preset="stylegan2"):
    import keras
    from sg3keras.models.stylegan2_generator import StyleGAN2Generator
    keras.utils.set_random_seed(seed)
    G = StyleGAN2Generator.from_preset(preset, **TINY)
    for v in G.weights:          # images mostly inside [-1, 1] (not saturated)
        if "torgb" in v.path and v.path.endswith("weight") and "affine" not in v.path:
            v.assign(v.numpy() * 0.4)
    return G


def _onehot(labels, c_dim):
    c = np.zeros([len(labels), c_dim], np.float32)
    c[np.arange(len(labels)), labels] = 1
    return c


def _uint8(x):
    from sg3keras.utils import to_uint8
    return to_uint8(np.asarray(x))


def assert_images_match(got, want, what):
    """Exact, or at most 1 level apart on < 0.1% of the values."""
    assert got.dtype == np.uint8 and got.shape == want.shape, (what, got.dtype, got.shape)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    print(f"{what}: max uint8 diff {diff.max()}, {np.mean(diff > 0):.4%} differ")
    assert diff.max() <= 1, f"{what}: max uint8 difference {diff.max()}"
    assert np.mean(diff > 0) < 1e-3, f"{what}: {np.mean(diff > 0):.4%} of values differ by 1"


def _rest_to_tensors(body, inputs):
    """Decode a TF Serving REST ``:predict`` body like the server: row format stacks every
    instance's value per input; columnar format takes each input as one tensor."""
    dtypes = {k: np.dtype(v["dtype"]) for k, v in inputs.items()}
    if "instances" in body:
        rows = body["instances"]
        return {k: np.asarray([r[k] for r in rows], dtypes[k]) for k in rows[0]}
    return {k: np.asarray(v, dtypes[k]) for k, v in body["inputs"].items()}


# --------------------------------------------------------------------------------------------
# The MT19937 + legacy gauss port
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("z_dim", [16, 512, 7])
def test_randn_from_seeds_matches_numpy(z_dim):
    from sg3keras.export import randn_from_seeds
    got = randn_from_seeds(np.array(SEEDS, np.int64), z_dim).numpy()
    want = np.stack([np.random.RandomState(s).randn(z_dim) for s in SEEDS]).astype(np.float32)
    assert got.dtype == np.float32 and got.shape == (len(SEEDS), z_dim)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert np.mean(got == want) > 0.99      # in practice bit-exact after the float32 cast


def test_randn_from_seeds_rejects_bad_seeds():
    import tensorflow as tf
    from sg3keras.export import randn_from_seeds
    for bad in ([-1], [2**32]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="seeds: expected 0 <= seed"):
            randn_from_seeds(np.array(bad, np.int64), 4)
    with pytest.raises(ValueError, match="z_dim"):
        randn_from_seeds(np.array([0], np.int64), 0)


# --------------------------------------------------------------------------------------------
# Exports run in a fresh process
# --------------------------------------------------------------------------------------------

def _requests_for(alias, G, rng):
    """Requests and the Keras expectations for one model."""
    n, cond = 3, G.c_dim > 0
    z = rng.randn(n, G.z_dim).astype(np.float32)
    labels = [i % max(G.c_dim, 1) for i in range(n)]
    c = _onehot(labels, G.c_dim) if cond else None
    extra = {"c": c} if cond else {}
    req, want = {}, {}

    def add(call, outputs, with_c=True, **inputs):
        for k, v in {**inputs, **(extra if with_c else {})}.items():
            req[f"{alias}:{call}/{k}"] = v
        for k, v in outputs.items():
            want[f"{alias}:{call}/{k}"] = v

    img = _uint8(G(z, c=c, truncation_psi=0.7))
    if alias != "pkl":      # a comparison of flat or saturated images would prove little
        assert img.reshape(n, -1).std(axis=1).min() > 10, (alias, img.std())
    add("serving_default", {"images": img}, z=z, truncation_psi=np.float32(0.7))
    psis = np.array([0.5, 1.0, 0.7], np.float32)      # row format: one psi per sample
    rows = np.concatenate([_uint8(G(z[i:i + 1], c=None if c is None else c[i:i + 1],
                                    truncation_psi=float(p))) for i, p in enumerate(psis)])
    add("serving_default#rows", {"images": rows}, z=z, truncation_psi=psis)
    from sg3keras.inference.generate import generate_images
    seeds = SEEDS[:4] if not cond else SEEDS[:3]
    if cond:    # the signature takes one-hot c; generate_images takes one class per call
        want_seeds = np.concatenate([generate_images(G, [s], 0.7, class_idx=labels[i])
                                     for i, s in enumerate(seeds)])
    else:
        want_seeds = generate_images(G, seeds, 0.7)
    add("generate_from_seeds", {"images": want_seeds}, seeds=np.array(seeds, np.int64),
        truncation_psi=np.float32(0.7))
    ws = np.asarray(G.mapping(z, c, truncation_psi=0.6))
    add("mapping", {"ws": ws}, z=z, truncation_psi=np.float32(0.6))
    raw = np.asarray(G.synthesis(ws, **({"noise_mode": "const"} if G.has_noise else {})))
    add("synthesis", {"images_raw": raw, "images": _uint8(raw)}, with_c=False, ws=ws)
    if G.has_input_transform:                  # Fourier-feature input (configs B-R)
        from sg3keras.utils import z_from_seed
        tr = np.array([[0.0, 0.0], [0.125, -0.25], [-0.3, 0.05]], np.float32)
        rot = np.array([0.0, 10.0, -45.0], np.float32)
        zs = np.concatenate([z_from_seed(s, G.z_dim) for s in SEEDS[:3]])
        want_tr = np.concatenate([generate_images(
            G, [s], 0.8, class_idx=labels[i] if cond else None, translate=tuple(tr[i]),
            rotate=float(rot[i])) for i, s in enumerate(SEEDS[:3])])
        plain = generate_images(G, [SEEDS[1]], 0.8, class_idx=labels[1] if cond else None)
        assert not np.array_equal(want_tr[1], plain[0])     # the transform matters
        add("generate_transformed", {"images": want_tr}, z=zs, truncation_psi=np.float32(0.8),
            translate=tr, rotate=rot)
    # bad input: wrong z width, wrong dtype, wrong psi shape, mismatched batch
    add("serving_default#bad_z", {}, z=z[:, :-1], truncation_psi=np.float32(1))
    add("serving_default#bad_psi", {}, z=z, truncation_psi=np.ones([2], np.float32))
    add("serving_default#bad_dtype", {}, z=z.astype(np.float64), truncation_psi=np.float32(1))
    if cond:
        extra["c"] = c[:2]
        add("serving_default#bad_c", {}, z=z, truncation_psi=np.float32(1))
        extra["c"] = c
    return req, want


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Export four generators, run every signature in one fresh process."""
    from sg3keras.convert.official_pickle import load_official_pickle
    from sg3keras.export import export_network, export_savedmodel
    out = tmp_path_factory.mktemp("export")
    nets = {"t": _tiny("stylegan3-t", seed=1), "tc": _tiny("stylegan3-t", c_dim=3, seed=2),
            "r": _tiny("stylegan3-r", seed=3),
            "sg2": _tiny_sg2(),
            # The ladder: a StyleGAN2 layout with a Fourier input (B), the octave schedule (H).
            "lb": _tiny_sg2(seed=5, preset="config-b"), "lh": _tiny("config-h", seed=6)}
    dirs = {a: export_savedmodel(G, out / "models", a) for a, G in nets.items()}
    nets["txla"] = nets["t"]                   # sg3keras export --xla: XLA-compiled stages
    dirs["txla"] = export_savedmodel(nets["t"], out / "models", "txla", xla=True)
    dirs["pkl"] = export_network(PKL, out / "models", "official")
    nets["pkl"] = load_official_pickle(PKL, networks=("G_ema",))["G_ema"]
    rng = np.random.RandomState(7)
    req, want = {}, {}
    for alias, G in nets.items():
        r, w = _requests_for(alias, G, rng)
        req.update(r)
        want.update(w)
    for name in ("request_rows", "request_columns"):
        with open(os.path.join(SAVEDMODELS, name + ".json")) as f:
            body = json.load(f)
        spec = {"seeds": {"dtype": "int64"}, "truncation_psi": {"dtype": "float32"}}
        for k, v in _rest_to_tensors(body, spec).items():
            req[f"t:{body['signature_name']}#{name}/{k}"] = v
    np.savez(out / "requests.npz", **req)
    cmd = ["timeout", "-s", "KILL", "300", sys.executable, os.path.join(HERE, "export_check.py"),
           str(out / "requests.npz"), str(out / "check")] + [f"{a}={d}" for a, d in dirs.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "check" / "report.json") as f:
        report = json.load(f)
    got = dict(np.load(out / "check" / "outputs.npz"))
    return dict(out=out, dirs=dirs, nets=nets, report=report, got=got, want=want)


def test_export_layout_and_signatures(exported):
    for alias, d in exported["dirs"].items():
        assert os.path.basename(d) == "1" and os.path.isfile(os.path.join(d, "saved_model.pb"))
        assert os.path.isdir(os.path.join(d, "variables"))
        sigs = exported["report"]["models"][alias]["signatures"]
        G = exported["nets"][alias]
        want = {"serving_default", "generate_from_seeds", "mapping", "synthesis"}
        if alias != "sg2":
            want.add("generate_transformed")
        assert set(sigs) == want, alias
        inputs = sigs["serving_default"]["inputs"]
        assert inputs["z"] == {"shape": [None, G.z_dim], "dtype": "float32"}
        assert inputs["truncation_psi"] == {"shape": None, "dtype": "float32"}
        assert ("c" in inputs) == (G.c_dim > 0)
        r = G.img_resolution
        assert sigs["serving_default"]["outputs"]["images"] == \
            {"shape": [None, r, r, G.img_channels], "dtype": "uint8"}
        assert sigs["generate_from_seeds"]["inputs"]["seeds"] == \
            {"shape": [None], "dtype": "int64"}
        assert sigs["mapping"]["outputs"]["ws"]["shape"] == [None, G.num_ws, G.w_dim]
    assert exported["report"]["project_modules"] == []


def test_graph_is_stock_tensorflow_without_xla(exported):
    for alias, m in exported["report"]["models"].items():
        assert m["scan"]["nodes"] > 100, alias
        assert m["scan"]["unregistered"] == [], alias
        if alias == "txla":      # --xla: the filter stages are XLA clusters, on purpose
            assert any("_XlaMustCompile" in s for s in m["scan"]["xla"]), m["scan"]["xla"]
        else:
            assert m["scan"]["xla"] == [], alias
    for alias in ("t", "r"):     # the default graph filters with depthwise convolutions
        assert "DepthwiseConv2dNative" in exported["report"]["models"][alias]["scan"]["op_types"]


@pytest.mark.parametrize("alias", ["t", "tc", "r", "sg2", "pkl", "txla", "lb", "lh"])
def test_signatures_reproduce_keras(exported, alias):
    got, want = exported["got"], exported["want"]
    errors = exported["report"]["models"][alias]["errors"]
    keys = [k for k in want if k.startswith(alias + ":")]
    assert keys
    for key in keys:
        call = key.split(":", 1)[1].split("/")[0]
        assert call not in errors, errors.get(call)
        if want[key].dtype == np.uint8:
            assert_images_match(got[key], want[key], key)
        else:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("alias", ["t", "tc"])
def test_bad_input_errors_name_the_input(exported, alias):
    errors = exported["report"]["models"][alias]["errors"]
    G = exported["nets"][alias]
    assert f"Shape of tensor z [3,{G.z_dim - 1}] is not compatible with expected shape " \
           f"[?,{G.z_dim}]" in errors["serving_default#bad_z"]
    assert "truncation_psi: expected a scalar or shape [N]" in errors["serving_default#bad_psi"]
    assert "expected to be a float tensor but is a double" in errors["serving_default#bad_dtype"]
    if G.c_dim:
        assert "c: batch size differs from that of z" in errors["serving_default#bad_c"]


@pytest.mark.parametrize("name", ["request_rows", "request_columns"])
def test_documented_rest_bodies(exported, name):
    from sg3keras.inference.generate import generate_images
    with open(os.path.join(SAVEDMODELS, name + ".json")) as f:
        body = json.load(f)
    sig = body["signature_name"]
    spec = exported["report"]["models"]["t"]["signatures"][sig]["inputs"]
    inputs = _rest_to_tensors(body, spec)
    psi = np.broadcast_to(inputs["truncation_psi"], inputs["seeds"].shape)
    G = exported["nets"]["t"]
    want = np.concatenate([generate_images(G, [s], float(p)) for s, p in zip(inputs["seeds"],
                                                                            psi)])
    got = exported["got"][f"t:{sig}#{name}/images"]
    assert_images_match(got, want, name)


def test_saved_model_cli_show_and_run(exported, tmp_path):
    d = exported["dirs"]["t"]
    cli = os.path.join(BIN, "saved_model_cli")
    show = subprocess.run(["timeout", "-s", "KILL", "120", cli, "show", "--dir", d, "--all"],
                          capture_output=True, text=True)
    assert show.returncode == 0, show.stderr[-2000:]
    for sig in ("serving_default", "generate_from_seeds", "generate_transformed", "mapping",
                "synthesis"):
        assert f"signature_def['{sig}']" in show.stdout
    assert "tensorflow/serving/predict" in show.stdout
    G = exported["nets"]["t"]
    z = np.random.RandomState(3).randn(2, G.z_dim).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    run = subprocess.run(["timeout", "-s", "KILL", "120", cli, "run", "--dir", d, "--tag_set",
                          "serve", "--signature_def", "serving_default", "--inputs",
                          f"z={tmp_path / 'z.npy'}", "--input_exprs", "truncation_psi=0.7",
                          "--outdir", str(tmp_path / "out"), "--overwrite"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    got = np.load(tmp_path / "out" / "images.npy")
    assert_images_match(got, _uint8(G(z, truncation_psi=0.7)), "saved_model_cli run")


def test_versions_auto_increment_and_never_overwrite(exported):
    from sg3keras.export import export_savedmodel
    G = exported["nets"]["sg2"]           # the quickest to export
    base = exported["out"] / "models"
    assert export_savedmodel(G, base, "sg2").endswith(os.path.join("sg2", "2"))
    before = os.path.getmtime(os.path.join(base, "sg2", "1", "saved_model.pb"))
    with pytest.raises(FileExistsError, match="--version 1: .* already exists"):
        export_savedmodel(G, base, "sg2", version=1)
    assert os.path.getmtime(os.path.join(base, "sg2", "1", "saved_model.pb")) == before
    os.makedirs(base / "sg2" / "7")       # a gap (and an empty dir) still counts
    with pytest.raises(FileExistsError, match="--version 7"):
        export_savedmodel(G, base, "sg2", version=7)
    assert sorted(os.listdir(base / "sg2")) == ["1", "2", "7"]   # no temp dir left behind


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(name="a/b"), ValueError, "--name"),
    (dict(name=""), ValueError, "--name"),
    (dict(name="ok", version=0), ValueError, "--version 0: expected a positive integer"),
    (dict(name="ok", version="3"), ValueError, "--version '3'"),
])
def test_export_savedmodel_bad_arguments(exported, tmp_path, kwargs, exc, match):
    from sg3keras.export import export_savedmodel
    with pytest.raises(exc, match=match):
        export_savedmodel(exported["nets"]["t"], tmp_path, **kwargs)
    with pytest.raises(TypeError, match="expected an sg3keras generator"):
        export_savedmodel(object(), tmp_path, "ok")


def test_export_network_bad_arguments(tmp_path):
    from sg3keras.export import export_network
    from sg3keras.networks.loading import NetworkLoadError
    with pytest.raises(ValueError, match="--format 'zip'"):
        export_network(PKL, tmp_path, "m", fmt="zip")
    with pytest.raises(ValueError, match="--version applies to --format savedmodel only"):
        export_network(PKL, tmp_path, "m", version=2, fmt="keras")
    with pytest.raises(ValueError, match="--xla applies to --format savedmodel only"):
        export_network(PKL, tmp_path, "m", fmt="onnx", xla=True)
    with pytest.raises(NetworkLoadError, match="no such file"):
        export_network(tmp_path / "missing.pkl", tmp_path, "m")


def test_export_keras_round_trip(exported, tmp_path):
    from sg3keras.export import export_keras, export_network
    from sg3keras.networks.loading import load_network
    G = exported["nets"]["tc"]
    path = export_keras(G, tmp_path / "tc.keras")
    assert os.listdir(tmp_path) == ["tc.keras"]
    G2 = load_network(path)
    z = np.random.RandomState(5).randn(2, G.z_dim).astype(np.float32)
    c = _onehot([0, 2], G.c_dim)
    np.testing.assert_array_equal(np.asarray(G2(z, c=c, truncation_psi=0.5)),
                                  np.asarray(G(z, c=c, truncation_psi=0.5)))
    p = export_network(path, tmp_path / "out", "again", fmt="keras")
    assert p == str(tmp_path / "out" / "again.keras") and os.path.isfile(p)
    with pytest.raises(ValueError, match="ending in .keras"):
        export_keras(G, tmp_path / "x.h5")


def test_export_onnx(exported, tmp_path):
    from sg3keras.export import export_onnx, onnx_missing
    G = exported["nets"]["t"]
    missing = onnx_missing()
    if missing:
        with pytest.raises(ImportError, match="--format onnx needs the packages"):
            export_onnx(G, tmp_path / "g.onnx")
        pytest.skip(f"ONNX export not run: {missing} not installed (checked the clear error)")
    path = export_onnx(G, tmp_path / "g.onnx")
    assert os.path.getsize(path) > 1000


def test_scan_detects_xla_and_unknown_ops(tmp_path):
    """The graph scan used above can fail: a jit_compile function and a fake op are found."""
    import tensorflow as tf
    import export_check
    from tensorflow.core.protobuf import saved_model_pb2

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)], jit_compile=True)
        def f(self, x):
            return x * 2.0

    m = M()
    tf.saved_model.save(m, str(tmp_path / "xla"), signatures=m.f)
    scan = export_check.scan_graph(str(tmp_path / "xla"))
    assert any("_XlaMustCompile" in s for s in scan["xla"]), scan["xla"]
    sm = saved_model_pb2.SavedModel()
    pb = tmp_path / "xla" / "saved_model.pb"
    sm.ParseFromString(pb.read_bytes())
    sm.meta_graphs[0].graph_def.node.add(name="fake", op="NotARealOp")
    pb.write_bytes(sm.SerializeToString())
    assert export_check.scan_graph(str(tmp_path / "xla"))["unregistered"] == ["NotARealOp"]
