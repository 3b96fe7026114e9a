"""Regenerate docs/images/projector.png, the projector picture of docs/GUIDE.md (not packaged).

Projects a crop of a photograph bundled with scikit-image (the demo photos,
:mod:`sg3keras.data.demo`) into a network with ``sg3keras project``'s method and writes one
picture: the target, the projection, and one frame of ``proj.mp4`` (target beside that step's
image).

Usage: python docs/make_projector_image.py --network out/runs/<run>   (e.g. after ``make demo``)
       [--photo coffee] [--box 180,20,256] [--steps 300] [--frame 20] [--loss mse]
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_projector_image(network, out="docs/images/projector.png", photo="coffee",
                         box=(180, 20, 256), steps=300, frame=20, loss="mse", seed=0):
    """Writes ``out`` and returns ``(path, psnr of the projection in dB, note)``."""
    import numpy as np
    from PIL import Image

    from sg3keras.data.demo import DEMO_IMAGES, load_demo_photos
    from sg3keras.networks.loading import load_network
    from sg3keras.inference.projector import project, psnr, render_ws
    from sg3keras.tools._draw import write_panels

    G = load_network(network)
    x, y, s = box
    crop = load_demo_photos()[DEMO_IMAGES.index(photo)][y:y + s, x:x + s]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{photo}.png")
        Image.fromarray(crop).save(path)
        proj = project(G, path, num_steps=steps, loss=loss, seed=seed)
    final = render_ws(G, proj.w, proj.noise)[0]
    video_frame = np.concatenate([proj.target, render_ws(G, proj.ws[frame:frame + 1],
                                                         proj.noise)[0]], axis=1)
    quality = psnr(final, proj.target)
    write_panels(out, [proj.target, final, video_frame],
                 ["target", f"projection, {steps} steps", f"proj.mp4, frame {frame}"],
                 lines=[proj.target_note, f"--loss {loss}: PSNR {quality:.1f} dB"], scale=4)
    return out, quality, proj.target_note


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--network", required=True)
    ap.add_argument("--out", default="docs/images/projector.png")
    ap.add_argument("--photo", default="coffee")
    ap.add_argument("--box", default="180,20,256", help="x,y,side of the crop")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--frame", type=int, default=20)
    ap.add_argument("--loss", default="mse")
    a = ap.parse_args()
    print(make_projector_image(a.network, a.out, a.photo, tuple(int(v) for v in a.box.split(",")),
                               a.steps, a.frame, a.loss))
