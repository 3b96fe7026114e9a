"""Export a generator for serving: TF SavedModel (TF Serving layout), ``.keras`` and ONNX.

The SavedModel is plain TensorFlow by default: the generator is rebuilt with the polyphase
``filtered_lrelu`` written as depthwise convolutions (``impl="conv"``) so that no XLA-compiled
function (``jit_compile=True``, see :mod:`sg3keras.ops.xla`) ends up in the graph (XLA ops in a
SavedModel fail in TF Serving unless it was started with XLA on), and its weights are copied.
``xla=True`` (``sg3keras export --xla``) keeps the XLA-fused stages (``impl="fast"``) instead, for
servers started with ``--xla_cpu_compilation_enabled``.
Signatures (batch size dynamic everywhere; ``[c]`` only for conditional networks):

* ``serving_default``: ``z`` f32 [N, z_dim], ``truncation_psi`` f32 scalar or [N] [, ``c`` f32
  [N, c_dim]] -> ``images`` uint8 [N, H, W, C] (``clip(img * 127.5 + 128, 0, 255)`` truncated).
* ``generate_from_seeds``: ``seeds`` int64 [N] (0 .. 2**32-1), ``truncation_psi`` [, ``c``] ->
  ``images``, exactly ``sg3keras generate`` / ``gen_images.py``: ``z = RandomState(seed).randn(
  z_dim)`` computed in-graph (:func:`randn_from_seeds`), input transform set to the identity.
* ``generate_transformed`` (StyleGAN3 only): ``z``, ``truncation_psi``, ``translate`` f32 [N, 2],
  ``rotate`` f32 [N] (degrees) [, ``c``] -> ``images``; per-sample input transform
  ``inv([[cos a, sin a, tx], [-sin a, cos a, ty], [0, 0, 1]])`` like ``gen_images.py``.

``serving_default``, ``mapping`` and ``synthesis`` run the network as ``G(z)`` does, with the
input transform stored in the network (identity unless it was set before export);
``generate_from_seeds`` and ``generate_transformed`` replace it, as ``gen_images.py`` does.
* ``mapping``: ``z``, ``truncation_psi`` [, ``c``] -> ``ws`` f32 [N, num_ws, w_dim].
* ``synthesis``: ``ws`` -> ``images_raw`` f32 [N, H, W, C] and ``images`` uint8.

``truncation_psi`` has no default in a signature: pass ``1.0`` for no truncation. It may be a
scalar (columnar REST / gRPC / ``saved_model_cli``) or one value per sample (REST row format,
which stacks every input along the batch axis). StyleGAN2 networks use ``noise_mode="const"``.
"""

import importlib.util
import math
import os
import re
import shutil
import tempfile

from sg3keras.utils import atomic_path, fault_point, save_keras_atomic, to_uint8

__all__ = ["export_savedmodel", "export_keras", "export_onnx", "export_network",
           "randn_from_seeds", "serving_copy", "onnx_missing", "SIGNATURES"]

SIGNATURES = ("serving_default", "generate_from_seeds", "generate_transformed", "mapping",
              "synthesis")
FORMATS = ("savedmodel", "keras", "onnx")
_MT_N, _MT_M = 624, 397          # MT19937 state words, twist offset
_MASK32 = 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# numpy's legacy RandomState(seed).randn(z_dim) in stock TensorFlow ops
# --------------------------------------------------------------------------------------------

def _mt_init(seeds):
    """MT19937 ``init_genrand``: ``[N]`` int64 seeds -> state ``[N, 624]`` (int64, 32-bit)."""
    import tensorflow as tf

    def body(i, s, ta):
        ta = ta.write(i, s)
        s = 1812433253 * tf.bitwise.bitwise_xor(s, tf.bitwise.right_shift(s, 30)) \
            + tf.cast(i, tf.int64) + 1                      # < 2**63: no int64 overflow
        return i + 1, tf.bitwise.bitwise_and(s, _MASK32), ta

    ta = tf.TensorArray(tf.int64, size=_MT_N)
    _, _, ta = tf.while_loop(lambda i, s, ta: i < _MT_N, body, (tf.constant(0), seeds, ta))
    return tf.transpose(ta.stack())


