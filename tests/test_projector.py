"""The projector (sg3keras.inference.projector, `sg3keras project`, `generate --projected-w`) and
the LPIPS head of NVIDIA's VGG16 file (sg3keras.detectors.vgg16 / detectors).

Oracle for the LPIPS parity test: a TorchScript VGG16 written here with the tensor names and the
``forward(img, resize_images, return_lpips)`` described for NVIDIA's ``vgg16.pkl`` (conv trunk
``layers.conv1`` .. ``conv13``, ``layers.fc1`` .. ``fc3``, LPIPS weights ``lpips0`` .. ``lpips4``),
RUN BY TORCH; sg3keras reads the saved file without torch. The recovery tests project images
that the tiny network itself generated.
"""

import importlib.util
import os

import numpy as np
import pytest

import keras
from helpers import torch_vgg16
from sg3keras.config import ProjectConfig
from sg3keras.detectors import loading as detectors, vgg16
from sg3keras.inference import projector as P
from sg3keras.models import Generator

from helpers import run_cli

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (test extra)")
TINY_WIDTHS = (4, 8, 8, 16, 16)


# ------------------------------------------------------------------------------------------------
# A VGG16 TorchScript file of the described structure, made with torch.

def _make_vgg16_torchscript(path, widths, seed=0):
    """Saves a scripted VGG16 with LPIPS head at ``path``; returns the scripted module."""
    import torch

    scripted = torch.jit.script(torch_vgg16(widths, 8, 4, seed=seed))
    torch.jit.save(scripted, str(path))
    return scripted


def _torch_lpips(module, a, b):
    import torch

    def feats(x):
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        with torch.no_grad():
            return module(t, resize_images=False, return_lpips=True).numpy()
    fa, fb = feats(a), feats(b)
    return fa, fb, ((fa.astype(np.float64) - fb) ** 2).sum(axis=1)


@pytest.fixture(scope="module")
def tiny_vgg(tmp_path_factory):
    if not HAVE_TORCH:
        pytest.skip("torch is not installed (test extra)")
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pt"
    return path, _make_vgg16_torchscript(path, TINY_WIDTHS)


