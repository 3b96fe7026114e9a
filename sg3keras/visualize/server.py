"""The ``sg3keras visualize`` web server: the standard library's ``ThreadingHTTPServer``.

Routes (GET only): the page's three files from a fixed table (:data:`STATIC`: no path from a
request ever reaches the file system); ``/api/networks`` (the networks the command line
allowed, by id, with their layer tables; ``stale`` when a training run has a newer snapshot);
``/api/render?net=..&seed=..`` (:func:`sg3keras.visualize.render.parse_request` names every
parameter; JSON with the picture as a PNG data URL); ``/api/reload?net=..`` (a training run's
newest snapshot). A bad request is HTTP 400 with one JSON line ``{"error": "..."}``; renders
run on one worker thread, newest request per client first (:class:`LatestOnly`; a replaced
one is answered 409), each client address gets at most :data:`RATE` requests a second and
at most :data:`MAX_CONNECTIONS` connections are open at once.
"""

import importlib.resources
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sg3keras.visualize.precision import as_bf16, bf16_warning
from sg3keras.visualize.queue import Busy, LatestOnly, Superseded
from sg3keras.visualize.render import (RequestError, as_json, network_info, parse_request,
                                       render)

__all__ = ["Network", "VisualizerServer", "make_server", "STATIC", "RATE", "MAX_CONNECTIONS"]

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
RATE = 40             # requests per second and client address (burst: 2 seconds' worth)
MAX_QUERY = 4096      # characters of a query string
MAX_CONNECTIONS = 64  # connections open at once (each holds a thread while it lasts)


class Network:
    """One network the command line allowed: its reference, the loaded generator, the file it
    came from (a training run follows its newest snapshot: :meth:`stale`, :meth:`reload`).
    ``bf16``: StyleGAN3 generators compute in bfloat16 (:func:`as_bf16`); StyleGAN2 ones stay
    float32 (``info["precision"]`` says which)."""

    def __init__(self, ref, bf16=False):
        self.ref, self.bf16 = str(ref), bool(bf16)
        self.reload()

    def reload(self):
        from sg3keras.networks.loading import load_networks
        loaded = load_networks(self.ref)       # the file it read: no race with a new snapshot
        path, G = loaded["source"], loaded["G_ema"]
        precision = "float32"
        if self.bf16 and G.config.family == "stylegan3":
            G, precision = as_bf16(G), "bfloat16"
        info = dict(network_info(G, self.ref), precision=precision)
        self.path, self.G, self.info = path, G, info       # all three or none
        self.loaded_at = time.time()

    def stale(self):
        """Whether a training run directory now has a newer snapshot than the one loaded."""
        if not os.path.isdir(self.ref):
            return False
        from sg3keras.networks.loading import locate_network
        try:
            return locate_network(self.ref)[0] != self.path
        except ValueError:
            return False


class _RateLimit:
    def __init__(self, rate):
        self.rate, self._lock, self._buckets = float(rate), threading.Lock(), {}

    def allow(self, who):
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 1024:
                self._buckets.clear()
            tokens, last = self._buckets.get(who, (2 * self.rate, now))
            tokens = min(2 * self.rate, tokens + (now - last) * self.rate)
            ok = tokens >= 1
            self._buckets[who] = (tokens - 1 if ok else tokens, now)
            return ok


