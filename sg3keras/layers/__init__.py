"""Keras layers that own weights and buffers and call :mod:`sg3keras.ops` (NHWC everywhere).

Symbols of the StyleGAN3 layers (Alias-Free GAN, Section 3): ``s`` sampling rate, ``f_c`` cutoff,
``f_t`` stopband, ``f_h = max(f_t, s/2) - f_c`` transition half-width.
"""

from sg3keras.layers.cmap import ConditioningMapping
from sg3keras.layers.conv2d_layer import Conv2dLayer
from sg3keras.layers.discriminator_blocks import (DiscriminatorBlock, DiscriminatorEpilogue,
                                                  MinibatchStdLayer)
from sg3keras.layers.fully_connected import FullyConnectedLayer
from sg3keras.layers.mapping import MappingNetwork
from sg3keras.layers.stylegan2_synthesis import SynthesisBlock2, SynthesisLayer2, ToRGBLayer
from sg3keras.layers.synthesis_input import SynthesisInput
from sg3keras.layers.synthesis_layer import SynthesisLayer

__all__ = [
    "ConditioningMapping",
    "Conv2dLayer",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "FullyConnectedLayer",
    "MappingNetwork",
    "MinibatchStdLayer",
    "SynthesisBlock2",
    "SynthesisInput",
    "SynthesisLayer",
    "SynthesisLayer2",
    "ToRGBLayer",
]
