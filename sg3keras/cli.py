"""``sg3keras`` command line: each command parses its flags and calls one library function.

Flag names follow the official tools (gen_images.py, train.py, dataset_tool.py, calc_metrics.py).
Heavy imports (TensorFlow, Keras) happen inside the commands so that ``--help`` is instant.
"""

import json
import os
import re
import sys

import click

# Quiet TensorFlow's C++ start-up logging unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sg3keras.config import PRESETS, ProjectConfig, TrainOptions


def _fail(e):
    raise click.ClickException(str(e))


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
                raise ValueError(f"{what}: range {part!r} is empty (end < start)")
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


def _TRAIN(name):
    """Default of a ``train`` flag: the :class:`TrainOptions` field, itself from the presets."""
    return TrainOptions.__dataclass_fields__[name].default


@click.group()
@click.version_option(package_name="sg3keras")
def main():
    """StyleGAN3 for TensorFlow / Keras: train, generate, convert, measure, export."""
    import logging
    # tf.function retracing notices are expected here: every distinct layer geometry compiles
    # its own XLA kernels once.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@main.command()
@click.option("--network", "network", required=True, help=".keras file, official .pkl, or run dir")
@click.option("--seeds", default=None, help="List of seeds, e.g. '0,1,4-6' [required unless "
              "--projected-w]")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True)
