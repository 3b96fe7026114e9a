"""Keras VGG16 feature detector for precision/recall (NVIDIA's ``vgg16.pkl``, 4096-d features).

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
"""

import keras
import numpy as np
from keras import ops

from sg3keras.metrics.inception import TF1BilinearResize

__all__ = ["build_vgg16", "set_vgg16_weights", "weights_from_torchscript",
           "ChannelMajorFlatten", "conv_names", "FEATURE_DIM", "INPUT_SIZE", "CHANNELS"]

FEATURE_DIM = 4096
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNELS = (64, 128, 256, 512, 512)
_COUNTS = (2, 2, 3, 3, 3)


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
    std = np.asarray(IMAGENET_STD, np.float32)
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    x = keras.layers.Rescaling((1.0 / (255.0 * std)).tolist(), offset=(-mean / std).tolist(),
                               name="normalize")(x)
    names = iter(conv_names(channels))
    for group, count in enumerate(_COUNTS):
        for _ in range(count):
            conv_name, width = next(names)
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                    name=conv_name)(x)
        x = keras.layers.MaxPooling2D(2, 2, name=f"pool{group + 1}")(x)
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


def weights_from_torchscript(tensors, where="TorchScript file"):
    """Maps ``[prefix.]layers.conv<i>/fc<j>.weight/bias`` tensors to Keras layouts.

    Conv OIHW -> HWIO; ``fc`` ``[out, in]`` -> ``[in, out]`` (``fc1`` keeps the channel-major
    input order matched by :class:`ChannelMajorFlatten`). ``fc3`` and the LPIPS weights are
    ignored.
    """
    roots = [k[: -len("layers.conv1.weight")] for k in tensors if k.endswith("layers.conv1.weight")]
    if not roots:
        raise KeyError(f"{where}: no 'layers.conv1.weight' tensor (not NVIDIA's VGG16 file?)")
    root = min(roots, key=len)

    def need(key):
        if root + key not in tensors:
            raise KeyError(f"{where}: missing tensor '{root + key}'")
        return np.asarray(tensors[root + key], np.float32)

    out = {}
    for conv_name in (f"conv{i}" for i in range(1, 14)):
        out[conv_name] = (need(f"layers.{conv_name}.weight").transpose(2, 3, 1, 0),
                          need(f"layers.{conv_name}.bias"))
    for fc in ("fc1", "fc2"):
        out[fc] = (need(f"layers.{fc}.weight").T, need(f"layers.{fc}.bias"))
    return out
