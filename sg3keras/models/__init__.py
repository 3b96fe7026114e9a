"""Keras model assemblies (generators, discriminator) and the synthesis schedule."""

from sg3keras.models.discriminator import Discriminator
from sg3keras.models.generator import Generator, SynthesisNetwork
from sg3keras.models.schedule import parameter_counts, synthesis_schedule
from sg3keras.models.stylegan2_generator import StyleGAN2Generator, SynthesisNetwork2

__all__ = [
    "Discriminator",
    "Generator",
    "StyleGAN2Generator",
    "SynthesisNetwork",
    "SynthesisNetwork2",
    "parameter_counts",
    "synthesis_schedule",
]