@click.option("--class", "class_idx", type=int, default=None, help="Class label (conditional nets)")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const")
@click.option("--translate", default="0,0", show_default=True, help="Translate XY, e.g. '0.3,1'")
@click.option("--rotate", type=float, default=0.0, show_default=True, help="Rotation in degrees")
@click.option("--outdir", required=True, type=click.Path(file_okay=False))
@click.option("--grid", is_flag=True, help="Write one grid.png instead of one PNG per seed")
@click.option("--projected-w", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Render the w's of a projected_w.npz (sg3keras project) as projNN.png")
def generate(network, seeds, truncation_psi, class_idx, noise_mode, translate, rotate, outdir,
             grid, projected_w):
    """Generate images (official gen_images.py flags and semantics)."""
    from sg3keras.inference.generate import generate_images, write_images
    from sg3keras.inference.networks import load_network
    if projected_w:
        return _generate_projected(network, projected_w, outdir, noise_mode, seeds,
                                   truncation_psi)
    if seeds is None:
        _fail("Missing option '--seeds' (or give --projected-w)")
    try:
        seeds, translate = parse_range(seeds), parse_vec2(translate)
        G = load_network(network)
        images = generate_images(G, seeds, truncation_psi, class_idx, translate, rotate,
                                 noise_mode)
    except ValueError as e:
        _fail(e)
    for p in write_images(images, seeds, outdir, grid=grid):
        click.echo(p)


def _generate_projected(network, projected_w, outdir, noise_mode, seeds, truncation_psi):
    """``generate --projected-w``: one projNN.png per w in the file (official semantics)."""
    from sg3keras.inference.networks import load_network
    from sg3keras.inference.projector import render_projected_w
    for flag, given in (("--seeds", seeds is not None), ("--trunc", truncation_psi != 1.0)):
        if given:
            click.echo(f"note: {flag} is ignored with --projected-w", err=True)
    try:
        paths, note = render_projected_w(load_network(network), projected_w, outdir, noise_mode)
    except ValueError as e:
        _fail(e)
    if note:
        click.echo(f"note: {note}", err=True)
    for p in paths:
        click.echo(p)


@main.command()
@click.option("--network", required=True, help=".keras file, official .pkl, run dir, name, URL")
@click.option("--target", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Target image file (center-cropped and resized to the network's resolution)")
@click.option("--outdir", required=True, type=click.Path(file_okay=False))
@click.option("--num-steps", type=click.IntRange(min=1), default=ProjectConfig.num_steps,
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-video/--no-save-video", default=True, show_default=True,
              help="Write proj.mp4 (target beside each step's image)")
@click.option("--loss", type=click.Choice(["lpips", "mse"]), default="lpips", show_default=True,
              help="lpips: NVIDIA's VGG16 LPIPS; mse: pixel distance (offline)")
@click.option("--vgg16", default=None, help="Path or URL of NVIDIA's vgg16.pkl [default: "
              "detector search path, download cache, then NVIDIA's URL]")
@click.option("--class", "class_idx", type=int, default=None, help="Class label (conditional nets)")
def project(network, target, outdir, num_steps, seed, save_video, loss, vgg16, class_idx):
    """Project an image into W (stylegan2-ada-pytorch projector.py method)."""
    import contextlib

    from sg3keras.inference.networks import load_network
    from sg3keras.inference.projector import project as run, save_projection
    from sg3keras.tools.video import require_video_support, write_projection_video
    bar = click.progressbar(length=num_steps, label="Projecting", file=sys.stderr,
                            item_show_func=lambda d: None if d is None else f"dist {d:.4g}")
    try:
        if save_video:
            require_video_support()
        G = load_network(network)
        with contextlib.ExitStack() as stack:
            def progress(step, _, dist):
                if step == 0:
                    stack.enter_context(bar)
                bar.update(1, dist)
            result = run(G, target, num_steps, loss, vgg16, seed, class_idx, progress=progress,
                         log=click.echo)
        paths = save_projection(G, result, outdir)
        if save_video:
            paths.append(write_projection_video(G, result, os.path.join(outdir, "proj.mp4")))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        _fail(e)
    for p in paths:
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
    from sg3keras.data.dataset_tool import convert_dataset
    try:
        summary = convert_dataset(source, dest, resolution=resolution, transform=transform,
                                  max_images=max_images, skip_bad=skip_bad)
    except ValueError as e:
        _fail(e)
    click.echo(json.dumps(summary, indent=2, default=str))


@main.command()
@click.option("--outdir", type=click.Path(file_okay=False), help="[required] Where runs go")
@click.option("--cfg", type=click.Choice(sorted(PRESETS)), help="[required] Base configuration")
@click.option("--data", type=click.Path(exists=True), help="[required] Dataset zip or folder")
@click.option("--gpus", type=click.IntRange(min=1), help="[required] Number of GPUs/replicas")
@click.option("--batch", type=click.IntRange(min=1), help="[required] Total batch size")
@click.option("--gamma", type=click.FloatRange(min=0), help="[required] R1 weight")
@click.option("--workers", type=click.IntRange(min=1), default=_TRAIN("workers"), show_default=True)
@click.option("--batch-gpu", type=click.IntRange(min=1), default=None,
              help="Samples per GPU/replica per round (gradient accumulation) [default: "
                   "batch/replicas]")
@click.option("--cond", type=bool, default=_TRAIN("cond"), show_default=True)
@click.option("--mirror", type=bool, default=_TRAIN("mirror"), show_default=True)
@click.option("--aug", type=click.Choice(["noaug", "ada", "fixed"]), default=_TRAIN("aug"),
              show_default=True)
@click.option("--augpipe", default=_TRAIN("augpipe"), show_default=True)
@click.option("--p", type=click.FloatRange(min=0, max=1), default=_TRAIN("p"), show_default=True,
              help="Augmentation probability for --aug=fixed")
@click.option("--target", type=click.FloatRange(min=0, max=1), default=_TRAIN("target"),
              show_default=True, help="ADA target")
@click.option("--cbase", type=click.IntRange(min=1), default=_TRAIN("cbase"), show_default=True)
@click.option("--cmax", type=click.IntRange(min=1), default=_TRAIN("cmax"), show_default=True)
@click.option("--map-depth", type=click.IntRange(min=1), default=None,
              help="Mapping network depth [default: the --cfg preset's]")
@click.option("--mbstd-group", type=click.IntRange(min=1), default=_TRAIN("mbstd_group"),
              show_default=True)
@click.option("--glr", type=click.FloatRange(min=0), default=None,
              help="G learning rate [default: the --cfg preset's]")
@click.option("--dlr", type=click.FloatRange(min=0), default=_TRAIN("dlr"), show_default=True)
@click.option("--kimg", type=click.FloatRange(min=0), default=_TRAIN("kimg"), show_default=True)
@click.option("--tick", type=click.FloatRange(min=0, min_open=True), default=_TRAIN("tick"),
              show_default=True)
@click.option("--snap", type=click.IntRange(min=1), default=_TRAIN("snap"), show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=_TRAIN("seed"), show_default=True)
@click.option("--fp32", type=bool, default=False, show_default=True)
@click.option("--mixed-precision", type=click.Choice(["mixed_bfloat16", "mixed_float16"]),
              default=None)
@click.option("--metrics", default="", help="Comma-separated metric names, e.g. fid50k_full")
@click.option("--metrics-num-samples", type=click.IntRange(min=1), default=None,
              help="Generated samples per metric (default: the official count)")
@click.option("--resume", type=click.Path(exists=True, file_okay=False), default=None,
              help="Continue the run in this directory exactly where it stopped")
@click.option("--fused-ops/--no-fused-ops", default=True, show_default=True,
              help="XLA-fused filtered_lrelu (off: reference ops)")
@click.option("--deterministic", is_flag=True, help="Enable TensorFlow op determinism")
@click.option("--dry-run", "-n", is_flag=True, help="Print the resolved options and exit")
def train(dry_run, **kwargs):
    """Train a StyleGAN3 / StyleGAN2 (official train.py flags)."""
    from sg3keras.training.checkpoint import CheckpointError
    from sg3keras.training.distribute import PeerFailureError
    from sg3keras.training.loop import TrainingDivergedError, describe, train as run
    required = ["outdir", "cfg", "data", "gpus", "batch", "gamma"]
    missing = [f"--{k}" for k in required if kwargs[k] is None and not kwargs["resume"]]
    if missing:
        _fail(f"Missing option(s) {', '.join(missing)} (all required unless --resume)")
    kwargs["metrics"] = tuple(m for m in kwargs["metrics"].split(",") if m)
    opts = TrainOptions(**{k: v for k, v in kwargs.items() if v is not None})
    try:
        if dry_run:
            click.echo(json.dumps(describe(opts), indent=2, default=str))
            return
        run_dir = run(opts, log=click.echo)
    except (ValueError, FileNotFoundError, TrainingDivergedError, PeerFailureError,
            CheckpointError) as e:
        # Run-ending conditions the library explains itself: one line, no traceback.
        _fail(e)
    click.echo(f"Run directory: {run_dir}")


@main.command()
@click.option("--network", required=True, help=".keras file, official .pkl, or run dir")
@click.option("--metrics", "metric_names", default="fid50k_full", show_default=True)
@click.option("--data", type=click.Path(exists=True), default=None)
@click.option("--mirror", type=bool, default=False)
@click.option("--num-samples", type=click.IntRange(min=1), default=None)
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="Replicas to evaluate on: N GPUs, or N logical CPUs on a machine without GPUs")
@click.option("--detector-dir", type=click.Path(file_okay=False), default=None)
def metrics(network, metric_names, data, mirror, num_samples, gpus, detector_dir):
    """Evaluate metrics (official calc_metrics.py names); appends results as JSONL."""
    from sg3keras.metrics.evaluate import evaluate
    try:
        for line in evaluate(network, metric_names.split(","), data, mirror, num_samples, gpus,
                             detector_dir):
            click.echo(line)
    except (ValueError, FileNotFoundError) as e:
        _fail(e)


@main.command()
@click.option("--network", required=True, help=".keras file, official .pkl, or run dir")
@click.option("--outdir", default="savedmodels", show_default=True,
              type=click.Path(file_okay=False))
@click.option("--name", required=True, help="Model name (directory OUTDIR/NAME)")
@click.option("--version", type=click.IntRange(min=1), default=None, help="Default: next free")
@click.option("--format", "fmt", type=click.Choice(["savedmodel", "keras", "onnx"]),
              default="savedmodel", show_default=True)
def export(network, outdir, name, version, fmt):
    """Export a generator for serving (TF Serving SavedModel, .keras or ONNX)."""
    from sg3keras.export import export_network
    try:
        click.echo(export_network(network, outdir, name, version=version, fmt=fmt))
    except (ValueError, OSError, ImportError) as e:
        _fail(e)


@main.command()
@click.option("--outdir", default="out", show_default=True, type=click.Path(file_okay=False))
@click.option("--minutes", type=float, default=4.0, show_default=True)
def demo(outdir, minutes):
    """Train a tiny StyleGAN3-T on a bundled image set for a few minutes and show results."""
    from sg3keras.demo import run_demo
    run_demo(outdir, minutes=minutes, log=click.echo)


def _grid(s):
    try:
        w, h = (int(v) for v in s.lower().split("x"))
        return w, h
    except ValueError:
        raise click.BadParameter(f"expected WxH, e.g. 2x2, got {s!r}") from None


@main.command()
@click.option("--network", required=True, help=".keras file, official .pkl, or run dir")
@click.option("--seeds", default="0-3", show_default=True, help="Keyframe seeds, e.g. '0-31'")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="MP4 file")
@click.option("--grid", default="1x1", show_default=True, help="Grid of videos, WxH")
@click.option("--num-keyframes", type=int, default=None)
@click.option("--w-frames", type=int, default=120, show_default=True)
@click.option("--kind", default="cubic", show_default=True, help="scipy interp1d kind")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True)
@click.option("--shuffle-seed", type=int, default=None)
@click.option("--translate-path", type=click.Choice(["none", "line", "circle"]), default=None,
              help="Instead of a latent walk: move the input translation (StyleGAN3)")
