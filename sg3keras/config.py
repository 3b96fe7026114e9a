"""Frozen configuration dataclasses and the cited preset table.

Every default of the official code that sg3keras reproduces lives here, once. Sources:

* NVlabs/stylegan3 @ c233a91, ``train.py`` (the ``--cfg`` presets, lines ~164-281): configs T and
  R of the Alias-Free GAN paper (Figure 3; hyperparameters in Appendix F.2, Figure 16), see
  docs/PAPER.md;
* ``docs/configs.md`` of the same repository for the recommended R1 gamma per resolution.

Use :func:`resolve_preset` (or ``Generator.from_preset``) to build a config; override single
fields with keyword arguments (resolved with :func:`dataclasses.replace`).

Notes on the ``-r`` preset, which ``train.py`` hides in code: it doubles *both* ``channel_base``
and ``channel_max`` of the generator (the discriminator keeps the undoubled values), uses 1x1
convolutions and radial (jinc) down-filters in the non-critical layers, and blurs the images fed
to D with ``blur_init_sigma = 10`` fading out linearly over ``200 kimg * batch / 32``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = [
    "GeneratorConfig",
    "DiscriminatorConfig",
    "LossConfig",
    "TrainConfig",
    "Preset",
    "PRESETS",
    "LADDER",
    "ladder_name",
    "generator_at_resolution",
    "octave_num_layers",
    "resolve_preset",
    "recommended_gamma",
    "magnitude_ema_beta_for_batch",
    "TrainOptions",
    "PretrainedNetwork",
    "PRETRAINED",
    "ProjectConfig",
]


def magnitude_ema_beta_for_batch(batch: int) -> float:
    """train.py: ``magnitude_ema_beta = 0.5 ** (batch / 20000)`` (both StyleGAN3 configs)."""
    return 0.5 ** (batch / (20 * 1000))


def recommended_gamma(resolution: int) -> float:
    """R1 gamma recommended by docs/configs.md: 0.5 @128, 2 @256, 8 @512, 32 @1024 (quadratic)."""
    return 32.0 * (resolution / 1024.0) ** 2


class _DictMixin:
    """``to_dict`` / ``from_dict`` for the network configs (JSON round trip: lists -> tuples)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        d = dict(d)
        if d.get("resample_filter") is not None:
            d["resample_filter"] = tuple(d["resample_filter"])
        return cls(**d)


