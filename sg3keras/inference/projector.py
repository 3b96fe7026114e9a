"""Projecting a real image into W (the method of stylegan2-ada-pytorch's ``projector.py``).

Finds the ``w`` whose image is closest to a target photo, for StyleGAN3 and StyleGAN2 networks
(projection as in Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", 2020,
Section 5, with the settings of the stylegan2-ada-pytorch release):

1. Target: open with PIL, convert to the network's colour mode, center-crop to a square
   (``((w - s) // 2, (h - s) // 2)`` of side ``s = min(w, h)``) and resize to the network's
   resolution with Lanczos (:func:`load_target`; what was done is stated).
2. ``w`` statistics: 10 000 ``z ~ N(0, I)`` from ``RandomState(123)`` through the mapping network;
   ``w_avg`` is their mean (``[1, 1, w_dim]``), ``w_std = sqrt(sum((w - w_avg)^2) / N)`` a scalar
   (:func:`w_statistics`).
3. Variables: ``w_opt = w_avg``, one ``w`` broadcast to all ``num_ws`` layers; for StyleGAN2 each
   per-layer noise buffer, re-drawn from ``N(0, 1)``. Adam (``torch.optim.Adam`` semantics,
   betas 0.9 / 0.999) with learning rate 0.1.
4. Step ``i`` of ``num_steps``, ``t = i / num_steps`` (:func:`step_schedule`):
   ``lr = 0.1 * rampup * rampdown`` with ``rampdown = 0.5 - 0.5 cos(pi * min(1, (1 - t) / 0.25))``
   and ``rampup = min(1, t / 0.05)``; ``w`` noise of std ``w_std * 0.05 * max(0, 1 - t / 0.75)^2``
   is added to ``w_opt`` for this step only.
5. Loss: the image ``G.synthesis(ws, noise_mode='const')`` in ``[0, 255]``, area-downsampled to
   256x256 if larger, against the target treated the same way: the LPIPS distance of NVIDIA's
   VGG16 (``sum((f(target) - f(synth))^2)``, :func:`sg3keras.detectors.vgg16.build_vgg16_lpips`), or
   with ``loss="mse"`` the mean squared pixel difference in 8-bit units (so that
   ``PSNR = 10 log10(255^2 / dist)``); plus, for StyleGAN2, ``1e5`` times the noise
   regularization (:func:`noise_regularization`).
6. After each Adam update the noise buffers are re-normalised to zero mean and unit variance;
   ``w_opt`` is recorded. The trajectory ``[num_steps, num_ws, w_dim]`` is returned; its last
   entry is the projection.

Outputs (:func:`save_projection`): ``target.png``, ``proj.png`` (the last ``w``) and
``projected_w.npz`` with ``w`` ``[1, num_ws, w_dim]`` (the official ``gen_images.py
--projected-w`` format) and, for StyleGAN2, the optimised noise buffers as ``noise.<layer>``
(ignored by the official tool; :func:`render_projected_w` uses them so that ``generate
--projected-w`` reproduces ``proj.png``). The video is :func:`sg3keras.tools.video.write_projection_video`.

The optimisation step runs on the TensorFlow backend (:mod:`sg3keras.inference.projector_tf`).
"""

import dataclasses
import math
import os

import numpy as np

from sg3keras.config import ProjectConfig
from sg3keras.utils import atomic_path, save_png, to_uint8

__all__ = ["Projection", "project", "load_target", "w_statistics", "step_schedule",
           "area_downsample", "noise_regularization", "normalize_noise", "synthesize_ws",
           "render_ws", "save_projection", "load_projected_w", "render_projected_w", "psnr"]

LOSSES = ("lpips", "mse")


@dataclasses.dataclass
class Projection:
    """The result of :func:`project`.

    Attributes:
        ws: ``[num_steps, num_ws, w_dim]`` float32, ``w_opt`` after each step (the trajectory).
        noise: ``{layer name: [R, R]}`` optimised StyleGAN2 noise buffers (empty for StyleGAN3).
        dist: ``[num_steps]`` distance (LPIPS or MSE) at each step, before its update.
        target: the uint8 ``[R, R, C]`` target that was matched.
        target_note: what was done to the target file or array.
        loss: ``"lpips"`` or ``"mse"``.
    """

    ws: np.ndarray
    noise: dict
    dist: np.ndarray
    target: np.ndarray
    target_note: str = ""
    loss: str = "lpips"

    @property
    def w(self):
        """The projection ``[1, num_ws, w_dim]`` (the last step)."""
        return self.ws[-1:]


