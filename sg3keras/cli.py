"""``sg3keras`` command line: each command parses its flags and calls one library function.

Flag names follow the official tools (gen_images.py, train.py, dataset_tool.py, calc_metrics.py).
Heavy imports (TensorFlow, Keras) happen inside the commands so that ``--help`` is instant.
"""

import contextlib
import importlib.util
import json
import os
import re
import sys
import tempfile

import click

# Quiet TensorFlow's C++ logging unless the user asked for it: their own TF_CPP_MIN_LOG_LEVEL
# (0 or 1 also shows the start-up lines), or --debug (level 1 and the start-up lines). Level 3
# also hides runtime notices TensorFlow logs as errors (e.g. oneDNN's "DT_INT64 only on
# platforms with AVX-512"); real failures still raise, and are reported as one line.
_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sg3keras.config import PRESETS, ProjectConfig, TrainOptions

# Commands that never import TensorFlow (no start-up import for them).
_NO_TENSORFLOW = {"dataset", "layers"}
# Start-up lines TensorFlow's C++ code writes to stderr before its log level is applied:
# absl's "not initialised" warning and I/W-level records (``I0000 00:00:...``) plus the
# continuation line of the CPU-feature notice.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|"
                       r"[IW]\d{4} \d\d:\d\d:\d\d|To enable the following instructions)")


def _one_line(msg):
    """A message as one line: its non-blank lines joined with '; '."""
    return "; ".join(line.strip() for line in str(msg).splitlines() if line.strip())


def _fail(e):
    """Stop with ``e`` as one ``Error:`` line; with --debug an exception keeps its traceback."""
    if isinstance(e, BaseException) and _debug(click.get_current_context(silent=True)):
        raise e
    raise click.ClickException(_one_line(e))


def _debug(ctx=None):
    """Whether tracebacks (and TensorFlow's start-up log) were asked for: ``--debug`` or
    ``SG3KERAS_DEBUG=1``."""
    root = ctx.find_root() if ctx is not None else None
    if root is not None and root.params.get("debug"):
        return True
    return os.environ.get("SG3KERAS_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _describe_error(e):
    """One line for an exception no command turned into a message itself."""
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    if isinstance(e, (ValueError, OSError)):
        return _one_line(e)
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    first = re.sub(r"^\{\{[^}]*\}\}\s*", "", first)     # TensorFlow's "{{function_node ...}}"
    wrapped = re.match(r"(DatasetError|CorruptImageError|ImageModeError|ValueError): (.+)", first)
    if wrapped:         # one of our errors, raised inside a tf.data / tf.numpy_function step
        return wrapped.group(2)
    return (f"{type(e).__name__}: {first} (unexpected; run with --debug or SG3KERAS_DEBUG=1 "
            "for the traceback)")


class _UsageError(click.UsageError):
    """A click usage error shown as one line (click's own shows usage and a hint as well)."""

    def __init__(self, e):
        super().__init__(_one_line(e.format_message()), e.ctx)

    def show(self, file=None):
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{hint}", file=file or sys.stderr)


@contextlib.contextmanager
def _errors_as_one_line(ctx=None):
    """Usage errors and unexpected exceptions become one ``Error: ...`` line (exit 2 / 1);
    with ``--debug`` an unexpected exception keeps its traceback."""
    try:
        yield
    except (_UsageError, click.exceptions.NoArgsIsHelpError):     # the latter shows the help
        raise
    except click.UsageError as e:
        raise _UsageError(e) from None
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as e:
        if _debug(ctx):
            raise
        raise click.ClickException(_describe_error(e)) from None


@contextlib.contextmanager
def _tensorflow_noise_filtered():
    """Run the block with file descriptor 2 captured; then write back every line except
    TensorFlow's start-up noise (:data:`_TF_NOISE`)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines(True)
                    if not _TF_NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _import_tensorflow(ctx):
    """Import TensorFlow once, hiding its start-up log lines unless they were asked for."""
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    if _debug(ctx) and not _TF_LOG_LEVEL:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"
    quiet = not (_TF_LOG_LEVEL in ("0", "1") or _debug(ctx))
    with _tensorflow_noise_filtered() if quiet else contextlib.nullcontext():
        import tensorflow  # noqa: F401


class _Command(click.Command):
    def invoke(self, ctx):
        if self.name not in _NO_TENSORFLOW:
            _import_tensorflow(ctx)
        return super().invoke(ctx)


class _Group(click.Group):
    """The ``sg3keras`` group: every error is one line on stderr, never a traceback (unless
    ``--debug``); TensorFlow's start-up log lines are hidden."""

    command_class = _Command

    def make_context(self, *args, **kwargs):
        with _errors_as_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _errors_as_one_line(ctx):
            return super().invoke(ctx)


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


_NETWORK_HELP = (".keras file, official .pkl, training run dir, pretrained name (`sg3keras "
                 "pretrained`) or http(s) URL")


def _given(ctx):
    """Names of the parameters the user typed (or set through the environment)."""
    from click.core import ParameterSource
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                  ParameterSource.ENVIRONMENT)}


