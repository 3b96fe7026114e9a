"""Time filtered_lrelu ref vs fast (and modulated_conv2d) on a realistic layer, TensorFlow CPU.

Default geometry: stylegan3-t-256 layer L7_148_512 (input 84 px + 2 from the full 3x3 conv =
86 px, up 4 with 24 taps, down 2 with 12 taps, padding [-6, -9, -6, -9] -> 148 px), with the
batch and channel count given on the command line (defaults N=4, C=256 to fit 2 CPU cores).

Usage: python bench/ops.py [--batch 4] [--channels 256] [--size 86] [--reps 3] [--radial]
Prints ms per call (best of ``reps`` after one warm-up), forward and forward+backward.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sg3keras.ops import design_lowpass_filter, filtered_lrelu, modulated_conv2d  # noqa: E402


def best_ms(fn, reps):
    fn()  # warm-up (trace + compile)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--size", type=int, default=86)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--radial", action="store_true", help="2-D radial down filter (stylegan3-r)")
    ap.add_argument("--impls", default="ref,fast")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    fu = design_lowpass_filter(24, 16.0, 32.0, 256.0)
    fd = design_lowpass_filter(12, 22.627417, 82.745166, 256.0, radial=a.radial)
    x = tf.constant(rng.standard_normal([a.batch, a.size, a.size, a.channels]), tf.float32)
    b = tf.constant(rng.standard_normal([a.channels]), tf.float32)
    kw = dict(up=4, down=2, padding=[-6, -9, -6, -9], clamp=256.0)
    print(f"filtered_lrelu x={list(x.shape)} up 4 (24 taps) down 2 (fd {list(fd.shape)}), "
          f"threads={tf.config.threading.get_inter_op_parallelism_threads()}")
    for impl in a.impls.split(","):
        fwd = tf.function(lambda x, b, impl=impl: filtered_lrelu(x, fu, fd, b, impl=impl, **kw))

        @tf.function
        def fwd_bwd(x, b, impl=impl):
            with tf.GradientTape() as tape:
                tape.watch([x, b])
                y = filtered_lrelu(x, fu, fd, b, impl=impl, **kw)
                loss = tf.reduce_sum(y * y)
            return tape.gradient(loss, [x, b])

        t_f = best_ms(lambda: fwd(x, b).numpy(), a.reps)
        t_fb = best_ms(lambda: [g.numpy() for g in fwd_bwd(x, b)], a.reps)
        print(f"  {impl:5s} fwd {t_f:9.1f} ms   fwd+bwd {t_fb:9.1f} ms")
    w = tf.constant(rng.standard_normal([3, 3, a.channels, a.channels]), tf.float32)
    s = tf.constant(rng.standard_normal([a.batch, a.channels]), tf.float32)
    xm = tf.constant(rng.standard_normal([a.batch, a.size - 2, a.size - 2, a.channels]), tf.float32)
    mc = tf.function(lambda x, w, s: modulated_conv2d(x, w, s, padding=2, input_gain=0.7))
    print(f"modulated_conv2d x={list(xm.shape)} 3x3 padding 2: fwd "
          f"{best_ms(lambda: mc(xm, w, s).numpy(), a.reps):.1f} ms")


if __name__ == "__main__":
    main()
