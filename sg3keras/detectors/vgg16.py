"""Keras VGG16 of NVIDIA's ``vgg16.pkl``: 4096-d features (precision/recall) and the LPIPS head.

PARITY UNVERIFIED: no copy of NVIDIA's ``vgg16.pkl`` / ``vgg16.pt`` was available while this was
written. Architecture, tensor names and pre-processing follow third-party descriptions of that
TorchScript file (tensor names ``layers.conv1`` .. ``layers.conv13``, ``layers.fc1`` ..
``layers.fc3``, ``lpips0`` .. ``lpips4``); check against the real file before trusting P/R numbers.

Forward pass (:func:`build_vgg16`), input uint8-range float ``[N, H, W, 3]`` RGB:

1. Resize to 224x224 with the TF1 legacy bilinear sampling (as for Inception).
2. ``x / 255``, then ImageNet normalisation ``(x - mean) / std`` per channel.
3. 13 3x3 conv + ReLU layers in five groups (2, 2, 3, 3, 3; 64, 128, 256, 512, 512 channels),
   each group followed by a 2x2/2 max pool -> ``[N, 7, 7, 512]``.
4. Flatten in PyTorch's channel-major order (so ``fc1`` takes the official weight as-is),
   ``fc1`` + ReLU, ``fc2`` + ReLU -> 4096 features.

LPIPS head (:func:`build_vgg16_lpips`, the file's ``return_lpips=True`` with
``resize_images=False``, used by the projector), input uint8-range float ``[N, H, W, 3]``, H, W >= 16:

1. No resize. ``x / 255`` and the ImageNet normalisation of step 2 above. (LPIPS's own
   ``ScalingLayer`` on ``[-1, 1]`` inputs, shift ``(-.030, -.088, -.188)`` and scale
   ``(.458, .448, .450)``, is the same affine map: ``(x/127.5 - 1 - shift) / scale ==
   (x/255 - mean) / std`` exactly for these constants.)
2. The 13 conv + ReLU layers and the first four max pools; five taps after ``conv2``, ``conv4``,
   ``conv7``, ``conv10`` and ``conv13`` (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
3. Tap ``k`` (``[N, h, w, C]``): unit-normalise over channels, ``f = t / (sqrt(sum_C t^2) +
   1e-10)``, then scale by ``sqrt(lpips<k>) / sqrt(h * w)`` (``lpips<k>``: the C non-negative
   weights of LPIPS's 1x1 "lin" layer).
4. Flatten each tap channel-major and concatenate -> ``[N, D]``.

So ``sum((feat(a) - feat(b))^2)`` is LPIPS "lin" (v0.1): the sum over taps of the spatial mean of
the channel-weighted squared differences of the unit-normalised activations. UNVERIFIED against the
real file as well: the tap positions, the 1e-10 epsilon and the weights being stored unsquared are
LPIPS's published definition, assumed to be what NVIDIA's TorchScript computes.
"""

import keras
import numpy as np
from keras import ops

from sg3keras.detectors.inception import TF1BilinearResize

__all__ = ["build_vgg16", "set_vgg16_weights", "weights_from_torchscript",
           "build_vgg16_lpips", "set_vgg16_lpips_weights", "lpips_weights_from_torchscript",
           "lpips_channels", "LPIPSTap", "ChannelMajorFlatten", "conv_names", "FEATURE_DIM", "INPUT_SIZE",
           "CHANNELS", "LPIPS_TAPS"]

FEATURE_DIM = 4096
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNELS = (64, 128, 256, 512, 512)
_COUNTS = (2, 2, 3, 3, 3)
LPIPS_TAPS = ("conv2", "conv4", "conv7", "conv10", "conv13")   # relu1_2 .. relu5_3
LPIPS_EPSILON = 1e-10


def conv_names(channels=CHANNELS):
    """Conv layer names in forward order with their output channels: ``[("conv1", 64), ...]``."""
    out, i = [], 1
    for channels, count in zip(channels, _COUNTS):
        for _ in range(count):
            out.append((f"conv{i}", channels))
            i += 1
    return out


@keras.saving.register_keras_serializable(package="sg3keras")
class ChannelMajorFlatten(keras.layers.Layer):
    """Flattens ``[N, H, W, C]`` as ``[N, C*H*W]`` in channel-major (NCHW) order.

    Call arguments:
        x: ``[N, H, W, C]`` with static H, W, C.

    Example:
        >>> y = ChannelMajorFlatten()(keras.ops.ones([2, 7, 7, 512]))
    """

    def call(self, x):
        x = ops.transpose(x, (0, 3, 1, 2))
        return ops.reshape(x, (ops.shape(x)[0], -1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))


