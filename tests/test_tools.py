"""Visual tools (sg3keras.tools): files of the right size, and diagnostics that discriminate.

Two kinds of networks are used: the real tiny StyleGAN3 generator (16 px) for "it runs and
writes what it should", and a hand-made ``FieldGenerator`` whose output is a known random
field of sinusoids sampled at input-transformed coordinates (exactly translation equivariant;
its latent shifts the field), optionally plus a fixed "planted" noise pattern glued to the
pixel grid (texture sticking by construction). The diagnostics must tell the two apart.
"""

import os

import keras
import numpy as np
import pytest
from PIL import Image

from refdata import layer_spec, padding_text
from sg3keras.tools import eqmap, layers_plot, spectra, sticking, video


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib", reason="plots need matplotlib (sg3keras[viz])")


class _FieldSynthesis:
    def __init__(self, owner):
        self.owner = owner
        self.input = type("Input", (), {})()
        self.input.transform = keras.Variable(np.eye(3, dtype=np.float32), trainable=False)

    def __call__(self, ws):
        g = self.owner
        ws = np.asarray(ws, np.float64)
        m = np.asarray(self.input.transform.numpy(), np.float64)
        r = g.img_resolution
        c = (np.arange(r) + 0.5) / r - 0.5                 # pixel centres, image-width units
        py, px = np.meshgrid(c, c, indexing="ij")
        qx = m[0, 0] * px + m[0, 1] * py + m[0, 2]         # canonical-frame coordinates
        qy = m[1, 0] * px + m[1, 1] * py + m[1, 2]
        out = []
        for w in ws:
            sx, sy = w[0, :2] * g.move                     # the latent moves the content
            arg = (g.freqs[:, 0, None, None] * (qx - sx) + g.freqs[:, 1, None, None] * (qy - sy)
                   + g.phases[:, None, None])
            waves = np.sin(2 * np.pi * arg)                # [K, H, W]
            img = np.einsum("khw,kc->hwc", waves, g.amps) + g.planted
            out.append(img)
        return np.stack(out).astype(np.float32)


class FieldGenerator:
    """Duck-typed StyleGAN3 stand-in: ``mapping`` repeats z, ``synthesis`` samples a field."""

    def __init__(self, res=32, max_freq=0.2, planted=0.0, move=0.25, num_waves=32, seed=0):
        rng = np.random.default_rng(seed)
        self.z_dim = self.w_dim = 8
        self.c_dim, self.num_ws = 0, 3
        self.img_resolution, self.img_channels = res, 3
        radius = max_freq * res * np.sqrt(rng.uniform(size=num_waves))   # cycles / image
        angle = rng.uniform(0, 2 * np.pi, size=num_waves)
        self.freqs = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        self.phases = rng.uniform(size=num_waves)
        self.amps = rng.standard_normal([num_waves, 3]) * 0.6 / np.sqrt(num_waves)
        self.planted = planted * np.sign(rng.standard_normal([res, res, 3]))
        self.move = move
        self.synthesis = _FieldSynthesis(self)

    def mapping(self, z, c=None, truncation_psi=1.0):
        z = np.asarray(z, np.float32)
        return np.repeat(z[:, None, :], self.num_ws, axis=1)


@pytest.fixture(scope="module")
def tiny_g():
    import keras
    from sg3keras.models.generator import Generator
    keras.utils.set_random_seed(0)      # ``seed=`` fixes only the Fourier features, not weights
    G = Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256, channel_max=16,
                              z_dim=16, w_dim=16, seed=0, magnitude_ema_beta=0.0)
    # A fresh network saturates at the ToRGB clamp; one EMA update (beta 0) calibrates the
    # per-layer input gains so that the images depend on the latent and the transform.
    G(np.random.RandomState(123).randn(8, 16).astype(np.float32), update_emas=True)
    return G


def _png_size(path):
    with Image.open(path) as im:
        im.load()
        return im.size, np.asarray(im)


# ------------------------------------------------------------------------------ layer schedule

