"""Fine-tuning: a new run whose G, D and G_ema start from another network (``train --resume X``).

``X`` is an official pickle, a ``.keras`` generator, a pretrained name or a URL
(:func:`sg3keras.networks.loading.load_networks`). As official ``train.py --resume``:

* parameters **and buffers** are copied by name into freshly built networks (anything that does
  not fit is named in one error);
* the ADA adjustment speed is 100 kimg, the G_ema ramp-up is off and the -R blur starts at 0;
* the augmentation probability starts from the run's own setting (not the pickle's).

Unlike train.py, the architecture is taken from ``X`` (so ``--cfg`` / ``--cbase`` / ``--cmax`` /
``--map-depth`` may be left out); a flag given that contradicts ``X`` is refused naming both
values, as is a dataset whose resolution, channels or labels do not fit. A ``.keras`` file holds
only a generator: G and G_ema start from it and D is freshly initialised (logged).
"""

import dataclasses
import os

from ..config import PRESETS, ladder_name

__all__ = ["load_init_networks", "cfg_name_of", "check_compatible", "init_architecture",
           "copy_weights", "recorded_options", "same_option", "FINETUNE_OVERRIDES"]

# train.py --resume: ada_kimg=100, ema_rampup=None, blur_init_sigma=0.
FINETUNE_OVERRIDES = dict(ada_kimg=100.0, ema_rampup=None, blur_init_sigma=0.0)


def load_init_networks(ref, log=print):
    """``{"G", "D" (or None), "G_ema", "source"}`` from ``ref``."""
    from ..networks.loading import load_networks, locate_network
    path, kind = locate_network(ref, "--resume")
    if kind == "keras":
        nets = load_networks(path, ("G", "G_ema"), flag="--resume")
        log(f"--resume {ref}: a .keras generator; G and G_ema start from it, D is freshly "
            "initialised")
        nets["D"] = None
    else:
        nets = load_networks(path, ("G", "D", "G_ema"), flag="--resume")
    nets["source"] = ref
    nets["kind"] = kind
    return nets


def cfg_name_of(g_config):
    """The ``--cfg`` a generator config was built with."""
    step = ladder_name(g_config)
    if step is not None:
        return step
    if g_config.family == "stylegan2":
        return "stylegan2"
    radial = g_config.use_radial_filters or g_config.conv_kernel == 1
    return "stylegan3-r" if radial else "stylegan3-t"


