"""``sg3keras visualize``: the web server's API on tiny networks, the newest-wins render queue,
and (marked slow) the page in a real headless Chromium driven by Selenium.

The server runs in a thread of the test process on 127.0.0.1 and a free port; every request
has a timeout. Renders are checked against what ``sg3keras generate`` writes (its own library
functions and PNG files) and against the network's own layers.
"""

import base64
import io
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import PIL.Image
import pytest

TIMEOUT = 120


def _tiny(tmp, name, preset="stylegan3-t", **kw):
    import keras
    from sg3keras.models.generator import Generator
    keras.utils.set_random_seed(0)
    extra = dict(seed=0, magnitude_ema_beta=0.0) if preset != "stylegan2" else {}
    G = Generator.from_preset(preset, img_resolution=16, channel_base=256, channel_max=16,
                              z_dim=16, w_dim=16, **extra, **kw)
    if preset != "stylegan2":       # calibrate the layer gains once (as tests/test_tools.py)
        c = np.eye(G.c_dim, dtype=np.float32)[np.arange(8) % G.c_dim] if G.c_dim else None
        G(np.random.RandomState(123).randn(8, 16).astype(np.float32), c, update_emas=True)
    path = os.path.join(tmp, name)
    G.save(path)
    return path


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("viz"))
    run = os.path.join(d, "run")
    os.makedirs(run)
    paths = dict(t=_tiny(d, "t.keras"), r=_tiny(d, "r.keras", "stylegan3-r"),
                 c=_tiny(d, "c.keras", c_dim=3), g2=_tiny(d, "g2.keras", "stylegan2"))
    shutil.copy(paths["t"], os.path.join(run, "network-snapshot-000000.keras"))
    paths["run"] = run
    return paths


