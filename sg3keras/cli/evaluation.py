"""Commands that measure or ship a trained network: metrics (official calc_metrics.py), export."""

import click

from sg3keras.cli._app import main
from sg3keras.cli.options import check_output, network_option, outdir_option


@main.command(reports=(FileNotFoundError,))
@network_option()
@click.option("--metrics", "metric_names", default="fid50k_full", show_default=True,
              help="Comma-separated metric names (official calc_metrics.py names)")
@click.option("--data", type=click.Path(exists=True), default=None,
              help="Dataset zip/folder of real images [default: the training run's --data]")
@click.option("--mirror", type=bool, default=False,
              help="Recorded only: real statistics never use x-flips (as official)")
@click.option("--num-samples", type=click.IntRange(min=1), default=None,
              help="Generated samples per metric [default: the official count]")
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="Replicas to evaluate on: N GPUs (see --cpu-replicas)")
@click.option("--cpu-replicas", is_flag=True,
              help="With --gpus N on a machine without GPUs: N logical CPU replicas")
@click.option("--detector-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with the Inception / VGG16 detector files [default: the cache]")
def metrics(network, metric_names, data, mirror, num_samples, gpus, cpu_replicas, detector_dir):
    """Evaluate metrics (official calc_metrics.py names); appends results as JSONL."""
    from sg3keras.metrics.evaluate import evaluate
    for line in evaluate(network, metric_names.split(","), data, mirror, num_samples, gpus,
                         detector_dir, cpu_replicas=cpu_replicas):
        click.echo(line)


@main.command(reports=(OSError, ImportError))
@network_option()
@outdir_option("Base folder of the exported models", required=False, default="savedmodels",
               show_default=True)
@click.option("--name", required=True, help="Model name (directory OUTDIR/NAME)")
@click.option("--version", type=click.IntRange(min=1), default=None,
              help="SavedModel version (never overwritten) [default: next free]")
@click.option("--format", "fmt", type=click.Choice(["savedmodel", "keras", "onnx"]),
              default="savedmodel", show_default=True,
              help="savedmodel: OUTDIR/NAME/VERSION/; keras, onnx: OUTDIR/NAME.keras|.onnx")
@click.option("--force", is_flag=True, help="Replace an existing .keras / .onnx file")
@click.option("--xla", is_flag=True,
              help="SavedModel with XLA-compiled filter stages: faster, but the server must run "
                   "with XLA on (TF Serving --xla_cpu_compilation_enabled)")
def export(network, outdir, name, version, fmt, force, xla):
    """Export a generator for serving (TF Serving SavedModel, .keras or ONNX)."""
    from sg3keras.export import export_network
    check_output(outdir, "--outdir")
    click.echo(export_network(network, outdir, name, version=version, fmt=fmt, force=force,
                              xla=xla))
