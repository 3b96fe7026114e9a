import os
import sys
import zlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seeded_rngs(request):
    """Every test starts from Python, NumPy and Keras RNGs seeded from its own node id, so a
    test built on random weights gives the same result in any order, on every run.
    (Module-scoped fixtures run before this; the ones that draw weights seed themselves.)"""
    import keras
    keras.utils.set_random_seed(zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF)
    yield
