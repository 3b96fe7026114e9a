"""``sg3keras`` command line: each command parses its flags and calls one library function.

Flag names follow the official tools (gen_images.py, train.py, dataset_tool.py, calc_metrics.py).
Heavy imports (TensorFlow, Keras) happen inside the commands so that ``--help`` is instant.
"""

import json
import sys

import click

from sg3keras.utils import parse_range, parse_vec2


def _fail(e):
    raise click.ClickException(str(e))


@click.group()
@click.version_option(package_name="sg3keras")
def main():
    """StyleGAN3 for TensorFlow / Keras: train, generate, convert, measure, export."""


@main.command()
@click.option("--network", "network", required=True, help=".keras file, official .pkl, or run dir")
@click.option("--seeds", required=True, help="List of seeds, e.g. '0,1,4-6'")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True)
@click.option("--class", "class_idx", type=int, default=None, help="Class label (conditional nets)")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const")
@click.option("--translate", default="0,0", show_default=True, help="Translate XY, e.g. '0.3,1'")
@click.option("--rotate", type=float, default=0.0, show_default=True, help="Rotation in degrees")
@click.option("--outdir", required=True, type=click.Path(file_okay=False))
@click.option("--grid", is_flag=True, help="Write one grid.png instead of one PNG per seed")
def generate(network, seeds, truncation_psi, class_idx, noise_mode, translate, rotate, outdir,
             grid):
    """Generate images (official gen_images.py flags and semantics)."""
    from sg3keras.generate import generate_images, write_images
    from sg3keras.networks import load_network
    try:
        seeds, translate = parse_range(seeds), parse_vec2(translate)
        G = load_network(network)
        images = generate_images(G, seeds, truncation_psi, class_idx, translate, rotate,
                                 noise_mode)
    except ValueError as e:
        _fail(e)
    for p in write_images(images, seeds, outdir, grid=grid):
        click.echo(p)


@main.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dest", type=click.Path())
@click.option("--network", "which", type=click.Choice(["G_ema", "G", "D"]), default="G_ema")
@click.option("--all", "all_", is_flag=True, help="Write DEST/<G|D|G_ema>.keras for each network")
def convert(src, dest, which, all_):
    """Convert an official NVIDIA pickle into .keras file(s), without executing its code."""
    from sg3keras.convert.official_pickle import convert_pickle
    try:
        for p in convert_pickle(src, dest, networks=("G", "D", "G_ema") if all_ else (which,)):
            click.echo(p)
    except ValueError as e:
        _fail(e)


@main.command()
@click.option("--source", required=True, type=click.Path(exists=True))
@click.option("--dest", required=True, type=click.Path())
@click.option("--resolution", type=int, default=None, help="Output resolution R (R x R)")
@click.option("--transform", type=click.Choice(["center-crop", "center-crop-wide"]), default=None)
@click.option("--max-images", type=int, default=None)
@click.option("--skip-bad", is_flag=True, help="Skip unreadable / wrong-mode images, with a count")
def dataset(source, dest, resolution, transform, max_images, skip_bad):
    """Write an official-format dataset (zip of PNGs + dataset.json)."""
    from sg3keras.dataset_tool import convert_dataset
    try:
        summary = convert_dataset(source, dest, resolution=resolution, transform=transform,
                                  max_images=max_images, skip_bad=skip_bad)
    except ValueError as e:
        _fail(e)
    click.echo(json.dumps(summary, indent=2, default=str))


@main.command()
@click.option("--outdir", required=True, type=click.Path(file_okay=False))
@click.option("--cfg", required=True, type=click.Choice(["stylegan3-t", "stylegan3-r", "stylegan2"]))
@click.option("--data", required=True, type=click.Path(exists=True))
@click.option("--gpus", type=click.IntRange(min=1), required=True)
@click.option("--batch", type=click.IntRange(min=1), required=True)
@click.option("--gamma", type=click.FloatRange(min=0), required=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--batch-gpu", type=click.IntRange(min=1), default=None)
@click.option("--cond", type=bool, default=False, show_default=True)
@click.option("--mirror", type=bool, default=False, show_default=True)
@click.option("--aug", type=click.Choice(["noaug", "ada", "fixed"]), default="ada", show_default=True)
@click.option("--augpipe", default="bgc", show_default=True)
@click.option("--p", type=click.FloatRange(min=0, max=1), default=0.2, show_default=True)
@click.option("--target", type=click.FloatRange(min=0, max=1), default=0.6, show_default=True)
@click.option("--cbase", type=click.IntRange(min=1), default=32768, show_default=True)
@click.option("--cmax", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--map-depth", type=click.IntRange(min=1), default=None)
@click.option("--mbstd-group", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--glr", type=click.FloatRange(min=0), default=None)
@click.option("--dlr", type=click.FloatRange(min=0), default=0.002, show_default=True)
@click.option("--kimg", type=click.FloatRange(min=0), default=25000, show_default=True)
@click.option("--tick", type=click.FloatRange(min=0, min_open=True), default=4, show_default=True)
@click.option("--snap", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--fp32", type=bool, default=False, show_default=True)
@click.option("--mixed-precision", type=click.Choice(["mixed_bfloat16", "mixed_float16"]),
              default=None)
@click.option("--metrics", default="", help="Comma-separated metric names, e.g. fid50k_full")
@click.option("--resume", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--dry-run", "-n", is_flag=True, help="Print the resolved options and exit")
def train(dry_run, **kwargs):
    """Train a StyleGAN3 / StyleGAN2 (official train.py flags)."""
    from sg3keras.training.loop import TrainOptions, describe, train as run
    kwargs["metrics"] = tuple(m for m in kwargs["metrics"].split(",") if m)
    kwargs.pop("batch_gpu")
    opts = TrainOptions(**kwargs)
    try:
        if dry_run:
            click.echo(json.dumps(describe(opts), indent=2, default=str))
            return
        run_dir = run(opts, log=click.echo)
    except (ValueError, FileNotFoundError) as e:
        _fail(e)
    click.echo(f"Run directory: {run_dir}")


@main.command()
@click.option("--network", required=True, help=".keras file, official .pkl, or run dir")
@click.option("--metrics", "metric_names", default="fid50k_full", show_default=True)
@click.option("--data", type=click.Path(exists=True), default=None)
@click.option("--mirror", type=bool, default=False)
@click.option("--num-samples", type=click.IntRange(min=1), default=None)
@click.option("--gpus", type=click.IntRange(min=1), default=1)
@click.option("--detector-dir", type=click.Path(file_okay=False), default=None)
def metrics(network, metric_names, data, mirror, num_samples, gpus, detector_dir):
    """Evaluate metrics (official calc_metrics.py names); appends results as JSONL."""
    from sg3keras.metrics.cli import evaluate
    try:
        for line in evaluate(network, metric_names.split(","), data, mirror, num_samples, gpus,
                             detector_dir):
            click.echo(line)
    except (ValueError, FileNotFoundError) as e:
        _fail(e)


@main.command()
@click.option("--outdir", default="out", show_default=True, type=click.Path(file_okay=False))
@click.option("--minutes", type=float, default=4.0, show_default=True)
def demo(outdir, minutes):
    """Train a tiny StyleGAN3-T on a bundled image set for a few minutes and show results."""
    from sg3keras.demo import run_demo
    run_demo(outdir, minutes=minutes, log=click.echo)


if __name__ == "__main__":
    sys.exit(main())
