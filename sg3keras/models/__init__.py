"""Keras model assemblies (generators, discriminator) and the synthesis schedule.

Every generator implements :class:`GeneratorBase`; :func:`build_generator` /
:func:`generator_class` pick the class for a :class:`sg3keras.config.GeneratorConfig`.
"""

from sg3keras.models.base import (GENERATOR_CLASSES, GeneratorBase, build_generator,
                                  generator_class)
from sg3keras.models.discriminator import Discriminator
from sg3keras.models.generator import Generator, SynthesisNetwork
from sg3keras.models.schedule import parameter_counts, synthesis_schedule
from sg3keras.models.stylegan2_generator import StyleGAN2Generator, SynthesisNetwork2

__all__ = [
    "Discriminator",
    "GENERATOR_CLASSES",
    "Generator",
    "GeneratorBase",
    "StyleGAN2Generator",
    "SynthesisNetwork",
    "SynthesisNetwork2",
    "build_generator",
    "generator_class",
    "parameter_counts",
    "synthesis_schedule",
]
