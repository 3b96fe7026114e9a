"""``train(options)``: dataset -> G/D/G_ema -> ``fit`` in ticks, with checkpoints and snapshots.

One Keras epoch is one official *tick* (``--tick`` kimg). What happens at the end of every
tick (progress line, ``stats.jsonl``, TensorBoard, NaN guard, checkpoint, and every ``--snap``
ticks the snapshot, grid, metrics and curves) is :class:`~sg3keras.training.ticks.TickCallback`;
everything the run prints also goes to ``log.txt`` (:mod:`sg3keras.runs.logfile`).

Resuming (``resume=RUN_DIR``) restores every variable and continues at the same step, kimg,
augmentation probability, blur/EMA schedules and data position; nothing is reset (unlike the
official code, stylegan3#538 / stylegan2-ada#106).
"""

import contextlib
import dataclasses
import json
import math
import os
import re

import keras
import numpy as np

from sg3keras.config import TrainOptions, resolve_preset
from sg3keras.training import run_status
from sg3keras.training.ticks import TickCallback, TrainingDivergedError  # noqa: F401
from sg3keras.utils import atomic_write_json, make_grid, save_png

__all__ = ["TrainOptions", "train", "describe", "resolve_options", "TrainingDivergedError"]


def resolve_options(opts: TrainOptions, dataset=None):
    """Everything the run needs as plain data: preset configs + derived schedule numbers."""
    replicas = opts.gpus * opts.workers
    if opts.batch % replicas:
        raise ValueError(f"--batch={opts.batch} must be a multiple of --gpus x --workers "
                         f"({replicas})")
    batch_gpu = opts.batch // replicas if opts.batch_gpu is None else opts.batch_gpu
    if batch_gpu < 1 or opts.batch % (replicas * batch_gpu):
        raise ValueError(f"--batch-gpu={batch_gpu}: --batch={opts.batch} must be a multiple of "
                         f"--gpus x --workers x --batch-gpu = {opts.gpus} x {opts.workers} x "
                         f"{batch_gpu} (--batch-gpu must divide the per-replica batch "
                         f"{opts.batch // replicas})")
    if opts.batch_gpu is not None and batch_gpu < opts.mbstd_group:
        raise ValueError(f"--batch-gpu={batch_gpu} cannot be smaller than --mbstd-group="
                         f"{opts.mbstd_group} (D's minibatch-stddev groups samples of one round)")
    res = dataset.resolution if dataset is not None else None
    over = {}
    if opts.map_depth is not None:
        over["mapping_layers"] = opts.map_depth
    if dataset is not None:
        over["img_channels"] = dataset.num_channels
        over["c_dim"] = dataset.label_dim if opts.cond else 0
    if opts.fp32:
        over["conv_clamp"] = None      # train.py --fp32: num_fp16_res=0, conv_clamp=None.
        over["num_fp16_res"] = 0
    preset = resolve_preset(opts.cfg, img_resolution=res, batch=opts.batch, cbase=opts.cbase,
                            cmax=opts.cmax, **over)
    d = dataclasses.replace(preset.discriminator, mbstd_group_size=opts.mbstd_group,
                            conv_clamp=preset.generator.conv_clamp,
                            num_fp16_res=preset.generator.num_fp16_res)
    loss = preset.loss
    if opts.gamma is not None:
        loss = dataclasses.replace(loss, r1_gamma=float(opts.gamma))
    train = dataclasses.replace(
        preset.train, batch=opts.batch, batch_gpu=batch_gpu, d_lr=opts.dlr, aug=opts.aug,
        augpipe=opts.augpipe, fixed_augment_p=opts.p,
        augment_p=opts.p if opts.aug == "fixed" else preset.train.augment_p,
        ada_target=opts.target, ada_kimg=opts.ada_kimg, kimg=opts.kimg, kimg_per_tick=opts.tick,
        snapshot_ticks=opts.snap, mirror=opts.mirror, seed=opts.seed)
    if opts.glr is not None:
        train = dataclasses.replace(train, g_lr=opts.glr)
    steps_per_tick = max(1, int(round(opts.tick * 1000 / opts.batch)))
    total_steps = max(1, int(math.ceil(opts.kimg * 1000 / opts.batch)))
    return dict(generator=preset.generator, discriminator=d, loss=loss, train=train,
                steps_per_tick=steps_per_tick, total_steps=total_steps,
                num_ticks=int(math.ceil(total_steps / steps_per_tick)))


