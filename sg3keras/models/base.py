"""The one interface of sg3keras generators.

Every generator (:class:`~sg3keras.models.Generator`, :class:`~sg3keras.models.StyleGAN2Generator`)
derives from :class:`GeneratorBase` and answers the same questions, so that export, generation,
the tools, the projector, the metrics and the trainer never test a class name or an attribute:

=============================  ================================================================
``mapping(z, c, ...)``         ``ws [N, num_ws, w_dim]`` (truncation, ``w_avg`` update)
``synthesis(ws, ...)``         images ``[N, R, R, C]``; one keyword set for every family:
                               ``noise_mode``, ``noise``, ``transform``, ``update_emas``
``synthesize(ws, batch_size)`` ``synthesis`` in batches, as float32 numpy
``has_noise``                  per-pixel noise inputs (``noise_inputs()`` names them)
``has_input_transform``        a Fourier-feature input with a ``[3, 3]`` transform
                               (``input_transform``, ``set_transform``)
``has_filtered_nonlinearities``  alias-free ``filtered_lrelu`` layers (``with_impl`` picks
                               their implementation)
``layer_names``                the synthesis layers in forward order (official names)
``layer_outputs(ws, ...)``     the synthesis pass one layer at a time: ``(name, tensor)``
=============================  ================================================================

The answers come from the :class:`~sg3keras.config.GeneratorConfig` (its ``has_*``
properties), never from the class: the paper's intermediate configurations (StyleGAN2 -> B ... H
-> StyleGAN3) differ in exactly these answers.

:func:`generator_class` / :func:`build_generator` are the one place that picks the class for a
config (trainer, converter, ``from_preset``): each class registers the ``GeneratorConfig.family``
it builds with :func:`register_generator`.
"""

import math

import numpy as np

from sg3keras.config import GeneratorConfig, resolve_preset
from sg3keras.layers.stylegan2_synthesis import NOISE_MODES

__all__ = ["GeneratorBase", "GENERATOR_CLASSES", "register_generator", "generator_class",
           "build_generator", "as_generator_config", "check_noise_mode", "make_transform"]

# ``GeneratorConfig.family`` -> the class that builds it (filled by :func:`register_generator`
# when sg3keras.models imports the generator modules).
GENERATOR_CLASSES = {}


def register_generator(family):
    """Class decorator: ``cls`` builds the configs whose ``family`` is ``family``."""
    def register(cls):
        GENERATOR_CLASSES[family] = cls
        return cls
    return register


def generator_class(config):
    """The generator class of ``config`` (a :class:`GeneratorConfig` or its dict)."""
    cfg = as_generator_config(config)
    try:
        return GENERATOR_CLASSES[cfg.family]
    except KeyError:
        raise ValueError(f"config.family: expected one of {sorted(GENERATOR_CLASSES)}, got "
                         f"{cfg.family!r}") from None


def build_generator(config, impl="fast", seed=None, **kwargs):
    """A built generator for ``config``; ``kwargs`` (``name``, ``metadata``) go to the class.

    ``impl`` (``filtered_lrelu`` implementation) and ``seed`` (random Fourier features) apply
    to the networks that have them and are ignored by the others (StyleGAN2: neither).
    """
    cfg = as_generator_config(config)
    cls = generator_class(cfg)
    options = {k: v for k, v in dict(impl=impl, seed=seed).items() if k in cls._build_options}
    return cls(cfg, **options, **kwargs)


def make_transform(translate=(0.0, 0.0), rotate=0.0):
    """Forward 2-D transform of ``gen_images.py``: rotate by ``rotate`` degrees, translate.

    Returns ``[[cos a, sin a, tx], [-sin a, cos a, ty], [0, 0, 1]]`` (float64); the input
    layer's ``transform`` buffer stores its inverse.
    """
    a = rotate / 360.0 * 2 * math.pi
    tx, ty = (float(v) for v in translate)
    return np.array([[math.cos(a), math.sin(a), tx], [-math.sin(a), math.cos(a), ty],
                     [0.0, 0.0, 1.0]])


