"""The StyleGAN2/3 GAN losses as pure functions returning per-sample tensors (Alias-Free GAN
Appendix F; StyleGAN2 §3; docs/PAPER.md).

The training step owns the outer tapes and optimisers; the functions here never step anything.
Naming follows TF-GAN (``nonsaturating_generator_loss``, ``r1_penalty``, ...).

* ``nonsaturating_generator_loss``: ``softplus(-D(G(z)))`` (Gmain).
* ``nonsaturating_discriminator_loss``: ``softplus(D(G(z)))`` and ``softplus(-D(x))`` (Dmain).
* ``r1_penalty``: ``sum_{HWC} (d sum(D(x)) / dx)^2`` (Dreg; the loss is ``penalty * gamma / 2``).
* ``path_length_penalty``: StyleGAN2 path-length regularisation (Greg).
* ``blur_sigma`` / ``blur_kernel`` / ``blur_images``: the -r "blur the D input" schedule.
* ``style_mix``: style-mixing regularisation of ``run_G``.

Input gradients (R1, path length) are not expressible with ``keras.ops``: they are computed
with a backend tape, ``tf.GradientTape`` under TensorFlow (nested tapes work inside a compiled
``train_step``) and ``jax.vjp`` under JAX. Other backends raise.
"""

import math

import keras
import numpy as np
from keras import ops

from sg3keras.ops.upfirdn2d import filter2d

__all__ = ["nonsaturating_generator_loss", "nonsaturating_discriminator_loss", "r1_penalty",
           "path_length_penalty", "blur_sigma", "blur_kernel", "blur_images", "style_mix",
           "input_gradient"]


def nonsaturating_generator_loss(fake_logits):
    """Non-saturating logistic G loss ``softplus(-fake_logits)``, same shape as the logits."""
    return ops.softplus(-ops.convert_to_tensor(fake_logits))


def nonsaturating_discriminator_loss(real_logits, fake_logits):
    """Logistic D loss terms, returned separately: ``(softplus(-real), softplus(fake))``.

    Both keep the logits' shape (``[N, 1]``); the official Dmain loss is their per-sample sum
    (``loss_Dreal + loss_Dgen``), averaged over the batch by the training step. They are kept
    apart because the official loop evaluates them in different phases (and logs them apart).
    """
    real = ops.softplus(-ops.convert_to_tensor(real_logits))
    fake = ops.softplus(ops.convert_to_tensor(fake_logits))
    return real, fake