def _run_dir(opts, dataset_name, cfg_name):
    os.makedirs(opts.outdir, exist_ok=True)
    ids = [int(m.group(1)) for m in (re.match(r"^(\d+)-", d) for d in os.listdir(opts.outdir))
           if m]
    run_id = max(ids, default=-1) + 1
    gamma = "auto" if opts.gamma is None else f"{opts.gamma:g}"
    desc = (f"{cfg_name}-{dataset_name}-gpus{opts.gpus * opts.workers}-batch{opts.batch}"
            f"-gamma{gamma}")
    if opts.desc:
        desc += f"-{opts.desc}"
    path = os.path.join(opts.outdir, f"{run_id:05d}-{desc}")
    os.makedirs(path)
    return path


def _options_to_json(opts):
    d = dataclasses.asdict(opts)
    d["metrics"] = list(opts.metrics)
    return d


def _options_from_json(d):
    d = dict(d)
    d["metrics"] = tuple(d.get("metrics", ()))
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in d.items() if k in fields})


def _write_options(run_dir, opts, cfg=None):
    """``training_options.json`` with absolute paths (so the run resumes from any directory);
    ``resume`` is the network the run was fine-tuned from (kept when the run is continued). With
    the resolved ``cfg``, the official keys too (:mod:`.official_options`; ours win a clash)."""
    resume = _stored_options(opts.resume).resume if is_run_dir(opts.resume) else opts.resume
    ours = _options_to_json(
        dataclasses.replace(opts, data=os.path.abspath(os.path.expanduser(opts.data)),
                            outdir=os.path.abspath(opts.outdir), resume=resume))
    if cfg is not None:
        from sg3keras.training.official_options import official_options
        ours = {**official_options(opts, cfg, run_dir), **ours}
    atomic_write_json(os.path.join(run_dir, "training_options.json"), ours)


def given_options(opts):
    """Names of the options that differ from the :class:`TrainOptions` defaults (what a library
    caller set; the CLI passes the flags actually typed instead)."""
    return {f.name for f in dataclasses.fields(TrainOptions)
            if getattr(opts, f.name) != f.default}


def is_run_dir(path):
    """True for a training run directory (``--resume`` continues it exactly)."""
    return bool(path) and os.path.isfile(os.path.join(path, "training_options.json"))


# Options that may change when a run is continued; every other one is the run's own.
CONTINUE_OPTIONS = ("resume", "kimg", "data", "gpus", "workers", "cpu_replicas", "fused_ops",
                    "deterministic", "metrics", "metrics_num_samples", "snap")
RUN_INFO = "run_info.json"


def _stored_options(run_dir):
    path = os.path.join(run_dir, "training_options.json")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        d = json.loads(raw.decode("utf-8"))
        if not isinstance(d, dict):
            raise ValueError(f"a JSON {type(d).__name__}, not an object")
        return _options_from_json(d)
    except (ValueError, TypeError) as e:        # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is damaged ({type(e).__name__}: {e}); it holds the run's "
                         "options: restore it from a copy (log.txt begins with them)") from e


