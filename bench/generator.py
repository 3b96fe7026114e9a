"""Generator forward benchmark: time per image, achieved GFLOP/s, peak RSS, FLOP floor.

For stylegan3-t and stylegan3-r at 256 px with the official default channels (channel_base 32768,
channel_max 512; -r doubled), batch 4, it measures three variants, each in a fresh process:

* ``fp32-ref``  -- reference filtered_lrelu (bias -> zero-stuffed upfirdn -> lrelu -> upfirdn);
* ``fp32-fast`` -- the XLA-fused polyphase filtered_lrelu (the generator's default);
* ``bf16-fast`` -- ``mixed_bfloat16`` compute with the fast path; PSNR of its images vs fp32;
* ``fp32-auto`` / ``bf16-auto`` -- ``impl="auto"``: each stage runs the implementation measured
  fastest on this machine (:mod:`sg3keras.ops.autotune`; cached under ``$SG3KERAS_CACHE``, so
  the first run's "first call" includes the measurements, later runs read the cache). The
  chosen implementation per stage is printed under the row. ``--no-autotune`` makes ``auto``
  keep the fixed default (``fast``); any variant ``PRECISION-IMPL`` with IMPL one of ``ref``,
  ``fast``, ``conv``, ``fast_poly``, ``auto`` runs.

It first prints the machine: CPU model, cores, the flags that decide the numbers (AVX2, AVX-512,
``avx512_bf16``, ``amx_bf16``) and, when a bf16 variant runs, the oneDNN kernel a bfloat16
convolution actually used (``ONEDNN_VERBOSE``: ``..._amx`` means the AMX matrix units).

FLOPs are counted from the layer schedule: the modulated convolutions (full convolution, 2 FLOPs
per MAC) and the minimal polyphase filtering work (separable up filter: taps/up MACs per output
sample per axis; down filter only at kept samples; radial filters 2-D). The FLOP floor is
FLOPs / (the machine's fp32 matmul rate, measured at start). With a bf16 variant it also measures
the fp32 and bf16 rates of a large 3x3 convolution: since the convolutions are ~97 % of the
FLOPs and the filters run in float32 either way, their ratio bounds the bf16 speed-up.

Usage: python bench/generator.py [--res 256] [--batch 4] [--reps 2] [--configs t,r]
       [--variants fp32-ref,fp32-fast,fp32-auto,bf16-fast,bf16-auto] [--no-autotune]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def schedule_flops(cfg, batch):
    """Forward FLOPs of the synthesis network for ``batch`` images (see module docstring)."""
    from sg3keras.models.schedule import synthesis_schedule
    sch = synthesis_schedule(cfg)
    total = 0.0
    for L in sch.layers:
        k = L.conv_kernel
        conv_out = L.in_size + k - 1                       # "full" convolution
        total += 2.0 * batch * conv_out ** 2 * k * k * L.in_channels * L.out_channels
        c, up, down = L.out_channels, L.up_factor, L.down_factor
        px0, px1 = L.padding[0], L.padding[1]
        tmp = conv_out * up + px0 + px1 - (L.up_taps - 1)  # after the up filter
        if L.up_taps > 1:                                  # separable, polyphase
            total += 2.0 * batch * c * (conv_out * tmp + tmp * tmp) * (L.up_taps / up)
        if L.down_taps > 1:
            out = L.out_size
            if L.down_radial:
                total += 2.0 * batch * c * out * out * L.down_taps ** 2
            else:
                total += 2.0 * batch * c * (tmp * out + out * out) * L.down_taps
    return total


def matmul_rate(n=2048, reps=5):
    import tensorflow as tf
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    f = tf.function(lambda: tf.matmul(a, b))
    f()
    best = min(_timed(f) for _ in range(reps))
    return 2.0 * n ** 3 / best


def conv_rates(reps=5):
    """fp32 and bf16 rates of a 3x3 512->512 convolution at 64 px, batch 4 (oneDNN, no XLA).

    Nearly all generator FLOPs are such convolutions (the filters are ~3 %), so the bf16/fp32
    ratio of these rates bounds the whole generator's bf16 speed-up from above."""
    import tensorflow as tf
    rates = {}
    for dt in (tf.float32, tf.bfloat16):
        x = tf.cast(tf.random.normal([4, 64, 64, 512]), dt)
        w = tf.cast(tf.random.normal([3, 3, 512, 512]), dt)
        f = tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME"))
        f()
        best = min(_timed(f) for _ in range(reps))
        rates[dt.name] = 2.0 * 4 * 64 * 64 * 512 * 512 * 9 / best
    return rates["float32"], rates["bfloat16"]


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    _ = out.numpy() if hasattr(out, "numpy") else out
    return time.perf_counter() - t0


