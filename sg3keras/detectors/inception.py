"""Keras port of the 2015-12-05 Inception graph used by every paper-comparable FID.

The network is the TensorFlow ``classify_image_graph_def.pb`` of 2015-12-05 (as used by TTUR and,
translated to TorchScript, by NVIDIA's ``inception-2015-12-05.pkl``): an Inception-v3 variant
whose blocks differ from ``keras.applications.InceptionV3`` (3x3 average pools exclude padding,
the last block max-pools its pool branch, no BN scale, BN epsilon 1e-3, 1008 logits).

Forward pass (:func:`build_inception`), input uint8-range float ``[N, H, W, 3]`` RGB:

1. Resize to 299x299 with TF1 "legacy" bilinear sampling: output pixel ``j`` reads source
   coordinate ``j * in / 299`` (no half-pixel centres), linear interpolation between the two
   neighbours, coordinates clamped to the last pixel. This is what the graph's ``ResizeBilinear``
   (``align_corners=False``) does and what NVIDIA's TorchScript emulates with an affine grid of
   offset ``1/in - 1/299`` and border padding. A 299x299 input is passed through unchanged.
2. Normalise ``(x - 128) / 128``.
3. Stem: 5 conv-BN-ReLU layers and two 3x3/2 max pools; then blocks ``mixed`` .. ``mixed_10``
   (3 x A, B, 4 x C, D, 2 x E); global 8x8 average pool -> 2048 features (``pool_3``).
4. ``output``: linear 2048 -> 1008 logits (the output bias is not applied: sg3keras only needs the
   bias-free logits that the official Inception Score uses).

Weights come from :func:`weights_from_torchscript` (tensor names of the TorchScript module) or
:func:`weights_from_graphdef` (``Const`` node names of the TF graph); both return the same
per-layer dict that :func:`set_inception_weights` loads. File reading lives in
:mod:`sg3keras.detectors.loading`.
"""

import keras
import numpy as np
from keras import ops

__all__ = [
    "build_inception", "set_inception_weights", "weights_from_torchscript",
    "weights_from_graphdef", "conv_specs", "TF1BilinearResize", "InceptionConvBN",
    "FEATURE_DIM", "NUM_CLASSES", "INPUT_SIZE",
]

FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299
BN_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="sg3keras")
class TF1BilinearResize(keras.layers.Layer):
    """Bilinear resize with TF1 legacy coordinates (``src = dst * in / out``, edge clamp).

    Args:
        size: output ``(height, width)``.

    Call arguments:
        x: ``[N, H, W, C]`` float tensor (any H, W >= 1).

    Example:
        >>> y = TF1BilinearResize((299, 299))(keras.ops.ones([1, 64, 64, 3]))
    """

    def __init__(self, size=(INPUT_SIZE, INPUT_SIZE), **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(s) for s in size)

    @staticmethod
    def _resize_axis(x, axis, out_size):
        in_size = ops.shape(x)[axis]
        scale = ops.cast(in_size, "float32") / float(out_size)
        src = ops.arange(out_size, dtype="float32") * scale
        i0 = ops.cast(ops.floor(src), "int32")
        i1 = ops.minimum(i0 + 1, ops.cast(in_size, "int32") - 1)
        frac = ops.cast(src - ops.cast(i0, "float32"), x.dtype)
        shape = [1, 1, 1, 1]
        shape[axis] = out_size
        frac = ops.reshape(frac, shape)
        a = ops.take(x, i0, axis=axis)
        b = ops.take(x, i1, axis=axis)
        return a + (b - a) * frac

    def call(self, x):
        x = self._resize_axis(x, 1, self.size[0])
        return self._resize_axis(x, 2, self.size[1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.size + (input_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}


@keras.saving.register_keras_serializable(package="sg3keras")
class InceptionConvBN(keras.layers.Layer):
    """Convolution (no bias) -> inference batch norm without scale -> ReLU.

    ``y = relu((conv(x, kernel) - mean) / sqrt(var + epsilon) + beta)``.

    Args:
        filters: output channels.
        kernel_size: ``(kh, kw)``.
        strides: convolution stride.
        padding: ``"same"`` (symmetric ``k // 2``, only used with stride 1) or ``"valid"``.
        epsilon: batch-norm epsilon (1e-3 in the 2015 graph).

    Call arguments:
        x: ``[N, H, W, C_in]``.

    Example:
        >>> y = InceptionConvBN(32, (3, 3), 2, "valid")(keras.ops.ones([1, 299, 299, 3]))
    """

    def __init__(self, filters, kernel_size, strides=1, padding="same", epsilon=BN_EPSILON,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = int(strides)
        self.padding = padding
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        shape = self.kernel_size + (int(input_shape[-1]), self.filters)
        self.kernel = self.add_weight(name="kernel", shape=shape, trainable=False,
                                      initializer="glorot_uniform")
        for name, init in (("beta", "zeros"), ("mean", "zeros"), ("var", "ones")):
            setattr(self, name, self.add_weight(name=name, shape=(self.filters,),
                                                initializer=init, trainable=False))

    def call(self, x):
        x = ops.conv(x, self.kernel, strides=self.strides, padding=self.padding)
        x = (x - self.mean) * ops.rsqrt(self.var + self.epsilon) + self.beta
        return ops.relu(x)

    def compute_output_shape(self, input_shape):
        return keras.layers.Conv2D(self.filters, self.kernel_size, self.strides,
                                   self.padding).compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": self.strides,
                "padding": self.padding, "epsilon": self.epsilon}


# ------------------------------------------------------------------------------------------------
# Architecture table. A conv entry: (torch name, TF graph name, filters, (kh, kw), stride, padding).

def _c(name, tf_name, filters, k, stride=1, padding="same"):
    return (name, tf_name, filters, (k, k) if isinstance(k, int) else tuple(k), stride, padding)


def _block_a(name, pool_features):
    n = name
    return [_c(f"{n}.conv", f"{n}/conv", 64, 1),
            _c(f"{n}.tower.conv", f"{n}/tower/conv", 48, 1),
            _c(f"{n}.tower.conv_1", f"{n}/tower/conv_1", 64, 5),
            _c(f"{n}.tower_1.conv", f"{n}/tower_1/conv", 64, 1),
            _c(f"{n}.tower_1.conv_1", f"{n}/tower_1/conv_1", 96, 3),
            _c(f"{n}.tower_1.conv_2", f"{n}/tower_1/conv_2", 96, 3),
            _c(f"{n}.tower_2.conv", f"{n}/tower_2/conv", pool_features, 1)]


def _block_b(n):
    return [_c(f"{n}.conv", f"{n}/conv", 384, 3, 2, "valid"),
            _c(f"{n}.tower.conv", f"{n}/tower/conv", 64, 1),
            _c(f"{n}.tower.conv_1", f"{n}/tower/conv_1", 96, 3),
            _c(f"{n}.tower.conv_2", f"{n}/tower/conv_2", 96, 3, 2, "valid")]


def _block_c(n, c7):
    return [_c(f"{n}.conv", f"{n}/conv", 192, 1),
            _c(f"{n}.tower.conv", f"{n}/tower/conv", c7, 1),
            _c(f"{n}.tower.conv_1", f"{n}/tower/conv_1", c7, (1, 7)),
            _c(f"{n}.tower.conv_2", f"{n}/tower/conv_2", 192, (7, 1)),
            _c(f"{n}.tower_1.conv", f"{n}/tower_1/conv", c7, 1),
            _c(f"{n}.tower_1.conv_1", f"{n}/tower_1/conv_1", c7, (7, 1)),
            _c(f"{n}.tower_1.conv_2", f"{n}/tower_1/conv_2", c7, (1, 7)),
            _c(f"{n}.tower_1.conv_3", f"{n}/tower_1/conv_3", c7, (7, 1)),
            _c(f"{n}.tower_1.conv_4", f"{n}/tower_1/conv_4", 192, (1, 7)),
            _c(f"{n}.tower_2.conv", f"{n}/tower_2/conv", 192, 1)]


def _block_d(n):
    return [_c(f"{n}.tower.conv", f"{n}/tower/conv", 192, 1),
            _c(f"{n}.tower.conv_1", f"{n}/tower/conv_1", 320, 3, 2, "valid"),
            _c(f"{n}.tower_1.conv", f"{n}/tower_1/conv", 192, 1),
            _c(f"{n}.tower_1.conv_1", f"{n}/tower_1/conv_1", 192, (1, 7)),
            _c(f"{n}.tower_1.conv_2", f"{n}/tower_1/conv_2", 192, (7, 1)),
            _c(f"{n}.tower_1.conv_3", f"{n}/tower_1/conv_3", 192, 3, 2, "valid")]


def _block_e(n):
    return [_c(f"{n}.conv", f"{n}/conv", 320, 1),
            _c(f"{n}.tower_conv", f"{n}/tower/conv", 384, 1),
            _c(f"{n}.tower_mixed_conv", f"{n}/tower/mixed/conv", 384, (1, 3)),
            _c(f"{n}.tower_mixed_conv_1", f"{n}/tower/mixed/conv_1", 384, (3, 1)),
            _c(f"{n}.tower_1_conv", f"{n}/tower_1/conv", 448, 1),
            _c(f"{n}.tower_1_conv_1", f"{n}/tower_1/conv_1", 384, 3),
            _c(f"{n}.tower_1_mixed_conv", f"{n}/tower_1/mixed/conv", 384, (1, 3)),
            _c(f"{n}.tower_1_mixed_conv_1", f"{n}/tower_1/mixed/conv_1", 384, (3, 1)),
            _c(f"{n}.tower_2_conv", f"{n}/tower_2/conv", 192, 1)]


_STEM = [_c("conv", "conv", 32, 3, 2, "valid"), _c("conv_1", "conv_1", 32, 3, 1, "valid"),
         _c("conv_2", "conv_2", 64, 3), _c("conv_3", "conv_3", 80, 1),
         _c("conv_4", "conv_4", 192, 3, 1, "valid")]
_BLOCKS = ([("A", "mixed", _block_a("mixed", 32)), ("A", "mixed_1", _block_a("mixed_1", 64)),
            ("A", "mixed_2", _block_a("mixed_2", 64)), ("B", "mixed_3", _block_b("mixed_3"))]
           + [("C", n, _block_c(n, c7)) for n, c7 in
              (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192))]
           + [("D", "mixed_8", _block_d("mixed_8")), ("E_avg", "mixed_9", _block_e("mixed_9")),
              ("E_max", "mixed_10", _block_e("mixed_10"))])


def conv_specs():
    """Conv layers in forward order: ``(torch_name, tf_name, filters, (kh, kw), stride, pad)``."""
    return list(_STEM) + [spec for _, _, specs in _BLOCKS for spec in specs]


def _block(kind, x, specs):
    layers = {s[0].split(".", 1)[1]: InceptionConvBN(s[2], s[3], s[4], s[5], name=s[0])
              for s in specs}
    name = specs[0][0].split(".")[0]

    def pool(kind_, nm):
        if kind_ == "max3s1":
            return keras.layers.MaxPooling2D(3, 1, "same", name=nm)
        if kind_ == "max3s2":
            return keras.layers.MaxPooling2D(3, 2, "valid", name=nm)
        return keras.layers.AveragePooling2D(3, 1, "same", name=nm)  # TF SAME: excludes padding

    def chain(prefix, y):
        for key in sorted(k for k in layers if k.startswith(prefix + ".")):
            y = layers[key](y)
        return y

    if kind == "A" or kind == "C":
        outs = [layers["conv"](x), chain("tower", x), chain("tower_1", x),
                layers["tower_2.conv"](pool("avg", f"{name}.tower_2.pool")(x))]
    elif kind == "B":
        outs = [layers["conv"](x), chain("tower", x), pool("max3s2", f"{name}.pool")(x)]
    elif kind == "D":
        outs = [chain("tower", x), chain("tower_1", x), pool("max3s2", f"{name}.pool")(x)]
    else:
        a = layers["tower_conv"](x)
        b = layers["tower_1_conv_1"](layers["tower_1_conv"](x))
        p = pool("avg" if kind == "E_avg" else "max3s1", f"{name}.tower_2_pool")(x)
        outs = [layers["conv"](x), layers["tower_mixed_conv"](a), layers["tower_mixed_conv_1"](a),
                layers["tower_1_mixed_conv"](b), layers["tower_1_mixed_conv_1"](b),
                layers["tower_2_conv"](p)]
    return keras.layers.Concatenate(axis=-1, name=f"{name}.concat")(outs)


def build_inception(with_logits=True, name="inception_2015_12_05"):
    """Builds the (randomly initialised) 2015-12-05 Inception network.

    Args:
        with_logits: also output the bias-free 1008 logits (needs weights that include them).
        name: Keras model name.

    Returns:
        ``keras.Model``: ``[N, H, W, 3]`` uint8-range float -> ``{"features": [N, 2048]}`` and,
        with logits, ``"logits": [N, 1008]`` (no output bias).
    """
    inp = keras.Input((None, None, 3), dtype="float32", name="images")
    x = TF1BilinearResize((INPUT_SIZE, INPUT_SIZE), name="resize")(inp)
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-1.0, name="normalize")(x)
    for spec in _STEM:
        x = InceptionConvBN(spec[2], spec[3], spec[4], spec[5], name=spec[0])(x)
        if spec[0] in ("conv_2", "conv_4"):
            pool_name = "pool0" if spec[0] == "conv_2" else "pool1"
            x = keras.layers.MaxPooling2D(3, 2, "valid", name=pool_name)(x)
    for kind, _, specs in _BLOCKS:
        x = _block(kind, x, specs)
    features = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)
    outputs = {"features": features}
    if with_logits:
        outputs["logits"] = keras.layers.Dense(NUM_CLASSES, use_bias=False, name="output")(features)
    return keras.Model(inp, outputs, name=name)


