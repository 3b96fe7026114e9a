"""The official ``training_options.json`` keys, written beside ours so that tools written for
official run directories read a run of ours (``G_kwargs.channel_base``, ``batch_size``,
``total_kimg``, ``kimg_per_tick``, ...).

Our own reader (``_options_from_json`` in :mod:`sg3keras.training.loop`) keeps only the
:class:`~sg3keras.config.TrainOptions` fields, so these keys are ignored on resume. Two official
names are also ours and keep our meaning: ``metrics`` (the same list) and ``batch_gpu`` (ours:
the ``--batch-gpu`` given, ``null`` for batch / replicas; the resolved value is under
``batch_gpu_resolved``).
"""

import dataclasses
import os

__all__ = ["official_options"]

_G_CLASS = {"stylegan3": "training.networks_stylegan3.Generator",
            "stylegan2": "training.networks_stylegan2.Generator"}


def _g_kwargs(g):
    out = dict(class_name=_G_CLASS.get(g.family, g.family), z_dim=g.z_dim, w_dim=g.w_dim,
               mapping_kwargs=dict(num_layers=g.mapping_layers), channel_base=g.channel_base,
               channel_max=g.channel_max, num_fp16_res=g.num_fp16_res, conv_clamp=g.conv_clamp)
    if g.family == "stylegan3":
        out.update(magnitude_ema_beta=0.5 ** (1 / 20 / 1e3), conv_kernel=g.conv_kernel,
                   use_radial_filters=g.conv_kernel == 1)
    return out


def _d_kwargs(d):
    return dict(class_name="training.networks_stylegan2.Discriminator",
                **{k: v for k, v in dataclasses.asdict(d).items()
                   if k in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp",
                            "architecture")},
                block_kwargs=dict(freeze_layers=0),
                mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=d.mbstd_group_size))


def official_options(opts, cfg, run_dir):
    """The official keys of a run with options ``opts`` and resolved configuration ``cfg``
    (:func:`~sg3keras.training.loop.resolve_options`)."""
    t, loss = cfg["train"], cfg["loss"]
    d_kwargs = _d_kwargs(cfg["discriminator"])
    d_kwargs["block_kwargs"]["freeze_layers"] = opts.freezed

    def adam(lr):
        return dict(class_name="torch.optim.Adam", betas=list(t.betas), eps=t.eps, lr=lr)

    out = dict(
        G_kwargs=_g_kwargs(cfg["generator"]), D_kwargs=d_kwargs,
        G_opt_kwargs=adam(t.g_lr), D_opt_kwargs=adam(t.d_lr),
        loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=loss.r1_gamma,
                         style_mixing_prob=loss.style_mixing_prob, pl_weight=loss.pl_weight,
                         pl_batch_shrink=loss.pl_batch_shrink, pl_decay=loss.pl_decay,
                         pl_no_weight_grad=loss.pl_no_weight_grad,
                         blur_init_sigma=loss.blur_init_sigma,
                         blur_fade_kimg=loss.blur_fade_kimg),
        training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset",
                                 path=os.path.abspath(os.path.expanduser(opts.data)),
                                 use_labels=bool(opts.cond), xflip=bool(opts.mirror),
                                 resolution=cfg["generator"].img_resolution,
                                 random_seed=opts.seed),
        num_gpus=opts.gpus * opts.workers, batch_size=opts.batch,
        batch_gpu_resolved=t.batch_gpu, ema_kimg=t.ema_kimg, ema_rampup=t.ema_rampup,
        G_reg_interval=t.g_reg_interval, D_reg_interval=t.d_reg_interval,
        total_kimg=opts.kimg, kimg_per_tick=opts.tick, image_snapshot_ticks=opts.snap,
        network_snapshot_ticks=opts.snap, random_seed=opts.seed,
        ada_target=t.ada_target if t.aug == "ada" else None,
        ada_kimg=t.ada_kimg, augment_p=t.augment_p, run_dir=os.path.abspath(run_dir))
    if t.aug != "noaug":
        from sg3keras.training.augment import AUGPIPE_SPECS
        out["augment_kwargs"] = dict(class_name="training.augment.AugmentPipe",
                                     **AUGPIPE_SPECS[t.augpipe])
    return out