def run_one(cfg_name, res, batch, variant, reps, out_npy):
    """Child process: build, warm up, time; print one JSON line."""
    import keras
    import numpy as np
    if variant.startswith("bf16"):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    import tensorflow as tf

    from sg3keras.models.generator import Generator
    impl = variant.split("-", 1)[1]
    keras.utils.set_random_seed(0)
    G = Generator.from_preset(cfg_name, img_resolution=res, impl=impl, seed=0)
    z = tf.constant(np.random.RandomState(0).randn(batch, G.z_dim).astype(np.float32))
    fwd = tf.function(lambda z: tf.cast(G(z), tf.float32))
    t0 = time.perf_counter()
    img = fwd(z).numpy()
    first = time.perf_counter() - t0
    best = min(_timed(lambda: fwd(z)) for _ in range(reps))
    np.save(out_npy, img)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from machine import stage_choices
    print(json.dumps(dict(first_s=first, best_s=best, rss_mb=rss, stages=stage_choices(G))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--configs", default="t,r")
    ap.add_argument("--variants", default="fp32-ref,fp32-fast,fp32-auto,bf16-fast,bf16-auto")
    ap.add_argument("--child", nargs=4, metavar=("CFG", "VARIANT", "OUT", "RES"), default=None)
    from machine import add_impl_options, apply_impl_options, format_choices
    add_impl_options(ap, impl=None)
    a = ap.parse_args()
    apply_impl_options(a)
    if a.child:
        cfg_name, variant, out, res = a.child
        return run_one(cfg_name, int(res), a.batch, variant, a.reps, out)

    import numpy as np

    from machine import cpu_summary
    bad = [v for v in a.variants.split(",") if v.split("-", 1)[0] not in ("fp32", "bf16") or
           v.split("-", 1)[-1] not in ("ref", "fast", "conv", "fast_poly", "auto")]
    if bad:
        ap.error(f"--variants: {bad}: expected PRECISION-IMPL, PRECISION fp32 or bf16, IMPL ref, "
                 "fast, conv, fast_poly or auto")

    from sg3keras.config import resolve_preset
    print(f"machine: {cpu_summary(probe=any(v.startswith('bf16') for v in a.variants.split(',')))}")
    rate = matmul_rate()
    print(f"fp32 matmul rate: {rate / 1e9:.1f} GFLOP/s (2048x2048, best of 5)")
    if any(v.startswith("bf16") for v in a.variants.split(",")):
        c32, c16 = conv_rates()
        print(f"3x3 conv rate: fp32 {c32 / 1e9:.1f}, bf16 {c16 / 1e9:.1f} GFLOP/s: bf16 speed-up "
              f"of the generator is bounded by {c16 / c32:.2f}x on this machine")
    print(f"{'config':<16}{'variant':<11}{'GFLOP':>8}{'floor s':>9}{'s/batch':>9}{'s/img':>8}"
          f"{'x floor':>8}{'GFLOP/s':>9}{'RSS MB':>8}{'compile s':>10}{'PSNR':>7}")
    tmp = os.path.join(ROOT, "out", "bench")
    os.makedirs(tmp, exist_ok=True)
    for c in a.configs.split(","):
        cfg_name = f"stylegan3-{c}"
        flops = schedule_flops(resolve_preset(cfg_name, img_resolution=a.res).generator, a.batch)
        ref_img, fp32_fast, fp32_name = None, None, None
        for variant in a.variants.split(","):
            out = os.path.join(tmp, f"{cfg_name}-{variant}.npy")
            r = subprocess.run([sys.executable, __file__, "--batch", str(a.batch), "--reps",
                                str(a.reps), "--child", cfg_name, variant, out, str(a.res)],
                               capture_output=True, text=True)
            if r.returncode:
                print(f"{cfg_name:<16}{variant:<11} FAILED: {r.stderr.strip()[-300:]}")
                continue
            m = json.loads(r.stdout.strip().splitlines()[-1])
            img = np.load(out)
            psnr = ""
            if variant.startswith("fp32") and ref_img is None:
                ref_img = img
            if variant == "fp32-fast" or (variant == "fp32-auto" and fp32_fast is None):
                fp32_fast, fp32_name = m["best_s"], variant
            elif ref_img is not None:
                mse = float(np.mean((img.astype(np.float64) - ref_img) ** 2))
                psnr = f"{20 * np.log10(2) - 10 * np.log10(max(mse, 1e-30)):.1f}"
            print(f"{cfg_name:<16}{variant:<11}{flops / 1e9:>8.1f}{flops / rate:>9.2f}"
                  f"{m['best_s']:>9.2f}{m['best_s'] / a.batch:>8.2f}"
                  f"{m['best_s'] / (flops / rate):>8.2f}{flops / m['best_s'] / 1e9:>9.1f}"
                  f"{m['rss_mb']:>8.0f}{m['first_s']:>10.1f}{psnr:>7}", flush=True)
            if variant.endswith("-auto"):
                print(f"{'':<16}stages: {format_choices(m['stages'])}", flush=True)
            if variant.startswith("bf16") and fp32_fast:
                print(f"{cfg_name:<16}{variant} is {fp32_fast / m['best_s']:.2f}x faster than "
                      f"{fp32_name}", flush=True)


if __name__ == "__main__":
    main()
