"""``sg3keras visualize --bf16``: the loaded generator rebuilt with Keras's ``mixed_bfloat16``
policy (bfloat16 compute, the same float32 weights), as ``sg3keras train --mixed-precision
mixed_bfloat16`` computes. bfloat16 pays only on a CPU with native bfloat16 arithmetic
(``avx512_bf16`` or AMX, see docs/BENCHMARKS.md); elsewhere it is emulated and slower than
float32, which :func:`bf16_warning` says."""

import os

__all__ = ["BF16_FLAGS", "cpu_flags", "bf16_warning", "as_bf16"]

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (a set of words; empty where ``path`` does not exist)."""
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    return set()


def bf16_warning(flags=None):
    """A one-line warning when the CPU (``flags``, default :func:`cpu_flags`) has neither
    ``avx512_bf16`` nor AMX; None when it has one of them."""
    flags = cpu_flags() if flags is None else set(flags)
    if any(f in flags for f in BF16_FLAGS):
        return None
    return ("warning: --bf16: this CPU has neither avx512_bf16 nor AMX (amx_bf16); bfloat16 "
            "is emulated here and usually slower than float32")


def as_bf16(G):
    """A copy of generator ``G`` whose layers compute in bfloat16 (policy ``mixed_bfloat16``;
    variables stay float32 and hold ``G``'s values). The policy is set only while the copy
    is built."""
    import keras

    from sg3keras.models.base import build_generator
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        clone = build_generator(G.config, impl=getattr(G, "impl", "fast"),
                                seed=getattr(G, "seed", None), name=G.name)
    finally:
        keras.config.set_dtype_policy(old)
    src, dst = G.weights, clone.weights
    if [tuple(v.shape) for v in src] != [tuple(v.shape) for v in dst]:
        raise RuntimeError("--bf16: the bfloat16 rebuild of the generator has other weights "
                           "than the loaded one; cannot copy them")
    clone.set_weights([v.numpy() for v in src])
    return clone