def _mt_twist_part(cur, nxt, far):
    import tensorflow as tf
    bw = tf.bitwise
    y = bw.bitwise_or(bw.bitwise_and(cur, 0x80000000), bw.bitwise_and(nxt, 0x7FFFFFFF))
    mag = tf.where(bw.bitwise_and(y, 1) == 1, tf.constant(0x9908B0DF, tf.int64),
                   tf.constant(0, tf.int64))
    return bw.bitwise_xor(bw.bitwise_xor(far, bw.right_shift(y, 1)), mag)


def _mt_twist(mt):
    """Regenerate all 624 words. Word ``i`` needs ``mt[i+397]``, already *new* for i >= 227, so
    the twist runs in dependency-ordered slices: [0, 227), [227, 454), [454, 623), [623]."""
    import tensorflow as tf
    a = _mt_twist_part(mt[:, 0:227], mt[:, 1:228], mt[:, 397:624])
    b = _mt_twist_part(mt[:, 227:454], mt[:, 228:455], a)
    c = _mt_twist_part(mt[:, 454:623], mt[:, 455:624], b[:, 0:169])
    d = _mt_twist_part(mt[:, 623:624], a[:, 0:1], b[:, 169:170])
    return tf.concat([a, b, c, d], axis=1)


def _mt_temper(y):
    import tensorflow as tf
    bw = tf.bitwise
    y = bw.bitwise_xor(y, bw.right_shift(y, 11))
    y = bw.bitwise_xor(y, bw.bitwise_and(bw.left_shift(y, 7), 0x9D2C5680))
    y = bw.bitwise_xor(y, bw.bitwise_and(bw.left_shift(y, 15), 0xEFC60000))
    return bw.bitwise_xor(y, bw.right_shift(y, 18))