def _continuation(opts, given):
    """The stored options of ``opts.resume`` with what the user may change (the same command
    line again is no change: paths are compared resolved, values by value)."""
    from sg3keras.training.finetune import same_option
    run_dir = opts.resume
    stored = _stored_options(run_dir)
    changed = sorted(k for k in given - set(CONTINUE_OPTIONS)
                     if not same_option(k, opts, stored))
    if changed:
        flags = ", ".join(f"--{k.replace('_', '-')}={getattr(opts, k)} (the run's: "
                          f"{getattr(stored, k)})" for k in changed)
        allowed = ", ".join("--" + c.replace("_", "-") for c in CONTINUE_OPTIONS[1:])
        raise ValueError(f"--resume {run_dir} continues the run with its own options; {flags} "
                         f"cannot change (only {allowed} may be given); to start a new run from "
                         f"it, fine-tune one of its network-snapshot-*.keras files")
    keep = {k: getattr(opts, k) for k in CONTINUE_OPTIONS[1:] if k in given}
    data_moved = "data" in keep and not same_option("data", opts, stored)
    opts = dataclasses.replace(stored, **keep, resume=run_dir)
    if not data_moved and not os.path.exists(os.path.expanduser(opts.data)):
        raise ValueError(f"--resume {run_dir}: the run's dataset {opts.data} does not exist (from "
                         f"{os.getcwd()}); give its new place with --data")
    return opts, data_moved


def _check_same_data(run_dir, dataset, path):
    """A moved dataset must be the run's: same size, resolution, channels and labels."""
    info_path = os.path.join(run_dir, RUN_INFO)
    if not os.path.exists(info_path):
        return
    with open(info_path) as f:
        want = json.load(f).get("dataset", {})
    have = _dataset_summary(dataset)
    diff = [f"{k} {have[k]} (the run's: {want[k]})" for k in ("size", "resolution", "channels",
                                                               "label_dim", "labels_sha256")
            if k in want and want[k] != have[k]]
    if diff:
        raise ValueError(f"--data {path} is not the dataset of run {run_dir}: " + ", ".join(diff))


def _dataset_summary(dataset):
    import hashlib
    labels = dataset.get_labels(np.arange(len(dataset))) if dataset.has_labels else None
    return dict(path=os.path.abspath(os.path.expanduser(dataset.path)), name=dataset.name,
                size=len(dataset), resolution=dataset.resolution, channels=dataset.num_channels,
                label_dim=dataset.label_dim if dataset.has_labels else 0,
                labels_sha256=None if labels is None else
                hashlib.sha256(np.ascontiguousarray(labels, np.float32).tobytes()).hexdigest())


def _finished(run_dir, opts):
    """``(step, total_steps)`` when the run's newest checkpoint is at or past its length."""
    from sg3keras.training.checkpoint import CheckpointError, read_latest
    try:
        info = read_latest(run_dir)
    except CheckpointError:     # reported when the run resumes
        return None
    if info is None:
        return None
    step = int(info["step"])
    total = max(1, int(math.ceil(opts.kimg * 1000 / opts.batch)))
    return (step, total) if step >= total else None


def validate_metrics(names):
    """Metric names of ``--metrics`` (``none`` = no metrics), checked before anything runs."""
    from sg3keras.metrics.registry import is_valid_metric, list_metrics
    names = tuple(n for n in names if n and n != "none")
    bad = [n for n in names if not is_valid_metric(n)]
    if bad:
        raise ValueError(f"--metrics: unknown or unsupported metric(s) {bad}; expected 'none' or "
                         f"some of {list_metrics(supported_only=True)}")
    return names


def _plan(opts, given, log=print):
    """Options checks that need no TensorFlow: ``(opts, continuing, data_moved, finished)``."""
    opts = dataclasses.replace(opts, metrics=validate_metrics(opts.metrics))
    if not is_run_dir(opts.resume):
        if opts.resume and not opts.data:
            raise ValueError(f"--resume {opts.resume} starts a new run from that network: "
                             "--data is required (and --outdir, --gpus, --batch, --gamma)")
        return opts, False, False, None
    opts, data_moved = _continuation(opts, given)
    return opts, True, data_moved, _finished(opts.resume, opts)


