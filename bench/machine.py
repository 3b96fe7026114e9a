"""What machine a benchmark ran on: CPU model, cores, the vector/matrix flags that decide the
numbers (AVX2, AVX-512, ``avx512_bf16``, AMX), and what oneDNN actually used for a bfloat16
convolution (its verbose log names the ISA and each primitive's kernel, e.g. ``avx512_core_amx``).

Imported by the scripts in ``bench/`` (``python bench/X.py`` puts this folder on ``sys.path``).
"""

import os
import platform
import re
import subprocess
import sys

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")

_PROBE = r"""
import tensorflow as tf
x = tf.cast(tf.random.normal([2, 32, 32, 64]), tf.bfloat16)
k = tf.cast(tf.random.normal([3, 3, 64, 64]), tf.bfloat16)
tf.nn.conv2d(x, k, 1, "SAME").numpy()
"""


def cpu_flags():
    """``(model name, set of flags)`` from ``/proc/cpuinfo`` (empty flags elsewhere)."""
    if not os.path.exists("/proc/cpuinfo"):
        return platform.processor() or "unknown CPU", set()
    with open("/proc/cpuinfo") as f:
        info = f.read()
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = re.search(r"flags\s*:\s*(.*)", info)
    return (model.group(1).strip() if model else platform.processor(),
            set(flags.group(1).split()) if flags else set())


def onednn_bf16_kernel():
    """The oneDNN kernel a bfloat16 3x3 convolution ran with (from ``ONEDNN_VERBOSE``), e.g.
    ``brg_conv_fwd:avx512_core_amx``; ``None`` when oneDNN logged nothing."""
    env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="3")
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                           env=env, timeout=300)
    except subprocess.TimeoutExpired:
        return None
    for line in r.stdout.splitlines():
        parts = line.split(",")
        if "exec" in parts and "convolution" in parts:
            i = parts.index("convolution")
            return parts[i + 1] if i + 1 < len(parts) else None
    return None


def cpu_summary(probe=True):
    """One line: model, cores, flags, and (``probe``) oneDNN's bf16 convolution kernel."""
    model, flags = cpu_flags()
    have = [f for f in FLAGS if f in flags]
    line = f"{model} ({os.cpu_count()} cores; flags: {' '.join(have) or 'no AVX2'})"
    if probe:
        kernel = onednn_bf16_kernel()
        amx = "uses AMX" if kernel and "amx" in kernel else "no AMX"
        line += f"; oneDNN bf16 conv kernel: {kernel or 'unknown'} ({amx})"
    return line


def add_impl_options(ap, impl="auto"):
    """``--impl`` (unless ``impl`` is None: the generator's ``filtered_lrelu`` implementation;
    ``auto`` = measured per stage on this machine and cached, :mod:`sg3keras.ops.autotune`) and
    ``--no-autotune`` (``auto`` keeps the fixed default ``fast``: ``SG3KERAS_AUTOTUNE=0``)."""
    if impl is not None:
        ap.add_argument("--impl", default=impl,
                        choices=("auto", "fast", "conv", "fast_poly", "ref"))
    ap.add_argument("--no-autotune", action="store_true",
                    help="impl=auto keeps the fixed default (SG3KERAS_AUTOTUNE=0)")


def apply_impl_options(a):
    """Export ``--no-autotune`` to this process and its children (``SG3KERAS_AUTOTUNE=0``)."""
    if a.no_autotune:
        os.environ["SG3KERAS_AUTOTUNE"] = "0"


def stage_choices(G):
    """``[(layer name, impl, source)]`` for the alias-free layers of ``G`` after a call:
    ``source`` says where an ``impl="auto"`` layer got its implementation (``autotune``,
    ``cache``, ``env``, ``no-autotune``, ``default``) or ``fixed`` for an explicit impl."""
    from keras import backend

    from sg3keras.ops import autotune
    made = autotune.choices()
    out = []
    for L in G.synthesis.synthesis_layers:
        if L.impl != "auto":
            out.append((L.name, L.impl, "fixed"))
            continue
        n = L.in_size + L.conv_kernel - 1
        key = autotune.geometry_key(
            (n, n, L.out_channels), () if L.up_filter is None else tuple(L.up_filter.shape),
            () if L.down_filter is None else tuple(L.down_filter.shape), L.up_factor,
            L.down_factor, L.padding, backend.standardize_dtype(L.compute_dtype))
        out.append((L.name, *made.get(key, ("?", "not called"))))
    return out


def format_choices(choices):
    """One line per implementation: ``impl (source): layer, layer, ...``."""
    groups = {}
    for name, impl, source in choices:
        groups.setdefault(f"{impl} ({source})", []).append(name)
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in groups.items())