def test_layer_plot_and_table_stylegan3_t_1024(mpl, tmp_path):
    from sg3keras.config import resolve_preset
    cfg = resolve_preset("stylegan3-t", img_resolution=1024).generator
    path = layers_plot.plot_layer_schedule(cfg, str(tmp_path / "sched.png"))
    (w, h), pixels = _png_size(path)
    assert w > 300 and h > 200 and pixels.std() > 10
    table = layers_plot.schedule_table(cfg)
    lines = table.strip().splitlines()
    spec = layer_spec("stylegan3-t-1024")
    assert len(lines) == 3 + len(spec["layers"])              # header, rule, input, layers
    # Names and values of the official schedule (tests/reference/specs/layer_specs.json).
    for i in (7, 13):
        ref, row = spec["layers"][i], lines[3 + i]
        assert row.startswith(ref["name"]) and padding_text(ref) in row
        assert f"{ref['in_size'][0]}->{ref['out_size'][0]}" in row
        assert f"{ref['out_cutoff']:.3f}" in row
    assert "critical,torgb" in lines[-1]


def test_layer_table_stylegan3_r_marks_radial():
    table = layers_plot.schedule_table("stylegan3-r")
    rows = table.strip().splitlines()[3:]                     # after the input's row
    radial = [layer["down_radial"] for layer in layer_spec("stylegan3-r-1024")["layers"]]
    assert 0 < sum(radial) < len(radial) == len(rows)
    assert ["radial" in r for r in rows] == radial


# ------------------------------------------------------------------------------ spectra

def _sinusoid_dataset(tmp_path, res=32, cycles=5, n=3):
    folder = tmp_path / "sines"
    folder.mkdir()
    x = np.arange(res)
    for i in range(n):
        row = 128 + 100 * np.cos(2 * np.pi * cycles * x / res + i)      # varies along x
        img = np.repeat(np.tile(row, (res, 1))[:, :, None], 3, axis=2)
        Image.fromarray(np.rint(img).astype(np.uint8)).save(folder / f"img{i:08d}.png")
    return str(folder)


def test_spectrum_of_sinusoid_peaks_at_its_frequency(mpl, tmp_path):
    res, cycles, interp = 32, 5, 4
    src = _sinusoid_dataset(tmp_path, res, cycles)
    out = spectra.write_spectra(src, str(tmp_path / "out"), name="sines", interp=interp)
    spec = out["spectrum"]
    assert spec.shape == (res * interp, res * interp)
    peak = np.unravel_index(np.argmax(spec), spec.shape)
    assert peak in {(0, cycles * interp), (0, res * interp - cycles * interp)}
    f, p = spectra.spectrum_slices(spec, res)["deg0"]
    assert f[np.argmax(p)] == pytest.approx(cycles / (res / 2))       # in units of Nyquist
    loaded, size = spectra.load_spectrum(out["paths"][0])
    assert size == res and np.allclose(loaded, spec)
    for png in out["paths"][1:]:
        (w, h), _ = _png_size(png)
        assert w > 200 and h > 150
    assert out["mean"] == pytest.approx(128, abs=2) and out["std"] == pytest.approx(70.7, abs=2)


def test_spectrum_whitening_and_window_normalisation():
    win = spectra.kaiser_window(16, 8)
    assert np.sum(win ** 2) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal([64, 16, 16, 2]) * 3 + 5
    spec, size = spectra.calc_spectrum([noise], 5.0, 3.0, beta=8, interp=2)
    # Whitened white noise with a unit-energy window has a flat spectrum of mean 1.
    assert size == 16 and spec.mean() == pytest.approx(1.0, rel=0.05)


def test_generator_spectrum_uses_official_seeds(mpl, tmp_path):
    G = FieldGenerator(res=16, move=1.0)
    batches = list(spectra.generator_batches(G, 5, seed=7, batch_size=2))
    assert [b.shape[0] for b in batches] == [2, 2, 1]
    z3 = np.random.RandomState(7 + 3).randn(G.z_dim)[None].astype(np.float32)
    expect = G.synthesis(G.mapping(z3))[0] * 127.5 + 128
    np.testing.assert_allclose(batches[1][1], expect, rtol=1e-5, atol=1e-3)
    paths = spectra.write_spectra(G, str(tmp_path), name="gen", num=4)["paths"]
    path = spectra.plot_slices({"gen": paths[0], "again": paths[0]}, str(tmp_path / "s.png"))
    assert os.path.getsize(path) > 1000