def input_gradient(fn, x):
    """``(fn(x), d sum(fn(x)) / dx)`` with the backend's autodiff (TensorFlow or JAX).

    Under TensorFlow the inner ``tf.GradientTape`` is itself recorded by any enclosing tape, so
    the result is differentiable w.r.t. the variables ``fn`` reads (second-order gradients).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            total = tf.reduce_sum(y)
        return y, tape.gradient(total, x)
    if backend == "jax":
        import jax
        import jax.numpy as jnp
        y, vjp = jax.vjp(fn, jnp.asarray(x))
        return y, vjp(jnp.ones_like(y))[0]
    raise NotImplementedError(f"input gradients (R1, path length) need the tensorflow or jax "
                              f"Keras backend, not {backend!r}")


def r1_penalty(d_fn, real_images, c=None):
    """R1 gradient penalty ``sum_{H,W,C} (d sum(D(x, c)) / dx)^2`` per sample.

    Opens its own tape on ``real_images``. Put any blur/augmentation inside ``d_fn``: the
    official gradient flows through them. The official Dreg loss is ``penalty * r1_gamma / 2``
    (then averaged and multiplied by the lazy-regularisation interval).

    Args:
        d_fn: callable ``d_fn(x)`` or, when ``c`` is given, ``d_fn(x, c)`` returning logits.
        real_images: ``[N, H, W, C]`` images.
        c: optional labels passed through to ``d_fn``.
    Returns:
        ``(penalty [N], logits)`` -- the logits of the same evaluation.
    """
    x = ops.convert_to_tensor(real_images)
    if len(x.shape) != 4:
        raise ValueError(f"r1_penalty: real_images must be NHWC [N, H, W, C], got {list(x.shape)}")
    fn = d_fn if c is None else (lambda t: d_fn(t, c))
    logits, grads = input_gradient(fn, x)
    return ops.sum(ops.square(grads), axis=(1, 2, 3)), logits


def path_length_penalty(synthesis_fn, ws, pl_mean, pl_decay=0.01, noise=None, seed=None):
    """StyleGAN2 path-length penalty ``(|J_w^T y| - a)^2`` per sample (StyleGAN2 §3.2).

    Steps:
    1. ``img = synthesis_fn(ws)``; ``y = noise`` or ``N(0, 1) / sqrt(H * W)`` of ``img``'s shape.
    2. ``g = d sum(img * y) / d ws`` (inner tape).
    3. ``pl_lengths = sqrt(mean over ws of sum over w_dim of g^2)`` -> ``[N]``.
    4. ``new_pl_mean = pl_mean + pl_decay * (mean(pl_lengths) - pl_mean)``.
    5. ``penalty = (pl_lengths - new_pl_mean)^2`` (the official loss multiplies by pl_weight;
       the gradient also flows through ``new_pl_mean``; the returned mean is detached).

    The official ``pl_no_weight_grad`` only skips conv weight gradients inside the inner
    backward on CUDA (a speed trick); it is not reproduced.

    Args:
        synthesis_fn: callable ``ws [N, num_ws, w_dim] -> img [N, H, W, C]``.
        ws: ``[N, num_ws, w_dim]`` (the official loss uses batch / pl_batch_shrink samples).
        pl_mean: scalar running mean of the path lengths (float or tensor).
        pl_decay: EMA decay. Default 0.01.
        noise: optional fixed ``y`` (already divided by ``sqrt(H * W)``), shaped like img.
        seed: seed / ``keras.random.SeedGenerator`` for drawing ``y``.
    Returns:
        ``(penalty [N], new_pl_mean scalar)``.
    """
    ws = ops.convert_to_tensor(ws)
    if len(ws.shape) != 3:
        raise ValueError(f"path_length_penalty: ws must be [N, num_ws, w_dim], "
                         f"got {list(ws.shape)}")
    if noise is None and keras.backend.backend() == "jax":
        raise ValueError("path_length_penalty: under the JAX backend pass `noise` explicitly "
                         "(random draws inside jax.vjp would leak the seed state)")

    def fn(w):
        img = synthesis_fn(w)
        y = noise
        if y is None:
            h, wd = img.shape[1], img.shape[2]
            y = keras.random.normal(ops.shape(img), seed=seed, dtype=img.dtype) / np.sqrt(h * wd)
        return img * ops.cast(y, img.dtype)

    _, grads = input_gradient(fn, ws)
    pl_lengths = ops.sqrt(ops.mean(ops.sum(ops.square(grads), axis=2), axis=1))   # [N]
    pl_mean = ops.cast(pl_mean, pl_lengths.dtype)
    # As official: the penalty is differentiated through the updated mean too (its
    # ``pl_decay / N`` share of every length); only the stored value is detached.
    new_pl_mean = pl_mean + pl_decay * (ops.mean(pl_lengths) - pl_mean)
    return ops.square(pl_lengths - new_pl_mean), ops.stop_gradient(new_pl_mean)


def blur_sigma(cur_nimg, blur_init_sigma, blur_fade_kimg):
    """Blur "sigma" of the D input at ``cur_nimg`` (Alias-Free GAN Appendix F.2, "Training of
    config R"): a linear fade
    ``max(1 - cur_nimg / (blur_fade_kimg * 1e3), 0) * blur_init_sigma``; 0 when
    ``blur_fade_kimg <= 0`` or ``blur_init_sigma <= 0``.

    A Python number gives a Python float; a tensor ``cur_nimg`` (the trainer's image counter)
    gives a float64 scalar tensor, computed exactly like the Python expression."""
    if blur_fade_kimg <= 0 or blur_init_sigma <= 0:
        return 0.0 if isinstance(cur_nimg, (int, float, np.number)) else \
            ops.zeros((), "float64")
    if isinstance(cur_nimg, (int, float, np.number)):
        return max(1 - cur_nimg / (blur_fade_kimg * 1e3), 0) * blur_init_sigma
    t = 1.0 - ops.cast(cur_nimg, "float64") / (float(blur_fade_kimg) * 1e3)
    return ops.maximum(t, 0.0) * float(blur_init_sigma)


def blur_kernel(sigma, max_sigma=None):
    """Separable blur taps ``2^(-(x / sigma)^2)`` for integer ``|x| <= floor(3 sigma)``,
    normalised to sum 1 (float32, like the official float32 arithmetic). ``sigma`` is *not* a
    Gaussian std.

    With a Python ``sigma`` the taps span ``[-floor(3 sigma), floor(3 sigma)]`` and the result is
    a numpy array, or None when ``floor(3 sigma) == 0`` (no blur). With ``max_sigma`` (for a
    tensor ``sigma`` that changes during training, in a fixed-size graph) the taps span
    ``floor(3 max_sigma)``; taps beyond ``floor(3 sigma)`` are zero, which is the same filter,
    and ``floor(3 sigma) == 0`` gives the identity filter.
    """
    if max_sigma is None:
        sigma = float(sigma)
        if sigma < 0 or not math.isfinite(sigma):
            raise ValueError(f"blur_kernel: sigma must be a finite number >= 0, got {sigma}")
        size = math.floor(sigma * 3)
        if size <= 0:
            return None
        x = np.arange(-size, size + 1, dtype=np.float32)
        f = np.exp2(-np.square(x / np.float32(sigma)))
        return (f / f.sum()).astype(np.float32)
    radius = math.floor(float(max_sigma) * 3)
    if radius <= 0:
        return None
    x = ops.arange(-radius, radius + 1, dtype="float32")
    s = ops.cast(sigma, "float32")
    f = ops.power(2.0, -ops.square(x / ops.maximum(s, 1e-8)))
    f = ops.where(ops.abs(x) <= ops.floor(s * 3.0), f, ops.zeros_like(f))
    return f / ops.sum(f)


def blur_images(x, sigma, max_sigma=None):
    """Blur NHWC images with :func:`blur_kernel` (``filter2d``, zero padding, same size).

    ``sigma`` a Python number: static kernel, no-op when ``floor(3 sigma) == 0``. ``sigma`` a
    tensor: pass ``max_sigma`` (the largest sigma it can take) to fix the kernel size.
    """
    f = blur_kernel(sigma, max_sigma)
    if f is None:
        return x
    return filter2d(x, f)


def style_mix(ws, mix_ws, prob, seed=None, uniforms=None):
    """Style mixing of ``run_G``: ``ws[:, cutoff:] = mix_ws[:, cutoff:]``, one cutoff per call.

    With probability ``prob`` the cutoff is uniform in ``[1, num_ws)``, otherwise ``num_ws``
    (no mixing): from two uniforms ``u0, u1`` in ``[0, 1)``, ``cutoff = 1 + floor(u0 (num_ws -
    1))`` if ``u1 < prob``. ``mix_ws`` is the mapping of a fresh ``z`` with the same labels.

    Args:
        ws, mix_ws: ``[N, num_ws, w_dim]``.
        prob: style-mixing probability (0.9 for stylegan2).
        seed: int or ``keras.random.SeedGenerator`` for drawing ``u0, u1``.
        uniforms: ``(u0, u1)`` already drawn (the trainer draws them statelessly); overrides
            ``seed``.
    Returns:
        ``(mixed ws, cutoff)`` (cutoff is a scalar int32 tensor).
    """
    ws = ops.convert_to_tensor(ws)
    num_ws = ws.shape[1]
    if tuple(ws.shape[1:]) != tuple(ops.convert_to_tensor(mix_ws).shape[1:]):
        raise ValueError(f"style_mix: ws {list(ws.shape)} and mix_ws {list(mix_ws.shape)} differ")
    if num_ws < 2 or prob <= 0:
        return ws, ops.convert_to_tensor(num_ws, "int32")
    if uniforms is None:
        u = keras.random.uniform([2], seed=seed)
        uniforms = (u[0], u[1])
    u0, u1 = (ops.cast(u, "float32") for u in uniforms)
    cutoff = ops.minimum(1 + ops.cast(ops.floor(u0 * (num_ws - 1)), "int32"), num_ws - 1)
    cutoff = ops.where(u1 < prob, cutoff, ops.convert_to_tensor(num_ws, "int32"))
    mask = (ops.arange(num_ws, dtype="int32") >= cutoff)[None, :, None]
    return ops.where(mask, ops.cast(mix_ws, ws.dtype), ws), cutoff