def _prepare(opts, given, init, continuing, data_moved, verify=False):
    """``(opts, dataset, resolved cfg, cfg name)``: the dataset checked against the options (and
    against the fine-tuned network), the architecture from the preset, from ``X``, or from the
    record of a fine-tuned run being continued."""
    from sg3keras.data import ImageDataset
    from sg3keras.training import finetune
    run_info = None
    if continuing and os.path.exists(os.path.join(opts.resume, RUN_INFO)):
        with open(os.path.join(opts.resume, RUN_INFO)) as f:
            run_info = json.load(f).get("init")
    if init is not None:
        dataset = ImageDataset(opts.data, use_labels=opts.cond or init["G_ema"].config.c_dim > 0,
                               verify=verify)
        finetune.check_compatible(init, opts, given, dataset)
        g_cfg = init["G_ema"].config
        opts = dataclasses.replace(opts, **finetune.recorded_options(init),
                                   cond=g_cfg.c_dim > 0 or opts.cond,
                                   ada_kimg=opts.ada_kimg if "ada_kimg" in given
                                   else finetune.FINETUNE_OVERRIDES["ada_kimg"])
    else:
        dataset = ImageDataset(opts.data, use_labels=opts.cond, verify=verify)
    if data_moved:
        _check_same_data(opts.resume, dataset, opts.data)
    if init is None and opts.cond and not dataset.has_labels:
        raise ValueError(f"--cond 1: {opts.data} has no labels (dataset.json missing or "
                         "\"labels\": null); expected a labelled dataset, or --cond 0")
    cfg = resolve_options(opts, dataset)
    if init is None and run_info is None:
        return opts, dataset, cfg, opts.cfg
    if init is not None:
        g, d = finetune.init_architecture(init, cfg, opts)
    else:
        from sg3keras.config import DiscriminatorConfig, GeneratorConfig
        g = GeneratorConfig.from_dict(run_info["generator"])
        d = DiscriminatorConfig.from_dict(run_info["discriminator"])
    cfg = dict(cfg, generator=g, discriminator=d,
               loss=dataclasses.replace(cfg["loss"], blur_init_sigma=0.0),
               train=dataclasses.replace(cfg["train"], ema_rampup=None))
    return opts, dataset, cfg, opts.cfg


def describe(opts: TrainOptions, given=None):
    """The fully resolved configuration of a run as plain JSON-able data (``--dry-run``): the
    same checks as :func:`train` (options, metric names, dataset, a fine-tuned network's fit)."""
    given = given_options(opts) if given is None else set(given)
    opts, continuing, data_moved, finished = _plan(opts, given)
    init = None
    if opts.resume and not continuing:
        from sg3keras.training.finetune import load_init_networks
        init = load_init_networks(opts.resume, log=lambda m: None)
    # A dry run reads every image (damaged files show up now, not in the middle of a run).
    opts, dataset, cfg, _ = _prepare(opts, given, init, continuing, data_moved, verify=True)
    out = {k: (v.to_dict() if hasattr(v, "to_dict") else dataclasses.asdict(v)
               if dataclasses.is_dataclass(v) else v) for k, v in cfg.items()}
    out["options"] = _options_to_json(opts)
    out["dataset"] = dict(path=opts.data, name=dataset.name, size=len(dataset),
                          resolution=dataset.resolution, channels=dataset.num_channels,
                          label_dim=dataset.label_dim)
    out["resume"] = ("continue" if continuing else "fine-tune" if init is not None else None)
    if finished:
        out["finished"] = dict(step=finished[0], total_steps=finished[1])
    return out


