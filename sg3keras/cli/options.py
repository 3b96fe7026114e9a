"""What several commands share: option decorators, value parsers, output checks, and the one
place the CLI loads a ``--network``."""

import inspect
import os
import re

import click

from sg3keras.cli._app import UserError

NETWORK_HELP = (".keras file, official .pkl, training run dir, pretrained name (`sg3keras "
                "pretrained`) or http(s) URL")
CLASS_HELP = "Class label (required for conditional networks)"


def network_option(required=True):
    return click.option("--network", required=required, default=None, help=NETWORK_HELP)


def outdir_option(help, required=True, **kwargs):
    return click.option("--outdir", required=required, type=click.Path(file_okay=False),
                        help=help, **kwargs)


def class_option(help=CLASS_HELP):
    return click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
                        help=help)


def trunc_option(default=1.0):
    return click.option("--trunc", "truncation_psi", type=float, default=default,
                        show_default=True, help="Truncation psi")


def seed_option(help, default=0):
    return click.option("--seed", type=click.IntRange(min=0), default=default,
                        show_default=True, help=help)


def default_of(func, name):
    """The default of parameter ``name`` of ``func`` (a library function the command calls),
    so that the flag's default is written once, in the library."""
    return inspect.signature(func).parameters[name].default


def load_network(ref):
    """The network a ``--network`` value names (file, run directory, pretrained name or URL),
    its filtered nonlinearities set up by :func:`autotuned`."""
    from sg3keras.networks.loading import load_network as load
    return autotuned(load(ref))


def autotuned(G):
    """``G`` with its alias-free layers that use the library default (``impl="fast"``) switched
    to ``impl="auto"``: per stage the fastest implementation on this machine, measured once and
    cached (:mod:`sg3keras.ops.autotune`). ``$SG3KERAS_IMPL`` names one implementation for every
    stage instead; ``$SG3KERAS_AUTOTUNE=0`` keeps the default. A layer saved with another
    implementation keeps it. The weights and the generator's config are untouched."""
    from sg3keras.layers.synthesis_layer import SynthesisLayer
    from sg3keras.ops import autotune
    if not (autotune.autotune_enabled() or os.environ.get(autotune.ENV_IMPL)):
        return G
    flatten = getattr(G, "_flatten_layers", None)
    for layer in flatten() if flatten else ():
        if isinstance(layer, SynthesisLayer) and layer.impl == autotune.DEFAULT:
            layer.impl = "auto"
    return G


def parse_range(s, what="--seeds"):
    """Parse ``'0-3,7,10-11'`` into ``[0, 1, 2, 3, 7, 10, 11]`` (official gen_images syntax)."""
    if isinstance(s, (list, tuple)):
        return [int(v) for v in s]
    out = []
    for part in str(s).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"{what}: range {part!r} is empty (end < start); expected "
                                 "START-END with START <= END")
            out.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            out.append(int(part))
        else:
            raise ValueError(f"{what}: cannot parse {part!r}; expected e.g. '0-3,7'")
    return out


def parse_vec2(s, what="--translate"):
    """Parse ``'0.1,-0.2'`` into ``(0.1, -0.2)``."""
    if isinstance(s, (list, tuple)):
        if len(s) != 2:
            raise ValueError(f"{what}: expected two numbers, got {s!r}")
        return float(s[0]), float(s[1])
    parts = str(s).split(",")
    if len(parts) != 2:
        raise ValueError(f"{what}: expected 'x,y', got {s!r}")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{what}: expected two numbers 'x,y', got {s!r}") from None


def given(ctx):
    """Names of the parameters the user typed (or set through the environment)."""
    from click.core import ParameterSource
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                  ParameterSource.ENVIRONMENT)}


def check_output(path, flag):
    """Fail before any work unless ``path`` can be created: its nearest existing ancestor must
    be a directory (whether an existing ``path`` may be replaced is the command's rule)."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise UserError(f"{flag} {path}: {parent} is a file, expected a directory")