def _images(n, size, seed):
    """Smooth colour images with texture, uint8 ``[n, size, size, 3]``."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        f = rng.uniform(1, 4, size=3)
        base = np.stack([np.sin(2 * np.pi * (f[c] * xx + rng.rand() * yy)) for c in range(3)], -1)
        out.append(np.clip(127.5 + 80 * base + rng.randn(size, size, 3) * 20, 0, 255))
    return np.asarray(out, np.uint8)


# ------------------------------------------------------------------------------------------------
# LPIPS of the VGG16 file.

@needs_torch
@pytest.mark.parametrize("widths,size", [(TINY_WIDTHS, 48), (vgg16.CHANNELS, 32)])
def test_lpips_matches_torchscript(tmp_path, widths, size):
    path = tmp_path / "vgg16.pt"
    module = _make_vgg16_torchscript(path, widths, seed=1)
    a, b = _images(3, size, seed=2), _images(3, size, seed=3)
    ref_a, ref_b, ref_dist = _torch_lpips(module, a, b)
    model = detectors.load_vgg16_lpips(path)
    ours_a = np.asarray(model(a.astype(np.float32)))
    ours_b = np.asarray(model(b.astype(np.float32)))
    assert ours_a.shape == ref_a.shape
    # LPIPS divides each pixel's feature vector by its norm over channels; with the tiny widths
    # (4 channels) a pixel whose activations are nearly all zero amplifies fp32 rounding, and the
    # rounding depends on the CPU's convolution kernels (seen on CI: 6e-6 against a max of 0.15).
    # A wrong layer, weight or normalisation moves the features by 1e-2 or more.
    np.testing.assert_allclose(ours_a, ref_a, rtol=0, atol=1e-4 * np.abs(ref_a).max())
    dist = ((ours_a.astype(np.float64) - ours_b) ** 2).sum(axis=1)
    print("lpips", dist, "torch", ref_dist)
    np.testing.assert_allclose(dist, ref_dist, rtol=0, atol=1e-5)  # LPIPS agrees with torch to 1e-5
    assert np.all(ref_dist > 1e-3)                     # distinct images are apart
    same = np.asarray(model(a[:1].astype(np.float32)))
    assert float(((same - ours_a[:1]) ** 2).sum()) < 1e-10


@needs_torch
def test_lpips_file_errors(tmp_path):
    import torch

    path = tmp_path / "vgg16.pt"
    module = _make_vgg16_torchscript(path, TINY_WIDTHS)
    tensors = detectors.read_torchscript_tensors(path)
    assert vgg16.lpips_channels(tensors) == TINY_WIDTHS
    with torch.no_grad():
        module.lpips2[0, 0] = -1.0
    torch.jit.save(module, str(tmp_path / "negative.pt"))
    with pytest.raises(detectors.DetectorFormatError, match="lpips2.*negative"):
        detectors.load_vgg16_lpips(tmp_path / "negative.pt")
    del tensors["lpips4"]
    with pytest.raises(KeyError, match="lpips4"):
        vgg16.lpips_weights_from_torchscript(tensors, "file.pt")


def test_vgg16_lpips_file_search_and_offline_message(tmp_path, monkeypatch):
    monkeypatch.setenv("SG3KERAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(detectors.ENV_VAR, raising=False)
    url = "http://127.0.0.1:9/metrics/vgg16.pkl"          # discard port: nothing listens
    monkeypatch.setitem(detectors.DETECTOR_URLS, "vgg16", (url,))
    with pytest.raises(detectors.DetectorNotFoundError) as err:
        detectors.vgg16_lpips_file(None)
    msg = str(err.value)
    dest = os.path.join(str(tmp_path / "cache"), "detectors", "vgg16.pkl")
    assert "\n" not in msg and url in msg and dest in msg and "--loss mse" in msg
    with pytest.raises(detectors.DetectorNotFoundError, match="no such file"):
        detectors.vgg16_lpips_file(str(tmp_path / "missing.pkl"))
    assert os.listdir(os.path.dirname(dest)) == []          # no partial download left
    open(dest, "wb").close()                              # a cached download is used as is
    assert detectors.vgg16_lpips_file(None) == dest
    folder = tmp_path / "dets"
    folder.mkdir()
    (folder / "vgg16.pt").write_bytes(b"x")
    assert detectors.vgg16_lpips_file(str(folder)) == str(folder / "vgg16.pt")
    monkeypatch.setenv(detectors.ENV_VAR, str(folder))    # the detector search path comes first
    assert detectors.vgg16_lpips_file(None) == str(folder / "vgg16.pt")


# ------------------------------------------------------------------------------------------------
# The pieces of the method.

def test_step_schedule_values():
    cfg = ProjectConfig()
    # (step of 1000, learning rate, w noise factor), worked out from the described ramps.
    for step, lr, noise in [(0, 0.0, 0.05), (25, 0.05, 0.05 * (1 - 0.025 / 0.75) ** 2),
                            (50, 0.1, 0.05 * (1 - 0.05 / 0.75) ** 2), (375, 0.1, 0.0125),
                            (750, 0.1, 0.0), (875, 0.05, 0.0), (999, 0.1 * (0.5 - 0.5 * np.cos(
                                0.004 * np.pi)), 0.0)]:
        got = P.step_schedule(step, 1000, cfg)
        np.testing.assert_allclose(got, (lr, noise), rtol=1e-12, atol=1e-15, err_msg=str(step))


def test_noise_regularization_known_values():
    ones16 = np.ones([16, 16], np.float32)
    checker = np.indices([16, 16]).sum(0) % 2 * 2.0 - 1.0      # +-1, neighbours opposite
    # Per level: (mean(v * shifted v))^2 along both axes; 16 -> 8, then stop at 8.
    assert float(P.noise_regularization([ones16])) == pytest.approx(4.0)
    assert float(P.noise_regularization([checker.astype(np.float32)])) == pytest.approx(2.0)
    assert float(P.noise_regularization([np.ones([4, 4], np.float32)])) == pytest.approx(2.0)
    rng = np.random.RandomState(0)
    v = rng.randn(32, 32).astype(np.float32)
    expected, x = 0.0, v.astype(np.float64)
    while True:
        expected += np.mean(x * np.roll(x, 1, axis=1)) ** 2 + np.mean(x * np.roll(x, 1, axis=0)) ** 2
        if x.shape[0] <= 8:
            break
        x = x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2).mean(axis=(1, 3))
    assert float(P.noise_regularization([v, ones16])) == pytest.approx(expected + 4.0, rel=1e-5)
    n = np.asarray(P.normalize_noise(v * 3 + 2))
    assert abs(n.mean()) < 1e-6 and np.sqrt((n ** 2).mean()) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("size", [64, 40])
def test_area_downsample_matches_torch_area(size):
    x = np.random.RandomState(size).rand(2, size, size, 3).astype(np.float32) * 255
    ours = np.asarray(P.area_downsample(x, 16))
    if size % 16 == 0:
        expected = x.reshape(2, 16, size // 16, 16, size // 16, 3).mean(axis=(2, 4))
    else:
        if not HAVE_TORCH:
            pytest.skip("torch is not installed (test extra)")
        import torch
        t = torch.from_numpy(x.transpose(0, 3, 1, 2))
        expected = torch.nn.functional.interpolate(t, size=(16, 16), mode="area").numpy()
        expected = expected.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)
    assert P.area_downsample(x[:, :16, :16], 16).shape == (2, 16, 16, 3)   # not larger: as is


def test_load_target_crop_resize_and_errors(tmp_path):
    from PIL import Image

    rgba = np.random.RandomState(0).randint(0, 256, (30, 40, 4), dtype=np.uint8)  # H 30, W 40
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    img, note = P.load_target(str(tmp_path / "t.png"), 16)
    assert note == "target t.png 40x30 -> mode RGBA -> RGB -> center crop 30x30 -> Lanczos 16x16"
    expected = Image.fromarray(rgba, "RGBA").convert("RGB").crop((5, 0, 35, 30))
    np.testing.assert_array_equal(img, np.asarray(expected.resize((16, 16), Image.LANCZOS)))
    gray, note = P.load_target(rgba[:16, :16, 0], 16, channels=1)
    assert gray.shape == (16, 16, 1) and note.endswith("(used as is)")
    (tmp_path / "x.png").write_text("not an image")
    for target, match in [(str(tmp_path / "x.png"), "x.png: not an image"),
                          (rgba, r"\[30, 40, 4\]: expected \[H, W, 3\]"),
                          (rgba[..., :3].astype(np.float32), "expected uint8")]:
        with pytest.raises(ValueError, match=match):
            P.load_target(target, 16)
    with pytest.raises(ValueError, match="4-channel"):
        P.load_target(rgba, 16, channels=4)


# ------------------------------------------------------------------------------------------------
# Projection on tiny networks.

@pytest.fixture(scope="module")
def tiny_g():
    keras.utils.set_random_seed(0)
    return Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256,
                                 channel_max=16, z_dim=8, w_dim=8)


@pytest.fixture(scope="module")
def tiny_g2():
    keras.utils.set_random_seed(1)
    G = Generator.from_preset("stylegan2", img_resolution=16, channel_base=256, channel_max=16,
                              z_dim=8, w_dim=8)
    for block in G.synthesis.blocks:                   # trained networks use their noise
        for layer in (block.conv0, block.conv1):
            if layer is not None:
                layer.noise_strength.assign(0.3)
    return G


def _own_image(G, seed, noise=None):
    z = np.random.RandomState(seed).randn(1, G.z_dim).astype(np.float32)
    return P.render_ws(G, np.asarray(G.mapping(z)), noise)[0]


def test_w_statistics_over_mapped_samples(tiny_g):
    w_avg, w_std = P.w_statistics(tiny_g, num_samples=300, seed=5, batch_size=128)
    z = np.random.RandomState(5).randn(300, 8).astype(np.float32)
    w = np.asarray(tiny_g.mapping(z), np.float64)[:, 0]
    assert w_avg.shape == (1, 1, 8)
    np.testing.assert_allclose(w_avg[0, 0], w.mean(0), rtol=1e-5, atol=1e-6)
    assert w_std == pytest.approx(np.sqrt(((w - w.mean(0)) ** 2).sum() / 300), rel=1e-5)


def test_projection_recovers_the_networks_own_image(tiny_g):
    target = _own_image(tiny_g, seed=0)
    w_avg, _ = P.w_statistics(tiny_g)
    start = P.psnr(P.render_ws(tiny_g, np.repeat(w_avg, tiny_g.num_ws, 1))[0], target)
    seen = []
    proj = P.project(tiny_g, target, num_steps=200, loss="mse",
                     progress=lambda i, n, d: seen.append((i, n)))
    assert proj.ws.shape == (200, tiny_g.num_ws, 8) and proj.w.shape == (1, tiny_g.num_ws, 8)
    assert np.all(proj.ws == proj.ws[:, :1])                     # one w for every layer
    np.testing.assert_allclose(proj.ws[0, 0], w_avg[0, 0], rtol=1e-6)   # step 0 has lr 0
    final = P.psnr(P.render_ws(tiny_g, proj.w)[0], target)
    print(f"PSNR from w_avg {start:.1f} dB -> projection {final:.1f} dB")
    assert start < 20 and final >= 25
    assert seen == [(i, 200) for i in range(200)] and proj.noise == {}


def test_stylegan2_noise_buffers_are_optimized(tiny_g2):
    names = [n for n, _ in tiny_g2.synthesis.noise_inputs()]
    target = _own_image(tiny_g2, seed=2)
    proj = P.project(tiny_g2, target, num_steps=60, loss="mse", seed=3)
    assert sorted(proj.noise) == sorted(names)
    rng = np.random.RandomState(3)                              # the initial draws
    start = {n: rng.randn(r, r) for n, r in tiny_g2.synthesis.noise_inputs()}
    for n, v in proj.noise.items():
        assert v.shape == start[n].shape
        assert abs(v.mean()) < 1e-5 and np.sqrt((v ** 2).mean()) == pytest.approx(1, rel=1e-4)
        assert np.abs(v - start[n]).max() > 1e-2, n             # moved by the optimizer
    with_opt = P.psnr(P.render_ws(tiny_g2, proj.w, proj.noise)[0], target)
    with_start = P.psnr(P.render_ws(tiny_g2, proj.w, {n: v.astype(np.float32)
                                                      for n, v in start.items()})[0], target)
    assert with_opt > with_start                                # the noise helps the match
    assert proj.dist[-1] < proj.dist[0]


@needs_torch
def test_lpips_projection_reduces_the_distance(tiny_g, tiny_vgg):
    path, module = tiny_vgg
    target = _own_image(tiny_g, seed=0)
    proj = P.project(tiny_g, target, num_steps=40, loss="lpips", vgg16=str(path), seed=4)
    w_avg, w_std = P.w_statistics(tiny_g)
    # Step 0 evaluates w_avg plus RandomState(seed)'s first draw times w_std * 0.05 (a
    # StyleGAN3 network has no noise buffers to draw first), on the unquantised image.
    w0 = w_avg + np.random.RandomState(4).randn(1, 1, 8).astype(np.float32) * np.float32(
        w_std * 0.05)
    synth0 = (np.asarray(tiny_g.synthesis(np.repeat(w0, tiny_g.num_ws, 1))) + 1) * 127.5
    _, _, d0 = _torch_lpips(module, target[None].astype(np.float32), synth0.astype(np.float32))
    assert proj.dist[0] == pytest.approx(d0[0], rel=1e-4)
    start = P.render_ws(tiny_g, np.repeat(w_avg, tiny_g.num_ws, 1))[0]
    _, _, d_start = _torch_lpips(module, target[None], start[None])
    _, _, d_end = _torch_lpips(module, target[None], P.render_ws(tiny_g, proj.w)[0][None])
    print("LPIPS (torch) from", d_start, "to", d_end)
    assert d_end[0] < 0.5 * d_start[0]


@needs_torch
def test_grayscale_network_with_lpips(tiny_vgg):
    keras.utils.set_random_seed(2)
    G = Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256, channel_max=16,
                              z_dim=8, w_dim=8, img_channels=1)
    target = _own_image(G, seed=0)
    assert target.shape == (16, 16, 1)
    proj = P.project(G, target, num_steps=3, loss="lpips", vgg16=str(tiny_vgg[0]))
    assert proj.ws.shape == (3, G.num_ws, 8) and np.all(np.isfinite(proj.dist))
    assert proj.target.shape == (16, 16, 1)


def test_project_errors(tiny_g):
    keras.utils.set_random_seed(0)
    cond = Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256,
                                 channel_max=16, z_dim=8, w_dim=8, c_dim=3)
    target = np.zeros([16, 16, 3], np.uint8)
    for G, kwargs, match in [(cond, {}, "--class is required"),
                             (cond, {"class_idx": 3}, "expected 0..2"),
                             (tiny_g, {"loss": "l2"}, "--loss 'l2'"),
                             (tiny_g, {"num_steps": 0}, "at least 1")]:
        with pytest.raises(ValueError, match=match):
            P.project(G, target, **{"loss": "mse", **kwargs})
    with pytest.raises(ValueError, match="at least 16x16"):
        P.project(Generator.from_preset("stylegan3-t", img_resolution=8, channel_base=256,
                                        channel_max=16, z_dim=8, w_dim=8),
                  np.zeros([8, 8, 3], np.uint8), num_steps=1, loss="lpips", vgg16=object())


# ------------------------------------------------------------------------------------------------
# Command line (in-process: run_cli, click's CliRunner).

def _png(path):
    from PIL import Image
    with Image.open(path) as img:
        return np.asarray(img)


def _one_line_error(result, *fragments):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], result.output


@pytest.mark.parametrize("family", ["stylegan3", "stylegan2"])
def test_cli_project_then_generate_projected_w(tmp_path, tiny_g, tiny_g2, family):
    from PIL import Image

    G = tiny_g if family == "stylegan3" else tiny_g2
    net = tmp_path / "net.keras"
    G.save(net)
    target = np.asarray(Image.fromarray(_own_image(G, seed=0)).resize((24, 20)))
    Image.fromarray(target).save(tmp_path / "target.png")
    video = family == "stylegan3"
    if video:
        pytest.importorskip("imageio_ffmpeg", reason="MP4 needs imageio-ffmpeg (sg3keras[video])")
    out = tmp_path / "out"
    result = run_cli("project", "--network", net, "--target", tmp_path / "target.png",
                     "--outdir", out, "--num-steps", 12, "--loss", "mse",
                     "--save-video" if video else "--no-save-video")
    assert result.exit_code == 0, result.output
    assert "target target.png 24x20 -> center crop 20x20 -> Lanczos 16x16" in result.output
    expected = {"target.png", "proj.png", "projected_w.npz"} | ({"proj.mp4"} if video else set())
    assert set(os.listdir(out)) == expected
    with np.load(out / "projected_w.npz") as data:
        assert data["w"].shape == (1, G.num_ws, 8)
        noise_keys = sorted(k for k in data.files if k.startswith("noise."))
    assert noise_keys == sorted(f"noise.{n}" for n, _ in getattr(
        G.synthesis, "noise_inputs", lambda: [])())
    if video:
        import imageio
        reader = imageio.v2.get_reader(str(out / "proj.mp4"), format="FFMPEG")
        frames = [f for f in reader]
        reader.close()
        assert len(frames) == 12 and frames[0].shape == (16, 32, 3)
        err = np.abs(frames[-1][:, :16].astype(float) - _png(out / "target.png")).mean()
        assert err < 12, err                    # left half: the target (lossy H.264)
    result = run_cli("generate", "--network", net, "--projected-w", out / "projected_w.npz",
                     "--outdir", tmp_path / "gen", "--trunc", 0.7)
    assert result.exit_code == 0, result.output
    assert "--trunc is ignored" in result.output
    np.testing.assert_array_equal(_png(tmp_path / "gen" / "proj00.png"), _png(out / "proj.png"))
    if family == "stylegan2":
        assert "optimised noise buffers" in result.output


def test_cli_project_and_projected_w_errors(tmp_path, tiny_g):
    net = tmp_path / "net.keras"
    tiny_g.save(net)
    keras.utils.set_random_seed(0)
    Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256, channel_max=16,
                          z_dim=8, w_dim=8, c_dim=3).save(tmp_path / "cond.keras")
    (tmp_path / "notes.txt").write_text("not an image")
    from PIL import Image
    Image.fromarray(np.zeros([16, 16, 3], np.uint8)).save(tmp_path / "t.png")
    base = ["project", "--outdir", tmp_path / "out", "--num-steps", 2, "--no-save-video"]
    _one_line_error(run_cli(*base, "--network", net, "--target", tmp_path / "notes.txt"),
                    "notes.txt: not an image")
    _one_line_error(run_cli(*base, "--network", tmp_path / "cond.keras", "--target",
                            tmp_path / "t.png", "--loss", "mse"), "--class is required")
    url = "http://127.0.0.1:9/vgg16.pkl"
    _one_line_error(run_cli(*base, "--network", net, "--target", tmp_path / "t.png",
                            "--vgg16", url), url, "--loss mse")
    assert not os.path.exists(tmp_path / "out" / "proj.png")
    _one_line_error(run_cli("generate", "--network", net, "--outdir", tmp_path / "g"),
                    "--seeds", "--projected-w")
    np.savez(tmp_path / "bad.npz", w=np.zeros([2, 3, 8], np.float32))
    _one_line_error(run_cli("generate", "--network", net, "--outdir", tmp_path / "g",
                            "--projected-w", tmp_path / "bad.npz"),
                    f"expected [N, {tiny_g.num_ws}, 8]")