# ------------------------------------------------------------------------------------------------
# Target and w statistics.

def load_target(target, resolution, channels=3):
    """The target as uint8 ``[resolution, resolution, channels]`` and a note of what was done.

    Args:
        target: an image file path, a PIL image, or a uint8 array ``[H, W]`` / ``[H, W, C]``.
            Files and PIL images are converted to ``RGB`` (``channels=3``) or ``L`` (1); an
            array must already have ``channels`` channels.
        resolution: the network's resolution.
        channels: the network's image channels (1 or 3).

    Returns:
        ``(image, note)``; e.g. note ``"target 640x480 -> center crop 480x480 -> Lanczos 256x256"``.
    """
    import PIL.Image

    if channels not in (1, 3):
        raise ValueError(f"the network makes {channels}-channel images; the projector handles "
                         "1 (grayscale) or 3 (RGB) channels")
    mode = "RGB" if channels == 3 else "L"
    steps = []
    if isinstance(target, (str, os.PathLike)):
        name = os.fspath(target)
        if not os.path.isfile(name):
            raise ValueError(f"--target {name}: no such file")
        try:
            with PIL.Image.open(name) as opened:
                img = opened.copy()
        except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
            raise ValueError(f"--target {name}: not an image PIL can read "
                             f"({type(e).__name__})") from None
    elif isinstance(target, PIL.Image.Image):
        name, img = "image", target
    else:
        name, arr = "array", np.asarray(target)
        if arr.dtype != np.uint8:
            raise ValueError(f"target array: expected uint8 pixels, got dtype {arr.dtype}")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        have = 1 if arr.ndim == 2 else (arr.shape[2] if arr.ndim == 3 else None)
        if have != channels:
            raise ValueError(f"target array of shape {list(np.asarray(target).shape)}: expected "
                             f"[H, W, {channels}] (the network makes {channels}-channel images)")
        img = PIL.Image.fromarray(arr)
    if img.mode != mode:
        steps.append(f"mode {img.mode} -> {mode}")
        img = img.convert(mode)
    w, h = img.size
    note = f"target {name if name in ('image', 'array') else os.path.basename(name)} {w}x{h}"
    s = min(w, h)
    if w != h:
        img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
        steps.append(f"center crop {s}x{s}")
    if s != resolution:
        img = img.resize((resolution, resolution), PIL.Image.LANCZOS)
        steps.append(f"Lanczos {resolution}x{resolution}")
    out = np.asarray(img, np.uint8).reshape(resolution, resolution, channels)
    return out, " -> ".join([note] + steps) if steps else note + " (used as is)"


def w_statistics(G, num_samples=10000, seed=123, class_idx=None, batch_size=1000):
    """``(w_avg [1, 1, w_dim] float32, w_std float)`` over ``num_samples`` mapped latents.

    ``z = RandomState(seed).randn(num_samples, z_dim)``; conditional networks map with the
    one-hot label ``class_idx``. ``w_std = sqrt(sum((w - w_avg)^2) / num_samples)``.
    """
    z = np.random.RandomState(seed).randn(num_samples, G.z_dim).astype(np.float32)
    ws = []
    for i in range(0, num_samples, batch_size):
        chunk = z[i:i + batch_size]
        c = None
        if G.c_dim > 0:
            c = np.zeros([len(chunk), G.c_dim], np.float32)
            c[:, int(class_idx)] = 1
        ws.append(np.asarray(G.mapping(chunk, c))[:, :1, :])        # [n, 1, w_dim]
    ws = np.concatenate(ws).astype(np.float64)
    w_avg = ws.mean(axis=0, keepdims=True)
    w_std = float(np.sqrt(np.sum((ws - w_avg) ** 2) / num_samples))
    return w_avg.astype(np.float32), w_std


def step_schedule(step, num_steps, config=ProjectConfig()):
    """``(learning rate, w noise factor)`` of step ``step``; the w noise std is ``w_std`` times
    the factor (see the module docstring, step 4)."""
    t = step / num_steps
    noise_factor = config.initial_noise_factor * max(0.0, 1.0 - t / config.noise_ramp_length) ** 2
    ramp = min(1.0, (1.0 - t) / config.lr_rampdown_length)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / config.lr_rampup_length)
    return config.initial_learning_rate * ramp, noise_factor


# ------------------------------------------------------------------------------------------------
# Traceable pieces of the loss (keras.ops).

