"""Fully-connected layer with equalized learning rate (StyleGAN3 flavour; Alias-Free GAN
Appendix F)."""

import math

import keras
import numpy as np
from keras import ops

from sg3keras.ops.bias_act import bias_act

__all__ = ["FullyConnectedLayer"]


@keras.saving.register_keras_serializable(package="sg3keras")
class FullyConnectedLayer(keras.layers.Layer):
    """Dense layer whose stored weights are rescaled at run time ("equalized learning rate").

    The stored ``weight`` ``[in, out]`` is initialised ``N(0, 1) * weight_init / lr_multiplier``
    and used as ``weight * lr_multiplier / sqrt(in)``; the stored ``bias`` ``[out]`` is initialised
    ``bias_init / lr_multiplier`` and used as ``bias * lr_multiplier``. The stored values equal the
    official parameters (transposed), so conversion is a transpose. For the StyleGAN2 flavour
    (bias stored undivided) pass ``bias_init * lr_multiplier``.

    Args:
        units: number of output features.
        activation: ``bias_act`` activation name (``"linear"``, ``"lrelu"``, ...).
        use_bias: whether the layer has a bias.
        lr_multiplier: learning-rate multiplier (0.01 in the mapping network).
        weight_init: initial weight scale (0 for the Fourier-input affine).
        bias_init: initial bias value: a scalar or a list of ``units`` values.

    Call arguments:
        x: ``[N, in]`` tensor.

    Example:
        >>> fc = FullyConnectedLayer(4, activation="lrelu", lr_multiplier=0.01)
        >>> y = fc(keras.ops.ones([2, 8]))
    """

    def __init__(self, units, activation="linear", use_bias=True, lr_multiplier=1.0,
                 weight_init=1.0, bias_init=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.lr_multiplier = float(lr_multiplier)
        self.weight_init = float(weight_init)
        self.bias_init = list(bias_init) if isinstance(bias_init, (list, tuple, np.ndarray)) \
            else float(bias_init)

    def build(self, input_shape):
        in_features = int(input_shape[-1])
        self.weight_gain = self.lr_multiplier / math.sqrt(in_features)
        std = self.weight_init / self.lr_multiplier
        self.weight = self.add_weight(
            name="weight", shape=(in_features, self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0) if std else "zeros")
        if std not in (0.0, 1.0):
            self.weight.assign(self.weight * std)
        if self.use_bias:
            init = np.broadcast_to(np.asarray(self.bias_init, np.float32), (self.units,))
            self.bias = self.add_weight(
                name="bias", shape=(self.units,),
                initializer=keras.initializers.Constant(init / self.lr_multiplier))

    def call(self, x):
        w = ops.cast(self.weight, x.dtype) * self.weight_gain
        b = None
        if self.use_bias:
            b = ops.cast(self.bias, x.dtype)
            if self.lr_multiplier != 1:
                b = b * self.lr_multiplier
        x = ops.matmul(x, w)
        return bias_act(x, b, act=self.activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=self.activation, use_bias=self.use_bias,
                      lr_multiplier=self.lr_multiplier, weight_init=self.weight_init,
                      bias_init=self.bias_init)
        return config
