"""The one-way layering of the package: ops -> layers -> models -> training/metrics/export -> CLI.

Parses every module's imports (no execution) and fails on an upward import, and on module-level
TensorFlow imports in the backend-neutral model code.
"""

import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sg3keras")

# Floor of each sub-package / module; a module may import only from floors <= its own.
FLOORS = {
    "utils": 0, "config": 0, "ops": 1, "dataset_tool": 1, "demo_data": 1, "data": 1,
    "layers": 2, "losses": 2, "augment": 2,
    "models": 3,
    "convert": 4, "networks": 5, "generate": 5, "training": 5, "metrics": 5, "export": 6,
    "tools": 6, "demo": 7, "cli": 8,
}
BACKEND_NEUTRAL = ("ops", "layers", "models", "losses", "augment")
TF_ALLOWED = {"ops/xla.py", "ops/grid_sample.py"}


def _modules():
    for root, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                yield os.path.relpath(path, PKG).replace(os.sep, "/"), path


def _floor(rel):
    head = rel.split("/")[0].removesuffix(".py")
    return FLOORS.get(head)


def _imports(path, top_level_only=False):
    tree = ast.parse(open(path).read())
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("rel,path", sorted(_modules()))
def test_no_upward_imports(rel, path):
    if rel == "__init__.py":
        return
    mine = _floor(rel)
    assert mine is not None, f"{rel}: add it to FLOORS in tests/test_layering.py"
    for mod in _imports(path):
        if not mod.startswith("sg3keras."):
            continue
        target = mod.split(".")[1]
        floor = FLOORS.get(target)
        assert floor is not None, f"{rel} imports unknown sg3keras module {mod}"
        assert floor <= mine, f"{rel} (floor {mine}) imports {mod} (floor {floor})"


@pytest.mark.parametrize("rel,path", [m for m in sorted(_modules())
                                      if m[0].split("/")[0].removesuffix(".py") in BACKEND_NEUTRAL])
def test_model_code_is_backend_neutral(rel, path):
    if rel in TF_ALLOWED:
        return
    # Function-level imports behind a ``keras.backend.backend()`` check are backend dispatch.
    mods = _imports(path, top_level_only=True)
    bad = [m for m in mods if m == "tensorflow" or m.startswith("tensorflow.")]
    assert not bad, f"{rel} imports {bad}; keep TensorFlow-only code in named modules"


# TensorFlow-only metric modules: imported lazily, only on the TensorFlow backend.
TF_ONLY_METRICS = {"metrics/distributed.py"}


def _top_level_names(path):
    """Module-level imports, ``from a import b`` as both ``a`` and ``a.b``."""
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


@pytest.mark.parametrize("rel,path", [m for m in sorted(_modules())
                                      if m[0].startswith("metrics/")])
def test_metrics_tensorflow_only_in_named_modules(rel, path):
    if rel in TF_ONLY_METRICS:
        return
    tf_only = {"sg3keras." + t.removesuffix(".py").replace("/", ".") for t in TF_ONLY_METRICS}
    bad = [m for m in _top_level_names(path)
           if m == "tensorflow" or m.startswith("tensorflow.") or m in tf_only]
    assert not bad, f"{rel} imports {bad} at module level; import TensorFlow-only code lazily"