@click.option("--rotate-path", type=click.Choice(["none", "spin", "rock"]), default=None,
              help="Instead of a latent walk: rotate the input (StyleGAN3)")
@click.option("--frames", type=int, default=120, show_default=True, help="Transform videos")
def video(network, seeds, output, grid, num_keyframes, w_frames, kind, truncation_psi,
          shuffle_seed, translate_path, rotate_path, frames):
    """Latent-interpolation video (official gen_video.py flags) or an input-transform video."""
    from sg3keras.inference.networks import load_network
    from sg3keras.tools.video import render_transform_video, render_video
    try:
        G, seeds = load_network(network), parse_range(seeds)
        if translate_path or rotate_path:
            render_transform_video(G, seeds[0], output, translate_path=translate_path or "none",
                                   rotate_path=rotate_path or "none", frames=frames,
                                   truncation_psi=truncation_psi)
        else:
            render_video(G, seeds, output, grid=_grid(grid), w_frames=w_frames,
                         num_keyframes=num_keyframes, kind=kind, truncation_psi=truncation_psi,
                         shuffle_seed=shuffle_seed)
    except (ValueError, ImportError) as e:
        _fail(e)
    click.echo(output)


@main.command()
@click.option("--network", required=True, help=".keras file, official .pkl, or run dir")
@click.option("--outdir", required=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Central latent")
@click.option("--seeds", default=None, help="Seeds of the interpolation strip, e.g. '0-7'")
@click.option("--num", type=int, default=64, show_default=True, help="Images averaged")
@click.option("--radius", type=float, default=0.2, show_default=True)
@click.option("--space", type=click.Choice(["z", "w"]), default="z", show_default=True)
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True)
def sticking(network, outdir, seed, seeds, num, radius, space, truncation_psi):
    """Texture-sticking pictures (paper Fig. 1): neighbourhood average and pixel strips."""
    from sg3keras.inference.networks import load_network
    from sg3keras.tools.sticking import write_sticking
    try:
        out = write_sticking(load_network(network), outdir, seed=seed,
                             seeds=parse_range(seeds, "--seeds") if seeds else None, num=num,
                             radius=radius, space=space, truncation_psi=truncation_psi)
    except ValueError as e:
        _fail(e)
    for p in out["paths"]:
        click.echo(p)


