"""Latent-interpolation and input-transform videos (official ``gen_video.py`` semantics).

MP4s are encoded with libx264 through ``imageio`` and the ffmpeg binary shipped by
``imageio-ffmpeg`` (``pip install sg3keras[video]``).
"""

import math
import os

import numpy as np

from sg3keras.config import ProjectConfig
from sg3keras.tools._draw import saved_transform, synthesize, ws_from_seeds
from sg3keras.utils import atomic_path, make_grid, to_uint8

__all__ = ["require_video_support", "keyframe_seeds", "interpolate_ws", "render_video",
           "transform_path", "render_transform_video", "write_projection_video"]

_BITRATE = "12M"      # official gen_video.py encoder settings
_CODEC = "libx264"


def require_video_support():
    """Return the ``imageio`` module, or raise one error naming the missing packages."""
    missing = []
    try:
        import imageio
    except ImportError:
        imageio = None
        missing.append("imageio")
    try:
        import imageio_ffmpeg  # noqa: F401  (provides the ffmpeg binary)
    except ImportError:
        missing.append("imageio-ffmpeg")
    if missing:
        raise RuntimeError(f"MP4 output needs the package(s) {', '.join(missing)}; install with "
                           f"`pip install imageio imageio-ffmpeg` (or `pip install "
                           f"sg3keras[video]`)")
    return imageio


def _write_mp4(output, frames, fps, bitrate=_BITRATE):
    """Encode an iterable of uint8 ``[H, W, 3]`` frames to ``output`` atomically; returns count."""
    imageio = require_video_support()
    output = os.fspath(output)
    count = 0
    with atomic_path(output, suffix=".mp4") as tmp:
        writer = imageio.v2.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec=_CODEC,
                                       bitrate=bitrate, macro_block_size=2)
        try:
            for frame in frames:
                frame = np.asarray(frame)
                if frame.shape[2] == 1:
                    frame = np.repeat(frame, 3, axis=2)
                writer.append_data(frame)
                count += 1
        finally:
            writer.close()
        if count == 0:
            raise ValueError(f"{output}: no frames to write")
    return count


def keyframe_seeds(seeds, grid=(1, 1), num_keyframes=None, shuffle_seed=None):
    """Seeds as ``[grid_h, grid_w, num_keyframes]`` (the official layout).

    Without ``num_keyframes`` the seeds must divide evenly among the grid cells
    (``num_keyframes = len(seeds) // (w * h)``). Seeds are repeated cyclically to fill
    ``num_keyframes * w * h`` slots, then optionally shuffled with ``RandomState(shuffle_seed)``.
    """
    gw, gh = (int(v) for v in grid)
    seeds = [int(s) for s in seeds]
    if gw < 1 or gh < 1 or not seeds:
        raise ValueError(f"grid={grid!r}, seeds={seeds!r}: need a grid >= 1x1 and >= 1 seed")
    if num_keyframes is None:
        if len(seeds) % (gw * gh) != 0:
            raise ValueError(f"--seeds: {len(seeds)} seeds do not divide evenly among the "
                             f"{gw}x{gh} grid cells; expected a multiple of {gw * gh} seeds, "
                             "or pass --num-keyframes")
        num_keyframes = len(seeds) // (gw * gh)
    num_keyframes = int(num_keyframes)
    if num_keyframes < 1:
        raise ValueError(f"num_keyframes: expected >= 1, got {num_keyframes}")
    all_seeds = np.array([seeds[i % len(seeds)] for i in range(num_keyframes * gw * gh)],
                         np.int64)
    if shuffle_seed is not None:
        np.random.RandomState(int(shuffle_seed)).shuffle(all_seeds)
    return all_seeds.reshape(gh, gw, num_keyframes)


def interpolate_ws(ws_keys, w_frames, kind="cubic", wraps=2):
    """Loop-interpolate one cell's keyframe ``ws [K, num_ws, w_dim]`` into ``K * w_frames`` ws.

    The keyframes are tiled ``2 wraps + 1`` times on the positions ``-K wraps ..
    K (wraps + 1) - 1`` so that ``scipy.interpolate.interp1d(kind)`` is seamless at the loop
    point; frame ``f`` takes the value at position ``f / w_frames``.
    """
    import scipy.interpolate

    ws_keys = np.asarray(ws_keys, np.float64)
    k = ws_keys.shape[0]
    x = np.arange(-k * wraps, k * (wraps + 1))
    y = np.tile(ws_keys, [wraps * 2 + 1] + [1] * (ws_keys.ndim - 1))
    fn = scipy.interpolate.interp1d(x, y, kind=kind, axis=0)
    return fn(np.arange(k * int(w_frames)) / float(w_frames)).astype(np.float32)