def _area_matrix(n_in, n_out):
    """``[n_out, n_in]`` averaging weights of PyTorch's ``mode='area'`` (adaptive average)."""
    m = np.zeros([n_out, n_in], np.float32)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def area_downsample(x, size):
    """``[N, H, W, C]`` -> ``[N, size, size, C]`` by area averaging (``F.interpolate`` 'area'),
    only when ``H > size``; an integer factor averages ``f x f`` blocks."""
    from keras import ops

    n, h, w, c = x.shape
    if h <= size:
        return x
    if h % size == 0 and w % size == 0:
        fh, fw = h // size, w // size
        return ops.mean(ops.reshape(x, (-1, size, fh, size, fw, c)), axis=(2, 4))
    rows, cols = _area_matrix(h, size), _area_matrix(w, size)
    x = ops.einsum("ih,nhwc->niwc", rows, x)
    return ops.einsum("jw,niwc->nijc", cols, x)


def noise_regularization(noises):
    """Sum over noise buffers ``[R, R]`` and their 2x2 average-pooled pyramids (down to 8x8, a
    4x4 buffer counts once) of the squared mean products with the buffer shifted by one pixel
    along each axis (StyleGAN2 projector's autocorrelation penalty)."""
    from keras import ops

    reg = 0.0
    for v in noises:
        while True:
            reg += ops.square(ops.mean(v * ops.roll(v, 1, axis=1)))
            reg += ops.square(ops.mean(v * ops.roll(v, 1, axis=0)))
            h, w = v.shape
            if h <= 8:
                break
            v = ops.mean(ops.reshape(v, (h // 2, 2, w // 2, 2)), axis=(1, 3))
    return reg


def normalize_noise(v):
    """``v - mean(v)``, then divided by its root mean square."""
    from keras import ops

    v = v - ops.mean(v)
    return v * ops.rsqrt(ops.mean(ops.square(v)))


def synthesize_ws(G, ws, noise=None, noise_mode="const"):
    """Images in ``[-1, 1]`` (``[N, R, R, C]``, a tensor) of ``ws`` ``[N, num_ws, w_dim]``:
    ``G.synthesize_batch``.

    ``noise``: optional noise buffers ``{layer: [R, R]}`` used instead of the network's own
    ``noise_const`` (what ``noise_mode='const'`` reads); ignored by networks without noise.
    """
    return G.synthesize_batch(ws, noise_mode=noise_mode, noise=noise)


def render_ws(G, ws, noise=None, noise_mode="const", batch_size=8):
    """uint8 ``[N, R, R, C]`` images of ``ws`` ``[N, num_ws, w_dim]`` (see :func:`synthesize_ws`)."""
    return to_uint8(G.synthesize(ws, batch_size=batch_size, noise_mode=noise_mode, noise=noise))


def psnr(a, b):
    """PSNR in dB of two uint8 images (peak 255)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


# ------------------------------------------------------------------------------------------------
# The optimisation.

def _distance_fn(loss, target, size, vgg16):
    """``fn(images [1, R, R, C] in [0, 255]) -> scalar`` distance to ``target`` (uint8)."""
    from keras import ops

    def prepare(x):
        x = area_downsample(x, size)
        return ops.tile(x, (1, 1, 1, 3)) if x.shape[-1] == 1 else x

    target = prepare(ops.convert_to_tensor(target[None].astype(np.float32)))
    if loss == "mse":
        return lambda synth: ops.mean(ops.square(target - prepare(synth)))
    if min(target.shape[1:3]) < 16:
        raise ValueError(f"--loss lpips needs images of at least 16x16 pixels (VGG16 pools four "
                         f"times), got {target.shape[1]}x{target.shape[2]}; use --loss mse")
    target_features = vgg16(target)
    return lambda synth: ops.sum(ops.square(target_features - vgg16(prepare(synth))))


def _resolve_vgg16(vgg16, log):
    if vgg16 is not None and not isinstance(vgg16, (str, os.PathLike)):
        return vgg16                                     # an already built model
    from sg3keras.detectors.loading import load_vgg16_lpips, vgg16_lpips_file
    return load_vgg16_lpips(vgg16_lpips_file(vgg16, log=log))


def _check(G, loss, class_idx, num_steps):
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"the projector runs on the TensorFlow backend (KERAS_BACKEND="
                         f"{keras.backend.backend()})")
    if loss not in LOSSES:
        raise ValueError(f"--loss {loss!r}: expected one of {', '.join(LOSSES)}")
    if int(num_steps) < 1:
        raise ValueError(f"--num-steps {num_steps}: expected at least 1")
    if G.c_dim > 0:
        if class_idx is None:
            raise ValueError(f"--class is required: the network is conditional (c_dim={G.c_dim})")
        if not 0 <= int(class_idx) < G.c_dim:
            raise ValueError(f"--class={class_idx}: expected 0..{G.c_dim - 1}")


def project(G, target, num_steps=None, loss="lpips", vgg16=None, seed=0, class_idx=None,
            config=ProjectConfig(), progress=None, log=None):
    """Projects ``target`` into W of ``G`` (module docstring); returns a :class:`Projection`.

    Args:
        G: an sg3keras generator (:class:`sg3keras.models.GeneratorBase`; not modified).
        target: image file, PIL image or uint8 array (see :func:`load_target`).
        num_steps: optimisation steps (default ``config.num_steps``, 1000).
        loss: ``"lpips"`` (NVIDIA's VGG16) or ``"mse"`` (pixels, works offline).
        vgg16: for ``"lpips"``: path, directory or URL of NVIDIA's ``vgg16.pkl``, an already built
            LPIPS model, or None (search path, download cache, then NVIDIA's URL).
        seed: seeds the noise-buffer initialisation and the per-step w noise.
        class_idx: class label for conditional networks (used for the w statistics).
        config: :class:`sg3keras.config.ProjectConfig` hyperparameters.
        progress: optional ``callable(step, num_steps, dist)`` after each step.
        log: optional ``callable(str)`` for the target note and downloads.

    Example:
        >>> proj = project(G, "face.png", num_steps=300, loss="mse")
        >>> img = render_ws(G, proj.w, proj.noise)[0]
    """
    import keras
    from keras import ops

    from sg3keras.inference.projector_tf import make_step
    from sg3keras.runtime.optimizers import TorchAdam

    num_steps = int(config.num_steps if num_steps is None else num_steps)
    _check(G, loss, class_idx, num_steps)
    target, note = load_target(target, G.img_resolution, G.img_channels)
    if log is not None:
        log(note)
    distance = _distance_fn(loss, target, config.distance_resolution,
                            _resolve_vgg16(vgg16, log) if loss == "lpips" else None)
    w_avg, w_std = w_statistics(G, config.w_avg_samples, config.w_avg_seed, class_idx)

    rng = np.random.RandomState(seed)
    shapes = dict(G.noise_inputs())
    names = list(shapes)
    w_opt = keras.Variable(w_avg, name="w_opt")
    noise = {n: keras.Variable(rng.randn(shapes[n], shapes[n]).astype(np.float32),
                               name=f"noise_{n.replace('.', '_')}") for n in names}
    num_ws = G.num_ws

    def loss_fn(w_noise):
        ws = ops.tile(w_opt + w_noise, (1, num_ws, 1))
        synth = (synthesize_ws(G, ws, noise) + 1.0) * (255.0 / 2.0)
        dist = distance(synth)
        reg = noise_regularization(list(noise.values())) if noise else 0.0
        return dist + reg * config.regularize_noise_weight, dist

    def after_update():
        for v in noise.values():
            v.assign(normalize_noise(v))

    optimizer = TorchAdam(learning_rate=0.0, beta_1=config.beta_1, beta_2=config.beta_2)
    step = make_step([w_opt] + list(noise.values()), loss_fn, optimizer, after_update)
    ws_out = np.zeros([num_steps, G.w_dim], np.float32)
    dists = np.zeros([num_steps], np.float64)
    for i in range(num_steps):
        lr, noise_factor = step_schedule(i, num_steps, config)
        w_noise = rng.randn(*w_avg.shape).astype(np.float32) * np.float32(w_std * noise_factor)
        dists[i] = float(step(np.float32(lr), w_noise))
        ws_out[i] = np.asarray(w_opt)[0, 0]
        if progress is not None:
            progress(i, num_steps, dists[i])
    return Projection(ws=np.repeat(ws_out[:, None, :], num_ws, axis=1),
                      noise={n: np.asarray(v) for n, v in noise.items()}, dist=dists,
                      target=target, target_note=note, loss=loss)


# ------------------------------------------------------------------------------------------------
# Files.

def save_projection(G, projection, outdir):
    """Writes ``target.png``, ``proj.png`` and ``projected_w.npz`` into ``outdir``; returns the
    paths. ``proj.png`` is the last ``w`` with the optimised noise (StyleGAN2)."""
    os.makedirs(outdir, exist_ok=True)
    paths = [os.path.join(outdir, n) for n in ("target.png", "proj.png", "projected_w.npz")]
    save_png(paths[0], projection.target)
    save_png(paths[1], render_ws(G, projection.w, projection.noise)[0])
    arrays = {"w": projection.w.astype(np.float32)}
    arrays.update({f"noise.{k}": v.astype(np.float32) for k, v in projection.noise.items()})
    with atomic_path(paths[2], suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return paths


def _npz_member(zf, info, want, where, archive_size):
    """One ``.npy`` member of a ``projected_w.npz`` as float32, its header checked first: a float
    dtype, a shape accepted by ``want[0](shape)`` (``want[1]`` says which) and a data size the member really holds."""
    from sg3keras.data.zipcheck import size_problem
    key = info.filename[:-len(".npy")]
    problem = size_problem(info, archive_size)
    if problem:
        raise ValueError(f"--projected-w {where}: {problem}")
    with zf.open(info) as f:
        try:       # numpy parses the header as Python literals (tokenize errors included)
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                           np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
        except Exception as e:
            raise ValueError(f"--projected-w {where}: array {key!r} has no readable .npy header "
                             f"({type(e).__name__}: {e})") from None
        if dtype.kind != "f" or not want[0](shape):
            raise ValueError(f"--projected-w {where}: {key!r} has shape {list(shape)} and dtype "
                             f"{dtype}, expected {want[1]} (float) for this network")
        nbytes = math.prod(shape) * dtype.itemsize
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise ValueError(f"--projected-w {where}: array {key!r} is truncated ({len(data)} of "
                         f"{nbytes} bytes)")
    arr = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(np.float32)


def load_projected_w(path, G):
    """``(ws [N, num_ws, w_dim] float32, noise {layer: [R, R]})`` from a ``projected_w.npz``
    (key ``w``, official format; ``noise.<layer>`` keys are optional), checked against ``G``.

    Each array's header (dtype, shape) is checked against ``G`` and its size against the
    archive before any data is read. Raises ValueError naming the file."""
    import zipfile

    from sg3keras.data.zipcheck import ZIP_ERRORS
    where = os.fspath(path)
    expected = dict(G.noise_inputs())
    wants = {"w": (lambda s: len(s) == 3 and tuple(s[1:]) == (G.num_ws, G.w_dim),
                   f"[N, {G.num_ws}, {G.w_dim}]")}
    wants.update({f"noise.{k}": (lambda s, r=r: tuple(s) == (r, r), f"[{r}, {r}]")
                  for k, r in expected.items()})
    arrays = {}
    try:
        with zipfile.ZipFile(where) as zf:
            members = {i.filename[:-len(".npy")]: i for i in zf.infolist()
                       if i.filename.endswith(".npy")}
            if "w" not in members:
                raise ValueError(f"--projected-w {where}: no array 'w' (keys: {sorted(members)})")
            for key in [k for k in members if k == "w" or k.startswith("noise.")]:
                if key not in wants:
                    raise ValueError(f"--projected-w {where}: noise buffer "
                                     f"'{key[len('noise.'):]}' does not fit this network")
                arrays[key] = _npz_member(zf, members[key], wants[key], where,
                                          os.path.getsize(where))
    except ValueError as e:
        if str(e).startswith(f"--projected-w {where}"):
            raise
        raise ValueError(f"--projected-w {where}: not a readable .npz file ({e})") from None
    except ZIP_ERRORS as e:
        raise ValueError(f"--projected-w {where}: not a readable .npz file "
                         f"({type(e).__name__}: {e})") from None
    ws = arrays.pop("w")
    return ws, {k[len("noise."):]: v for k, v in arrays.items()}


def render_projected_w(G, path, outdir, noise_mode="const"):
    """``gen_images.py --projected-w``: writes ``proj00.png``, ``proj01.png``, ... (one per ``w``
    in the file) into ``outdir``; returns ``(paths, note)``. Stored noise buffers are used with
    ``noise_mode='const'`` (so ``proj.png`` is reproduced)."""
    ws, noise = load_projected_w(path, G)
    note = None
    if noise and noise_mode != "const":
        note = f"the noise buffers stored in {path} are used only with --noise-mode const"
        noise = None
    elif noise:
        note = f"using the {len(noise)} optimised noise buffers stored in {path}"
    os.makedirs(outdir, exist_ok=True)
    paths = []
    for i, img in enumerate(render_ws(G, ws, noise, noise_mode)):
        paths.append(os.path.join(outdir, f"proj{i:02d}.png"))
        save_png(paths[-1], img)
    return paths, note