@main.command()
@click.option("--network", required=True, help=".keras file, official .pkl, or run dir")
@click.option("--outdir", required=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--translate-int", default="0.125,-0.0625", show_default=True)
@click.option("--translate-frac", default="0.0917,0.0339", show_default=True)
@click.option("--rotate", type=float, default=30.0, show_default=True, help="Degrees")
def eqmap(network, outdir, seed, translate_int, translate_frac, rotate):
    """Equivariance pictures: transformed input vs transformed output, error map and PSNR."""
    from sg3keras.inference.networks import load_network
    from sg3keras.tools.eqmap import equivariance_maps
    try:
        out = equivariance_maps(load_network(network), outdir, seed=seed,
                                translate_int=parse_vec2(translate_int, "--translate-int"),
                                translate_frac=parse_vec2(translate_frac, "--translate-frac"),
                                rotate_deg=rotate)
    except ValueError as e:
        _fail(e)
    for kind, psnr in out["psnr"].items():
        click.echo(f"{kind}: PSNR {psnr:.2f} dB")
    for p in out["paths"]:
        click.echo(p)


@main.command()
@click.option("--data", type=click.Path(exists=True), default=None, help="Dataset zip/folder")
@click.option("--network", default=None, help="Generator (.keras, .pkl or run dir)")
@click.option("--num", type=int, default=None, help="Images to use (required for --network)")
@click.option("--outdir", required=True, type=click.Path(file_okay=False))
@click.option("--name", default="spectrum", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--beta", type=float, default=8, show_default=True)
@click.option("--interp", type=int, default=4, show_default=True)
def spectra(data, network, num, outdir, name, seed, beta, interp):
    """Average power spectrum of a dataset or generator (official avg_spectra.py)."""
    from sg3keras.tools.spectra import write_spectra
    if bool(data) == bool(network):
        _fail("give exactly one of --data or --network")
    try:
        if network:
            from sg3keras.inference.networks import load_network
            source = load_network(network)
            if num is None:
                _fail("--num is required with --network")
        else:
            source = data
        out = write_spectra(source, outdir, name=name, num=num, seed=seed, beta=beta,
                            interp=interp)
    except ValueError as e:
        _fail(e)
    for p in out["paths"]:
        click.echo(p)


@main.command()
@click.option("--cfg", type=click.Choice(sorted(n for n, p in PRESETS.items()
                                                  if p.generator.family == "stylegan3")),
              default=_TRAIN("cfg"), show_default=True)
@click.option("--resolution", type=int, default=1024, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="PNG plot")
def layers(cfg, resolution, output):
    """The layer schedule of a config: a table, and a plot like the paper's Figure 4."""
    from sg3keras.tools.layers_plot import plot_layer_schedule, resolve_config, schedule_table
    try:
        config = resolve_config(cfg, resolution)
        click.echo(schedule_table(config))
        if output:
            click.echo(plot_layer_schedule(config, output))
    except (ValueError, ImportError) as e:
        _fail(e)


if __name__ == "__main__":
    sys.exit(main())
