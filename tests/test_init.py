"""Fresh-initialisation statistics match the official init (the initialisers of the official
networks_stylegan3.py / networks_stylegan2.py layers: mapping, synthesis, ToRGB, discriminator).

Parity tests load official weights, so they cannot see an initialiser bug; these tests can: every
stored conv / FC weight is N(0, 1) * weight_init / lr_multiplier, and a fresh network keeps its
activations in a sane range (no saturation at the ToRGB clamp).
"""

import keras
import numpy as np
import pytest

from sg3keras.models import Discriminator, Generator


def _weights(model):
    return {v.path: np.asarray(v) for v in model.trainable_variables}


@pytest.mark.parametrize("preset", ["stylegan3-t", "stylegan3-r", "stylegan2"])
def test_generator_weight_init(preset):
    keras.utils.set_random_seed(0)
    G = Generator.from_preset(preset, img_resolution=16, channel_base=512, channel_max=32,
                              **({} if preset == "stylegan2" else {"impl": "ref"}))
    for path, w in _weights(G).items():
        if not path.endswith("weight") or w.size < 64:
            continue
        if path.endswith("input/affine/weight"):      # weight_init = 0
            assert np.all(w == 0), path
            continue
        scale = 100.0 if "mapping" in path else 1.0   # N(0,1) / lr_multiplier (0.01)
        assert abs(w.mean()) < 0.25 * scale, (path, w.mean())
        assert 0.7 * scale < w.std() < 1.3 * scale, (path, w.std())


def test_fresh_stylegan3_activations_stay_bounded():
    keras.utils.set_random_seed(1)
    G = Generator.from_preset("stylegan3-t", img_resolution=32, channel_base=2048, channel_max=64,
                              impl="ref")
    z = np.random.RandomState(0).randn(4, G.z_dim).astype(np.float32)
    ws = G.mapping(z)
    x = G.synthesis.input(ws[:, 0])
    for i, layer in enumerate(G.synthesis.synthesis_layers):
        x = layer(x, ws[:, i + 1])
        ms = float(np.mean(np.square(x)))
        assert 1e-3 < ms < 10, (layer.name, ms)
    img = np.asarray(G(z))
    assert np.abs(img).max() < 10 and img.std() > 1e-3


def test_discriminator_weight_init_and_logits():
    keras.utils.set_random_seed(2)
    D = Discriminator.from_preset("stylegan3-t", img_resolution=16, channel_base=512,
                                  channel_max=32)
    x = np.random.RandomState(0).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    logits = np.asarray(D(x))
    for path, w in _weights(D).items():
        if path.endswith("weight") and w.size >= 64:
            assert abs(w.mean()) < 0.25 and 0.7 < w.std() < 1.3, (path, w.mean(), w.std())
    assert np.all(np.isfinite(logits)) and np.abs(logits).max() < 100


@pytest.mark.slow
def test_mixed_bfloat16_generator_runs_and_tracks_fp32():
    """``mixed_bfloat16`` (a global policy, hence a subprocess): float32 images close to fp32."""
    import os
    import subprocess
    import sys
    code = r"""
import sys, keras, numpy as np
from sg3keras.models import Generator
out = []
for policy in ["float32", "mixed_bfloat16"]:
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    G = Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256,
                              channel_max=16, z_dim=16, w_dim=16, impl=sys.argv[1])
    img = G(np.random.RandomState(0).randn(2, 16).astype("float32"))
    assert img.dtype == "float32", img.dtype
    out.append(np.asarray(img))
mse = float(np.mean((out[0] - out[1]) ** 2))
print("PSNR", 20 * np.log10(2) - 10 * np.log10(max(mse, 1e-20)))
"""
    for impl in ["ref", "fast"]:
        r = subprocess.run([sys.executable, "-c", code, impl], capture_output=True, text=True,
                           timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert r.returncode == 0, r.stderr[-2000:]
        psnr = float(r.stdout.split("PSNR")[-1])
        assert psnr > 25, (impl, psnr)
