"""The official loop's per-iteration arithmetic, outside the model: the G_ema decay, the Adam
settings under lazy regularisation, and gradient clean-up and sums (TensorFlow only)."""

import tensorflow as tf

from sg3keras.runtime.optimizers import TorchAdam

__all__ = ["ema_beta", "optimizer_hparams", "make_optimizers", "sanitize", "add_grads", "flat"]


def ema_beta(cur_nimg, batch, ema_kimg, ema_rampup):
    """G_ema decay of one iteration, float64 (Alias-Free GAN Appendix F, Figure 16 "Moving
    average"; official training loop).

    ``ema_nimg = ema_kimg * 1000``, during ramp-up ``min(ema_nimg, cur_nimg * ema_rampup)``;
    ``beta = 0.5 ** (batch / max(ema_nimg, 1e-8))``. ``cur_nimg`` counts the images *before*
    this iteration, so the first iteration has ``beta = 0`` (G_ema becomes a copy of G).
    """
    ema_nimg = tf.constant(float(ema_kimg) * 1000.0, tf.float64)
    if ema_rampup is not None:
        ema_nimg = tf.minimum(ema_nimg, tf.cast(cur_nimg, tf.float64) * float(ema_rampup))
    return tf.pow(tf.constant(0.5, tf.float64), float(batch) / tf.maximum(ema_nimg, 1e-8))


def sanitize(grads):
    """``nan_to_num(nan=0, posinf=1e5, neginf=-1e5)`` as the official loop does before a step."""
    out = []
    for g in grads:
        if g is None:
            out.append(None)
            continue
        g = tf.where(tf.math.is_nan(g), tf.zeros_like(g), g)
        out.append(tf.clip_by_value(g, -1e5, 1e5) if g.dtype.is_floating else g)
    return out


def add_grads(a, b):
    """Sum of two gradients, either of which may be None (no path to the variable)."""
    if a is None or b is None:
        return b if a is None else a
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def flat(x):
    """``x`` as a float32 vector."""
    return tf.reshape(tf.cast(x, tf.float32), [-1])


def optimizer_hparams(train_config):
    """``{"G"|"D": {lr, beta1, beta2, eps}}`` as train.py sets them (Python floats): the
    lazy-regularisation scaling ``lr * k/(k+1)``, ``beta ** (k/(k+1))`` for a
    regularisation interval ``k`` (paper StyleGAN2 Sec. 3.1; none without an interval)."""
    def hp(lr, reg_interval):
        ratio = 1.0 if reg_interval is None else reg_interval / (reg_interval + 1)
        b1, b2 = train_config.betas
        return dict(lr=lr * ratio, beta1=b1 ** ratio, beta2=b2 ** ratio,
                    eps=float(train_config.eps))
    return {"G": hp(train_config.g_lr, train_config.g_reg_interval),
            "D": hp(train_config.d_lr, train_config.d_reg_interval)}

def make_optimizers(train_config):
    """G and D optimizers as train.py builds them: ``torch.optim.Adam`` semantics
    (:class:`~sg3keras.runtime.optimizers.TorchAdam`) with :func:`optimizer_hparams`."""
    hps = optimizer_hparams(train_config)
    return tuple(TorchAdam(learning_rate=h["lr"], beta_1=h["beta1"], beta_2=h["beta2"],
                           epsilon=h["eps"]) for h in (hps["G"], hps["D"]))
