"""The preset table is the only source of defaults: train.py flags, TrainOptions, the CLI."""

import dataclasses

import pytest

from sg3keras.config import PRESETS, TrainOptions, resolve_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_generator_channels_are_the_scaled_discriminator_channels(name):
    p = PRESETS[name]
    assert p.generator.channel_base == p.g_channel_scale * p.discriminator.channel_base
    assert p.generator.channel_max == p.g_channel_scale * p.discriminator.channel_max
    r = resolve_preset(name, cbase=1024, cmax=32)
    assert (r.generator.channel_base, r.generator.channel_max) == \
        (1024 * p.g_channel_scale, 32 * p.g_channel_scale)
    assert (r.discriminator.channel_base, r.discriminator.channel_max) == (1024, 32)


def test_only_stylegan3_r_doubles_g():
    assert {n for n, p in PRESETS.items() if p.g_channel_scale != 1} == \
        {"stylegan3-r", "config-r"}
    assert PRESETS["stylegan3-r"].g_channel_scale == 2
    with pytest.raises(ValueError, match="cbase must be >= 1"):
        resolve_preset("stylegan3-t", cbase=0)


def test_train_options_defaults_are_the_preset_values():
    t, d = PRESETS["stylegan3-t"].train, PRESETS["stylegan3-t"].discriminator
    o = TrainOptions()
    assert (o.batch, o.dlr, o.aug, o.augpipe, o.p, o.target, o.ada_kimg, o.kimg, o.tick, o.snap,
            o.mirror, o.seed) == (t.batch, t.d_lr, t.aug, t.augpipe, t.fixed_augment_p,
                                  t.ada_target, t.ada_kimg, t.kimg, t.kimg_per_tick,
                                  t.snapshot_ticks, t.mirror, t.seed)
    assert (o.cbase, o.cmax, o.mbstd_group) == (d.channel_base, d.channel_max,
                                                d.mbstd_group_size)
    # The values train.py documents.
    assert (o.cbase, o.cmax, o.dlr, o.kimg, o.tick, o.snap, o.p, o.target) == \
        (32768, 512, 0.002, 25000, 4, 50, 0.2, 0.6)


def test_cli_train_flags_use_the_same_defaults_and_preset_names():
    from sg3keras.cli import train
    params = {p.name: p for p in train.params}
    assert list(params["cfg"].type.choices) == sorted(PRESETS)
    checked = 0
    for f in dataclasses.fields(TrainOptions):
        default = params[f.name].default if f.name in params else None
        if f.name == "metrics":             # --metrics none: no metrics
            assert (default, f.default) == ("none", ())
            continue
        if isinstance(default, (bool, int, float)) or (isinstance(default, str) and default):
            assert default == f.default, f.name
            checked += 1
    assert checked >= 15


def test_resolve_options_applies_the_scale():
    from sg3keras.training.loop import resolve_options
    cfg = resolve_options(TrainOptions(cfg="stylegan3-r", batch=8, cbase=1024, cmax=32))
    assert (cfg["generator"].channel_base, cfg["generator"].channel_max) == (2048, 64)
    assert (cfg["discriminator"].channel_base, cfg["discriminator"].channel_max) == (1024, 32)
    assert cfg["train"].augment_p == 0.0 and cfg["train"].fixed_augment_p == 0.2
    fixed = resolve_options(TrainOptions(aug="fixed", p=0.3, batch=8))
    assert fixed["train"].augment_p == 0.3
