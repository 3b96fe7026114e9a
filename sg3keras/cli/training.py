"""Commands that train: train (official train.py flags), demo."""

import contextlib
import json
import os

import click

from sg3keras.cli._app import UserError, main
from sg3keras.cli.options import check_output, given as _given, outdir_option, seed_option
from sg3keras.config import PRESETS, TrainOptions


# Checked in train() (a run directory has its own; fine-tuning needs all but --cfg).
_REQUIRED = "[required unless --resume RUN_DIR]"


def _TRAIN(name):
    """Default of a ``train`` flag: the :class:`TrainOptions` field, itself from the presets."""
    return TrainOptions.__dataclass_fields__[name].default


@main.command(reports=(OSError, "sg3keras.training.ticks.TrainingDivergedError",
                       "sg3keras.training.distribute.PeerFailureError",
                       "sg3keras.training.checkpoint.CheckpointError"))
@outdir_option(_REQUIRED + " Where runs go", required=False)
@click.option("--cfg", type=click.Choice(sorted(PRESETS)),
              help="[required unless --resume: a run directory or a network has its own] Base "
                   "configuration (config-a ... config-r: the paper's Figure 3 ladder, "
                   "docs/PAPER.md)")
@click.option("--data", type=click.Path(exists=True), help=_REQUIRED + " Dataset zip or folder")
@click.option("--gpus", type=click.IntRange(min=1), help=_REQUIRED + " Number of GPUs/replicas")
@click.option("--batch", type=click.IntRange(min=1), help=_REQUIRED + " Total batch size")
@click.option("--gamma", type=click.FloatRange(min=0), help=_REQUIRED + " R1 weight")
@click.option("--workers", type=click.IntRange(min=1), default=_TRAIN("workers"), show_default=True,
              help="Worker processes (MultiWorkerMirroredStrategy, one TF_CONFIG each)")
@click.option("--batch-gpu", type=click.IntRange(min=1), default=None,
              help="Samples per GPU/replica per round (gradient accumulation) [default: "
                   "batch/replicas]")
@click.option("--cond", type=bool, default=_TRAIN("cond"), show_default=True,
              help="Train a conditional network on the dataset's labels (needs dataset.json)")
@click.option("--mirror", type=bool, default=_TRAIN("mirror"), show_default=True,
              help="Enable dataset x-flips")
@click.option("--aug", type=click.Choice(["noaug", "ada", "fixed"]), default=_TRAIN("aug"),
              show_default=True, help="Augmentation mode")
@click.option("--augpipe", default=_TRAIN("augpipe"), show_default=True,
              help="Augmentation pipeline (official names, e.g. bgc)")
@click.option("--p", type=click.FloatRange(min=0, max=1), default=_TRAIN("p"), show_default=True,
              help="Augmentation probability for --aug=fixed")
@click.option("--target", type=click.FloatRange(min=0, max=1), default=_TRAIN("target"),
              show_default=True, help="ADA target")
@click.option("--cbase", type=click.IntRange(min=1), default=_TRAIN("cbase"), show_default=True,
              help="Capacity multiplier (channel_base)")
@click.option("--cmax", type=click.IntRange(min=1), default=_TRAIN("cmax"), show_default=True,
              help="Max. feature maps (channel_max)")
@click.option("--map-depth", type=click.IntRange(min=1), default=None,
              help="Mapping network depth [default: the --cfg preset's]")
@click.option("--mbstd-group", type=click.IntRange(min=1), default=_TRAIN("mbstd_group"),
              show_default=True, help="Minibatch std group size")
@click.option("--glr", type=click.FloatRange(min=0), default=None,
              help="G learning rate [default: the --cfg preset's]")
@click.option("--dlr", type=click.FloatRange(min=0), default=_TRAIN("dlr"), show_default=True,
              help="D learning rate")
@click.option("--kimg", type=click.FloatRange(min=0), default=None,
              help=f"Training length in thousands of real images [default: {_TRAIN('kimg'):g}; "
                   "with --resume RUN_DIR: the run's own]")
@click.option("--tick", type=click.FloatRange(min=0, min_open=True), default=_TRAIN("tick"),
              show_default=True, help="How often to print progress and checkpoint (kimg)")
@click.option("--snap", type=click.IntRange(min=1), default=_TRAIN("snap"), show_default=True,
              help="How often to save snapshots and run metrics (ticks)")
@seed_option("Random seed", default=_TRAIN("seed"))
@click.option("--fp32", type=bool, default=False, show_default=True,
              help="Disable the conv clamp and reduced-precision layers (official --fp32)")
