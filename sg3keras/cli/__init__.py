"""``sg3keras`` command line: each command parses its flags and calls one library function.

Flag names follow the official tools (gen_images.py, train.py, dataset_tool.py, calc_metrics.py).
Heavy imports (TensorFlow, Keras) happen inside the commands so that ``--help`` is instant.

``_app``: the group, one-line errors and TensorFlow's start-up noise; ``options``: what
several commands share; then one module per group of commands, each registering on ``main``.
"""

from sg3keras.cli._app import UserError, _describe_error, _one_line, main
from sg3keras.cli.options import parse_range, parse_vec2
from sg3keras.cli import (data, evaluation, generation, pictures, runfiles,  # noqa: F401
                          runs, training, visualize)  # (commands; runs, visualize: the
#                                                       modules' own commands)
from sg3keras.cli.data import convert, dataset, pretrained
from sg3keras.cli.evaluation import export, metrics
from sg3keras.cli.generation import generate, project, video
from sg3keras.cli.pictures import eqmap, layers, spectra, sticking
from sg3keras.cli.runfiles import plot
from sg3keras.cli.training import demo, train

__all__ = ["main", "UserError", "parse_range", "parse_vec2", "convert", "dataset", "pretrained",
           "export", "metrics", "generate", "project", "video", "eqmap", "layers", "spectra",
           "sticking", "plot", "demo", "train"]
