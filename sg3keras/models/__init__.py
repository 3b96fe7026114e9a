"""Keras model assemblies (generators, discriminator) and the synthesis schedule."""

from sg3keras.models.generator import Generator, SynthesisNetwork
from sg3keras.models.schedule import parameter_counts, synthesis_schedule

__all__ = [
    "Generator",
    "SynthesisNetwork",
    "parameter_counts",
    "synthesis_schedule",
]
