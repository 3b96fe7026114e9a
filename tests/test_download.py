"""Pretrained catalogue and downloads over 127.0.0.1."""

import hashlib
import http.server
import os
import re
import shutil
import threading
import urllib.parse

import pytest

from sg3keras.config import PRETRAINED, PRESETS, resolve_preset
from sg3keras.data.download import DownloadError, cache_dir, cached_file, download
from sg3keras.networks.pretrained import NetworkSourceError, resolve_network_file

HERE = os.path.dirname(os.path.abspath(__file__))
TINY_PKL = os.path.join(HERE, "reference", "pickle", "network-snapshot-tiny.pkl")


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/ok/<name>``: the file; ``/drop/<name>``: headers for the whole file, half the body,
    then the connection is closed; ``/short/<name>``: Content-Length one byte too long;
    ``/missing``: 404; ``/slow``: never answers within the client's timeout."""

    files = {}
    hits = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path
        self.hits.append(path)
        kind, _, name = path.lstrip("/").partition("/")
        body = self.files.get(name)
        if kind == "slow":
            threading.Event().wait(3)
            return
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) + (kind == "short")))
        self.end_headers()
        if kind == "drop":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.files = {"net.pkl": open(TINY_PKL, "rb").read(), "blob": b"x" * 3_000_000}
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SG3KERAS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _listing(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def _files(directory):
    """Every file under ``directory``, as paths relative to it."""
    return sorted(os.path.relpath(os.path.join(root, f), directory)
                  for root, _, files in os.walk(directory) for f in files)


def test_catalogue_urls_are_well_formed():
    assert len(PRETRAINED) == 27
    sg3 = [n for n, p in PRETRAINED.items() if p.cfg != "stylegan2"]
    assert len(sg3) == 12 and "stylegan3-r-afhqv2-512x512" in sg3
    assert "stylegan3-t-ffhqu-256x256" in sg3 and "stylegan2-cifar10-32x32" in PRETRAINED
    for name, p in PRETRAINED.items():
        family = "stylegan2" if p.cfg == "stylegan2" else "stylegan3"
        assert p.name == name and p.cfg in PRESETS
        assert p.url == ("https://api.ngc.nvidia.com/v2/models/nvidia/research/"
                         f"{family}/versions/1/files/{name}.pkl")
        m = re.fullmatch(r"(stylegan3-[tr]|stylegan2)-(\w+)-(\d+)x(\d+)", name)
        assert m and int(m.group(3)) == int(m.group(4)) == p.resolution
        assert p.dataset == m.group(2)
        assert p.resolution & (p.resolution - 1) == 0


def test_pretrained_name_is_not_a_config():
    with pytest.raises(ValueError, match="pretrained network.*load_network"):
        resolve_preset("stylegan3-r-afhqv2-512x512")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SG3KERAS_CACHE", str(tmp_path / "c"))
    assert cache_dir("networks") == str(tmp_path / "c" / "networks")
    monkeypatch.delenv("SG3KERAS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == str(tmp_path / "x" / "sg3keras")


def test_download_is_cached_and_reused(server, cache):
    url = server + "/ok/net.pkl"
    sha = hashlib.sha256(_Handler.files["net.pkl"]).hexdigest()
    path = download(url, sha256=sha, log=lambda m: None)
    assert path == cached_file(url) and open(path, "rb").read() == _Handler.files["net.pkl"]
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())
    assert download(url, sha256=sha, log=lambda m: None) == path
    assert _Handler.hits == ["/ok/net.pkl"]          # second call: no request
    assert _listing(os.path.dirname(path)) == ["net.pkl"]


def test_cache_is_keyed_by_the_whole_url(server, cache):
    """Two URLs that end in the same file name are two cache entries, each with its own body
    (a cache keyed by the name alone returned the first file for the second URL)."""
    _Handler.files["a/network.pkl"], _Handler.files["b/network.pkl"] = b"first", b"second"
    urls = [server + "/ok/a/network.pkl", server + "/ok/b/network.pkl"]
    paths = [download(u, log=lambda m: None) for u in urls]
    assert [open(p, "rb").read() for p in paths] == [b"first", b"second"]
    assert [os.path.basename(p) for p in paths] == ["network.pkl"] * 2   # readable names
    assert [download(u, log=lambda m: None) for u in urls] == paths        # reused
    assert _Handler.hits == ["/ok/a/network.pkl", "/ok/b/network.pkl"]


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


@pytest.mark.parametrize("kind, match", [
    ("drop", r"connection (ended|failed) after \d+"),
    ("short", r"connection (ended|failed) after \d+"),
    ("missing", r"HTTP 404"),
])
def test_failed_downloads_leave_nothing(server, cache, kind, match):
    url = f"{server}/{kind}/" + ("blob" if kind != "missing" else "nothing.pkl")
    dest = cached_file(url, "networks")
    with pytest.raises(DownloadError, match=match) as e:
        download(url, dest, log=lambda m: None)
    msg = str(e.value)
    assert "\n" not in msg and url in msg and dest in msg and "curl -L -o" in msg
    assert _listing(os.path.dirname(dest)) == []      # no partial file, no temp file


def test_checksum_mismatch_and_timeout(server, cache):
    url = server + "/ok/blob"
    with pytest.raises(DownloadError, match="SHA-256"):
        download(url, sha256="0" * 64, log=lambda m: None)
    assert _listing(cache_dir("downloads")) == []
    with pytest.raises(DownloadError, match="timed out|failed after 0 bytes"):
        download(server + "/slow/x.pkl", timeout=0.5, log=lambda m: None)
    assert _listing(cache_dir("downloads")) == []


def test_offline_names_say_where_to_put_the_file(cache):
    with pytest.raises(NetworkSourceError) as e:
        resolve_network_file("http://127.0.0.1:9/stylegan3-t-ffhq-1024x1024.pkl")
    msg = str(e.value)
    assert msg.startswith("--network http://127.0.0.1:9/") and "\n" not in msg
    assert cached_file("http://127.0.0.1:9/stylegan3-t-ffhq-1024x1024.pkl", "networks") in msg


def test_pretrained_name_uses_the_cache_without_network(cache):
    # A file placed by hand where the message says is used, offline.
    entry = PRETRAINED["stylegan3-t-ffhqu-256x256"]
    dest = cached_file(entry.url, "networks")
    os.makedirs(os.path.dirname(dest))
    shutil.copy(TINY_PKL, dest)
    assert resolve_network_file("stylegan3-t-ffhqu-256x256") == dest
    assert resolve_network_file("stylegan3-t-ffhqu-256x256.pkl") == dest
    with pytest.raises(NetworkSourceError, match="did you mean stylegan3-t-ffhqu-256x256"):
        resolve_network_file("stylegan3-t-ffhqu-256")


@pytest.mark.slow
def test_cli_generate_from_url_without_extension(server, cache, tmp_path):
    """A URL whose file name has no extension: the kind is read from the file's first bytes."""
    from helpers import run_cli
    _Handler.files["snapshot"] = _Handler.files["net.pkl"]
    out = tmp_path / "out"
    result = run_cli("generate", "--network", server + "/ok/snapshot", "--seeds", "0",
                     "--outdir", out)
    assert result.exit_code == 0, result.output
    assert _listing(out) == ["seed0000.png"]
    kept = [os.path.relpath(cached_file(server + "/ok/snapshot", "networks"), cache_dir("networks"))]
    assert _files(cache_dir("networks")) == kept
    result = run_cli("generate", "--network", server + "/drop/blob", "--seeds", "0",
                     "--outdir", out)
    assert result.exit_code == 1 and "connection" in result.output
    assert _files(cache_dir("networks")) == kept