@click.option("--mixed-precision", type=click.Choice(["mixed_bfloat16", "mixed_float16"]),
              default=None, help="Keras mixed-precision policy [default: float32]")
@click.option("--metrics", default="none", show_default=True,
              help="Comma-separated metric names evaluated at each snapshot, e.g. fid50k_full, "
                   "or none")
@click.option("--metrics-num-samples", type=click.IntRange(min=1), default=None,
              help="Generated samples per metric (default: the official count)")
@click.option("--resume", default=None,
              help="A run directory: continue it exactly where it stopped. A network (.pkl, "
                   ".keras, pretrained name or URL): start a new run from its G, D and G_ema "
                   "(fine-tuning)")
@click.option("--freezed", type=click.IntRange(min=0), default=_TRAIN("freezed"),
              show_default=True, help="Freeze-D: number of D layers (from the input) not trained")
@click.option("--desc", default=None, help="String appended to the run directory's name")
@click.option("--nobench", type=bool, default=False, show_default=True,
              help="Accepted for train.py compatibility (no cuDNN benchmarking here)")
@click.option("--cpu-replicas", is_flag=True,
              help="With --gpus N on a machine without GPUs: N logical CPU replicas (to test "
                   "the distributed path; slower than one)")
@click.option("--fused-ops/--no-fused-ops", default=True, show_default=True,
              help="XLA-fused filtered_lrelu (off: reference ops)")
@click.option("--deterministic", is_flag=True, help="Enable TensorFlow op determinism")
@click.option("--dry-run", "-n", is_flag=True, help="Print the resolved options and exit")
@click.pass_context
def train(ctx, dry_run, nobench, **kwargs):
    """Train a StyleGAN3 / StyleGAN2 (official train.py flags), continue a run, or fine-tune a
    network (--resume)."""
    from sg3keras.training.loop import describe, is_run_dir, train as run
    given = _given(ctx) - {"dry_run", "nobench"}
    resume = kwargs["resume"]
    if is_run_dir(resume):
        required = []
    elif resume:
        required = ["outdir", "data", "gpus", "batch", "gamma"]    # --cfg: the network's
    else:
        required = ["outdir", "cfg", "data", "gpus", "batch", "gamma"]
    missing = [f"--{k}" for k in required if kwargs[k] is None]
    if kwargs["outdir"] is not None:
        if os.path.exists(kwargs["outdir"]) and not os.path.isdir(kwargs["outdir"]):
            raise UserError(f"--outdir {kwargs['outdir']}: a file, expected a directory for the "
                            "runs")
        check_output(kwargs["outdir"], "--outdir")
    if missing:
        raise UserError(f"Missing option(s) {', '.join(missing)}" + (
            f" (required to fine-tune --resume {resume})" if resume else
            " (all required unless --resume RUN_DIR)"))
    kwargs["metrics"] = tuple(m.strip() for m in kwargs["metrics"].split(",") if m.strip())
    opts = TrainOptions(**{k: v for k, v in kwargs.items() if v is not None})
    if dry_run:
        click.echo(json.dumps(describe(opts, given=given), indent=2, default=str))
        return
    with _clean_stop():
        run_dir = run(opts, log=click.echo, given=given)
    click.echo(f"Run directory: {run_dir}")


@contextlib.contextmanager
def _clean_stop():
    """A run that SIGINT / SIGTERM stopped ends with its one line (the checkpoint kept, the
    resume command) on stderr and status 128 + signal (130, 143), not click's "Aborted!"."""
    from sg3keras.training.interrupt import RunInterrupted
    try:
        yield
    except RunInterrupted as e:
        click.echo(str(e), err=True)
        raise click.exceptions.Exit(e.exit_status) from None


@main.command()
@outdir_option("Folder for the demo dataset and runs (an existing demo dataset is reused)",
               required=False, default="out", show_default=True)
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True,
              help="Time bound from the start (checked at tick ends, every 0.16 kimg)")
@click.option("--kimg", type=click.FloatRange(min=0, min_open=True), default=2.4,
              show_default=True, help="Training length bound")
def demo(outdir, minutes, kimg):
    """Train a tiny StyleGAN3-T on a bundled image set and show results.

    Training ends at --kimg or --minutes, whichever comes first (the output says which). No
    metrics are computed, so no Inception file is needed."""
    from sg3keras.demo import run_demo
    check_output(outdir, "--outdir")
    with _clean_stop():
        run_demo(outdir, minutes=minutes, kimg=kimg, log=click.echo)