def set_inception_weights(model, weights):
    """Assigns a per-layer weight dict (from ``weights_from_*``) to a built model.

    Args:
        model: from :func:`build_inception`.
        weights: ``{torch_name: (kernel[kh,kw,in,out], beta, mean, var)}`` plus, when the model
            has logits, ``"output": kernel[2048, 1008]``.
    """
    for spec in conv_specs():
        layer = model.get_layer(spec[0])
        values = weights[spec[0]]
        for var, value in zip((layer.kernel, layer.beta, layer.mean, layer.var), values):
            if tuple(var.shape) != value.shape:
                raise ValueError(f"Inception layer '{spec[0]}' weight '{var.name}': expected "
                                 f"shape {tuple(var.shape)}, got {value.shape}")
            var.assign(value.astype(np.float32))
    if "logits" in model.output:
        kernel = weights.get("output")
        if kernel is None or kernel.shape != (FEATURE_DIM, NUM_CLASSES):
            raise ValueError(f"Inception output layer: expected a [{FEATURE_DIM}, {NUM_CLASSES}] "
                             f"kernel, got {None if kernel is None else kernel.shape}")
        model.get_layer("output").kernel.assign(kernel.astype(np.float32))


def _need(table, key, where):
    if key not in table:
        raise KeyError(f"{where}: missing tensor '{key}' (not the 2015-12-05 Inception network?)")
    return np.asarray(table[key], np.float32)