def randn_from_seeds(seeds, z_dim):
    """``np.random.RandomState(seed).randn(z_dim)`` per seed, in TensorFlow ops (float32).

    Steps: 1. MT19937 ``init_genrand`` from each 32-bit seed; 2. loop: twist 624 words, temper,
    group into 156 attempts of 4 words, each attempt two doubles ``((a>>5)*2**26 + (b>>6)) /
    2**53``, ``x = 2u - 1``; accepted when ``0 < r2 = x1**2 + x2**2 < 1`` (polar Box-Muller),
    giving ``f*x2`` then (numpy's cached second value) ``f*x1`` with ``f = sqrt(-2 ln r2 / r2)``;
    stop when every seed has ``ceil(z_dim/2)`` accepted pairs (624 is a multiple of 4, so an
    attempt never straddles two twists); 3. take each seed's first accepted pairs in order.

    Args:
        seeds: ``[N]`` integer tensor, each in ``0 .. 2**32 - 1`` (checked in-graph).
        z_dim: Python int > 0.
    Returns ``[N, z_dim]`` float32 (float64 maths, then cast like ``z_from_seed``).
    """
    import tensorflow as tf
    z_dim = int(z_dim)
    if z_dim < 1:
        raise ValueError(f"z_dim: expected an int >= 1, got {z_dim}")
    seeds = tf.cast(tf.convert_to_tensor(seeds), tf.int64)
    checks = [tf.debugging.assert_rank(seeds, 1, message="seeds: expected shape [N]"),
              tf.debugging.assert_greater_equal(seeds, tf.constant(0, tf.int64),
                                                message="seeds: expected 0 <= seed <= 2**32-1"),
              tf.debugging.assert_less_equal(seeds, tf.constant(_MASK32, tf.int64),
                                             message="seeds: expected 0 <= seed <= 2**32-1")]
    with tf.control_dependencies(checks):
        seeds = tf.identity(seeds)
    n, k = tf.shape(seeds)[0], (z_dim + 1) // 2

    def body(mt, pairs, ok):
        mt = _mt_twist(mt)
        w = tf.reshape(_mt_temper(mt), [n, _MT_N // 4, 4])
        hi = tf.cast(tf.bitwise.right_shift(w[..., 0::2], 5), tf.float64)
        lo = tf.cast(tf.bitwise.right_shift(w[..., 1::2], 6), tf.float64)
        x = 2.0 * ((hi * 67108864.0 + lo) / 9007199254740992.0) - 1.0   # [N, 156, (x1, x2)]
        r2 = tf.reduce_sum(x * x, axis=-1)
        acc = tf.logical_and(r2 < 1.0, r2 > 0.0)
        r2 = tf.where(acc, r2, 0.5)
        f = tf.sqrt(-2.0 * tf.math.log(r2) / r2)
        p = tf.stack([f * x[..., 1], f * x[..., 0]], axis=-1)
        return mt, tf.concat([pairs, p], 1), tf.concat([ok, acc], 1)

    def cond(mt, pairs, ok):
        return tf.reduce_min(tf.reduce_sum(tf.cast(ok, tf.int32), 1)) < k

    init = (_mt_init(seeds), tf.zeros([n, 0, 2], tf.float64), tf.zeros([n, 0], tf.bool))
    _, pairs, ok = tf.while_loop(
        cond, body, init, shape_invariants=(tf.TensorShape([None, _MT_N]),
                                            tf.TensorShape([None, None, 2]),
                                            tf.TensorShape([None, None])))
    first = tf.argsort(tf.cast(tf.logical_not(ok), tf.int32), axis=1, stable=True)[:, :k]
    z = tf.reshape(tf.gather(pairs, first, batch_dims=1), [n, 2 * k])[:, :z_dim]
    return tf.cast(z, tf.float32)


# --------------------------------------------------------------------------------------------
# Serving functions
# --------------------------------------------------------------------------------------------

def serving_copy(G, xla=False):
    """A copy of ``G`` for a SavedModel: alias-free synthesis layers (StyleGAN3) rebuilt with
    ``impl="conv"`` (no XLA) or, with ``xla``, ``impl="fast"`` (XLA-compiled stages); a
    network without them (StyleGAN2) is returned as it is."""
    return G.with_impl("fast" if xla else "conv") if G.config.has_layer_schedule else G


def _psi_per_sample(psi, n):
    """Scalar or ``[N]`` ``truncation_psi`` -> ``[N, 1, 1]`` (checked in-graph)."""
    import tensorflow as tf
    flat = tf.reshape(psi, [-1])
    size = tf.size(flat)
    ok = tf.logical_and(tf.rank(psi) <= 1, tf.logical_or(tf.equal(size, 1), tf.equal(size, n)))
    with tf.control_dependencies([tf.debugging.Assert(ok, [
            "truncation_psi: expected a scalar or shape [N] (N = batch size of z/seeds), got "
            "shape", tf.shape(psi), "with N =", n])]):
        return tf.reshape(tf.broadcast_to(flat, [n]), [-1, 1, 1])


def _inverse_transforms(translate, rotate):
    """``inv([[cos a, sin a, tx], [-sin a, cos a, ty], [0, 0, 1]])`` per sample, ``[N, 3, 3]``.

    Closed form of the rigid inverse ``[R^T | -R^T t]``, in float64 (as ``np.linalg.inv`` in
    ``make_transform``), cast to float32 like ``Generator.set_transform_matrix``."""
    import tensorflow as tf
    a = tf.cast(rotate, tf.float64) * (2 * math.pi / 360.0)
    t = tf.cast(translate, tf.float64)
    cs, sn, tx, ty = tf.cos(a), tf.sin(a), t[:, 0], t[:, 1]
    zero, one = tf.zeros_like(a), tf.ones_like(a)
    rows = [tf.stack(r, axis=-1) for r in ((cs, -sn, -(cs * tx - sn * ty)),
                                           (sn, cs, -(sn * tx + cs * ty)), (zero, zero, one))]
    return tf.cast(tf.stack(rows, axis=1), tf.float32)


class _Serving:
    """The endpoint bodies for one (serving-copy) generator.

    Mapping and synthesis are shared ``tf.function`` s (plain, not XLA), so every endpoint calls
    the same traced graph: one trace each instead of one per endpoint."""

    def __init__(self, G):
        import tensorflow as tf
        self.G = G
        self.transformable = G.has_input_transform
        kwargs = G.synthesis_kwargs(noise_mode="const")
        ws = tf.TensorSpec([None, G.num_ws, G.w_dim], tf.float32)
        self._synthesis = tf.function(lambda ws: G.synthesis(ws, **kwargs),
                                      input_signature=[ws])
        z, psi = tf.TensorSpec([None, G.z_dim], tf.float32), tf.TensorSpec([None, 1, 1])
        if G.c_dim > 0:
            c = tf.TensorSpec([None, G.c_dim], tf.float32)
            self._mapping = tf.function(lambda z, psi, c: G.mapping(z, c, truncation_psi=psi),
                                        input_signature=[z, psi, c])
        else:
            self._mapping = tf.function(lambda z, psi: G.mapping(z, None, truncation_psi=psi),
                                        input_signature=[z, psi])

    def mapping(self, z, truncation_psi, c=None):
        import tensorflow as tf
        psi = _psi_per_sample(tf.cast(truncation_psi, tf.float32), tf.shape(z)[0])
        return self._mapping(z, psi) if c is None else self._mapping(z, psi, c)

    def synthesis(self, ws):
        img = self._synthesis(ws)
        return {"images_raw": img, "images": to_uint8(img)}

    def images(self, z, truncation_psi, c=None):
        return {"images": self.synthesis(self.mapping(z, truncation_psi, c))["images"]}

    def from_seeds(self, seeds, truncation_psi, c=None):
        """``gen_images.py``: z from the seed; an input transform is *replaced* by the
        identity (translate 0, rotate 0), whatever the network's stored buffer holds."""
        import tensorflow as tf
        z = randn_from_seeds(seeds, self.G.z_dim)
        if not self.transformable:
            return self.images(z, truncation_psi, c)
        n = tf.shape(z)[0]
        return self.transformed(z, truncation_psi, tf.zeros([n, 2]), tf.zeros([n]), c)

    def transformed(self, z, truncation_psi, translate, rotate, c=None):
        ws = self.mapping(z, truncation_psi, c)
        x = self.G.synthesis(ws, **self.G.synthesis_kwargs(
            noise_mode="const", transform=_inverse_transforms(translate, rotate)))
        return {"images": to_uint8(x)}


def _endpoint(body, names, specs):
    """``fn(*inputs)`` for ``add_endpoint`` (the signature keys are the ``TensorSpec`` names).

    A loaded signature does not check input shapes, so each input with a known rank goes through
    ``EnsureShape`` (its error names the input and the expected shape) and the batch sizes of
    all ``[N, ...]`` inputs must agree."""
    def endpoint(*args):
        import tensorflow as tf
        checked, first = [], None
        for name, spec, x in zip(names, specs, args):
            if spec.shape.rank is not None:
                x = tf.ensure_shape(x, spec.shape, name=name + "_shape_check")
                if first is None:
                    first = (name, tf.shape(x)[0])
                else:
                    tf.debugging.assert_equal(
                        tf.shape(x)[0], first[1],
                        message=f"{name}: batch size differs from that of {first[0]} (inputs "
                                "must have the same number of rows N)")
            checked.append(x)
        return body(*checked)
    return endpoint


def _endpoints(G):
    """``[(name, fn, input_signature)]`` for a serving-copy generator."""
    import tensorflow as tf
    s = _Serving(G)
    spec = {"z": tf.TensorSpec([None, G.z_dim], tf.float32, name="z"),
            "truncation_psi": tf.TensorSpec(None, tf.float32, name="truncation_psi"),
            "c": tf.TensorSpec([None, G.c_dim], tf.float32, name="c"),
            "seeds": tf.TensorSpec([None], tf.int64, name="seeds"),
            "translate": tf.TensorSpec([None, 2], tf.float32, name="translate"),
            "rotate": tf.TensorSpec([None], tf.float32, name="rotate"),
            "ws": tf.TensorSpec([None, G.num_ws, G.w_dim], tf.float32, name="ws")}
    cond = ["c"] if G.c_dim > 0 else []
    table = [("serving_default", s.images, ["z", "truncation_psi"] + cond),
             ("generate_from_seeds", s.from_seeds, ["seeds", "truncation_psi"] + cond),
             ("generate_transformed", s.transformed,
              ["z", "truncation_psi", "translate", "rotate"] + cond),
             ("mapping", lambda *a: {"ws": s.mapping(*a)}, ["z", "truncation_psi"] + cond),
             ("synthesis", s.synthesis, ["ws"])]
    return [(name, _endpoint(body, names, [spec[k] for k in names]), [spec[k] for k in names])
            for name, body, names in table if s.transformable or name != "generate_transformed"]


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------

def _check_generator(G):
    from sg3keras.models.base import GeneratorBase
    if not isinstance(G, GeneratorBase):
        raise TypeError(f"G: expected an sg3keras generator (an sg3keras.models.GeneratorBase: "
                        f"Generator or StyleGAN2Generator), got {type(G).__name__}")


def _check_name(name):
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"--name {name!r}: expected a model name of letters, digits, '_', '.', "
                         "'-' (it becomes the directory NAME in OUTDIR/NAME/VERSION)")


def _versions(model_dir):
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if re.fullmatch(r"[0-9]+", d))


