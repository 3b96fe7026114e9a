"""``sg3keras runs``: the training runs of an output folder, one line each."""

import json

import click

from sg3keras.cli._app import main


@main.command()
@click.argument("outdir", default="runs", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of runs (one object each) instead of the table")
def runs(outdir, as_json):
    """List the training runs in OUTDIR (default: runs; the --outdir of `sg3keras train`):
    config, dataset, kimg done / total, last tick, sec/kimg, ETA, state (running, finished,
    error, resumable, stopped), the latest metrics and the best snapshot by the first metric.
    A damaged file of a run is named on stderr; the rest is listed."""
    import time

    from sg3keras.tools.runs_table import format_table, list_runs
    now = time.time()
    found = list_runs(outdir, now=now)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        for line in format_table(found, now=now):
            click.echo(line)
    for run in found:
        for problem in run["problems"]:
            click.echo(f"Warning: {run['name']}/{problem}", err=True)