# ------------------------------------------------------------------------------ sticking

def test_neighbourhood_average_discriminates_sticking():
    moving = FieldGenerator(max_freq=0.45, move=1.0, seed=1)
    planted = FieldGenerator(max_freq=0.45, move=1.0, seed=1, planted=0.3)
    res = {}
    for name, G in (("moving", moving), ("planted", planted)):
        avg, central = sticking.neighbourhood_average(G, seed=3, num=32, radius=0.2)
        res[name] = (sticking.high_frequency_energy(avg), sticking.high_frequency_energy(central))
    (avg_m, cen_m), (avg_p, _) = res["moving"], res["planted"]
    assert cen_m > 1e-3                          # single images do have high frequencies
    assert avg_m < 0.2 * cen_m                   # ...that average out when content moves
    stuck = sticking.high_frequency_energy(planted.planted)
    assert avg_p > 0.8 * stuck                   # ...but the part glued to the pixel grid stays
    assert avg_p < 1.2 * stuck + avg_m
    assert avg_p > 5 * avg_m


def test_high_frequency_energy_of_known_signals():
    x = np.arange(32)
    low = np.cos(2 * np.pi * 2 * x / 32)[None, :].repeat(32, 0)       # 1/16 cycles/pixel
    high = np.cos(2 * np.pi * 12 * x / 32)[None, :].repeat(32, 0)     # 3/8 cycles/pixel
    assert sticking.high_frequency_energy(low) < 1e-20
    assert sticking.high_frequency_energy(high) == pytest.approx(0.5)  # mean of cos^2


def test_interpolation_strip_layout():
    G = FieldGenerator(res=16, move=1.0)
    strip = sticking.interpolation_strip(G, [0, 1, 2], frames=9, column=5, width=2)
    assert strip.shape == (16, 18, 3)
    ws = G.mapping(np.random.RandomState(1).randn(1, 8))               # frame 4 = seed 1
    np.testing.assert_allclose(strip[:, 8:10], G.synthesis(ws)[0][:, 5:7], atol=1e-5)
    still = FieldGenerator(res=16, move=0.0)                           # latent moves nothing
    flat = sticking.interpolation_strip(still, [0, 1], frames=6, width=1)
    assert np.allclose(flat, flat[:, :1])                              # horizontal streaks


def test_write_sticking_real_generator(tiny_g, tmp_path):
    out = sticking.write_sticking(tiny_g, str(tmp_path), seed=1, num=8, frames=12, width=2,
                                  scale=4)
    (w, h), px = _png_size(out["paths"][0])
    assert w >= 2 * 64 and h > 64 and px.std() > 5
    (w, h), _ = _png_size(out["paths"][1])
    assert w >= 12 * 2 * 4 and h > 16 * 4
    assert out["hf_average"] >= 0 and np.isfinite(out["hf_central"])


# ------------------------------------------------------------------------------ eqmap

def test_eqmap_psnr_discriminates_equivariance(tmp_path):
    good = eqmap.equivariance_maps(FieldGenerator(), str(tmp_path / "good"), seed=2, scale=2)
    bad = eqmap.equivariance_maps(FieldGenerator(planted=0.15), str(tmp_path / "bad"), seed=2,
                                  scale=2)
    g, b = good["psnr"], bad["psnr"]
    assert g["int"] > 80 and g["frac"] > 35 and g["rot"] > 30
    for kind in ("int", "frac", "rot"):
        assert b[kind] < g[kind] - 10 and b[kind] < 30
    assert len(good["paths"]) == 4
    (w, h), px = _png_size(good["paths"][0])
    assert w >= 4 * 64 and h > 64
    (w2, h2), _ = _png_size(good["paths"][-1])                        # all three rows
    assert h2 > 3 * 64


def test_eqmap_real_generator_restores_transform(tiny_g, tmp_path):
    before = np.array(tiny_g.synthesis.input.transform.numpy())
    out = eqmap.equivariance_maps(tiny_g, str(tmp_path), seed=0, cases=("int", "rot"), scale=4)
    np.testing.assert_array_equal(tiny_g.synthesis.input.transform.numpy(), before)
    assert set(out["psnr"]) == {"int", "rot"}
    assert all(v > 20 for v in out["psnr"].values()), out["psnr"]   # T is equivariant at init
    (w, h), _ = _png_size(out["paths"][0])
    assert w >= 4 * 64 and h > 64