@run_status.tracked
def train(opts: TrainOptions, strategy=None, log=print, given=None, deadline=None):
    """Run a training run; returns the run directory.

    ``opts.resume``: a run directory continues that run exactly (its options, with only
    :data:`CONTINUE_OPTIONS` changeable; ``kimg`` keeps the run's length unless given; a finished
    run returns at once); any other network reference (official ``.pkl``, ``.keras``,
    pretrained name, URL) starts a new run initialised from it (:mod:`.finetune`).

    Args:
        given: names of the options the user set explicitly (default
            :func:`given_options`); decides what may override a resumed run's options and which
            flags may contradict a fine-tuned network's architecture.
        deadline: a ``time.time()`` value; the run then also ends at the first tick end at or
            after it (with a checkpoint and a snapshot there), whichever of it and ``kimg``
            comes first. It is not stored with the run (a resumed run has none unless given).
            For one process only: with ``--workers`` each would read its own clock.

    SIGINT / SIGTERM stop the run cleanly (:mod:`.interrupt`): it raises
    :class:`~sg3keras.training.interrupt.RunInterrupted` (a ``KeyboardInterrupt``) whose
    message names the checkpoint kept and the resume command. A write that fails for lack of
    space or a read-only disk raises :class:`~sg3keras.training.checkpoint.StorageError`, whose
    message names the file, the checkpoint kept and the resume command.
    """
    from sg3keras.runs.logfile import RunLog
    from sg3keras.training import interrupt
    log = RunLog(log)      # everything printed also goes to RUN_DIR/log.txt (the chief's)
    where = {}             # run_dir, once there is one (the chief's)
    with interrupt.graceful_stop() as stop:
        try:
            with log.warnings_too():
                return _train(opts, strategy, log, given, deadline, stop, where)
        except BaseException as e:
            end = _ending(e, where.get("run_dir"))
            with contextlib.suppress(OSError):
                log.error(end)     # the line that ends the run, before it propagates
            if end is e:
                raise
            raise end from e


def _ending(e, run_dir):
    """The exception that ends the run: a signal's (which checkpoint was kept, how to resume)
    and a full or read-only disk's (the same, after the file that could not be written) get
    their whole story; any other is ``e`` itself."""
    from sg3keras.training import checkpoint, interrupt
    resumable = run_dir is not None and is_run_dir(run_dir)
    if isinstance(e, interrupt.RunInterrupted):
        return interrupt.stopped(e.signum, run_dir, resumable)
    if isinstance(e, OSError) and e.errno in checkpoint.STORAGE_ERRNOS:
        what = str(e) if isinstance(e, checkpoint.StorageError) else \
            f"a write failed: {e.filename or run_dir or ''}: {e.strerror or e}"
        return checkpoint.StorageError(
            e.errno, f"{what}; {interrupt.how_to_continue(run_dir, resumable)} once there is "
                     "space (or the disk is writable)", getattr(e, "filename", None))
    return e