def _publish(tmp, model_dir, version):
    """Rename ``tmp`` to ``model_dir/version``; never replace an existing version."""
    final = os.path.join(model_dir, str(version))
    if os.path.lexists(final):
        raise FileExistsError(f"--version {version}: {final} already exists; versions are never "
                              "overwritten (omit --version for the next free number)")
    os.rename(tmp, final)      # atomic; fails if another writer created a non-empty dir meanwhile
    return final


def export_savedmodel(G, outdir, name, version=None, xla=False):
    """Write ``outdir/name/<version>/`` (``saved_model.pb`` + ``variables/``) for TF Serving.

    Steps: check arguments; pick ``version`` (next after the highest numeric subdirectory when
    None; an existing one is an error); build the serving copy (XLA-free unless ``xla``); write the
    ``keras.export.ExportArchive`` with the signatures listed in the module docstring into a
    hidden temp dir inside ``outdir/name/``; rename it into place (atomic).

    Args:
        G: a ``Generator`` / ``StyleGAN2Generator``.
        outdir: base directory (TF Serving ``--model_base_path`` is ``outdir/name``).
        name: model name (directory name).
        version: positive int, or None for the next free number.
        xla: keep the XLA-compiled ``filtered_lrelu`` stages (the server must run with XLA on).
    Returns the version directory.
    """
    import keras
    _check_generator(G)
    _check_name(name)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or version < 1):
        raise ValueError(f"--version {version!r}: expected a positive integer")
    model_dir = os.path.join(os.fspath(outdir), name)
    if version is not None and os.path.lexists(os.path.join(model_dir, str(version))):
        raise FileExistsError(f"--version {version}: {os.path.join(model_dir, str(version))} "
                              "already exists; versions are never overwritten")
    os.makedirs(model_dir, exist_ok=True)
    archive = keras.export.ExportArchive()
    S = serving_copy(G, xla=xla)
    archive.track(S)
    for ep_name, fn, signature in _endpoints(S):
        archive.add_endpoint(name=ep_name, fn=fn, input_signature=signature)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=model_dir)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)       # mkdtemp's 0700 would survive the rename
    try:
        archive.write_out(tmp, verbose=False)
        fault_point("export.before_rename", model_dir)
        if version is not None:
            return _publish(tmp, model_dir, version)
        for _ in range(100):         # another exporter may take the number first
            v = (_versions(model_dir) or [0])[-1] + 1
            try:
                return _publish(tmp, model_dir, v)
            except OSError:
                if not os.path.lexists(os.path.join(model_dir, str(v))):
                    raise
        raise FileExistsError(f"{model_dir}: could not find a free version number")
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def export_keras(G, path):
    """Save ``G`` as a ``.keras`` file atomically (temp file + ``os.replace``). Returns ``path``."""
    _check_generator(G)
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"path {path!r}: expected a file name ending in .keras")
    save_keras_atomic(G, path)
    return path


