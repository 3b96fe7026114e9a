"""``import sg3keras`` registers every serializable class with Keras, lazily."""

import os
import re
import subprocess
import sys

import pytest

import sg3keras

PKG = os.path.dirname(os.path.abspath(sg3keras.__file__))


def _registered_classes():
    """``{(module, class)}`` of every class decorated with register_keras_serializable."""
    out = set()
    for root, _, files in os.walk(PKG):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(root, f)
            text = open(path).read()
            rel = os.path.relpath(path, os.path.dirname(PKG)).removesuffix(".py")
            module = rel.replace(os.sep, ".").removesuffix(".__init__")
            for m in re.finditer(r"register_keras_serializable\([^)]*\)\s*\nclass (\w+)", text):
                out.add((module, m.group(1)))
    return out


def test_registering_modules_cover_every_registered_class():
    classes = _registered_classes()
    assert len(classes) >= 20, classes
    covered = sg3keras.REGISTERING_MODULES
    missing = sorted(mod for mod, _ in classes
                     if not any(mod == c or mod.startswith(c + ".") for c in covered))
    assert not missing, f"add to sg3keras.REGISTERING_MODULES: {missing}"


def _run(code, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)


@pytest.mark.slow
def test_plain_import_registers_for_keras_load_model(tmp_path):
    make = ("from sg3keras.models import Generator, Discriminator\n"
            "G = Generator.from_preset('stylegan3-t', img_resolution=16, cbase=256, cmax=16,"
            " z_dim=8, w_dim=8)\nG.save('g.keras')\n"
            "D = Discriminator.from_preset('stylegan3-t', 16, channel_base=256, channel_max=16)\n"
            "D.save('d.keras')\n")
    assert _run(make, tmp_path).returncode == 0
    names = sorted(f"sg3keras>{cls}" for _, cls in _registered_classes())
    load = ("import keras\nfor f in ('g.keras', 'd.keras'):\n"
            "    print(type(keras.saving.load_model(f)).__name__)\n"
            f"missing = [n for n in {names!r} if keras.saving.get_registered_object(n) is None]\n"
            "print('missing', missing)\n")
    for first in ("import sg3keras, sys\nassert 'keras' not in sys.modules\n", "import keras\n"
                  "import sg3keras\n"):
        proc = _run(first + load, tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split() == ["Generator", "Discriminator", "missing", "[]"], proc.stdout
    # Without importing sg3keras Keras cannot know the classes (the test above is not vacuous).
    proc = _run("import keras\nkeras.saving.load_model('g.keras')", tmp_path)
    assert proc.returncode != 0 and "Could not locate class 'Generator'" in proc.stderr


def test_import_sg3keras_stays_light(tmp_path):
    proc = _run("import sys, sg3keras\n"
                "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))",
                tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