def _TRAIN(name):
    """Default of a ``train`` flag: the :class:`TrainOptions` field, itself from the presets."""
    return TrainOptions.__dataclass_fields__[name].default


def _check_output(path, flag):
    """Fail before any work unless ``path`` can be created: its nearest existing ancestor must
    be a directory (whether an existing ``path`` may be replaced is the command's rule)."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        _fail(f"{flag} {path}: {parent} is a file, expected a directory")


@click.group(cls=_Group, context_settings={"show_default": True})
@click.version_option(package_name="sg3keras")
@click.option("--debug", is_flag=True, envvar="SG3KERAS_DEBUG",
              help="Show the traceback of an error and TensorFlow's start-up log "
                   "(also: SG3KERAS_DEBUG=1)")
def main(debug):
    """StyleGAN3 for TensorFlow / Keras: train, generate, convert, measure, export.

    Every error is one line on stderr naming the file, flag or value and what was expected
    (exit status 1; 2 for a malformed command line).
    """
    import logging
    # tf.function retracing notices are expected here: every distinct layer geometry compiles
    # its own XLA kernels once.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@main.command()
@click.option("--network", "network", required=True, help=_NETWORK_HELP)
@click.option("--seeds", default=None, help="List of seeds, e.g. '0,1,4-6' [required unless "
              "--projected-w]")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True,
              help="Truncation psi")
@click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
              help="Class label (required for conditional networks)")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const",
              help="Noise inputs of StyleGAN2 networks (StyleGAN3 has none)")
@click.option("--translate", default="0,0", show_default=True, help="Translate XY, e.g. '0.3,1'")
@click.option("--rotate", type=float, default=0.0, show_default=True, help="Rotation in degrees")
@click.option("--outdir", required=True, type=click.Path(file_okay=False),
              help="Output folder (seedNNNN.png files of the same name are replaced, as "
                   "gen_images.py does)")
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
        _check_output(outdir, "--outdir")
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
@click.option("--network", required=True, help=_NETWORK_HELP)
@click.option("--target", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Target image file (center-cropped and resized to the network's resolution)")
@click.option("--outdir", required=True, type=click.Path(file_okay=False),
              help="Output folder (target.png, proj.png, projected_w.npz, proj.mp4 are replaced)")
@click.option("--num-steps", type=click.IntRange(min=1), default=ProjectConfig.num_steps,
              show_default=True, help="Optimization steps")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the w statistics' latents and of the noise draws")
@click.option("--save-video/--no-save-video", default=True, show_default=True,
              help="Write proj.mp4 (target beside each step's image)")
@click.option("--loss", type=click.Choice(["lpips", "mse"]), default="lpips", show_default=True,
              help="lpips: NVIDIA's VGG16 LPIPS; mse: pixel distance (offline)")
@click.option("--vgg16", default=None, help="Path or URL of NVIDIA's vgg16.pkl [default: "
              "detector search path, download cache, then NVIDIA's URL]")
@click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
              help="Class label (required for conditional networks)")
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
@click.argument("src")
@click.argument("dest", type=click.Path())
@click.option("--network", "which", type=click.Choice(["G_ema", "G", "D"]), default="G_ema",
              help="Which network of the pickle to convert")
@click.option("--all", "all_", is_flag=True, help="Write DEST/<G|D|G_ema>.keras for each network")
@click.option("--force", is_flag=True, help="Replace existing .keras files")
def convert(src, dest, which, all_, force):
    """Convert an official NVIDIA pickle into .keras file(s), without executing its code.

    SRC is the .pkl (a file, a pretrained name or an http(s) URL); DEST the .keras file (with
    --all: a folder).
    """
    from sg3keras.convert.official_pickle import convert_pickle
    from sg3keras.inference.pretrained import resolve_network_file
    _check_output(dest, "DEST")
    try:
        src = resolve_network_file(src, flag="SRC")
        for p in convert_pickle(src, dest, networks=("G", "D", "G_ema") if all_ else (which,),
                                force=force):
            click.echo(p)
    except ValueError as e:
        _fail(e)


@main.command()
@click.argument("names", nargs=-1)
def pretrained(names):
    """List NVIDIA's pretrained networks (usable by name wherever --network or --resume takes a
    network), or download NAMES into the cache ($SG3KERAS_CACHE, default ~/.cache/sg3keras)."""
    from sg3keras.inference.pretrained import list_pretrained, resolve_network_file
    if not names:
        for name, cfg, res, url, path in list_pretrained():
            click.echo(f"{name:32s} {cfg:12s} {res:5d}  {'cached' if path else url}")
        return
    try:
        for name in names:
            if name not in {row[0] for row in list_pretrained()}:
                raise ValueError(f"NAMES: {name!r} is not a pretrained network name (run "
                                 "`sg3keras pretrained` for the list)")
            click.echo(resolve_network_file(name, flag="NAMES"))
    except ValueError as e:
        _fail(e)


@main.command()
@click.option("--source", required=True, type=click.Path(exists=True),
              help="Folder (searched recursively) or .zip of images, optionally with a "
                   "dataset.json of labels")
@click.option("--dest", required=True, type=click.Path(),
              help="Output .zip, or a folder that is absent or empty")
@click.option("--resolution", type=click.IntRange(min=1), default=None,
              help="Output resolution R (R x R, a power of two) [default: the images' own size]")
@click.option("--transform", type=click.Choice(["center-crop", "center-crop-wide"]), default=None,
              help="Crop before resizing (needs --resolution) [default: resize only]")
@click.option("--max-images", type=click.IntRange(min=1), default=None,
              help="Convert only the first N images [default: all]")
@click.option("--skip-bad", is_flag=True,
              help="Skip (and name) unreadable images, images not 'L'/'RGB', and images whose "
                   "size or channel count differs from the first")
@click.option("--force", is_flag=True, help="Replace an existing --dest .zip")
def dataset(source, dest, resolution, transform, max_images, skip_bad, force):
    """Write an official-format dataset (zip of PNGs + dataset.json).

    Nothing is written if an image fails (unless --skip-bad): errors name the file.
    """
    from sg3keras.data.dataset_tool import convert_dataset
    try:
        summary = convert_dataset(source, dest, resolution=resolution, transform=transform,
                                  max_images=max_images, skip_bad=skip_bad, force=force)
    except ValueError as e:
        _fail(e)
    for s in summary["skipped"]:
        click.echo(f"skipped {s['file']}: {s['reason']}", err=True)
    click.echo(json.dumps(summary, indent=2, default=str))


@main.command()
@click.option("--outdir", type=click.Path(file_okay=False), help="[required] Where runs go")
@click.option("--cfg", type=click.Choice(sorted(PRESETS)), help="[required] Base configuration")
@click.option("--data", type=click.Path(exists=True), help="[required] Dataset zip or folder")
@click.option("--gpus", type=click.IntRange(min=1), help="[required] Number of GPUs/replicas")
@click.option("--batch", type=click.IntRange(min=1), help="[required] Total batch size")
@click.option("--gamma", type=click.FloatRange(min=0), help="[required] R1 weight")
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
@click.option("--seed", type=click.IntRange(min=0), default=_TRAIN("seed"), show_default=True,
              help="Random seed")
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
    from sg3keras.training.checkpoint import CheckpointError
    from sg3keras.training.distribute import PeerFailureError
    from sg3keras.training.loop import TrainingDivergedError, describe, is_run_dir, train as run
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
            _fail(f"--outdir {kwargs['outdir']}: a file, expected a directory for the runs")
        _check_output(kwargs["outdir"], "--outdir")
    if missing:
        _fail(f"Missing option(s) {', '.join(missing)}" + (
            f" (required to fine-tune --resume {resume})" if resume else
            " (all required unless --resume RUN_DIR)"))
    kwargs["metrics"] = tuple(m.strip() for m in kwargs["metrics"].split(",") if m.strip())
    opts = TrainOptions(**{k: v for k, v in kwargs.items() if v is not None})
    try:
        if dry_run:
            click.echo(json.dumps(describe(opts, given=given), indent=2, default=str))
            return
        run_dir = run(opts, log=click.echo, given=given)
    except (ValueError, OSError, TrainingDivergedError, PeerFailureError,
            CheckpointError) as e:
        # Run-ending conditions the library explains itself: one line, no traceback.
        _fail(e)
    click.echo(f"Run directory: {run_dir}")


@main.command()
@click.option("--network", required=True, help=_NETWORK_HELP)
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
    try:
        for line in evaluate(network, metric_names.split(","), data, mirror, num_samples, gpus,
                             detector_dir, cpu_replicas=cpu_replicas):
            click.echo(line)
    except (ValueError, FileNotFoundError) as e:
        _fail(e)


@main.command()
@click.option("--network", required=True, help=_NETWORK_HELP)
@click.option("--outdir", default="savedmodels", show_default=True,
              type=click.Path(file_okay=False), help="Base folder of the exported models")
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
    _check_output(outdir, "--outdir")
    try:
        click.echo(export_network(network, outdir, name, version=version, fmt=fmt, force=force,
                                  xla=xla))
    except (ValueError, OSError, ImportError) as e:
        _fail(e)


@main.command()
@click.option("--outdir", default="out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo dataset and runs (an existing demo dataset is reused)")
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
    _check_output(outdir, "--outdir")
    run_demo(outdir, minutes=minutes, kimg=kimg, log=click.echo)


def _grid(s):
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        w = h = 0
    if w < 1 or h < 1:
        raise click.BadParameter(f"expected WxH with W, H >= 1, e.g. 2x2, got {s!r}",
                                 param_hint="'--grid'")
    return w, h


@main.command()
@click.option("--network", required=True, help=_NETWORK_HELP)
@click.option("--seeds", default="0-3", show_default=True, help="Keyframe seeds, e.g. '0-31'")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="MP4 file (replaced if it exists, as gen_video.py does)")
@click.option("--grid", default="1x1", show_default=True, help="Grid of videos, WxH")
@click.option("--num-keyframes", type=click.IntRange(min=1), default=None,
              help="Keyframes per grid cell [default: the seeds divided among the cells]")
@click.option("--w-frames", type=click.IntRange(min=1), default=120, show_default=True,
              help="Frames between keyframes")
@click.option("--kind", type=click.Choice(["linear", "nearest", "nearest-up", "zero", "slinear",
                                           "quadratic", "cubic", "previous", "next"]),
              default="cubic",
              show_default=True, help="Interpolation kind (scipy interp1d)")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True,
              help="Truncation psi")
@click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
              help="Class label (required for conditional networks)")
@click.option("--shuffle-seed", type=int, default=None,
              help="Shuffle the keyframe seeds with this seed [default: no shuffle]")
@click.option("--translate-path", type=click.Choice(["none", "line", "circle"]), default=None,
              help="Instead of a latent walk: move the input translation (StyleGAN3)")
@click.option("--rotate-path", type=click.Choice(["none", "spin", "rock"]), default=None,
              help="Instead of a latent walk: rotate the input (StyleGAN3)")
@click.option("--frames", type=click.IntRange(min=1), default=120, show_default=True,
              help="Frames of a --translate-path / --rotate-path video")
def video(network, seeds, output, grid, num_keyframes, w_frames, kind, truncation_psi,
          class_idx, shuffle_seed, translate_path, rotate_path, frames):
    """Latent-interpolation video (official gen_video.py flags) or an input-transform video."""
    from sg3keras.inference.generate import check_class
    from sg3keras.inference.networks import load_network
    from sg3keras.tools.video import render_transform_video, render_video
    try:
        seeds, grid = parse_range(seeds), _grid(grid)
        _check_output(output, "--output")
        G = load_network(network)
        class_idx = check_class(G, class_idx)
        if translate_path or rotate_path:
            render_transform_video(G, seeds[0], output, translate_path=translate_path or "none",
                                   rotate_path=rotate_path or "none", frames=frames,
                                   truncation_psi=truncation_psi, class_idx=class_idx)
        else:
            render_video(G, seeds, output, grid=grid, w_frames=w_frames,
                         num_keyframes=num_keyframes, kind=kind, truncation_psi=truncation_psi,
                         shuffle_seed=shuffle_seed, class_idx=class_idx)
    except (ValueError, ImportError, RuntimeError) as e:
        _fail(e)
    click.echo(output)


@main.command()
@click.option("--network", required=True, help=_NETWORK_HELP)
@click.option("--outdir", required=True, type=click.Path(file_okay=False),
              help="Output folder (sticking-*.png of the same name are replaced)")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Central latent")
@click.option("--seeds", default=None,
              help="Seeds of the interpolation strip, e.g. '0-7' [default: SEED..SEED+2]")
@click.option("--num", type=click.IntRange(min=1), default=64, show_default=True,
              help="Images averaged")
@click.option("--radius", type=click.FloatRange(min=0), default=0.2, show_default=True,
              help="Size of the latent neighbourhood")
@click.option("--space", type=click.Choice(["z", "w"]), default="z", show_default=True,
              help="Latent space of the neighbourhood")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True,
              help="Truncation psi")
@click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
              help="Class label (required for conditional networks)")
def sticking(network, outdir, seed, seeds, num, radius, space, truncation_psi, class_idx):
    """Texture-sticking pictures (paper Figure 1): neighbourhood average and pixel strips."""
    from sg3keras.inference.generate import check_class
    from sg3keras.inference.networks import load_network
    from sg3keras.tools.sticking import write_sticking
    try:
        seeds = parse_range(seeds, "--seeds") if seeds else None
        if seeds is not None and len(seeds) < 2:
            raise ValueError(f"--seeds {','.join(map(str, seeds))}: expected at least two seeds "
                             "for the interpolation strip")
        _check_output(outdir, "--outdir")
        G = load_network(network)
        out = write_sticking(G, outdir, seed=seed, seeds=seeds, num=num, radius=radius,
                             space=space, truncation_psi=truncation_psi,
                             class_idx=check_class(G, class_idx))
    except ValueError as e:
        _fail(e)
    for p in out["paths"]:
        click.echo(p)


@main.command()
@click.option("--network", required=True, help=_NETWORK_HELP)
@click.option("--outdir", required=True, type=click.Path(file_okay=False),
              help="Output folder (eqmap*.png of the same name are replaced)")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Latent seed")
@click.option("--translate-int", default="0.125,-0.0625", show_default=True,
              help="Integer translation X,Y in image widths (rounded to whole pixels)")
@click.option("--translate-frac", default="0.0917,0.0339", show_default=True,
              help="Fractional translation X,Y in image widths")
@click.option("--rotate", type=float, default=30.0, show_default=True, help="Degrees")
@click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
              help="Class label (required for conditional networks)")
def eqmap(network, outdir, seed, translate_int, translate_frac, rotate, class_idx):
    """Equivariance pictures: transformed input vs transformed output, error map and PSNR."""
    from sg3keras.inference.generate import check_class
    from sg3keras.inference.networks import load_network
    from sg3keras.tools.eqmap import equivariance_maps
    try:
        translate_int = parse_vec2(translate_int, "--translate-int")
        translate_frac = parse_vec2(translate_frac, "--translate-frac")
        _check_output(outdir, "--outdir")
        G = load_network(network)
        out = equivariance_maps(G, outdir, seed=seed, translate_int=translate_int,
                                translate_frac=translate_frac, rotate_deg=rotate,
                                class_idx=check_class(G, class_idx))
    except ValueError as e:
        _fail(e)
    for kind, psnr in out["psnr"].items():
        click.echo(f"{kind}: PSNR {psnr:.2f} dB")
    for p in out["paths"]:
        click.echo(p)


@main.command()
@click.option("--data", type=click.Path(exists=True), default=None, help="Dataset zip/folder")
@click.option("--network", default=None, help=_NETWORK_HELP)
@click.option("--num", type=click.IntRange(min=1), default=None,
              help="Images to use (required for --network) [default: the whole dataset]")
@click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
              help="Class of a conditional --network [default: a random class per image]")
@click.option("--outdir", required=True, type=click.Path(file_okay=False),
              help="Output folder (files of the same --name are replaced, as avg_spectra.py "
                   "does)")
@click.option("--name", default="spectrum", show_default=True, help="Base name of the outputs")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="First latent seed (--network)")
@click.option("--beta", type=click.FloatRange(min=0), default=8, show_default=True,
              help="Kaiser window shape")
@click.option("--interp", type=click.IntRange(min=1), default=4, show_default=True,
              help="Frequency-domain interpolation (zero-padding factor)")
def spectra(data, network, num, class_idx, outdir, name, seed, beta, interp):
    """Average power spectrum of a dataset or generator (official avg_spectra.py)."""
    from sg3keras.tools.spectra import write_spectra
    if bool(data) == bool(network):
        _fail("give exactly one of --data or --network")
    if network and num is None:
        _fail("--num is required with --network (the number of images to generate)")
    if class_idx is not None and not network:
        _fail("--class applies to --network only")
    _check_output(outdir, "--outdir")
    try:
        if network:
            from sg3keras.inference.generate import check_class
            from sg3keras.inference.networks import load_network
            source = load_network(network)
            if class_idx is not None:
                class_idx = check_class(source, class_idx)
        else:
            source = data
        out = write_spectra(source, outdir, name=name, num=num, seed=seed, beta=beta,
                            interp=interp, class_idx=class_idx)
    except (ValueError, RuntimeError) as e:
        _fail(e)
    for p in out["paths"]:
        click.echo(p)


@main.command()
@click.option("--cfg", type=click.Choice(sorted(n for n, p in PRESETS.items()
                                                  if p.generator.family == "stylegan3")),
              default=_TRAIN("cfg"), show_default=True, help="Configuration")
@click.option("--resolution", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Output resolution (a power of two)")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="PNG plot (replaced if it exists) [default: table only]")
def layers(cfg, resolution, output):
    """The layer schedule of a config: a table, and a plot like the paper's Figure 4."""
    from sg3keras.tools.layers_plot import plot_layer_schedule, resolve_config, schedule_table
    if output:
        _check_output(output, "--output")
    try:
        config = resolve_config(cfg, resolution)
        click.echo(schedule_table(config))
        if output:
            click.echo(plot_layer_schedule(config, output))
    except (ValueError, ImportError, RuntimeError) as e:
        _fail(e)


if __name__ == "__main__":
    sys.exit(main())