@dataclass(frozen=True)
class GeneratorConfig(_DictMixin):
    """Hyper-parameters of a generator (StyleGAN3 ``family="stylegan3"`` or StyleGAN2).

    Field names follow the official constructor kwargs so that an official ``init_kwargs`` dict
    maps onto this class field by field (``mapping_kwargs`` is flattened into ``mapping_*``).
    """

    family: str = "stylegan3"          # "stylegan3" (networks_stylegan3) or "stylegan2".
    z_dim: int = 512                   # Input latent (Z) dimensionality.
    c_dim: int = 0                     # Conditioning label (C) dimensionality, 0 = none.
    w_dim: int = 512                   # Intermediate latent (W) dimensionality.
    img_resolution: int = 256          # Output resolution.
    img_channels: int = 3              # Number of output colour channels.
    # Mapping network.
    mapping_layers: int = 2            # 2 for stylegan3 (train.py --map-depth), 8 for stylegan2.
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.998          # Decay of the tracked W average (truncation centre).
    # Synthesis network (shared).
    channel_base: int = 32768          # Overall multiplier for the number of channels.
    channel_max: int = 512             # Maximum number of channels in any layer.
    num_fp16_res: int = 4              # Recorded for round trips; fp16 only ever ran on CUDA.
    conv_clamp: Optional[float] = 256  # Clamp conv outputs to +-X, None = disable.
    # StyleGAN3 synthesis.
    num_layers: int = 14               # Number of synthesis layers, excluding ToRGB.
    num_critical: int = 2              # Number of critically sampled layers at the end.
    first_cutoff: float = 2.0          # Cutoff frequency of the first layer (f_{c,0}).
    first_stopband: float = 2 ** 2.1   # Minimum stopband of the first layer (f_{t,0}).
    last_stopband_rel: float = 2 ** 0.3  # Minimum stopband of the last layer, relative to f_c.
    margin_size: int = 10              # Number of additional pixels outside the image.
    output_scale: float = 0.25         # Scale factor for the output image.
    conv_kernel: int = 3               # 3 for -t, 1 for -r (ToRGB always 1).
    filter_size: int = 6               # Low-pass filter size relative to the lower resolution.
    lrelu_upsampling: int = 2          # Relative sampling rate for the leaky ReLU.
    use_radial_filters: bool = False   # Radial (jinc) down-filters in non-critical layers (-r).
    magnitude_ema_beta: float = 0.999  # Decay of the running input magnitude (train.py: batch-based).
    # StyleGAN2 synthesis (family == "stylegan2").
    architecture: str = "skip"         # "orig", "skip" or "resnet" (official default "skip").
    resample_filter: Tuple[int, ...] = (1, 3, 3, 1)
    use_noise: bool = True             # Per-pixel noise inputs.
    fused_modconv_default: str = "inference_only"
    # The paper's ladder of configurations A -> B ... H -> T -> R (Figure 3; docs/PAPER.md,
    # "The ladder"). Each field's default is what the official networks have, so A, T and R
    # and every saved config read as before.
    const_input: bool = True           # stylegan2 family: learned 4x4 constant (A); False =
                                       # Fourier features instead (B-D, Section 3.1).
    magnitude_norm: bool = False       # stylegan2 family: divide each layer's input by the
                                       # sqrt of its magnitude EMA, output x output_scale (D).
    layer_schedule: str = "flexible"   # stylegan3 family: "flexible" (T, R: Section 3.2) or
                                       # "octave" (E-H: two layers per octave as StyleGAN2).
    learned_input_transform: bool = True  # stylegan3 family: w -> rotation/translation of the
                                       # Fourier features (H onwards); False = E-G.

    # What a generator of this config has: the ladder's steps are each a change to one of them.
    @property
    def has_noise(self) -> bool:
        """Per-pixel noise inputs (StyleGAN2; config C of the paper removes them)."""
        return self.family == "stylegan2" and bool(self.use_noise)

    @property
    def has_input_transform(self) -> bool:
        """Fourier-feature input with a user-set ``[3, 3]`` transform (configs B-R)."""
        return self.family == "stylegan3" or not self.const_input

    @property
    def has_learned_input_transform(self) -> bool:
        """The Fourier features are rotated / translated per sample by ``w`` (config H on)."""
        return self.family == "stylegan3" and bool(self.learned_input_transform)

    @property
    def has_magnitude_ema(self) -> bool:
        """Each layer normalises its input by a running magnitude EMA (config D on)."""
        return self.family == "stylegan3" or bool(self.magnitude_norm)

    @property
    def has_layer_schedule(self) -> bool:
        """Alias-free synthesis layers on a margin-padded canvas with designed per-layer
        low-pass filters, described by a cutoff / stopband / sampling-rate schedule
        (config E on; :func:`sg3keras.models.schedule.synthesis_schedule`)."""
        return self.family == "stylegan3"

    @property
    def has_filtered_nonlinearities(self) -> bool:
        """The leaky ReLU runs between ``lrelu_upsampling``-times up- and down-sampling
        (config F on; StyleGAN3)."""
        return self.family == "stylegan3" and int(self.lrelu_upsampling) > 1


@dataclass(frozen=True)
class DiscriminatorConfig(_DictMixin):
    """The StyleGAN2 residual discriminator used by every official config (StyleGAN2 §4.1;
    unchanged in Alias-Free GAN, Appendix F)."""

    c_dim: int = 0
    img_resolution: int = 256
    img_channels: int = 3
    architecture: str = "resnet"
    channel_base: int = 32768          # Not doubled for -r.
    channel_max: int = 512
    num_fp16_res: int = 4
    conv_clamp: Optional[float] = 256
    cmap_dim: Optional[int] = None     # Defaults to channels at 4x4.
    mbstd_group_size: int = 4          # train.py --mbstd-group.
    mbstd_num_channels: int = 1
    mapping_layers: int = 8            # Conditioning mapping depth (stylegan2 MappingNetwork default).
    freeze_layers: int = 0             # train.py --freezed.
    resample_filter: Tuple[int, ...] = (1, 3, 3, 1)