@pytest.fixture(scope="module")
def server(nets):
    from sg3keras.visualize.server import Network, make_server
    srv = make_server([Network(nets[k]) for k in ("t", "r", "c", "g2", "run")])
    thread = threading.Thread(target=srv.serve_forever, kwargs=dict(poll_interval=0.1),
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(10)


def _get(srv, path):
    try:
        with urllib.request.urlopen(srv.url.rstrip("/") + path, timeout=TIMEOUT) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def _render(srv, query):
    status, _, body = _get(srv, "/api/render?" + query)
    assert status == 200, body
    return json.loads(body)


def _pixels(data_url):
    head = "data:image/png;base64,"
    assert data_url.startswith(head)
    with PIL.Image.open(io.BytesIO(base64.b64decode(data_url[len(head):]))) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------ renders

@pytest.mark.parametrize("net,seed,psi,cls,translate,rotate", [
    ("t", 0, 1.0, None, (0.0, 0.0), 0.0),
    ("t", 7, 0.6, None, (0.25, -0.1), 12.0),
    ("r", 3, 0.8, None, (0.0, 0.3), -40.0),
    ("c", 5, 0.7, 2, (0.1, 0.0), 0.0),
    ("g2", 11, 0.5, None, (0.0, 0.0), 0.0),
])
def test_render_is_exactly_the_image_generate_writes(server, nets, tmp_path, net, seed, psi, cls,
                                                     translate, rotate):
    from sg3keras.inference.generate import generate_images, write_images
    from sg3keras.networks.loading import load_network
    ids = {"t": 0, "r": 1, "c": 2, "g2": 3}
    q = f"net={ids[net]}&seed={seed}&psi={psi}"
    q += "" if cls is None else f"&class={cls}"
    q += "" if translate == (0.0, 0.0) else f"&tx={translate[0]}&ty={translate[1]}"
    q += "" if rotate == 0 else f"&rot={rotate}"
    got = _render(server, q)
    G = load_network(nets[net])                # a fresh copy, as the command loads it
    images = generate_images(G, [seed], psi, cls, translate, rotate)
    path, = write_images(images, [seed], str(tmp_path))
    with PIL.Image.open(path) as im:
        want = np.asarray(im)
    np.testing.assert_array_equal(_pixels(got["image"]), want)
    assert got["command"].startswith(f"sg3keras generate --network {nets[net]} --seeds {seed} "
                                     f"--trunc {psi:g}")
    assert (got["width"], got["height"]) == (16, 16) and got["ms"] > 0
    assert ("--class 2" in got["command"]) == (cls is not None)


def test_a_dragged_seed_interpolates_w_and_style_mixing_changes_the_image(server):
    a = _pixels(_render(server, "seed=3")["image"])
    b = _pixels(_render(server, "seed=4")["image"])
    mid = _render(server, "seed=3.5")
    assert mid["command"] is None                 # no generate equivalent
    m = _pixels(mid["image"])
    assert not np.array_equal(m, a) and not np.array_equal(m, b)
    mixed = _render(server, "seed=3&mix_seed=4&mix_lo=0&mix_hi=4")
    assert not np.array_equal(_pixels(mixed["image"]), a) and mixed["command"] is None
    again = _pixels(_render(server, "seed=3&mix_seed=4&mix_lo=3&mix_hi=3")["image"])
    np.testing.assert_array_equal(again, a)      # an empty range mixes nothing


def test_seed_weights_are_the_bilinear_weights_of_the_lattice_seeds_around():
    from sg3keras.visualize.render import seed_weights
    assert seed_weights(2, 0) == [(2, 1.0)]
    assert seed_weights(2.5, 0) == [(2, 0.5), (3, 0.5)]
    assert seed_weights(7, 3) == [(307, 1.0)]
    got = dict(seed_weights(0.25, 1.75))
    assert got == pytest.approx({100: 0.75 * 0.25, 200: 0.75 * 0.75, 101: 0.25 * 0.25,
                                 201: 0.25 * 0.75})


def test_a_2d_latent_position_blends_the_four_neighbouring_seeds(server, nets):
    from sg3keras.networks.loading import load_network
    from sg3keras.utils import to_uint8, z_from_seed
    on_lattice = _render(server, "seed=3&seed_y=1&psi=0.7")      # the point (3, 1): seed 103
    plain = _render(server, "seed=103&psi=0.7")
    assert on_lattice["image"] == plain["image"] and on_lattice["seed"] == 103
    assert " --seeds 103 " in on_lattice["command"]
    got = _render(server, "seed=3.25&seed_y=0.5&psi=0.7")
    assert got["command"] is None and got["seed"] is None
    G = load_network(nets["t"])
    w = {s: np.asarray(G.mapping(z_from_seed(s, 16), None, truncation_psi=0.7), np.float64)
         for s in (3, 4, 103, 104)}
    ws = 0.375 * w[3] + 0.125 * w[4] + 0.375 * w[103] + 0.125 * w[104]
    want = to_uint8(G.synthesize(ws.astype(np.float32))[0])
    diff = np.abs(_pixels(got["image"]).astype(int) - want.astype(int))
    assert diff.max() <= 1, diff.max()                # float rounding of the blend at most
    along_x = _pixels(_render(server, "seed=3.25&psi=0.7")["image"])
    assert np.abs(along_x.astype(int) - want.astype(int)).max() > 1     # y counts


@pytest.mark.parametrize("move", ["net=0&tx=0.25&ty=-0.125", "net=1&rot=90&tx=0.125"])
def test_untransform_moves_the_output_back(server, move):
    net = move.split("&")[0]
    still = _pixels(_render(server, f"{net}&seed=2")["image"]).astype(np.float64)
    moved = _pixels(_render(server, f"{move}&seed=2")["image"]).astype(np.float64)
    back = _render(server, f"{move}&seed=2&untransform=1")
    assert back["command"] is None
    back = _pixels(back["image"]).astype(np.float64)
    inner = (slice(6, 10), slice(5, 9))        # pixels that stay inside the image when moved
    err_back = np.abs(back - still)[inner].mean()
    err_moved = np.abs(moved - still)[inner].mean()
    assert err_back < 0.5 * err_moved, (err_back, err_moved)


def _own_layer_outputs(G, ws):
    """The StyleGAN3 synthesis run by hand through its own layer objects."""
    syn = G.synthesis
    x = syn.input(ws[:, 0])
    outs = {"input": np.asarray(x)}
    for i, layer in enumerate(syn.synthesis_layers):
        x = layer(x, ws[:, i + 1])
        outs[layer.name] = np.asarray(x)
    return outs


def test_layer_outputs_are_the_synthesis_own_layers(nets):
    from sg3keras.networks.loading import load_network
    from sg3keras.utils import z_from_seed
    G = load_network(nets["t"])
    ws = np.asarray(G.mapping(z_from_seed(2, 16), None), np.float32)
    got = dict((k, np.asarray(v)) for k, v in G.layer_outputs(ws))
    want = _own_layer_outputs(G, ws)
    assert list(got) == ["input"] + G.layer_names + ["output"]
    for name, x in want.items():
        np.testing.assert_array_equal(got[name], x)
    np.testing.assert_array_equal(got["output"], np.asarray(G.synthesis(ws)))
    G2 = load_network(nets["g2"])
    ws2 = np.asarray(G2.mapping(z_from_seed(2, 16), None), np.float32)
    got2 = dict((k, np.asarray(v)) for k, v in G2.layer_outputs(ws2))
    np.testing.assert_array_equal(got2["output"], G2.synthesize(ws2))


@pytest.mark.parametrize("layer,sel,ch", [("L3_36_16", "one", 5), ("input", "one", 0),
                                          ("L13_16_16", "range", 2)])
def test_a_layer_view_shows_that_layer_of_the_network(server, nets, layer, sel, ch):
    from sg3keras.networks.loading import load_network
    from sg3keras.utils import z_from_seed
    G = load_network(nets["t"])
    ws = np.asarray(G.mapping(z_from_seed(4, 16), None), np.float32)
    x = _own_layer_outputs(G, ws)[layer][0]
    end = ch + 3 if sel == "range" else ch
    got = _render(server, f"seed=4&layer={layer}&sel={sel}&ch={ch}&ch_end={end}&zoom=2")
    y = x[:, :, ch:end + 1].mean(-1)
    want = np.clip((y / np.abs(y).max() * 0.5 + 0.5) * 255 + 0.5, 0, 255).astype(np.uint8)
    pix = _pixels(got["image"])
    assert got["shape"] == list(x.shape) and pix.shape == (2 * x.shape[0], 2 * x.shape[1], 3)
    np.testing.assert_array_equal(pix[::2, ::2, 0], want)
    assert set(got["times"]) == {"input", *G.layer_names, "output"}


def test_fft_and_layer_table(server):
    status, _, body = _get(server, "/api/networks")
    nets = json.loads(body)
    assert status == 200 and [n["id"] for n in nets] == [0, 1, 2, 3, 4]
    rows = {r["name"]: r for r in nets[0]["layers"]}
    assert rows["L3_36_16"]["size"] == 36 and rows["L3_36_16"]["channels"] == 16
    assert rows["L3_36_16"]["cutoff"] > 0 and rows["L3_36_16"]["stopband"] > 0
    assert rows["output"]["size"] == 16 and nets[3]["has_noise"] and nets[2]["c_dim"] == 3
    plain = _pixels(_render(server, "seed=1&layer=L3_36_16&sel=one&ch=1")["image"])
    fft = _pixels(_render(server, "seed=1&layer=L3_36_16&sel=one&ch=1&fft=1")["image"])
    assert fft.shape == plain.shape and not np.array_equal(fft, plain)


@pytest.mark.parametrize("kind,param", [("int", (0.125, -0.0625)), ("rot", 30.0)])
def test_equivariance_psnr_is_the_metric_own(server, nets, kind, param):
    from sg3keras.networks.loading import load_network
    from sg3keras.tools.eqmap import equivariance_case
    from sg3keras.utils import z_from_seed
    q = f"seed=6&eq={kind}" + (f"&eq_rot={param}" if kind == "rot" else
                               f"&eq_tx={param[0]}&eq_ty={param[1]}")
    got = _render(server, q)
    G = load_network(nets["t"])
    ws = np.asarray(G.mapping(z_from_seed(6, 16), None), np.float32)
    want = equivariance_case(G, ws, kind, param)["psnr"]
    assert got["psnr"] == pytest.approx(want, rel=1e-6)
    assert _pixels(got["image"]).shape == (16, 3 * 16 + 8, 3)


# ------------------------------------------------------------------------------ bad requests

BAD = [
    ("/api/render?net=9", "net: expected 0..4"),
    ("/api/render?net=abc", "net: expected an integer"),
    ("/api/render?net=-1", "net: expected 0..4"),
    ("/api/render?seed=-1", "seed: expected 0.."),
    ("/api/render?seed=inf", "seed: expected 0.."),
    ("/api/render?seed=1&seed=2", "seed: given more than once"),
    ("/api/render?seed_y=-0.5", "seed_y: expected 0.."),
    ("/api/render?seed_y=99999999", "seed_y: expected 0.."),
    ("/api/render?seed_y=nan", "seed_y: expected 0.."),
    ("/api/render?psi=7", "psi: expected -2.0..2.0"),
    ("/api/render?cutoff=99", "cutoff: expected 0.."),
    ("/api/render?layer=..%2F..%2Fsetup.cfg", "layer: expected one of"),
    ("/api/render?layer=L99", "layer: expected one of"),
    ("/api/render?sel=all", "sel: expected one of"),
    ("/api/render?ch=16", "ch: expected 0..2"),
    ("/api/render?layer=L3_36_16&ch=3&ch_end=1&sel=range", "ch_end: expected 3..15"),
    ("/api/render?zoom=1000", "zoom: expected 1.."),
    ("/api/render?eq=scale", "eq: expected one of"),
    ("/api/render?noise=loud", "noise: expected one of"),
    ("/api/render?class=1", "class: the network is unconditional"),
    ("/api/render?net=2&class=3", "class: expected 0..2"),
    ("/api/render?net=3&tx=0.5", "no input transform"),
    ("/api/render?net=3&eq=int", "eq/untransform: need a network with an input transform"),
    ("/api/render?untransform=1&layer=input", "untransform: applies to the output image only"),
    ("/api/render?untransform=yes", "untransform: expected one of"),
    ("/api/render?path=/etc/passwd", "unknown parameter 'path'"),
    ("/api/render?seed=%ff", "malformed query string"),
    ("/api/render?" + "a" * 5000, "longer than 4096"),
    ("/api/reload?net=../x", "net: expected a network id"),
    ("/api/networks?x=1", "takes no parameters"),
]


@pytest.mark.parametrize("path,words", BAD, ids=[b[1] for b in BAD])
def test_a_bad_request_is_400_with_one_json_line_and_the_server_keeps_serving(server, path,
                                                                             words):
    status, ctype, body = _get(server, path)
    text = body.decode()
    assert status == 400 and ctype == "application/json"
    assert text.count("\n") == 1 and "Traceback" not in text
    assert words in json.loads(text)["error"]
    assert _get(server, "/api/networks")[0] == 200


@pytest.mark.parametrize("path", ["/../setup.cfg", "/%2e%2e/setup.cfg", "/..%2f..%2fsetup.cfg",
                                  "//etc/passwd", "/etc/passwd", "/static/../server.py",
                                  "/server.py", "/static/app.js", "/app.js/..",
                                  "/%2Fetc%2Fpasswd"])
def test_no_path_reaches_the_file_system(server, path):
    status, _, body = _get(server, path)
    assert status == 404 and b"no such page" in body and b"import" not in body


def test_the_page_files_come_from_the_package(server):
    import importlib.resources
    for path, name, words in [("/", "index.html", b"<script src=\"/app.js\">"),
                              ("/app.js", "app.js", b"/api/render"),
                              ("/style.css", "style.css", b"#controls")]:
        status, _, body = _get(server, path)
        assert status == 200 and words in body
        static = importlib.resources.files("sg3keras.visualize").joinpath("static", name)
        assert body == static.read_bytes()


def test_only_get_is_answered(server):
    req = urllib.request.Request(server.url + "api/render", data=b"x" * 10, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=TIMEOUT)
    assert e.value.code == 405


def test_a_training_run_follows_its_newest_snapshot(server, nets):
    run = nets["run"]
    assert json.loads(_get(server, "/api/networks")[2])[4]["stale"] is False
    before = _render(server, "net=4&seed=1")["image"]
    shutil.copy(nets["r"], os.path.join(run, "network-snapshot-000004.keras"))
    assert json.loads(_get(server, "/api/networks")[2])[4]["stale"] is True
    status, _, body = _get(server, "/api/reload?net=4")
    assert status == 200 and json.loads(body)["stale"] is False
    assert server.networks[4].path.endswith("network-snapshot-000004.keras")
    after = _render(server, "net=4&seed=1")["image"]
    assert after == _render(server, "net=1&seed=1")["image"] and after != before


# ------------------------------------------------------------------------------ queue, limits

def test_a_newer_request_replaces_the_waiting_one():
    from sg3keras.visualize.queue import LatestOnly, Superseded
    q = LatestOnly()
    gate, started, results = threading.Event(), threading.Event(), {}

    def blocker():
        started.set()
        gate.wait(30)
        return "blocker"

    def call(name, key, fn):
        try:
            results[name] = q.submit(key, fn, timeout=30)
        except Superseded:
            results[name] = "superseded"

    threads = [threading.Thread(target=call, args=("blocker", "a", blocker))]
    threads[0].start()
    assert started.wait(30)                      # the worker is busy with the blocker
    for name, key in [("old", "me"), ("other", "you"), ("new", "me")]:
        t = threading.Thread(target=call, args=(name, key, lambda n=name: n))
        t.start()
        threads.append(t)
        for _ in range(100):                     # wait until it is queued (bounded)
            if key in q._waiting and q._waiting[key].fn() == name:
                break
            time.sleep(0.01)
    gate.set()
    for t in threads:
        t.join(30)
    q.stop()
    assert results == {"blocker": "blocker", "old": "superseded", "other": "other",
                       "new": "new"}


def test_too_many_waiting_clients_and_rate_limit():
    from sg3keras.visualize.queue import Busy, LatestOnly
    from sg3keras.visualize.server import _RateLimit
    q = LatestOnly(max_waiting=0)
    with pytest.raises(Busy, match="too many clients"):
        q.submit("k", lambda: 1, timeout=5)
    q.stop()
    limit = _RateLimit(2)
    assert [limit.allow("a") for _ in range(5)] == [True] * 4 + [False]
    assert limit.allow("b")


def test_open_connections_are_bounded(server):
    import socket
    from sg3keras.visualize.server import VisualizerServer
    small = VisualizerServer(("127.0.0.1", 0), server.networks, max_connections=2)
    thread = threading.Thread(target=small.serve_forever, kwargs=dict(poll_interval=0.1),
                              daemon=True)
    thread.start()
    held = [socket.create_connection(small.server_address, timeout=TIMEOUT) for _ in range(2)]
    try:
        # accepted in order: the two held connections took both slots before this one
        status, ctype, body = _get(small, "/api/networks")
        assert status == 503 and ctype == "application/json"
        assert "more than 2 open connections" in json.loads(body)["error"]
    finally:
        for s in held:
            s.close()
    for _ in range(100):                      # the held connections' threads end (bounded)
        status = _get(small, "/api/networks")[0]
        if status == 200:
            break
        time.sleep(0.1)
    small.shutdown()
    small.server_close()
    thread.join(10)
    assert status == 200


# ------------------------------------------------------------------------------ command

def test_serve_prints_the_url_and_warns_off_loopback(nets):
    from sg3keras.visualize.server import serve
    lines, seen = [], {}

    def ready(srv):      # called before serve_forever: ask (and stop) from another thread
        def ask():
            seen["status"] = _get(srv, "/api/networks")[0]
            srv.shutdown()
        threading.Thread(target=ask, daemon=True).start()

    serve([nets["t"]], host="127.0.0.2", port=0, log=lines.append, ready=ready)
    assert seen["status"] == 200
    assert lines[0].startswith("warning: listening on 127.0.0.2: the page has no "
                               "authentication")
    assert "open http://127.0.0.2:" in lines[1] and "ssh -L" in lines[1]


def test_help_names_the_ssh_tunnel_and_bf16():
    from helpers import run_cli
    r = run_cli("visualize", "--help")
    text = " ".join(r.stdout.split())
    assert r.exit_code == 0 and "ssh -L 8000:127.0.0.1:8000 host" in text
    assert "--bf16" in text and "avx512_bf16 or AMX" in text


# ------------------------------------------------------------------------------ --bf16

def test_cpu_flags_and_the_bf16_warning(tmp_path):
    from sg3keras.visualize.precision import bf16_warning, cpu_flags
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cpu_flags(str(info)) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(str(tmp_path / "absent")) == set()
    assert bf16_warning({"avx2", "avx512_bf16"}) is None
    assert bf16_warning({"avx2", "amx_bf16", "amx_tile"}) is None
    note = bf16_warning({"avx2", "avx512f"})
    assert note.startswith("warning: --bf16:") and "neither avx512_bf16 nor AMX" in note


def test_bf16_renders_stylegan3_in_bfloat16_and_stylegan2_in_float32(nets, monkeypatch):
    import keras

    from sg3keras.visualize import precision
    from sg3keras.visualize.render import parse_request, render
    from sg3keras.visualize.server import Network, serve
    from sg3keras.utils import z_from_seed
    fp32, bf16 = Network(nets["t"]), Network(nets["t"], bf16=True)
    assert (fp32.info["precision"], bf16.info["precision"]) == ("float32", "bfloat16")
    assert keras.config.dtype_policy().name == "float32"          # set only while building
    ws = np.asarray(fp32.G.mapping(z_from_seed(2, 16), None), np.float32)
    dtypes = [x.dtype.name for _, x in bf16.G.layer_outputs(ws)]
    assert dtypes[1] == "bfloat16" and dtypes[-1] == "float32"
    assert {x.dtype.name for _, x in fp32.G.layer_outputs(ws)} == {"float32"}
    a, b = (render(n.G, n.ref, parse_request({"seed": "2"}, [n.info]))["png"]
            for n in (fp32, bf16))
    pa, pb = (np.asarray(PIL.Image.open(io.BytesIO(x))).astype(int) for x in (a, b))
    assert a != b and np.abs(pa - pb).mean() < 8        # the same image, to bfloat16 accuracy
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2"})
    lines = []
    serve([nets["t"], nets["g2"]], port=0, bf16=True, log=lines.append,
          ready=lambda srv: threading.Thread(target=srv.shutdown, daemon=True).start())
    assert "neither avx512_bf16 nor AMX" in lines[0]
    assert lines[1] == f"warning: --bf16: {nets['g2']} is a StyleGAN2 network; it renders in " \
                       "float32"


# ------------------------------------------------------------------------------ the page

@pytest.mark.slow
def test_the_page_in_a_real_browser(server):
    import browser
    why = browser.missing()
    if why:
        pytest.skip(f"no headless browser: {why}")
    drv = browser.chrome()
    try:
        drv.get(server.url)
        first = browser.wait_shown(drv, ["seed=0", "layer=output"])
        src0 = drv.find_element("id", "view").get_attribute("src")
        browser.set_control(drv, "seed", 5)
        browser.wait_shown(drv, ["seed=5"])
        src1 = drv.find_element("id", "view").get_attribute("src")
        browser.set_control(drv, "tx", 0.25)
        browser.wait_shown(drv, ["seed=5", "tx=0.25"])
        src2 = drv.find_element("id", "view").get_attribute("src")
        browser.set_control(drv, "layer", "L3_36_16")
        q = browser.wait_shown(drv, ["seed=5", "tx=0.25", "layer=L3_36_16"])
        src3 = drv.find_element("id", "view").get_attribute("src")
        assert len({src0, src1, src2, src3}) == 4, first
        np.testing.assert_array_equal(_pixels(src3), _pixels(_render(server, q)["image"]))
        assert "36x36x16" in drv.find_element("id", "res").text
        assert "ms" in drv.find_element("id", "time").text
        assert drv.find_element("id", "error").text == ""
        assert not drv.find_element("id", "class-row").is_displayed()      # unconditional
        assert drv.find_element("id", "transform").is_displayed()          # StyleGAN3
        rows = drv.find_elements("css selector", "#table tbody tr")
        assert [r.get_attribute("data-layer") for r in rows][:2] == ["input", "L0_36_16"]
        picked = drv.find_elements("css selector", "#table tr.picked")
        assert [r.get_attribute("data-layer") for r in picked] == ["L3_36_16"]
        browser.set_control(drv, "layer", "output")
        browser.wait_shown(drv, ["seed=5", "tx=0.25", "layer=output"])
        assert drv.find_element("id", "command").text == (
            f"sg3keras generate --network {server.networks[0].ref} --seeds 5 --trunc 1 "
            "--translate 0.25,0 --outdir out")
        from selenium.webdriver.common.action_chains import ActionChains
        pad = drv.find_element("id", "seed-pad")      # drag in 2-D: 100 px per seed
        ActionChains(drv).click_and_hold(pad).move_by_offset(25, 0).move_by_offset(25, 25) \
            .release().perform()
        q = browser.wait_shown(drv, ["seed=5.5", "seed_y=0.25", "tx=0.25", "layer=output"])
        np.testing.assert_array_equal(_pixels(drv.find_element("id", "view").get_attribute(
            "src")), _pixels(_render(server, q)["image"]))
        assert drv.find_element("id", "command").text.startswith("(no sg3keras generate")
        assert drv.find_element("id", "seed").get_attribute("value") == "6"   # the nearest
        assert "(float32)" in drv.find_element("id", "time").text
    finally:
        drv.quit()


def test_the_page_is_package_data_in_setup_cfg():
    import configparser
    import fnmatch
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "setup.cfg"))
    globs = cfg["options.package_data"]["sg3keras.visualize"].split()
    static = os.path.join(os.path.dirname(os.path.abspath(__import__(
        "sg3keras.visualize").visualize.__file__)), "static")
    names = sorted(os.listdir(static))
    assert names == ["app.js", "index.html", "style.css"]
    assert all(any(fnmatch.fnmatch(f"static/{n}", g) for g in globs) for n in names)


@pytest.mark.slow
def test_the_command_serves_until_interrupted(nets):
    """A fresh ``sg3keras visualize`` process: prints the URL, answers, stops on Ctrl-C
    (SIGINT) with status 0 and nothing on stderr; killed after 300 s whatever happens."""
    import re
    import selectors
    import signal
    import subprocess

    from helpers import CLI, ROOT
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(["timeout", "-s", "KILL", "300"] + CLI +
                            ["visualize", "--network", nets["t"], "--port", "0"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=240), "no URL within 240 s"
        line = proc.stdout.readline()
        url = re.search(r"open (http://127\.0\.0\.1:\d+/)", line).group(1)
        assert "ssh -L" in line
        with urllib.request.urlopen(url + "api/render?seed=1", timeout=TIMEOUT) as r:
            assert r.status == 200 and json.loads(r.read())["width"] == 16
        proc.send_signal(signal.SIGINT)             # reaches `timeout`, which forwards it
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0 and err == "", err