def _normalize(x):
    """``x / 255`` then ImageNet ``(x - mean) / std`` per channel, as one Rescaling layer."""
    std = np.asarray(IMAGENET_STD, np.float32)
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    return keras.layers.Rescaling((1.0 / (255.0 * std)).tolist(), offset=(-mean / std).tolist(),
                                  name="normalize")(x)


def _conv_trunk(x, channels, last_pool=True):
    """The 13 conv + ReLU layers with their max pools; returns ``(x, {conv name: output})``."""
    names = iter(conv_names(channels))
    outputs = {}
    for group, count in enumerate(_COUNTS):
        for _ in range(count):
            conv_name, width = next(names)
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                    name=conv_name)(x)
            outputs[conv_name] = x
        if last_pool or group < len(_COUNTS) - 1:
            x = keras.layers.MaxPooling2D(2, 2, name=f"pool{group + 1}")(x)
    return x, outputs


def build_vgg16(channels=CHANNELS, fc_dim=FEATURE_DIM, name="vgg16_nvidia"):
    """Builds the (randomly initialised) VGG16 feature network.

    Args:
        channels: output channels of the five conv groups (the real network: 64 .. 512; smaller
            values only for tests).
        fc_dim: width of ``fc1``/``fc2`` (4096 in the real network).
        name: Keras model name.

    Returns:
        ``keras.Model``: ``[N, H, W, 3]`` uint8-range float -> ``{"features": [N, 4096]}``.
    """
    inp = keras.Input((None, None, 3), dtype="float32", name="images")
    x = TF1BilinearResize((INPUT_SIZE, INPUT_SIZE), name="resize")(inp)
    x, _ = _conv_trunk(_normalize(x), channels)
    x = ChannelMajorFlatten(name="flatten")(x)
    x = keras.layers.Dense(fc_dim, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(fc_dim, activation="relu", name="fc2")(x)
    return keras.Model(inp, {"features": x}, name=name)


def set_vgg16_weights(model, weights):
    """Assigns ``{layer_name: (kernel, bias)}`` (Keras layouts) to a :func:`build_vgg16` model."""
    for layer_name in [f"conv{i}" for i in range(1, 14)] + ["fc1", "fc2"]:
        layer = model.get_layer(layer_name)
        for var, value in zip((layer.kernel, layer.bias), weights[layer_name]):
            if tuple(var.shape) != value.shape:
                raise ValueError(f"VGG16 layer '{layer_name}' weight '{var.name}': expected shape "
                                 f"{tuple(var.shape)}, got {value.shape}")
            var.assign(value.astype(np.float32))


def _root(tensors, where):
    """The module prefix of ``layers.conv1.weight`` (``""`` for a top-level VGG16)."""
    roots = [k[: -len("layers.conv1.weight")] for k in tensors if k.endswith("layers.conv1.weight")]
    if not roots:
        raise KeyError(f"{where}: no 'layers.conv1.weight' tensor (not NVIDIA's VGG16 file?)")
    return min(roots, key=len)


def _needer(tensors, root, where):
    def need(key):
        if root + key not in tensors:
            raise KeyError(f"{where}: missing tensor '{root + key}'")
        return np.asarray(tensors[root + key], np.float32)
    return need


def weights_from_torchscript(tensors, where="TorchScript file"):
    """Maps ``[prefix.]layers.conv<i>/fc<j>.weight/bias`` tensors to Keras layouts.

    Conv OIHW -> HWIO; ``fc`` ``[out, in]`` -> ``[in, out]`` (``fc1`` keeps the channel-major
    input order matched by :class:`ChannelMajorFlatten`). ``fc3`` and the LPIPS weights are
    ignored.
    """
    root = _root(tensors, where)
    need = _needer(tensors, root, where)
    out = {}
    for conv_name in (f"conv{i}" for i in range(1, 14)):
        out[conv_name] = (need(f"layers.{conv_name}.weight").transpose(2, 3, 1, 0),
                          need(f"layers.{conv_name}.bias"))
    for fc in ("fc1", "fc2"):
        out[fc] = (need(f"layers.{fc}.weight").T, need(f"layers.{fc}.bias"))
    return out


# ------------------------------------------------------------------------------------------------
# LPIPS head.

@keras.saving.register_keras_serializable(package="sg3keras")
class LPIPSTap(keras.layers.Layer):
    """One LPIPS tap: channel unit-normalisation, ``sqrt`` of the lin weights, spatial mean.

    ``[N, h, w, C] -> [N, C*h*w]`` (channel-major), ``f = t / (sqrt(sum_C t^2) + epsilon) *
    sqrt(weight) / sqrt(h * w)``, so that summed squared differences of two outputs are the
    spatial mean of the weighted squared differences (LPIPS "lin"). The norm's square root is
    taken of ``max(sum_C t^2, 1e-30)`` so that an all-zero ReLU column has a zero gradient
    instead of NaN (its value changes by less than 1e-5 of a unit vector).

    Args:
        channels: C.
        epsilon: added to the norm (LPIPS: 1e-10).

    Call arguments:
        x: ``[N, h, w, C]`` float32.

    Example:
        >>> f = LPIPSTap(64)(keras.ops.ones([1, 16, 16, 64]))     # [1, 16384]
    """

    def __init__(self, channels, epsilon=LPIPS_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.epsilon = float(epsilon)

    def build(self, input_shape=None):
        self.weight = self.add_weight(name="weight", shape=(self.channels,), initializer="ones",
                                      trainable=False)

    def call(self, x):
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-30))
        area = ops.cast(ops.shape(x)[1] * ops.shape(x)[2], x.dtype)
        x = x / (norm + self.epsilon) * (ops.sqrt(self.weight) / ops.sqrt(area))
        x = ops.transpose(x, (0, 3, 1, 2))                                # [N, C, h, w]
        return ops.reshape(x, (ops.shape(x)[0], -1))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None or w is None else h * w * c)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "epsilon": self.epsilon}