class _HTTPError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class VisualizerServer(ThreadingHTTPServer):
    """The server: ``networks`` (a list of :class:`Network`), the render worker, the limits
    (``rate`` requests a second per client address, ``max_connections`` open at once: one
    more is answered 503 and closed, so no client can pile up threads)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, networks, rate=RATE, max_connections=MAX_CONNECTIONS):
        self.networks = list(networks)
        self.renders = LatestOnly()
        self.limit = _RateLimit(rate)
        self.max_connections = int(max_connections)
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            body = json.dumps({"error": f"more than {self.max_connections} open connections; "
                                        "close some"}).encode() + b"\n"
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                b"application/json\r\nConnection: close\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def server_close(self):
        super().server_close()
        self.renders.stop()


def _query(raw):
    if len(raw) > MAX_QUERY:
        raise RequestError(f"query string longer than {MAX_QUERY} characters")
    try:
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True, max_num_fields=64,
                                       strict_parsing=bool(raw), errors="strict")
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"malformed query string ({str(e).splitlines()[0][:80]})") from None
    q = {}
    for k, v in pairs:
        q[k] = [q[k], v] if k in q else v
    return q


class _Handler(BaseHTTPRequestHandler):
    server_version = "sg3keras-visualize"
    timeout = 60                 # seconds an idle or slow connection may hold its thread
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):      # quiet: the page polls
        pass

    def send_error(self, code, message=None, explain=None):
        """Errors of http.server itself (malformed request line, ...) as one JSON line too."""
        self._send_json(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def _send(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status, data):
        self._send(status, (json.dumps(data) + "\n").encode(), "application/json")

    def do_POST(self):
        self._send_json(405, {"error": "only GET requests"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def do_GET(self):
        try:
            if not self.server.limit.allow(self.client_address[0]):
                raise _HTTPError(429, f"more than {RATE} requests a second; slow down")
            path, _, raw = self.path.partition("?")
            if path in STATIC:
                name, ctype = STATIC[path]
                body = importlib.resources.files(__package__).joinpath("static", name)
                return self._send(200, body.read_bytes(), ctype)
            route = {"/api/networks": self._networks, "/api/render": self._render,
                     "/api/reload": self._reload}.get(path)
            if route is None:
                raise _HTTPError(404, f"no such page: {path[:80]!r}")
            self._send_json(200, route(_query(raw)))
        except RequestError as e:
            self._send_json(400, {"error": str(e)})
        except _HTTPError as e:
            self._send_json(e.status, {"error": str(e)})
        except Superseded as e:
            self._send_json(409, {"error": str(e)})
        except Busy as e:
            self._send_json(503, {"error": str(e)})
        except Exception as e:         # never a traceback to the client, never a dead server
            self._send_json(500, {"error": f"{type(e).__name__}: "
                                           f"{str(e).splitlines()[0][:200] if str(e) else ''}"})

    def _net_id(self, q):
        nets = self.server.networks
        raw = q.get("net", "0")
        if not isinstance(raw, str) or not raw.isdigit() or int(raw) >= len(nets):
            raise RequestError(f"net: expected a network id 0..{len(nets) - 1}, got "
                               f"{str(raw)[:40]!r}")
        return int(raw)

    def _networks(self, q):
        if q:
            raise RequestError("/api/networks takes no parameters")
        return [dict(n.info, id=i, stale=n.stale()) for i, n in enumerate(self.server.networks)]

    def _render(self, q):
        p = parse_request(q, [n.info for n in self.server.networks])
        net = self.server.networks[p["net"]]
        key = (self.client_address[0], str(q.get("client", ""))[:32])
        result = self.server.renders.submit(key, lambda: render(net.G, net.ref, p))
        return dict(as_json(result), net=p["net"])

    def _reload(self, q):
        i = self._net_id(q)
        if set(q) - {"net"}:
            raise RequestError("/api/reload takes only net")
        net = self.server.networks[i]
        self.server.renders.submit(("reload", i), net.reload)
        return dict(net.info, id=i, stale=False)


def make_server(networks, host="127.0.0.1", port=0):
    """A :class:`VisualizerServer` on ``host:port`` (0: a free port) for ``networks``
    (:class:`Network` objects); call ``serve_forever()`` (e.g. in a thread)."""
    return VisualizerServer((host, int(port)), networks)


def serve(refs, host="127.0.0.1", port=8000, log=print, ready=None, bf16=False):
    """Load ``refs`` (anything ``--network`` accepts), render one frame of each (the first
    render compiles the generator's XLA stages), then serve on ``host:port`` until interrupted.
    ``log`` gets the URL line (and warnings: a host other than the loopback address; ``bf16``
    on a CPU without bfloat16 arithmetic, or for a StyleGAN2 network, which stays float32);
    ``ready(server)`` is called once the server listens."""
    if not refs:
        raise ValueError("--network: give at least one network")
    note = bf16_warning() if bf16 else None
    if note:
        log(note)
    networks = []
    for ref in refs:
        net = Network(ref, bf16=bf16)
        if bf16 and net.info["precision"] != "bfloat16":
            log(f"warning: --bf16: {ref} is a StyleGAN2 network; it renders in float32")
        render(net.G, net.ref, parse_request({}, [net.info]))      # compile once, up front
        networks.append(net)
    try:
        server = make_server(networks, host, port)
    except OSError as e:
        raise ValueError(f"--host {host} --port {port}: cannot listen ({e.strerror or e})"
                         ) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        log(f"warning: listening on {host}: the page has no authentication; anyone who can "
            "reach this address can use it")
    p = server.server_address[1]
    log(f"sg3keras visualize: open {server.url} (from another machine: "
        f"ssh -L {p}:127.0.0.1:{p} <this host>, then http://127.0.0.1:{p}/); Ctrl-C stops")
    if ready is not None:
        ready(server)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
