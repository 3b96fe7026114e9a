import os
import sys
import zlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The CLI runs networks with impl="auto" (sg3keras.ops.autotune), which measures and writes a
# cache under ~/.cache; the suite (and the CLI processes it starts) keeps the fixed default.
# tests/test_autotune.py clears this for its own tests.
os.environ.setdefault("SG3KERAS_AUTOTUNE", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seeded_rngs(request):
    """Every test starts from Python, NumPy and Keras RNGs seeded from its own node id, so a
    test built on random weights gives the same result in any order, on every run.
    (Module-scoped fixtures run before this; the ones that draw weights seed themselves.)"""
    import keras
    keras.utils.set_random_seed(zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF)
    yield