def build_vgg16_lpips(channels=CHANNELS, name="vgg16_nvidia_lpips"):
    """Builds the (randomly initialised) LPIPS feature network (``return_lpips=True``).

    Args:
        channels: output channels of the five conv groups (64 .. 512 in the real network).
        name: Keras model name.

    Returns:
        ``keras.Model``: ``[N, H, W, 3]`` uint8-range float (H, W >= 16, no resize) ->
        ``[N, D]`` features; ``sum((f(a) - f(b))^2, axis=1)`` is the LPIPS distance.
    """
    inp = keras.Input((None, None, 3), dtype="float32", name="images")
    _, outputs = _conv_trunk(_normalize(inp), channels, last_pool=False)
    widths = dict(conv_names(channels))
    taps = [LPIPSTap(widths[conv], name=f"lpips{k}")(outputs[conv])
            for k, conv in enumerate(LPIPS_TAPS)]
    return keras.Model(inp, keras.layers.Concatenate(axis=1, name="concat")(taps), name=name)


def set_vgg16_lpips_weights(model, weights):
    """Assigns :func:`lpips_weights_from_torchscript`'s dict to a :func:`build_vgg16_lpips` model."""
    for layer_name, values in weights.items():
        layer = model.get_layer(layer_name)
        targets = (layer.weight,) if isinstance(layer, LPIPSTap) else (layer.kernel, layer.bias)
        for var, value in zip(targets, values):
            if tuple(var.shape) != value.shape:
                raise ValueError(f"VGG16 layer '{layer_name}' weight '{var.name}': expected shape "
                                 f"{tuple(var.shape)}, got {value.shape}")
            var.assign(value.astype(np.float32))


def lpips_channels(tensors, where="TorchScript file"):
    """The five conv-group widths of a VGG16 TorchScript file (``conv1``, ``conv3``, ...)."""
    root = _root(tensors, where)
    firsts = ("conv1", "conv3", "conv5", "conv8", "conv11")
    try:
        return tuple(int(tensors[f"{root}layers.{c}.weight"].shape[0]) for c in firsts)
    except KeyError as err:
        raise KeyError(f"{where}: missing tensor {err}") from None


def lpips_weights_from_torchscript(tensors, where="TorchScript file"):
    """Maps the conv and ``lpips0`` .. ``lpips4`` tensors of NVIDIA's VGG16 file to Keras.

    Conv weights as in :func:`weights_from_torchscript`; ``lpips<k>`` (LPIPS's 1x1 lin weight,
    ``[1, C, 1, 1]``, any shape with C elements is accepted) -> ``(weight[C],)``; negative values
    are refused (LPIPS clamps its lin weights to be non-negative).
    """
    root = _root(tensors, where)
    need = _needer(tensors, root, where)
    out = {conv: (need(f"layers.{conv}.weight").transpose(2, 3, 1, 0),
                  need(f"layers.{conv}.bias")) for conv in (f"conv{i}" for i in range(1, 14))}
    for k, conv in enumerate(LPIPS_TAPS):
        weight = need(f"lpips{k}").reshape(-1)
        if weight.size != out[conv][0].shape[-1]:
            raise ValueError(f"{where}: 'lpips{k}' has {weight.size} values, expected one per "
                             f"channel of {conv} ({out[conv][0].shape[-1]})")
        if np.any(weight < 0):
            raise ValueError(f"{where}: 'lpips{k}' has negative weights (LPIPS weights are >= 0)")
        out[f"lpips{k}"] = (weight,)
    return out