def weights_from_torchscript(tensors, where="TorchScript file"):
    """Maps TorchScript tensor names (``[prefix.]layers.<conv>.weight/beta/mean/var``,
    ``[prefix.]output.weight``) to the per-layer dict of :func:`set_inception_weights`.

    Conv weights are transposed OIHW -> HWIO and the output weight ``[1008, 2048]`` -> ``[2048,
    1008]``. The key ``"output"`` is absent when the file has no logits layer.
    """
    roots = [k[: -len("layers.conv.weight")] for k in tensors if k.endswith("layers.conv.weight")]
    if not roots:
        raise KeyError(f"{where}: no 'layers.conv.weight' tensor (not the Inception network?)")
    root = min(roots, key=len)
    out = {}
    for spec in conv_specs():
        base = f"{root}layers.{spec[0]}."
        w = _need(tensors, base + "weight", where).transpose(2, 3, 1, 0)
        bn = tuple(_need(tensors, base + k, where) for k in ("beta", "mean", "var"))
        out[spec[0]] = (w,) + bn
    if root + "output.weight" in tensors:
        out["output"] = _need(tensors, root + "output.weight", where).T
    return out


def weights_from_graphdef(consts, where="GraphDef"):
    """Maps the TF graph's ``Const`` nodes (``<scope>/conv2d_params`` HWIO,
    ``<scope>/batchnorm/{beta,moving_mean,moving_variance}``, ``softmax/weights`` ``[2048,
    1008]``) to the per-layer dict of :func:`set_inception_weights`."""
    out = {}
    for spec in conv_specs():
        s = spec[1]
        out[spec[0]] = tuple(_need(consts, f"{s}/{k}", where) for k in (
            "conv2d_params", "batchnorm/beta", "batchnorm/moving_mean",
            "batchnorm/moving_variance"))
    if "softmax/weights" in consts:
        out["output"] = _need(consts, "softmax/weights", where)
    return out