def _train(opts, strategy, log, given, deadline, stop, where):
    from sg3keras.training import distribute
    given = given_options(opts) if given is None else set(given)
    opts, continuing, data_moved, finished = _plan(opts, given)
    if continuing:
        where["run_dir"] = opts.resume
    if deadline is not None and opts.workers > 1:
        raise ValueError("a deadline needs one process: with --workers each would read its clock")
    if finished:
        log(f"Run {opts.resume} is finished: step {finished[0]} of {finished[1]} "
            f"({opts.kimg:g} kimg); give a larger --kimg to train it further")
        return opts.resume
    strategy = strategy or distribute.make_strategy(opts.gpus, opts.workers,
                                                    cpu_replicas=opts.cpu_replicas)

    import keras
    import tensorflow as tf

    if opts.deterministic:
        tf.config.experimental.enable_op_determinism()
    if opts.mixed_precision:
        keras.mixed_precision.set_global_policy(opts.mixed_precision)
    init = None
    if opts.resume and not continuing:
        from sg3keras.training.finetune import load_init_networks
        init = load_init_networks(opts.resume, log=log)
    opts, dataset, cfg, cfg_name = _prepare(opts, given, init, continuing, data_moved)
    chief = distribute.is_chief(strategy)
    run_dir = _open_run_dir(opts, dataset, cfg, cfg_name, init, continuing, chief)
    if chief:
        where["run_dir"] = run_dir
    run_status.started(run_dir, chief, cfg["total_steps"])
    gan = build_gan(cfg, dataset, strategy, seed=opts.seed,
                    impl="fast" if opts.fused_ops else "ref", init=init)
    start_step, resume_meta = 0, None
    if continuing:
        resume_meta = _restore(run_dir, gan, opts, log)
        start_step = int((resume_meta or {}).get("step", 0))
    elif init is not None:
        log(f"Fine-tuning {init['source']} ({cfg_name}, {cfg['generator'].img_resolution} px) "
            f"in {run_dir}")
    _open_run_files(log, run_dir, opts, chief,
                    resume_meta or (dict(tick=0, kimg=0.0) if continuing else None))
    tf_ds = dataset.make_tf_dataset(opts.batch, shuffle=True, seed=opts.seed,
                                    mirror=opts.mirror, repeat=True, start_batch=start_step)
    if chief and start_step == 0:
        _write_reals(run_dir, dataset)
    steps_per_tick = cfg["steps_per_tick"]
    if start_step % steps_per_tick:
        raise ValueError(f"checkpoint step {start_step} is not at a tick boundary "
                         f"({steps_per_tick} steps per tick)")
    callback = TickCallback(gan, run_dir, opts, cfg, chief=chief, log=log,
                            start_time_offset=(resume_meta or {}).get("total_sec", 0.0),
                            deadline=deadline, resume_meta=resume_meta, stop=stop)
    stop.deferring = True       # from here a signal ends the run at the end of a step
    try:
        gan.fit(tf_ds, epochs=cfg["num_ticks"], initial_epoch=start_step // steps_per_tick,
                steps_per_epoch=steps_per_tick, verbose=0, shuffle=False,   # tf_ds shuffles
                callbacks=[distribute.StartedCallback(), distribute.WorkerWatchdog(), callback,
                           run_status.StatusCallback(gan)])
    finally:
        stop.deferring = False
    if callback.error is not None:
        raise callback.error
    if stop.requested:
        from sg3keras.training.interrupt import RunInterrupted
        raise RunInterrupted(stop.signum)
    return run_dir


def _restore(run_dir, gan, opts, log):
    """Restore the newest good checkpoint of ``run_dir`` into ``gan`` (a damaged one is reported
    and the one before it used, saying what was lost); its meta, or None when the run stopped
    before its first checkpoint (it then trains from step 0)."""
    from sg3keras.training.checkpoint import restore_latest
    meta, path, newest = restore_latest(run_dir, gan, report=log)
    if meta is None:
        log(f"Resuming {run_dir}: it has no checkpoint yet (stopped in its first tick); "
            "training it from step 0")
        return None
    gan.reset_phase_counter()
    step = int(meta["step"])
    lost = ""
    if newest is not None and newest > step:
        lost = (f" (the newest good checkpoint, {os.path.basename(path)}; "
                f"{(newest - step) * opts.batch / 1000.0:.3f} kimg lost, trained again)")
    log(f"Resuming {run_dir} from step {step} (kimg {meta['kimg']:.3f}){lost}")
    return meta


def _open_run_files(log, run_dir, opts, chief, resume_meta):
    """The chief's ``log.txt`` (a resumed run's with a ``resumed at kimg X`` line; a new run's
    starting with its options) and, on resume, ``stats.jsonl`` cut back to the checkpoint."""
    if not chief:
        log.discard()
        return
    log.open(run_dir, resumed_kimg=None if resume_meta is None else resume_meta["kimg"])
    if resume_meta is None:
        with open(os.path.join(run_dir, "training_options.json")) as f:
            log.file_only("Training options:\n" + f.read().rstrip())
    else:
        from sg3keras.training.ticks import prepare_resume
        prepare_resume(run_dir, resume_meta, log)


