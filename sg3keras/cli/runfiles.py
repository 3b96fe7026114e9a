"""Commands that read run directories: plot (the curves of one or more runs)."""

import os

import click

from sg3keras.cli._app import UserError, main
from sg3keras.cli.options import check_output


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR [RUN_DIR...]")
@click.option("--output", "-o", default=None,
              help="PNG to write [default: curves.png in the first RUN_DIR]")
def plot(run_dirs, output):
    """Curves of training runs over kimg (losses, augment p, sec/kimg, every metric), several
    runs overlaid. Reads stats.jsonl and metric-*.jsonl only, so runs of the official code
    draw too. Needs matplotlib."""
    from sg3keras.runs.curves import have_matplotlib, plot_runs
    for d in run_dirs:
        if not os.path.isdir(d):
            raise UserError(f"{d}: not a run directory (expected a folder with stats.jsonl)")
    output = output or os.path.join(run_dirs[0], "curves.png")
    if os.path.isdir(output):
        raise UserError(f"--output {output}: a directory, expected a .png file name")
    check_output(output, "--output")
    if not have_matplotlib():
        raise UserError("plot needs matplotlib; install with `pip install matplotlib` "
                        "(or `pip install sg3keras[viz]`)")
    click.echo(plot_runs(list(run_dirs), output))