def render_video(G, seeds, output, grid=(1, 1), w_frames=120, num_keyframes=None, kind="cubic",
                 truncation_psi=1.0, shuffle_seed=None, fps=60, class_idx=None, batch_size=8,
                 progress=None):
    """Write a looping latent-interpolation MP4 (``num_keyframes * w_frames`` frames).

    Steps: seeds laid out by :func:`keyframe_seeds`; ``ws = G.mapping(z, c, psi)`` with ``z =
    RandomState(seed).randn(z_dim)``; per grid cell :func:`interpolate_ws`; each frame is the
    grid of ``G.synthesis(w)`` (``noise_mode='const'`` for StyleGAN2), quantised like
    ``gen_images.py``; libx264 at 12 Mbit/s, ``fps`` frames per second.

    Returns:
        ``output`` (the number of frames is ``num_keyframes * w_frames``).
    """
    if int(w_frames) < 1:
        raise ValueError(f"w_frames: expected >= 1, got {w_frames}")
    require_video_support()
    layout = keyframe_seeds(seeds, grid, num_keyframes, shuffle_seed)
    gh, gw, nk = layout.shape
    ws = ws_from_seeds(G, layout.reshape(-1), truncation_psi, class_idx)
    ws = ws.reshape((gh * gw, nk) + ws.shape[1:])
    cells = np.stack([interpolate_ws(ws[i], w_frames, kind) for i in range(gh * gw)], axis=1)
    num_frames = cells.shape[0]                       # [frames, cells, num_ws, w_dim]
    per_call = max(1, int(batch_size) // (gh * gw))

    def frames():
        for start in range(0, num_frames, per_call):
            chunk = cells[start:start + per_call]
            imgs = synthesize(G, chunk.reshape((-1,) + chunk.shape[2:]), batch_size)
            imgs = to_uint8(imgs).reshape((len(chunk), gh * gw) + imgs.shape[1:])
            for f, cell_imgs in enumerate(imgs):
                yield make_grid(cell_imgs, (gw, gh))
                if progress is not None:
                    progress(start + f + 1, num_frames)

    _write_mp4(output, frames(), fps)
    return output


def transform_path(t, translate_path="circle", rotate_path="none", radius=0.125,
                   max_rotate=360.0):
    """``(translate (tx, ty), rotate_degrees)`` at time ``t`` in ``[0, 1)``.

    translate_path: ``"none"``, ``"circle"`` (radius ``radius`` image widths, one turn),
    ``"line"`` (``-radius -> +radius -> -radius`` along x) or a callable ``t -> (tx, ty)``.
    rotate_path: ``"none"``, ``"spin"`` (``0 -> max_rotate`` degrees), ``"rock"``
    (``+-max_rotate/8`` sinusoidally) or a callable ``t -> degrees``.
    """
    if callable(translate_path):
        tr = tuple(float(v) for v in translate_path(t))
    elif translate_path == "none":
        tr = (0.0, 0.0)
    elif translate_path == "circle":
        tr = (radius * math.cos(2 * math.pi * t), radius * math.sin(2 * math.pi * t))
    elif translate_path == "line":
        tr = (radius * (1 - 4 * abs(t - 0.5)), 0.0)
    else:
        raise ValueError(f"translate_path: expected 'none', 'circle', 'line' or a callable, "
                         f"got {translate_path!r}")
    if callable(rotate_path):
        rot = float(rotate_path(t))
    elif rotate_path == "none":
        rot = 0.0
    elif rotate_path == "spin":
        rot = max_rotate * t
    elif rotate_path == "rock":
        rot = max_rotate / 8 * math.sin(2 * math.pi * t)
    else:
        raise ValueError(f"rotate_path: expected 'none', 'spin', 'rock' or a callable, "
                         f"got {rotate_path!r}")
    return tr, rot


def render_transform_video(G, seed, output, translate_path="circle", rotate_path="none",
                           frames=120, radius=0.125, max_rotate=360.0, truncation_psi=1.0,
                           fps=30, class_idx=None, batch_size=8):
    """Write an MP4 of one latent while the StyleGAN3 input transform moves over time.

    Frame ``f`` uses ``G.set_transform(translate, rotate)`` from :func:`transform_path` at
    ``t = f / frames``: with an equivariant generator the content glides with the transform
    and no detail stays glued to the pixel grid. The transform is restored afterwards.
    """
    if int(frames) < 1:
        raise ValueError(f"frames: expected >= 1, got {frames}")
    require_video_support()
    G.require_input_transform("--translate-path/--rotate-path")
    ws = ws_from_seeds(G, [seed], truncation_psi, class_idx)
    params = [transform_path(f / int(frames), translate_path, rotate_path, radius, max_rotate)
              for f in range(int(frames))]
    with saved_transform(G, "--translate-path/--rotate-path"):
        def gen():
            for tr, rot in params:
                G.set_transform(translate=tr, rotate=rot)
                yield to_uint8(synthesize(G, ws, batch_size)[0])
        _write_mp4(output, gen(), fps)
    return output


def write_projection_video(G, projection, output, fps=ProjectConfig.video_fps,
                           bitrate=ProjectConfig.video_bitrate, batch_size=8):
    """The projector's ``proj.mp4``: frame ``i`` is the target beside the image of step ``i``'s
    ``w`` (with the final optimised noise buffers, as the official video).

    Args:
        G: the projected network.
        projection: a :class:`sg3keras.inference.projector.Projection`.
        output: MP4 path (written atomically).
        fps, bitrate: encoder settings (official: 10 fps, libx264 at 16 Mbit/s).
        batch_size: frames synthesised per generator call.

    Returns:
        ``output``.
    """
    from sg3keras.inference.projector import render_ws

    require_video_support()

    def frames():
        for i in range(0, len(projection.ws), batch_size):
            for img in render_ws(G, projection.ws[i:i + batch_size], projection.noise):
                yield np.concatenate([projection.target, img], axis=1)

    _write_mp4(output, frames(), fps, bitrate=bitrate)
    return output
