"""Commands that draw the paper's pictures: sticking, eqmap, spectra, layers.

The flags' defaults are read from the tool functions' own (their modules import TensorFlow
only inside the functions, so ``sg3keras --help`` stays fast).
"""

import click

from sg3keras.cli._app import UserError, main
from sg3keras.cli.options import (check_output, class_option, default_of, load_network,
                                  network_option, outdir_option, parse_range, parse_vec2,
                                  seed_option, trunc_option)
from sg3keras.config import PRESETS, TrainOptions
from sg3keras.inference.generate import check_class
from sg3keras.tools.eqmap import equivariance_maps
from sg3keras.tools.spectra import write_spectra
from sg3keras.tools.sticking import write_sticking


@main.command()
@network_option()
@outdir_option("Output folder (sticking-*.png of the same name are replaced)")
@seed_option("Central latent", default=default_of(write_sticking, "seed"))
@click.option("--seeds", default=None,
              help="Seeds of the interpolation strip, e.g. '0-7' [default: SEED..SEED+2]")
@click.option("--num", type=click.IntRange(min=1), default=default_of(write_sticking, "num"),
              show_default=True, help="Images averaged")
@click.option("--radius", type=click.FloatRange(min=0),
              default=default_of(write_sticking, "radius"), show_default=True,
              help="Size of the latent neighbourhood")
@click.option("--space", type=click.Choice(["z", "w"]), default=default_of(write_sticking, "space"),
              show_default=True, help="Latent space of the neighbourhood")
@trunc_option(default_of(write_sticking, "truncation_psi"))
@class_option()
def sticking(network, outdir, seed, seeds, num, radius, space, truncation_psi, class_idx):
    """Texture-sticking pictures (paper Figure 1): neighbourhood average and pixel strips."""
    seeds = parse_range(seeds, "--seeds") if seeds else None
    if seeds is not None and len(seeds) < 2:
        raise UserError(f"--seeds {','.join(map(str, seeds))}: expected at least two seeds for "
                        "the interpolation strip")
    check_output(outdir, "--outdir")
    G = load_network(network)
    out = write_sticking(G, outdir, seed=seed, seeds=seeds, num=num, radius=radius, space=space,
                         truncation_psi=truncation_psi, class_idx=check_class(G, class_idx))
    for p in out["paths"]:
        click.echo(p)


def _xy(name):
    return ",".join(str(v) for v in default_of(equivariance_maps, name))


@main.command()
@network_option()
@outdir_option("Output folder (eqmap*.png of the same name are replaced)")
@seed_option("Latent seed", default=default_of(equivariance_maps, "seed"))
@click.option("--translate-int", default=_xy("translate_int"), show_default=True,
              help="Integer translation X,Y in image widths (rounded to whole pixels)")
@click.option("--translate-frac", default=_xy("translate_frac"), show_default=True,
              help="Fractional translation X,Y in image widths")
@click.option("--rotate", type=float, default=default_of(equivariance_maps, "rotate_deg"),
              show_default=True, help="Degrees")
@class_option()
def eqmap(network, outdir, seed, translate_int, translate_frac, rotate, class_idx):
    """Equivariance pictures: transformed input vs transformed output, error map and PSNR."""
    translate_int = parse_vec2(translate_int, "--translate-int")
    translate_frac = parse_vec2(translate_frac, "--translate-frac")
    check_output(outdir, "--outdir")
    G = load_network(network)
    out = equivariance_maps(G, outdir, seed=seed, translate_int=translate_int,
                            translate_frac=translate_frac, rotate_deg=rotate,
                            class_idx=check_class(G, class_idx))
    for kind, psnr in out["psnr"].items():
        click.echo(f"{kind}: PSNR {psnr:.2f} dB")
    for p in out["paths"]:
        click.echo(p)


@main.command(reports=(RuntimeError,))
@click.option("--data", type=click.Path(exists=True), default=None, help="Dataset zip/folder")
@network_option(required=False)
@click.option("--num", type=click.IntRange(min=1), default=None,
              help="Images to use (required for --network) [default: the whole dataset]")
@class_option("Class of a conditional --network [default: a random class per image]")
@outdir_option("Output folder (files of the same --name are replaced, as avg_spectra.py does)")
@click.option("--name", default=default_of(write_spectra, "name"), show_default=True,
              help="Base name of the outputs")
@seed_option("First latent seed (--network)", default=default_of(write_spectra, "seed"))
@click.option("--beta", type=click.FloatRange(min=0), default=default_of(write_spectra, "beta"),
              show_default=True, help="Kaiser window shape")
@click.option("--interp", type=click.IntRange(min=1), default=default_of(write_spectra, "interp"),
              show_default=True, help="Frequency-domain interpolation (zero-padding factor)")
def spectra(data, network, num, class_idx, outdir, name, seed, beta, interp):
    """Average power spectrum of a dataset or generator (official avg_spectra.py)."""
    if bool(data) == bool(network):
        raise UserError("give exactly one of --data or --network")
    if network and num is None:
        raise UserError("--num is required with --network (the number of images to generate)")
    if class_idx is not None and not network:
        raise UserError("--class applies to --network only")
    check_output(outdir, "--outdir")
    source = load_network(network) if network else data
    if network and class_idx is not None:
        class_idx = check_class(source, class_idx)
    out = write_spectra(source, outdir, name=name, num=num, seed=seed, beta=beta, interp=interp,
                        class_idx=class_idx)
    for p in out["paths"]:
        click.echo(p)


@main.command(reports=(ImportError, RuntimeError))
@click.option("--cfg", type=click.Choice(sorted(n for n, p in PRESETS.items()
                                                  if p.generator.has_layer_schedule)),
              default=TrainOptions.__dataclass_fields__["cfg"].default, show_default=True,
              help="Configuration")
@click.option("--resolution", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Output resolution (a power of two)")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="PNG plot (replaced if it exists) [default: table only]")
def layers(cfg, resolution, output):
    """The layer schedule of a config: a table, and a plot like the paper's Figure 4."""
    from sg3keras.tools.layers_plot import plot_layer_schedule, resolve_config, schedule_table
    if output:
        check_output(output, "--output")
    config = resolve_config(cfg, resolution)
    click.echo(schedule_table(config))
    if output:
        click.echo(plot_layer_schedule(config, output))