def as_generator_config(config):
    """``config`` as a :class:`GeneratorConfig` (from the dataclass or its dict)."""
    if isinstance(config, GeneratorConfig):
        return config
    if isinstance(config, dict):
        return GeneratorConfig.from_dict(config)
    raise TypeError(f"config: expected a GeneratorConfig or dict, got {type(config).__name__}")


def check_noise_mode(noise_mode):
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


class GeneratorBase:
    """Mixin of every sg3keras generator (a ``keras.Model`` with ``config``, ``mapping``,
    ``synthesis``, ``z_dim``, ``c_dim``, ``w_dim``, ``num_ws``, ``img_resolution``,
    ``img_channels``). See the module docstring for the protocol.

    A subclass registers its family (:func:`register_generator`); its ``__init__`` takes
    ``(config, **options, metadata=None, name=...)``; ``_build_options`` names the constructor
    options it understands among those that :func:`build_generator` forwards (``impl``,
    ``seed``).
    """

    _build_options = ()

    # ---------------------------------------------------------------------------------------
    # What the network has (answered from the config).

    @property
    def has_noise(self):
        """Whether the synthesis layers add per-pixel noise (``noise_mode`` / ``noise`` matter)."""
        return self.config.has_noise

    @property
    def has_input_transform(self):
        """Whether the synthesis input is Fourier features with a ``[3, 3]`` input transform."""
        return self.config.has_input_transform

    @property
    def has_filtered_nonlinearities(self):
        """Whether the layers use ``filtered_lrelu`` (``impl`` "fast" / "ref" / "conv")."""
        return self.config.has_filtered_nonlinearities

    @property
    def layer_names(self):
        """Names of the synthesis layers in forward order (official module names)."""
        return list(self.synthesis.layer_names)

    def noise_inputs(self):
        """``[(layer name, resolution)]`` of every noise input in forward order (``[]`` without
        noise); the keys of the ``noise`` dict that ``synthesis`` accepts."""
        return list(self.synthesis.noise_inputs()) if self.has_noise else []

    # ---------------------------------------------------------------------------------------
    # Input transform.

    @property
    def input_transform(self):
        """The ``[3, 3]`` input-transform variable (stores the *inverse* transform)."""
        return self.require_input_transform()

    def require_input_transform(self, what=None):
        """:attr:`input_transform`, or one ``ValueError`` naming ``what`` needs it."""
        if not self.has_input_transform:
            what = what or f"{type(self).__name__}.set_transform"
            raise ValueError(f"{what} needs a StyleGAN3 network (one with an input transform); "
                             f"got a {type(self).__name__}, which has no input transform")
        return self.synthesis.input.transform

    def set_transform(self, translate=(0.0, 0.0), rotate=0.0):
        """Set the input transform like ``gen_images.py --translate --rotate`` (degrees)."""
        self.set_transform_matrix(np.linalg.inv(make_transform(translate, rotate)))

    def set_transform_matrix(self, m):
        """Store ``m`` (the *inverse* transform, ``[3, 3]``) in :attr:`input_transform`."""
        var = self.input_transform
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (3, 3):
            raise ValueError(f"transform matrix: expected shape [3, 3], got {list(m.shape)}")
        var.assign(m.astype(np.float32))

    # ---------------------------------------------------------------------------------------
    # Synthesis.

    def synthesis_kwargs(self, noise_mode="const", noise=None, transform=None):
        """The keyword arguments of ``synthesis`` for these settings: ``noise_mode`` / ``noise``
        only where the network has noise, ``transform`` only when given."""
        check_noise_mode(noise_mode)
        kwargs = dict(noise_mode=noise_mode) if self.has_noise else {}
        if noise:
            if not self.has_noise:
                raise ValueError(f"noise: {type(self).__name__} has no noise inputs")
            kwargs["noise"] = noise
        if transform is not None:
            self.require_input_transform("transform")
            kwargs["transform"] = transform
        return kwargs

    def generate(self, z, c=None, batch_size=None, truncation_psi=1.0, noise_mode="const"):
        """``G(z, c)`` as float32 numpy ``[N, R, R, C]``, ``batch_size`` rows per call (None:
        one call); ``noise_mode`` as in :meth:`synthesize` (default ``"const"``)."""
        z = np.asarray(z, np.float32)
        c = None if c is None else np.asarray(c, np.float32)
        return self._in_batches(
            len(z), batch_size, lambda i, j: self(z[i:j], c=None if c is None else c[i:j],
                                                  truncation_psi=truncation_psi,
                                                  noise_mode=noise_mode))

    def layer_outputs(self, ws, noise_mode="const"):
        """Yield ``(name, tensor)`` for each stage of ``synthesis(ws)`` in forward order: the
        input (StyleGAN3: ``"input"``), each synthesis layer (StyleGAN2: each block's
        features) and ``"output"``, the image :meth:`synthesize` returns. ``noise_mode`` as in
        :meth:`synthesize` (ignored without noise)."""
        check_noise_mode(noise_mode)
        kwargs = dict(noise_mode=noise_mode) if self.has_noise else {}
        yield from self.synthesis.layer_outputs(np.asarray(ws, np.float32), **kwargs)

    def _in_batches(self, n, batch_size, fn):
        """``fn(i, j)`` for the row ranges ``[i, j)`` of ``batch_size`` (None: all ``n``),
        concatenated as float32 numpy images (``[0, R, R, C]`` when ``n == 0``)."""
        step = int(batch_size or max(n, 1))
        out = [np.asarray(fn(i, min(i + step, n)), np.float32) for i in range(0, n, step)]
        if not out:
            return np.zeros([0, self.img_resolution, self.img_resolution, self.img_channels],
                            np.float32)
        return np.concatenate(out)

    def synthesize(self, ws, batch_size=None, noise_mode="const", noise=None):
        """``synthesis(ws)`` as float32 numpy ``[N, R, R, C]``, ``batch_size`` rows per call
        (None: one call).

        ``noise_mode``: ``"const"`` (default: reproducible, as ``gen_images.py``), ``"random"``
        or ``"none"``; ``noise``: optional ``{layer: [R, R]}`` buffers (names from
        :meth:`noise_inputs`) shared by every image, used instead of the stored constants (so
        with ``noise_mode="const"``; a projection's optimised noise). Both are ignored by
        networks without noise."""
        ws = np.asarray(ws, np.float32)
        return self._in_batches(
            len(ws), batch_size, lambda i, j: self.synthesize_batch(ws[i:j], noise_mode, noise))

    def synthesize_batch(self, ws, noise_mode="const", noise=None):
        """One ``synthesis`` call (a tensor; differentiable): as :meth:`synthesize`. Shared
        ``noise`` buffers ``[R, R]`` are tiled over the batch and read as ``noise_mode="random"``
        draws (so they replace the stored constants)."""
        if noise and self.has_noise:
            from keras import ops
            n = ops.shape(ws)[0]
            noise = {k: ops.tile(ops.reshape(ops.convert_to_tensor(v),
                                             (1,) + tuple(v.shape) + (1,)), (n, 1, 1, 1))
                     for k, v in noise.items()}
            return self.synthesis(ws, **self.synthesis_kwargs("random", noise))
        return self.synthesis(ws, **self.synthesis_kwargs(noise_mode))

    # ---------------------------------------------------------------------------------------
    # Construction.

    @classmethod
    def from_preset(cls, name, img_resolution=None, batch=None, **overrides):
        """Build from a :data:`sg3keras.config.PRESETS` entry; the preset's config picks the
        class (:func:`build_generator`): ``"stylegan2"`` -> StyleGAN2 G.
        ``impl`` / ``seed`` are construction options, every other override a config field."""
        options = {k: overrides.pop(k) for k in ("impl", "seed") if k in overrides}
        cfg = resolve_preset(name, img_resolution=img_resolution, batch=batch,
                             **overrides).generator
        return build_generator(cfg, **options)

    def with_impl(self, impl):
        """This network with the ``filtered_lrelu`` implementation ``impl`` (a rebuilt copy
        holding the same weights), or itself when it has no filtered nonlinearities."""
        return self
