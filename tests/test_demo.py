"""``make demo`` ends at its kimg bound or its time bound, whichever comes first, and says which;
``train(deadline=)`` stops at a tick end with a snapshot there."""

import glob
import json
import os
import time

import pytest

from train_fixtures import tiny_options, write_tiny_dataset

pytestmark = pytest.mark.slow

TINY = dict(cfg="stylegan3-t", gpus=1, batch=4, gamma=1.0, cbase=256, cmax=16, map_depth=2,
            mbstd_group=2, aug="noaug", seed=0, fused_ops=False, grid_seeds=4)


def _kimg(run_dir):
    with open(os.path.join(run_dir, "checkpoints", "latest.json")) as f:
        return json.load(f)["kimg"]


def test_deadline_stops_at_the_first_tick_end_with_a_snapshot(tmp_path):
    from sg3keras.training.loop import train
    data = write_tiny_dataset(tmp_path / "tiny16.zip", n=16)
    lines = []
    run_dir = train(tiny_options(data=str(data), outdir=str(tmp_path / "runs"), kimg=0.02,
                                 tick=0.004, snap=100),
                    log=lines.append, deadline=time.time())
    assert _kimg(run_dir) == pytest.approx(0.004)          # one tick of five
    assert [os.path.basename(p) for p in glob.glob(os.path.join(run_dir, "network-snapshot-*"))] \
        == ["network-snapshot-000000.004.keras"]
    assert os.path.exists(os.path.join(run_dir, "fakes000000.004.png"))
    assert any(line.startswith("Time limit reached at tick 1 ") for line in lines)


@pytest.mark.parametrize("minutes, kimg, want", [
    (1e-6, 0.02, "Stopped at the time bound"),
    (60.0, 0.008, "Stopped at the kimg bound"),
])
def test_demo_says_which_bound_ended_it(tmp_path, monkeypatch, minutes, kimg, want):
    import sg3keras.demo as demo
    monkeypatch.setattr(demo, "DEMO_OPTIONS", TINY)
    monkeypatch.setattr(demo, "DEMO_TICK", 0.004)
    lines = []
    run_dir = demo.run_demo(str(tmp_path / "out"), minutes=minutes, kimg=kimg, resolution=16,
                            log=lines.append)
    ended = [line for line in lines if line.startswith("Stopped at")]
    assert len(ended) == 1 and ended[0].startswith(want), lines[-12:]
    done = _kimg(run_dir)
    assert done == pytest.approx(0.004 if minutes < 1 else kimg)
    assert f"trained {done:g}" in ended[0] or f"trained all {done:g}" in ended[0]
    snaps = glob.glob(os.path.join(run_dir, "network-snapshot-*.keras"))
    assert any(line.startswith("G_ema snapshot:") and line.endswith(max(snaps)) for line in lines)
