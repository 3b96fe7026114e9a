"""Keras layers that own weights and buffers and call :mod:`sg3keras.ops` (NHWC everywhere).

Symbols of the StyleGAN3 layers (Alias-Free GAN, Section 3): ``s`` sampling rate, ``f_c`` cutoff,
``f_t`` stopband, ``f_h = max(f_t, s/2) - f_c`` transition half-width.
"""

from sg3keras.layers.fully_connected import FullyConnectedLayer
from sg3keras.layers.mapping import MappingNetwork
from sg3keras.layers.synthesis_input import SynthesisInput
from sg3keras.layers.synthesis_layer import SynthesisLayer

__all__ = [
    "FullyConnectedLayer",
    "MappingNetwork",
    "SynthesisInput",
    "SynthesisLayer",
]
