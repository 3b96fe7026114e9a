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
