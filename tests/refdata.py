"""Access to the golden fixtures in tests/reference.

The fixtures were produced by running the official PyTorch code (see tests/reference/README.md).
Arrays are NCHW / PyTorch layout; use :func:`nchw_to_nhwc` when comparing with sg3keras outputs.
"""

import json
import os

import numpy as np

REF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")


def path(*parts):
    return os.path.join(REF_DIR, *parts)


def load_npz(*parts):
    """Load ``tests/reference/<parts>.npz`` into a plain dict of numpy arrays."""
    p = path(*parts)
    if not p.endswith(".npz"):
        p += ".npz"
    with np.load(p, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def load_json(*parts):
    p = path(*parts)
    if not p.endswith(".json"):
        p += ".json"
    with open(p) as f:
        return json.load(f)


def nchw_to_nhwc(x):
    x = np.asarray(x)
    return np.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else x


def nhwc_to_nchw(x):
    x = np.asarray(x)
    return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def layer_spec(config, index=None):
    """The official layer schedule of ``config`` (e.g. ``"stylegan3-t-1024"``) from
    ``specs/layer_specs.json``: the whole entry, or layer ``index``'s dict."""
    spec = load_json("specs", "layer_specs")["configs"][config]
    return spec if index is None else spec["layers"][index]


def padding_text(layer):
    """A layer's padding as the schedule table prints it: ``[x0,x1,y0,y1]``."""
    return "[" + ",".join(str(int(v)) for v in layer["padding"]) + "]"