def _arch_values(nets):
    """What ``X`` fixes, in train.py flag terms."""
    g, d = nets["G_ema"].config, nets["D"].config if nets["D"] is not None else None
    cfg = cfg_name_of(g)
    scale = PRESETS[cfg].g_channel_scale
    return dict(cfg=cfg, cbase=d.channel_base if d else g.channel_base // scale,
                cmax=d.channel_max if d else g.channel_max // scale, map_depth=g.mapping_layers)


def check_compatible(nets, opts, given, dataset):
    """Refuse flags that contradict ``X``'s architecture and a dataset that does not fit it.

    Args:
        given: names of the options the user set explicitly (only those can contradict).
    """
    ref = nets["source"]
    for flag, value in _arch_values(nets).items():
        if flag in given and getattr(opts, flag) is not None and getattr(opts, flag) != value:
            name = "--" + flag.replace("_", "-")
            raise ValueError(f"{name}={getattr(opts, flag)} contradicts --resume {ref}, which is "
                             f"{name}={value}; leave {name} out to fine-tune it")
    g = nets["G_ema"].config
    if dataset.resolution != g.img_resolution:
        raise ValueError(f"--data {opts.data}: {dataset.resolution}x{dataset.resolution} images, "
                         f"but --resume {ref} makes {g.img_resolution}x{g.img_resolution} "
                         "(resize the dataset with `sg3keras dataset --resolution`)")
    if dataset.num_channels != g.img_channels:
        raise ValueError(f"--data {opts.data}: {dataset.num_channels}-channel images, but "
                         f"--resume {ref} makes {g.img_channels}-channel images")
    if g.c_dim == 0 and opts.cond:
        raise ValueError(f"--cond=True, but --resume {ref} is unconditional (c_dim 0)")
    if g.c_dim > 0 and "cond" in given and not opts.cond:
        raise ValueError(f"--cond=False, but --resume {ref} is conditional ({g.c_dim} classes); "
                         "leave --cond out to fine-tune it")
    if g.c_dim > 0:
        if not dataset.has_labels:
            raise ValueError(f"--resume {ref} is conditional ({g.c_dim} classes), but --data "
                             f"{opts.data} has no labels in dataset.json")
        if dataset.label_dim != g.c_dim:
            raise ValueError(f"--data {opts.data}: labels of {dataset.label_dim} classes, but "
                             f"--resume {ref} is conditional on {g.c_dim}")


def recorded_options(nets):
    """The options a fine-tuned run records (and builds a fresh D with): ``X``'s architecture in
    flag terms (not the defaults of flags left out) and ``X`` itself, as an absolute path when it
    is a local file."""
    ref = str(nets["source"])
    if os.path.exists(os.path.expanduser(ref)):
        ref = os.path.abspath(os.path.expanduser(ref))
    return dict(_arch_values(nets), resume=ref)


def _resolved_path(p):
    return os.path.realpath(os.path.expanduser(p)) if isinstance(p, str) and p else p


def same_option(name, opts, stored):
    """Whether option ``name`` has the same value in ``opts`` (typed again) as in ``stored`` (a
    run's record): paths resolved, numbers by value, ``--batch-gpu`` against its derived
    default."""
    a, b = getattr(opts, name), getattr(stored, name)
    if name in ("outdir", "data", "resume"):
        return _resolved_path(a) == _resolved_path(b)
    if name == "batch_gpu":
        replicas = stored.gpus * stored.workers
        a, b = (stored.batch // replicas if v is None else v for v in (a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def init_architecture(nets, cfg, opts):
    """Generator / discriminator configs of the new run: ``X``'s, with the run's settings that
    are not weights (EMA speed of the magnitude statistics for the new batch, ``--fp32``,
    ``--mbstd-group``, ``--freezed``)."""
    g = nets["G_ema"].config
    if g.has_magnitude_ema:
        g = dataclasses.replace(g, magnitude_ema_beta=cfg["generator"].magnitude_ema_beta)
    if opts.fp32:
        g = dataclasses.replace(g, conv_clamp=None, num_fp16_res=0)
    d = nets["D"].config if nets["D"] is not None else dataclasses.replace(
        cfg["discriminator"], c_dim=g.c_dim, img_resolution=g.img_resolution,
        img_channels=g.img_channels)
    d = dataclasses.replace(d, mbstd_group_size=opts.mbstd_group, freeze_layers=opts.freezed,
                            conv_clamp=g.conv_clamp, num_fp16_res=g.num_fp16_res)
    return g, d


def copy_weights(src, dst, what):
    """Copy every variable of ``src`` into ``dst`` by path (below the model's own name)."""
    def by_path(model):
        return {v.path.split("/", 1)[1]: v for v in model.variables}

    s, d = by_path(src), by_path(dst)
    missing, extra = sorted(set(d) - set(s)), sorted(set(s) - set(d))
    shapes = [f"{k} {tuple(s[k].shape)} vs {tuple(d[k].shape)}" for k in sorted(set(s) & set(d))
              if tuple(s[k].shape) != tuple(d[k].shape)]
    if missing or extra or shapes:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}"
                 if extra else "", f"shape mismatch {shapes[:5]}" if shapes else ""]
        raise ValueError(f"{what} does not fit the network being built: "
                         + "; ".join(p for p in parts if p))
    for k, v in d.items():
        v.assign(s[k])
