"""Frame time of ``sg3keras visualize``: what one render of the page costs on this machine.

For each config (stylegan3-t / -r), resolution and precision (``fp32``; ``bf16``: the
command's ``--bf16``), a fresh process builds ``Generator.from_preset(cfg, img_resolution=R)``
(official channel counts, fresh weights: no download), saves it, serves it as ``sg3keras
visualize`` does (the start-up render, which compiles the XLA stages, called directly as
``serve`` does; then :func:`sg3keras.visualize.server.make_server` on 127.0.0.1, a free port)
and asks ``/api/render`` for ``--frames`` renders of the output image of other seeds. Prints the machine, the load average, and per row the
server's own render time (``ms`` of the reply: mapping, the synthesis one layer at a time, the
PNG; the page shows it) for the first render and for each frame, the request's wall time
(plus JSON and base64 of the picture), and peak RSS.

Usage: python bench/visualize.py [--configs t,r] [--res 256,1024] [--frames 3]
       [--precisions fp32,bf16]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def child(cfg, res, precision, frames):
    """Build, save, serve, render; print one JSON line."""
    import keras

    from sg3keras.models.generator import Generator
    from sg3keras.visualize.render import parse_request, render
    from sg3keras.visualize.server import Network, make_server
    keras.utils.set_random_seed(0)
    G = Generator.from_preset(cfg, img_resolution=res, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{cfg}-{res}.keras")
        G.save(path)
        del G
        net = Network(path, bf16=precision == "bf16")
        first = render(net.G, net.ref, parse_request({}, [net.info]))   # as serve() starts
        srv = make_server([net])
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        rows = [(first["ms"], None, first["width"])]
        try:
            for seed in range(1, frames + 1):
                t0 = time.perf_counter()
                with urllib.request.urlopen(f"{srv.url}api/render?seed={seed}",
                                            timeout=1800) as r:
                    data = json.loads(r.read())
                rows.append((data["ms"], (time.perf_counter() - t0) * 1000, data["width"]))
        finally:
            srv.shutdown()
            srv.server_close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(first_ms=rows[0][0], ms=[r[0] for r in rows[1:]],
                          wall_ms=[round(r[1], 1) for r in rows[1:]], width=rows[0][2],
                          rss_mb=round(rss))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="t,r")
    ap.add_argument("--res", default="256,1024")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--child", nargs=3, metavar=("CFG", "RES", "PRECISION"), default=None)
    a = ap.parse_args()
    if a.child:
        return child(a.child[0], int(a.child[1]), a.child[2], a.frames)

    from machine import cpu_summary
    print(f"machine: {cpu_summary(probe='bf16' in a.precisions)}")
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| network | px | precision | first render (compiles) | frames: render ms "
          "(server) | request wall ms | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for cfg in a.configs.split(","):
        for res in a.res.split(","):
            for prec in a.precisions.split(","):
                name = f"stylegan3-{cfg}"
                r = subprocess.run([sys.executable, __file__, "--frames", str(a.frames),
                                    "--child", name, res, prec], capture_output=True,
                                   text=True, env=env)
                if r.returncode != 0:
                    print(f"| {name} | {res} | {prec} | failed: "
                          f"{(r.stderr.strip().splitlines() or ['?'])[-1][:120]} |||")
                    continue
                d = json.loads(r.stdout.strip().splitlines()[-1])
                print(f"| {name} | {d['width']} | {prec} | {d['first_ms'] / 1000:.1f} s | "
                      f"{', '.join(f'{m:.0f}' for m in d['ms'])} | "
                      f"{', '.join(f'{m:.0f}' for m in d['wall_ms'])} | {d['rss_mb']} MB |",
                      flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f}")
    print("peak RSS: ru_maxrss of the rendering process (its network build and save included)")


if __name__ == "__main__":
    main()