def test_stylegan2_generator_strip_and_clear_eqmap_error(tmp_path):
    from sg3keras.models.generator import Generator
    G2 = Generator.from_preset("stylegan2", img_resolution=16, channel_base=256, channel_max=16,
                               z_dim=16, w_dim=16)
    strip = sticking.interpolation_strip(G2, [0, 1], frames=4, width=1)
    assert strip.shape == (16, 4, 3)
    again = sticking.interpolation_strip(G2, [0, 1], frames=4, width=1)
    np.testing.assert_array_equal(strip, again)                        # noise_mode='const'
    with pytest.raises(ValueError, match="StyleGAN3 network"):
        eqmap.equivariance_maps(G2, str(tmp_path))


# ------------------------------------------------------------------------------ video

def test_keyframe_layout_and_loop_interpolation():
    lay = video.keyframe_seeds([1, 2, 3, 4, 5, 6], grid=(3, 1))
    assert lay.shape == (1, 3, 2) and lay.reshape(-1).tolist() == [1, 2, 3, 4, 5, 6]
    lay = video.keyframe_seeds([1, 2, 3], grid=(2, 1), num_keyframes=3, shuffle_seed=0)
    assert sorted(lay.reshape(-1).tolist()) == [1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="divide evenly"):
        video.keyframe_seeds([1, 2, 3], grid=(2, 1))
    keys = np.random.default_rng(0).standard_normal([3, 2, 4])
    ws = video.interpolate_ws(keys, w_frames=5, kind="cubic")
    assert ws.shape == (15, 2, 4)
    np.testing.assert_allclose(ws[::5], keys, atol=1e-6)               # passes the keyframes
    # Seamless loop: the step from the last frame back to frame 0 is like any other step.
    steps = np.abs(np.diff(np.concatenate([ws, ws[:1]]), axis=0)).max(axis=(1, 2))
    assert steps[-1] < 2 * np.median(steps)


def test_missing_video_packages_give_one_clear_error(monkeypatch, tiny_g, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)          # import raises
    with pytest.raises(RuntimeError, match=r"imageio-ffmpeg.*pip install imageio imageio-ffmpeg"):
        video.render_video(tiny_g, [0], str(tmp_path / "x.mp4"), w_frames=2)
    assert not os.path.exists(tmp_path / "x.mp4")


def _mp4_checks(path, n_frames, shape):
    with open(path, "rb") as f:
        head = f.read(12)
    assert head[4:8] == b"ftyp"
    import imageio
    reader = imageio.v2.get_reader(path, format="FFMPEG")
    frames = [fr for fr in reader]
    reader.close()
    assert len(frames) == n_frames and frames[0].shape == shape


def test_render_video_mp4(tiny_g, tmp_path):
    pytest.importorskip("imageio_ffmpeg", reason="MP4 needs imageio-ffmpeg (sg3keras[video])")
    out = str(tmp_path / "lerp.mp4")
    video.render_video(tiny_g, [0, 1, 2, 3], out, grid=(2, 1), w_frames=3)
    _mp4_checks(out, 6, (16, 32, 3))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask     # the user's umask, not 0600
    assert os.listdir(tmp_path) == ["lerp.mp4"]


def test_render_transform_video_mp4(tiny_g, tmp_path):
    pytest.importorskip("imageio_ffmpeg", reason="MP4 needs imageio-ffmpeg (sg3keras[video])")
    before = np.array(tiny_g.synthesis.input.transform.numpy())
    out = str(tmp_path / "move.mp4")
    video.render_transform_video(tiny_g, 0, out, "circle", "spin", frames=4)
    _mp4_checks(out, 4, (16, 16, 3))
    np.testing.assert_array_equal(tiny_g.synthesis.input.transform.numpy(), before)
    tr, rot = video.transform_path(0.25, "circle", "spin", radius=0.1)
    assert tr == pytest.approx((0.0, 0.1), abs=1e-12) and rot == pytest.approx(90.0)
