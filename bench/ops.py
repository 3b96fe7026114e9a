"""Time filtered_lrelu ref vs fast (and modulated_conv2d) on a realistic layer, TensorFlow CPU.

Default geometry: stylegan3-t-256 layer L7_148_512 (input 84 px + 2 from the full 3x3 conv =
86 px, up 4 with 24 taps, down 2 with 12 taps, padding [-6, -9, -6, -9] -> 148 px), with the
batch and channel count given on the command line (defaults N=4, C=256 to fit 2 CPU cores).

Usage: python bench/ops.py [--batch 4] [--channels 256] [--size 86] [--reps 3] [--radial]
       [--impls ref,fast,conv,fast_poly] [--schedule stylegan3-t|stylegan3-r [--res 256]
       [--profile | --radial-down [--dtype bfloat16]]]
Prints ms per call (best of ``reps`` after one warm-up), forward and forward+backward. With
``--schedule`` it instead times the forward op alone at every layer's geometry of that config
(batch ``--batch``, random input) for each impl, and the total. ``--profile`` (with
``--schedule``) splits the XLA-free ``impl="conv"`` graph into its stages (the op's name scopes:
bias, pad_gather, up_w, up_h, lrelu, down_w, down_h, down_2d, ...) with TensorFlow's per-node
step statistics: ms per stage per layer (best traced run of ``reps``; nodes that run side by
side are each counted in full, so stages can add up to more than the wall time).
``--radial-down`` (with ``--schedule``) times the radial down filter alone at every radial
layer, on an input of its real size (the upsampled activations), in both exact formulations of
:mod:`sg3keras.ops.radial` (the strided depthwise convolution of ``impl="fast"`` and the
polyphase form of ``impl="fast_poly"``), with its GFLOP/s (2 FLOPs per tap per kept sample).
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


def layer_ops(a):
    """``(layer, input size, fu, fd, filtered_lrelu kwargs)`` for every layer of ``a.schedule``."""
    from sg3keras.config import resolve_preset
    from sg3keras.models.schedule import synthesis_schedule
    cfg = resolve_preset(a.schedule, img_resolution=a.res).generator
    for L in synthesis_schedule(cfg).layers:
        fu = design_lowpass_filter(L.up_taps, L.in_cutoff, 2 * L.in_half_width,
                                   L.tmp_sampling_rate)
        fd = design_lowpass_filter(L.down_taps, L.out_cutoff, 2 * L.out_half_width,
                                   L.tmp_sampling_rate, radial=L.down_radial)
        kw = dict(up=L.up_factor, down=L.down_factor, padding=L.padding, clamp=256.0,
                  gain=1.0 if L.is_torgb else float(np.sqrt(2)),
                  slope=1.0 if L.is_torgb else 0.2)
        yield L, L.in_size + L.conv_kernel - 1, fu, fd, kw


def schedule(a):
    """Forward ``filtered_lrelu`` at every layer of a config, per impl."""
    totals = {}
    for L, n, fu, fd, kw in layer_ops(a):
        x = tf.random.normal([a.batch, n, n, L.out_channels])
        b = tf.zeros([L.out_channels])
        row = f"  {L.name:<14}{str(list(x.shape)):<22}up {L.up_factor} down {L.down_factor}" \
              f"{' radial' if L.down_radial else '':<8}"
        for impl in a.impls.split(","):
            f = tf.function(lambda x, impl=impl: filtered_lrelu(x, fu, fd, b, impl=impl, **kw))
            t = best_ms(lambda: f(x).numpy(), a.reps)
            totals[impl] = totals.get(impl, 0.0) + t
            row += f"{impl:>6} {t:8.1f} ms"
        print(row, flush=True)
    print("  total  " + "  ".join(f"{k} {v:.0f} ms" for k, v in totals.items()))


def radial_down(a):
    """The radial down filter alone, per radial layer of a config, both formulations."""
    from sg3keras.ops.radial import down_2d_phases, down_2d_strided
    total = {}
    for L, n, fu, fd, kw in layer_ops(a):
        if not L.down_radial:
            continue
        tmp = n * L.up_factor + L.padding[0] + L.padding[1] - (L.up_taps - 1)
        x = tf.cast(tf.random.normal([a.batch, tmp, tmp, L.out_channels]), a.dtype)
        g = tf.cast(tf.constant(fd), a.dtype)
        out = (tmp - fd.shape[0]) // L.down_factor + 1
        flops = 2.0 * a.batch * out * out * L.out_channels * fd.size
        row = f"  {L.name:<14}{str(list(x.shape)):<24}"
        for name, fn in (("strided", down_2d_strided), ("phases", down_2d_phases)):
            f = tf.function(lambda x, fn=fn: fn(x, g, L.down_factor))
            t = best_ms(lambda: f(x).numpy(), a.reps)
            total[name] = total.get(name, 0.0) + t
            row += f"{name:>9} {t:7.1f} ms {flops / t / 1e6:6.1f} GFLOP/s"
        print(row, flush=True)
    print("  total  " + "  ".join(f"{k} {v:.0f} ms" for k, v in total.items()))


def profile(a):
    """Per-stage times of ``impl="conv"`` at every layer of a config (TF step statistics)."""
    from collections import Counter

    from sg3keras.ops.filtered_lrelu import CONV_STAGES
    rng = np.random.default_rng(0)
    total, walls = Counter(), 0.0
    print(f"  {'layer':<14}{'wall ms':>9}  " + "".join(f"{s:>12}" for s in CONV_STAGES))
    for L, n, fu, fd, kw in layer_ops(a):
        g = tf.Graph()
        with g.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [a.batch, n, n, L.out_channels])
            y = filtered_lrelu(x, fu, fd, tf.zeros([L.out_channels]), impl="conv", **kw)
        feed = {x: rng.standard_normal(x.shape).astype(np.float32)}
        best = None
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(y, feed)
            for _ in range(a.reps):
                md = tf.compat.v1.RunMetadata()
                t0 = time.perf_counter()
                sess.run(y, feed, options=tf.compat.v1.RunOptions(trace_level=3),
                         run_metadata=md)
                wall = 1e3 * (time.perf_counter() - t0)
                stages = Counter()
                for dev in md.step_stats.dev_stats:
                    for ns in dev.node_stats:
                        parts = ns.node_name.split("/")
                        stage = next((p for p in parts if p in CONV_STAGES), "other")
                        stages[stage] += ns.all_end_rel_micros / 1e3
                if best is None or wall < best[0]:
                    best = (wall, stages)
        wall, stages = best
        walls += wall
        total.update(stages)
        print(f"  {L.name:<14}{wall:9.1f}  " + "".join(f"{stages[s]:12.1f}" for s in CONV_STAGES),
              flush=True)
    print(f"  {'total':<14}{walls:9.1f}  " + "".join(f"{total[s]:12.1f}" for s in CONV_STAGES))
    print(f"  (other nodes: {total['other']:.1f} ms)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--size", type=int, default=86)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--radial", action="store_true", help="2-D radial down filter (stylegan3-r)")
    ap.add_argument("--impls", default="ref,fast")
    ap.add_argument("--schedule", default=None, help="time every layer of this config")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--profile", action="store_true",
                    help="with --schedule: impl=conv per-stage times (TF step statistics)")
    ap.add_argument("--radial-down", action="store_true",
                    help="with --schedule: the radial down filter alone, both formulations")
    ap.add_argument("--dtype", default="float32", help="with --radial-down: float32, bfloat16")
    a = ap.parse_args()
    if a.radial_down:
        if not a.schedule:
            ap.error("--radial-down needs --schedule CFG")
        print(f"radial down filter per layer of {a.schedule} {a.res} px, batch {a.batch}, "
              f"{a.dtype}")
        return radial_down(a)
    if a.profile:
        if not a.schedule:
            ap.error("--profile needs --schedule CFG")
        print(f"impl=conv stages per layer of {a.schedule} {a.res} px, batch {a.batch} (ms)")
        return profile(a)
    if a.schedule:
        print(f"filtered_lrelu forward per layer of {a.schedule} {a.res} px, batch {a.batch}")
        return schedule(a)
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
