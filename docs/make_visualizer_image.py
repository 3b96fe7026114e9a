"""Screenshot of the ``sg3keras visualize`` page for docs/GUIDE.md (not part of the package),
taken by the headless Chromium of the browser test (tests/browser.py).

Usage: python docs/make_visualizer_image.py [--network NET] [--output docs/images/visualizer.png]
Default network: a freshly initialised 64-px stylegan3-t (magnitude EMAs calibrated by one
update), so the picture shows the page, not a trained generator.
"""

import argparse
import os
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))


def _fresh_network(path):
    import keras
    import numpy as np

    from sg3keras.models.generator import Generator
    keras.utils.set_random_seed(0)
    G = Generator.from_preset("stylegan3-t", img_resolution=64, channel_base=2048,
                              channel_max=64, z_dim=32, w_dim=32, seed=0, magnitude_ema_beta=0.0)
    G(np.random.RandomState(123).randn(16, 32).astype(np.float32), update_emas=True)
    G.save(path)
    return path


def make_visualizer_image(output, network=None):
    """Start the server on 127.0.0.1 (a free port), set a few controls in Chromium, save the
    window as ``output`` (PNG). Returns ``output``."""
    import browser
    from sg3keras.visualize.server import Network, make_server
    why = browser.missing()
    if why:
        raise SystemExit(f"no headless browser: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        here = os.getcwd()
        os.chdir(tmp)                       # the page names the network as given: a short name
        ref = network or _fresh_network("stylegan3-t-64.keras")
        srv = make_server([Network(ref)])
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        drv = browser.chrome(1280, 900)
        try:
            drv.get(srv.url)
            browser.wait_shown(drv, ["layer=output"])
            for key, value in (("seed", 3), ("tx", 0.125), ("rot", 15), ("zoom", 4)):
                browser.set_control(drv, key, value)
            browser.wait_shown(drv, ["seed=3", "tx=0.125", "rot=15", "zoom=4"])
            os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
            drv.save_screenshot(output)
        finally:
            drv.quit()
            srv.shutdown()
            srv.server_close()
            os.chdir(here)
    return output


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default=None)
    ap.add_argument("--output", default=os.path.join(ROOT, "docs", "images", "visualizer.png"))
    args = ap.parse_args()
    net = os.path.abspath(args.network) if args.network and os.path.exists(args.network) else \
        args.network
    print(make_visualizer_image(os.path.abspath(args.output), net))