@dataclass(frozen=True)
class LossConfig:
    """StyleGAN2Loss settings (Alias-Free GAN Appendix F and F.2; docs/PAPER.md)."""

    r1_gamma: float = 2.0              # train.py --gamma (required); see recommended_gamma().
    style_mixing_prob: float = 0.0     # 0.9 for stylegan2.
    pl_weight: float = 0.0             # 2 for stylegan2.
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    pl_no_weight_grad: bool = True
    blur_init_sigma: float = 0.0       # 10 for stylegan3-r.
    blur_fade_kimg: float = 0.0        # batch * 200 / 32 for stylegan3-r.


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule and augmentation settings of train.py / training_loop.py."""

    batch: int = 32                    # Total batch size (all replicas).
    batch_gpu: Optional[int] = None    # Samples per replica per round (gradient accumulation);
                                       # None (or >= batch / replicas) = one round, as train.py.
    g_lr: float = 0.0025               # 0.002 for stylegan2.
    d_lr: float = 0.002
    betas: Tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    g_reg_interval: Optional[int] = None  # 4 for stylegan2 (path length), None otherwise.
    d_reg_interval: int = 16           # Lazy R1.
    ema_kimg: float = 10.0             # batch * 10 / 32.
    ema_rampup: Optional[float] = 0.05
    aug: str = "ada"                   # "ada", "noaug" or "fixed".
    augpipe: str = "bgc"
    augment_p: float = 0.0             # Initial p; train.py --p (0.2) is used with --aug fixed.
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 500.0            # training_loop default; train.py --resume sets 100.
    fixed_augment_p: float = 0.2       # train.py --p: the probability of --aug fixed.
    kimg: int = 25000
    kimg_per_tick: int = 4
    snapshot_ticks: int = 50
    mirror: bool = False
    seed: int = 0


@dataclass(frozen=True)
class Preset:
    """One named official configuration: generator, discriminator, loss and training defaults."""

    name: str
    source: str
    generator: GeneratorConfig
    discriminator: DiscriminatorConfig
    loss: LossConfig
    train: TrainConfig
    g_channel_scale: int = 1           # G's channel_base/max = scale x --cbase/--cmax (-r: 2).


_SRC = "NVlabs/stylegan3 @ c233a91 train.py --cfg={} (docs/PAPER.md)"
_BETA32 = magnitude_ema_beta_for_batch(32)

# The preset table. One entry per official --cfg; values are train.py defaults at batch 32.
PRESETS = {
    "stylegan3-t": Preset(
        name="stylegan3-t",
        source=_SRC.format("stylegan3-t"),
        generator=GeneratorConfig(family="stylegan3", mapping_layers=2, channel_base=32768,
                                  channel_max=512, conv_kernel=3, use_radial_filters=False,
                                  magnitude_ema_beta=_BETA32),
        discriminator=DiscriminatorConfig(),
        loss=LossConfig(),
        train=TrainConfig(g_lr=0.0025, d_lr=0.002),
    ),
    "stylegan3-r": Preset(
        name="stylegan3-r",
        source=_SRC.format("stylegan3-r"),
        # -r: channel_base and channel_max doubled, 1x1 convs, radial down filters.
        generator=GeneratorConfig(family="stylegan3", mapping_layers=2, channel_base=65536,
                                  channel_max=1024, conv_kernel=1, use_radial_filters=True,
                                  magnitude_ema_beta=_BETA32),
        discriminator=DiscriminatorConfig(),   # D keeps the undoubled 32768 / 512.
        loss=LossConfig(blur_init_sigma=10.0, blur_fade_kimg=200.0),
        train=TrainConfig(g_lr=0.0025, d_lr=0.002),
        g_channel_scale=2,
    ),
    "stylegan2": Preset(
        name="stylegan2",
        source=_SRC.format("stylegan2"),
        generator=GeneratorConfig(family="stylegan2", mapping_layers=8, channel_base=32768,
                                  channel_max=512),
        discriminator=DiscriminatorConfig(),
        loss=LossConfig(style_mixing_prob=0.9, pl_weight=2.0),
        train=TrainConfig(g_lr=0.002, d_lr=0.002, g_reg_interval=4),
    ),
}


# The paper's ladder (Alias-Free GAN, Section 3 and Figure 3): A = StyleGAN2 ... T, R. Each
# step changes the previous one by the fields named; docs/PAPER.md "The ladder" cites each
# choice. A-C train with StyleGAN2's loss and optimiser settings, D onwards with StyleGAN3's
# (D is where the paper simplifies the generator and drops mixing and path-length
# regularisation).
_SRC_LADDER = "Alias-Free GAN, Figure 3 config {} (docs/PAPER.md, The ladder)"
_A, _T = PRESETS["stylegan2"], PRESETS["stylegan3-t"]


def octave_num_layers(img_resolution) -> int:
    """``N`` of the octave layout (configs E-H): one layer at 4x4, two per octave up to ``R``."""
    return 2 * (int(img_resolution).bit_length() - 1) - 3


_OCTAVE_256 = octave_num_layers(256)


def _step(base, letter, loss=None, train=None, **fields):
    return Preset(name=f"config-{letter}", source=_SRC_LADDER.format(letter.upper()),
                  generator=dataclasses.replace(base.generator, **fields),
                  discriminator=base.discriminator, loss=loss or base.loss,
                  train=train or base.train, g_channel_scale=base.g_channel_scale)


def _ladder():
    b = _step(_A, "b", const_input=False)                                  # §3.1
    c = _step(b, "c", use_noise=False)                                     # §3.1
    d = _step(c, "d", loss=_T.loss, train=_T.train, mapping_layers=2,      # §3.1, App. F.1
              architecture="orig", magnitude_norm=True, magnitude_ema_beta=_BETA32,
              output_scale=0.25)
    e = _step(_T, "e", family="stylegan3", layer_schedule="octave",       # §3.2
              num_layers=_OCTAVE_256, num_critical=_OCTAVE_256, lrelu_upsampling=1,
              learned_input_transform=False)
    f = _step(e, "f", lrelu_upsampling=2)                                  # §3.2
    g = _step(f, "g", num_critical=2)                                      # §3.2
    h = _step(g, "h", learned_input_transform=True)                        # §3.2
    steps = {p.name: p for p in (b, c, d, e, f, g, h)}
    aliases = {"config-a": "stylegan2", "config-t": "stylegan3-t", "config-r": "stylegan3-r"}
    steps.update({alias: dataclasses.replace(PRESETS[name], name=alias)
                  for alias, name in aliases.items()})
    return steps


PRESETS.update(_ladder())
LADDER = ("config-a", "config-b", "config-c", "config-d", "config-e", "config-f", "config-g",
          "config-h", "config-t", "config-r")


def ladder_name(g) -> Optional[str]:
    """The ladder configuration (``"config-b"`` ...) a generator config is an instance of,
    judged by the fields that define the steps (None if it is none of B-H)."""
    keys = ("family", "const_input", "use_noise", "architecture", "magnitude_norm",
            "layer_schedule", "lrelu_upsampling", "learned_input_transform")
    for name in LADDER[1:8]:
        ref = PRESETS[name].generator
        if all(getattr(g, k) == getattr(ref, k) for k in keys) and (
                g.layer_schedule != "octave"
                or (g.num_critical >= g.num_layers) == (ref.num_critical >= ref.num_layers)):
            return name
    return None


def generator_at_resolution(g: GeneratorConfig, img_resolution: int) -> GeneratorConfig:
    """``g`` at another output resolution. The octave layout (configs E-H) also changes its
    layer count: "every layer critical" (E, F) stays so, a number of critical
    highest-resolution layers (G, H) stays that number."""
    out = dataclasses.replace(g, img_resolution=int(img_resolution))
    if g.family != "stylegan3" or g.layer_schedule != "octave":
        return out
    n = octave_num_layers(img_resolution)
    crit = n if g.num_critical >= g.num_layers else min(g.num_critical, n)
    return dataclasses.replace(out, num_layers=n, num_critical=crit)


def resolve_preset(name: str, img_resolution: Optional[int] = None, batch: Optional[int] = None,
                   cbase: Optional[int] = None, cmax: Optional[int] = None,
                   **generator_overrides) -> Preset:
    """Return the preset ``name`` adjusted to a resolution, batch size and channel counts.

    The batch-dependent official values (``magnitude_ema_beta``, ``ema_kimg``, ``blur_fade_kimg``)
    are recomputed for ``batch``; the recommended gamma is set from the resolution. ``cbase`` /
    ``cmax`` are train.py's ``--cbase`` / ``--cmax``: D gets them as they are, G multiplied by
    the preset's ``g_channel_scale`` (2 for -r). Keyword overrides replace single
    :class:`GeneratorConfig` fields (after the scaling).
    """
    if name not in PRESETS:
        if name in PRETRAINED:
            raise ValueError(f"{name!r} is a pretrained network, not a configuration: load its "
                             f"weights with sg3keras.inference.load_network({name!r}); fresh "
                             f"networks are built from {sorted(PRESETS)}")
        raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    p = PRESETS[name]
    g, d, loss, train = p.generator, p.discriminator, p.loss, p.train
    for flag, field, value in (("cbase", "channel_base", cbase), ("cmax", "channel_max", cmax)):
        if value is not None:
            if int(value) < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
            g = dataclasses.replace(g, **{field: int(value) * p.g_channel_scale})
            d = dataclasses.replace(d, **{field: int(value)})
    if img_resolution is not None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        g = generator_at_resolution(g, img_resolution)
        d = dataclasses.replace(d, img_resolution=img_resolution)
        loss = dataclasses.replace(loss, r1_gamma=recommended_gamma(img_resolution))
    if batch is not None:
        if g.has_magnitude_ema:              # magnitude_ema_beta follows the batch size
            g = dataclasses.replace(g, magnitude_ema_beta=magnitude_ema_beta_for_batch(batch))
        train = dataclasses.replace(train, batch=batch, ema_kimg=batch * 10 / 32)
        if loss.blur_init_sigma > 0:
            loss = dataclasses.replace(loss, blur_fade_kimg=batch * 200 / 32)
    unknown = set(generator_overrides) - {f.name for f in dataclasses.fields(GeneratorConfig)}
    if unknown:
        raise ValueError(f"Unknown generator override(s) {sorted(unknown)} for preset {name!r}")
    g = dataclasses.replace(g, **generator_overrides)
    d = dataclasses.replace(d, c_dim=g.c_dim, img_channels=g.img_channels)
    return dataclasses.replace(p, generator=g, discriminator=d, loss=loss, train=train)


# train.py's flag defaults are the preset table's values (the same for every --cfg).
_T, _D = PRESETS["stylegan3-t"].train, PRESETS["stylegan3-t"].discriminator


@dataclass(frozen=True)
class PretrainedNetwork:
    """One of NVIDIA's published networks (official README, "Pretrained networks")."""

    name: str            # The file name without ``.pkl``: ``stylegan3-r-afhqv2-512x512``.
    url: str
    cfg: str             # ``--cfg`` it was trained with: stylegan3-t / stylegan3-r / stylegan2.
    dataset: str
    resolution: int
    sha256: Optional[str] = None   # Not published by NVIDIA; None = not checked.


