"""Fourier-feature input of the StyleGAN3 synthesis network (Alias-Free GAN, Sections 3.1-3.2 and
Appendix F.1 "Transformed Fourier features"; docs/PAPER.md)."""

import math

import keras
import numpy as np
from keras import ops

from sg3keras.layers.fully_connected import FullyConnectedLayer
from sg3keras.ops.misc import assert_shape

__all__ = ["SynthesisInput"]


def _rows(*rows):
    """Stack per-sample matrix rows (tuples of ``[N]`` tensors) into ``[N, len(rows), k]``."""
    return ops.stack([ops.stack(r, axis=-1) for r in rows], axis=1)


@keras.saving.register_keras_serializable(package="sg3keras")
class SynthesisInput(keras.layers.Layer):
    """Band-limited Fourier features, rotated and translated per sample by ``w``.

    Buffers (non-trainable weights): ``freqs [C, 2]`` drawn uniformly over the disc of radius
    ``bandwidth``, ``phases [C]`` uniform in ``[-0.5, 0.5)`` cycles (both random at init; load
    them from a checkpoint), and ``transform [3, 3]``, a user-specified *inverse* transform of
    the output coordinates (identity at init). Trainable: the channel-mixing ``weight [C, C]``
    (``[in, out]``, used as ``weight / sqrt(C)``) and, with ``learned_transform``, ``affine``
    (``w -> (r_c, r_s, t_x, t_y)``, weight 0 / bias ``[1, 0, 0, 0]`` at init; config H on).

    Steps: ``t = affine(w) / |t[:2]|``; ``T = R(t) @ Tr(-t[2:]) @ transform``;
    ``f' = f @ T[:2, :2]``, ``phi' = phi + f @ T[:2, 2]``; amplitude
    ``clip(1 - (|f'| - bandwidth) / (sampling_rate/2 - bandwidth), 0, 1)`` (1 where the
    features are critically sampled, ``bandwidth = sampling_rate / 2``: configs B-F); features
    ``sin(2 pi (p . f' + phi')) * amplitude`` at pixel centres
    ``p = (i + 0.5 - size/2) / sampling_rate``; then channel mixing.

    Args:
        w_dim: intermediate latent dimensionality.
        channels: number of features ``C``.
        size: output size in pixels (square).
        sampling_rate: pixels per coordinate unit.
        bandwidth: maximum frequency ``|f|``.
        seed: int seed of the random ``freqs``/``phases`` (None = random).
        learned_transform: rotate / translate the features by ``affine(w)`` (Alias-Free GAN
            §3.2 "Transformed Fourier features", config H); False = only the ``transform``
            buffer (configs B-G: the features are fixed during training).

    Call arguments:
        w: ``[N, w_dim]`` (``ws[:, 0]``; unused without ``learned_transform``).
        transform: optional per-sample ``[N, 3, 3]`` used instead of the ``transform`` buffer
            (the SavedModel's ``generate_transformed`` endpoint).

    Returns ``[N, size, size, channels]``.

    Example:
        >>> inp = SynthesisInput(w_dim=8, channels=4, size=36, sampling_rate=16, bandwidth=2)
        >>> x = inp(keras.random.normal([2, 8]))
    """

    def __init__(self, w_dim, channels, size, sampling_rate, bandwidth, seed=None,
                 learned_transform=True, **kwargs):
        # Always float32 (as official): the phases f.(A p + b) need full precision; under a
        # mixed policy the next layer casts the features down.
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.w_dim = int(w_dim)
        self.channels = int(channels)
        self.size = int(size)
        self.sampling_rate = float(sampling_rate)
        self.bandwidth = float(bandwidth)
        self.seed = None if seed is None else int(seed)
        self.learned_transform = bool(learned_transform)
        self.affine = None
        if self.learned_transform:
            self.affine = FullyConnectedLayer(4, weight_init=0.0,
                                              bias_init=[1.0, 0.0, 0.0, 0.0], dtype="float32",
                                              name="affine")

    def build(self, input_shape=None):
        c = self.channels
        if self.affine is not None:
            self.affine.build((None, self.w_dim))
        self.weight = self.add_weight(name="weight", shape=(c, c),
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        gen = keras.random.SeedGenerator(self.seed)
        f = keras.random.normal((c, 2), seed=gen)
        radii = ops.sqrt(ops.sum(ops.square(f), axis=1, keepdims=True))
        f = f / (radii * ops.power(ops.exp(ops.square(radii)), 0.25)) * self.bandwidth
        phases = keras.random.uniform((c,), seed=gen) - 0.5
        self.freqs = self.add_weight(name="freqs", shape=(c, 2), trainable=False,
                                     initializer="zeros")
        self.phases = self.add_weight(name="phases", shape=(c,), trainable=False,
                                      initializer="zeros")
        self.transform = self.add_weight(name="transform", shape=(3, 3), trainable=False,
                                         initializer="identity")
        self.freqs.assign(f)
        self.phases.assign(phases)

    def call(self, w, transform=None):
        assert_shape(w, [None, self.w_dim], name="w")
        tr = self._transform(w, transform)                                  # [N|1, 3, 3]
        freqs = ops.cast(self.freqs, tr.dtype)[None]                        # [1, C, 2]
        phases = ops.cast(self.phases, tr.dtype)[None] \
            + ops.matmul(freqs, tr[:, :2, 2:])[:, :, 0]                     # [N|1, C]
        freqs = ops.matmul(freqs, tr[:, :2, :2])                            # [N|1, C, 2]
        norm = ops.sqrt(ops.sum(ops.square(freqs), axis=2))
        if self.sampling_rate / 2 > self.bandwidth:
            amp = ops.clip(1 - (norm - self.bandwidth)
                           / (self.sampling_rate / 2 - self.bandwidth), 0, 1)  # [N|1, C]
        else:                     # critically sampled: no transition band to fade through
            amp = ops.ones_like(norm)
        if not self.learned_transform:    # one transform for the batch: broadcast to it
            n = ops.shape(w)[0]
            freqs = ops.broadcast_to(freqs, (n,) + tuple(freqs.shape[1:]))
            phases = ops.broadcast_to(phases, (n,) + tuple(phases.shape[1:]))
            amp = ops.broadcast_to(amp, (n,) + tuple(amp.shape[1:]))
        coords = (np.arange(self.size, dtype=np.float64) + 0.5 - self.size / 2) \
            / self.sampling_rate
        coords = ops.convert_to_tensor(coords.astype(np.float32))
        gx = coords[None, None, :, None] * freqs[:, None, None, :, 0]       # [N, 1, W, C]
        gy = coords[None, :, None, None] * freqs[:, None, None, :, 1]       # [N, H, 1, C]
        x = gx + gy + phases[:, None, None, :]                              # [N, H, W, C]
        x = ops.sin(x * (2 * math.pi)) * amp[:, None, None, :]
        x = ops.matmul(x, self.weight / math.sqrt(self.channels))           # channel mixing
        assert_shape(x, [None, self.size, self.size, self.channels], name="SynthesisInput out")
        return x

    def _transform(self, w, transform):
        """``R(t) @ Tr(-t[2:]) @ user`` with ``t = affine(w)`` normalised (config H), or the
        user transform alone; ``[N, 3, 3]`` (``[1, 3, 3]`` for one shared matrix)."""
        dtype = "float32"
        user = ops.cast(self.transform, dtype)[None] if transform is None else \
            ops.cast(transform, dtype)                                      # [1|N, 3, 3]
        if self.affine is None:
            return user
        t = self.affine(w)                                                  # [N, 4]
        t = t / ops.sqrt(ops.sum(ops.square(t[:, :2]), axis=1, keepdims=True))
        rc, rs, tx, ty = t[:, 0], t[:, 1], t[:, 2], t[:, 3]
        zero, one = ops.zeros_like(rc), ops.ones_like(rc)
        m_r = _rows((rc, -rs, zero), (rs, rc, zero), (zero, zero, one))      # [N, 3, 3]
        m_t = _rows((one, zero, -tx), (zero, one, -ty), (zero, zero, one))   # [N, 3, 3]
        return ops.matmul(ops.matmul(m_r, m_t), ops.cast(user, t.dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(w_dim=self.w_dim, channels=self.channels, size=self.size,
                      sampling_rate=self.sampling_rate, bandwidth=self.bandwidth, seed=self.seed,
                      learned_transform=self.learned_transform)
        return config