def onnx_missing():
    """Names of the missing packages ONNX export needs (empty when it can run)."""
    return [m for m in ("tf2onnx", "onnx") if importlib.util.find_spec(m) is None]


def export_onnx(G, path):
    """Export ``z [N, z_dim] (, c) -> images`` (float32, psi = 1) to ONNX via Keras/tf2onnx.

    Raises ``ImportError`` naming the packages when ``tf2onnx``/``onnx`` are not installed."""
    import tensorflow as tf
    _check_generator(G)
    path = os.fspath(path)
    if not path.endswith(".onnx"):
        raise ValueError(f"path {path!r}: expected a file name ending in .onnx")
    missing = onnx_missing()
    if missing:
        raise ImportError(f"--format onnx needs the packages {missing} (pip install tf2onnx "
                          "onnx); use --format savedmodel for TF Serving")
    S = serving_copy(G)
    spec = [tf.TensorSpec([None, S.z_dim], tf.float32, name="z")]
    if S.c_dim > 0:
        spec.append(tf.TensorSpec([None, S.c_dim], tf.float32, name="c"))
    with atomic_path(path, suffix=".onnx") as tmp:
        S.export(tmp, format="onnx", input_signature=spec, verbose=False)
    return path


def export_network(network_path, outdir, name, version=None, fmt="savedmodel", force=False,
                   xla=False):
    """Load ``network_path`` (``.keras``, official ``.pkl`` -> ``G_ema``, or run dir) and export.

    ``savedmodel`` -> ``outdir/name/<version>/``; ``keras`` -> ``outdir/name.keras``; ``onnx``
    -> ``outdir/name.onnx`` (``version`` only applies to ``savedmodel``; an existing ``.keras`` /
    ``.onnx`` file is replaced only with ``force``). Returns the path."""
    from sg3keras.networks.loading import load_network
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {list(FORMATS)}")
    _check_name(name)
    if fmt != "savedmodel" and version is not None:
        raise ValueError(f"--version applies to --format savedmodel only (got --format {fmt})")
    if fmt != "savedmodel" and xla:
        raise ValueError(f"--xla applies to --format savedmodel only (got --format {fmt})")
    path = os.path.join(os.fspath(outdir), f"{name}.{'keras' if fmt == 'keras' else 'onnx'}")
    if fmt != "savedmodel" and os.path.lexists(path) and not force:
        raise ValueError(f"--format {fmt}: {path} already exists; pass --force to replace it")
    if version is not None and os.path.lexists(os.path.join(os.fspath(outdir), name, str(version))):
        raise FileExistsError(f"--version {version}: {os.path.join(outdir, name, str(version))} "
                              "already exists; versions are never overwritten")
    G = load_network(network_path, which="G_ema")
    if fmt == "savedmodel":
        return export_savedmodel(G, outdir, name, version=version, xla=xla)
    return export_keras(G, path) if fmt == "keras" else export_onnx(G, path)