_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/{}/versions/1/files/{}.pkl"


def _pretrained(cfg, dataset, resolution):
    family = "stylegan2" if cfg == "stylegan2" else "stylegan3"
    name = f"{cfg}-{dataset}-{resolution}x{resolution}"
    return name, PretrainedNetwork(name, _NGC.format(family, name), cfg, dataset, resolution)


# The StyleGAN3 release's model list and the StyleGAN2 networks published beside it.
PRETRAINED = dict(
    [_pretrained(cfg, ds, res) for cfg in ("stylegan3-t", "stylegan3-r")
     for ds, res in (("ffhq", 1024), ("ffhqu", 1024), ("ffhqu", 256), ("metfaces", 1024),
                     ("metfacesu", 1024), ("afhqv2", 512))]
    + [_pretrained("stylegan2", ds, res) for ds, res in (
        ("ffhq", 1024), ("ffhq", 512), ("ffhq", 256), ("ffhqu", 1024), ("ffhqu", 256),
        ("metfaces", 1024), ("metfacesu", 1024), ("afhqv2", 512), ("afhqcat", 512),
        ("afhqdog", 512), ("afhqwild", 512), ("brecahad", 512), ("cifar10", 32),
        ("celebahq", 256), ("lsundog", 256))])


@dataclass(frozen=True)
class TrainOptions:
    """Options of ``sg3keras train`` (official train.py names; defaults from the presets)."""

    outdir: str = "training-runs"
    cfg: str = "stylegan3-t"
    data: str = ""
    gpus: int = 1
    workers: int = 1               # > 1: MultiWorkerMirroredStrategy from TF_CONFIG.
    batch: int = _T.batch
    batch_gpu: Optional[int] = None  # Per-replica round size; None = batch / replicas.
    gamma: Optional[float] = None  # Required by train.py; None = recommended for the resolution.
    cond: bool = False
    mirror: bool = _T.mirror
    aug: str = _T.aug
    augpipe: str = _T.augpipe
    p: float = _T.fixed_augment_p  # Probability for --aug=fixed.
    target: float = _T.ada_target
    ada_kimg: float = _T.ada_kimg
    cbase: int = _D.channel_base
    cmax: int = _D.channel_max
    map_depth: Optional[int] = None  # None = the preset's.
    mbstd_group: int = _D.mbstd_group_size
    glr: Optional[float] = None    # None = the preset's.
    dlr: float = _T.d_lr
    kimg: float = _T.kimg
    tick: float = _T.kimg_per_tick
    snap: int = _T.snapshot_ticks
    seed: int = _T.seed
    fp32: bool = False             # train.py --fp32: no conv_clamp (fp16 only ever ran on CUDA).
    mixed_precision: Optional[str] = None  # e.g. "mixed_bfloat16" (fast on AMX CPUs).
    metrics: Tuple[str, ...] = ()
    metrics_num_samples: Optional[int] = None  # Override of the official sample counts.
    resume: Optional[str] = None   # A run directory (continue it) or a network (fine-tune it).
    freezed: int = 0               # Freeze-D: D's first N layers are not trained.
    desc: Optional[str] = None     # Appended to the run directory's name.
    cpu_replicas: bool = False     # --gpus N on a machine without GPUs: N logical CPU replicas.
    grid_seeds: int = 16
    deterministic: bool = False    # tf.config.experimental.enable_op_determinism().
    fused_ops: bool = True         # XLA-fused filtered_lrelu ("fast"); False = reference ops.


@dataclass(frozen=True)
class ProjectConfig:
    """Hyperparameters of ``sg3keras project`` (stylegan2-ada-pytorch ``projector.py``'s
    ``project()`` defaults; the method is described in :mod:`sg3keras.inference.projector`)."""

    num_steps: int = 1000
    w_avg_samples: int = 10000        # z samples for w_avg / w_std ...
    w_avg_seed: int = 123             # ... drawn with numpy RandomState(123).
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05  # w noise = w_std * factor * ramp^2.
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5  # StyleGAN2 noise-buffer autocorrelation penalty.
    beta_1: float = 0.9               # Adam betas (torch.optim.Adam semantics).
    beta_2: float = 0.999
    distance_resolution: int = 256    # Images larger than this are area-downsampled to it.
    video_fps: int = 10
    video_bitrate: str = "16M"        # libx264, as the official proj.mp4.