def _open_run_dir(opts, dataset, cfg, cfg_name, init, continuing, chief):
    """The run directory: the resumed one, a new numbered one (the chief), or a scratch folder
    (other workers). The chief writes the options (a resumed run's new length or dataset place
    is the run's from now on) and, for a new run, its run info."""
    from sg3keras.training import distribute
    if continuing:
        run_dir = opts.resume
    else:
        run_dir = _run_dir(opts, dataset.name, cfg_name) if chief else distribute.scratch_dir()
    from sg3keras.training.checkpoint import writing
    if chief:
        with writing(os.path.join(run_dir, "training_options.json"), "the run's options"):
            _write_options(run_dir, opts, cfg)
    if chief and not continuing:
        info = dict(dataset=_dataset_summary(dataset), init=None if init is None else dict(
            source=str(opts.resume), generator=cfg["generator"].to_dict(),
            discriminator=cfg["discriminator"].to_dict(), D=init["D"] is not None))
        with writing(os.path.join(run_dir, RUN_INFO), "the run's record"):
            atomic_write_json(os.path.join(run_dir, RUN_INFO), info)
    return run_dir


def build_gan(cfg, dataset, strategy, seed=0, impl="fast", init=None):
    """G, D, G_ema (and the augment pipe) inside ``strategy.scope()``, compiled; with ``init``
    (:func:`sg3keras.training.finetune.load_init_networks`) G, D and G_ema start from its
    networks (parameters and buffers)."""
    from sg3keras.models.discriminator import Discriminator
    from sg3keras.training import distribute
    from sg3keras.training.gan import StyleGAN

    g_cfg, d_cfg, train_cfg = cfg["generator"], cfg["discriminator"], cfg["train"]
    keras.utils.set_random_seed(seed)    # Same initial weights in every process / worker.
    with strategy.scope():
        G = _make_generator(g_cfg, seed, "G", impl)
        G_ema = _make_generator(g_cfg, seed, "G_ema", impl)
        D = Discriminator(d_cfg, name="D")
        if init is not None:
            from sg3keras.training.finetune import copy_weights
            copy_weights(init["G"], G, f"--resume {init['source']}: its G")
            copy_weights(init["G_ema"], G_ema, f"--resume {init['source']}: its G_ema")
            if init["D"] is not None:
                copy_weights(init["D"], D, f"--resume {init['source']}: its D")
        else:
            for dst, src in zip(G_ema.variables, G.variables):
                dst.assign(src)
        augment_pipe = None
        if train_cfg.aug != "noaug":
            from sg3keras.training.augment import AUGPIPE_SPECS, AugmentPipe
            augment_pipe = AugmentPipe(**AUGPIPE_SPECS[train_cfg.augpipe], name="augment_pipe")
            augment_pipe.build((None, g_cfg.img_resolution, g_cfg.img_resolution,
                                g_cfg.img_channels))
            augment_pipe.p.assign(train_cfg.augment_p)
        labels = None
        if g_cfg.c_dim > 0:
            labels = dataset.get_labels(np.arange(len(dataset)))
        gan = StyleGAN(G, D, G_ema, augment_pipe=augment_pipe, loss_config=cfg["loss"],
                       train_config=train_cfg, label_table=labels, seed=seed)
        gan.compile(*StyleGAN.make_optimizers(train_cfg))
    if distribute.is_multi_worker(strategy):
        from sg3keras.training.compat import prepare_for_multiworker
        prepare_for_multiworker(gan)
    return gan


def _make_generator(g_cfg, seed, name, impl):
    from sg3keras.models import build_generator
    return build_generator(g_cfg, impl=impl, seed=seed, name=name)


def _write_reals(run_dir, dataset, n=16):
    idx = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).astype(int)
    images = np.stack([dataset.get_image(int(i)) for i in idx])
    save_png(os.path.join(run_dir, "reals.png"), make_grid(images))
