"""The one-way layering of the package: ops -> layers -> models -> training/metrics/export -> CLI.

Parses every module's imports (absolute and relative, module level and inside functions; no
execution) and fails on an upward import, on an import cycle between modules, and on TensorFlow
in the backend-neutral code (outside a function that dispatches on ``keras.backend.backend()``).
This is the only test of these rules.
"""

import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sg3keras")

# Floor of each sub-package / module; a module may import only from floors <= its own.
FLOORS = {
    "utils": 0, "config": 0, "ops": 1, "data": 1,
    "layers": 2, "losses": 2,
    "models": 3,
    "convert": 4, "inference": 5, "training": 5, "metrics": 5, "export": 6,
    "tools": 6, "demo": 7, "cli": 8,
}
# Backend-neutral code (runs under KERAS_BACKEND=jax): no TensorFlow except behind a backend
# check. ``ops/xla.py`` is the named TensorFlow-only module of the ops.
BACKEND_NEUTRAL = ("ops", "layers", "models", "losses", "convert")
TF_ONLY = {"ops/xla.py"}
# Augmentation runs under any backend too (it lives with the training code that uses it).
BACKEND_NEUTRAL_MODULES = {"training/augment.py"}
# TensorFlow-only metric modules: imported lazily, only on the TensorFlow backend.
TF_ONLY_METRICS = {"metrics/distributed.py"}


def _modules():
    for root, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                yield os.path.relpath(path, PKG).replace(os.sep, "/"), path


MODULES = sorted(_modules())


def _dotted(rel):
    """``ops/xla.py`` -> ``sg3keras.ops.xla``; ``ops/__init__.py`` -> ``sg3keras.ops``."""
    parts = ["sg3keras"] + rel.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted):
    rel = dotted.split(".", 1)[1].replace(".", "/") if "." in dotted else ""
    return os.path.isfile(os.path.join(PKG, rel + ".py")) or \
        os.path.isfile(os.path.join(PKG, rel, "__init__.py"))


class _Imports(ast.NodeVisitor):
    """Every import of a module as ``(dotted module, top_level, inside_backend_check)``."""

    def __init__(self, rel):
        self.rel, self.found, self.depth, self.dispatch = rel, [], 0, 0
        pkg = _dotted(rel)
        self.package = pkg if rel.endswith("__init__.py") else pkg.rsplit(".", 1)[0]

    def _add(self, name):
        self.found.append((name, self.depth == 0, self.dispatch > 0))

    def visit_FunctionDef(self, node):
        # A function that asks ``backend()`` dispatches on the backend (an ``if`` around the
        # import or an early return before it).
        check = "backend()" in ast.unparse(node)
        self.depth += 1
        self.dispatch += check
        self.generic_visit(node)
        self.dispatch -= check
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node):
        for a in node.names:
            self._add(a.name)

    def visit_ImportFrom(self, node):
        if node.level:
            base = self.package.split(".")
            base = base[:len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        # ``from a import b``: b may be a submodule.
        subs = [f"{mod}.{a.name}" for a in node.names if _is_module(f"{mod}.{a.name}")]
        for name in subs or [mod]:
            self._add(name)


def _imports(rel, path):
    v = _Imports(rel)
    v.visit(ast.parse(open(path).read()))
    return v.found


def _floor(rel):
    return FLOORS.get(rel.split("/")[0].removesuffix(".py"))


@pytest.mark.parametrize("rel,path", MODULES)
def test_no_upward_imports(rel, path):
    if rel == "__init__.py":
        return
    mine = _floor(rel)
    assert mine is not None, f"{rel}: add it to FLOORS in tests/test_layering.py"
    for mod, _, _ in _imports(rel, path):
        if not mod.startswith("sg3keras."):
            continue
        target = mod.split(".")[1]
        floor = FLOORS.get(target)
        assert floor is not None, f"{rel} imports unknown sg3keras module {mod}"
        assert floor <= mine, f"{rel} (floor {mine}) imports {mod} (floor {floor})"


def test_no_import_cycles():
    """No two modules import each other, directly or through others (lazy imports count)."""
    graph = {}
    for rel, path in MODULES:
        me = _dotted(rel)
        graph[me] = {m for m, _, _ in _imports(rel, path)
                     if m.startswith("sg3keras") and m != me and _is_module(m)}
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                # A package importing its own submodules (re-exports) is not a cycle of code.
                if not all(b.startswith(a + ".") or a.startswith(b + ".")
                           for a, b in zip(cycle, cycle[1:])):
                    pytest.fail("import cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("rel,path", [m for m in MODULES
                                      if m[0].split("/")[0].removesuffix(".py") in BACKEND_NEUTRAL
                                      or m[0] in BACKEND_NEUTRAL_MODULES])
def test_backend_neutral_code_has_no_tensorflow(rel, path):
    if rel in TF_ONLY:
        return
    tf_only = {_dotted(t) for t in TF_ONLY}
    for mod, top, dispatch in _imports(rel, path):
        is_tf = mod == "tensorflow" or mod.startswith("tensorflow.") or mod in tf_only
        assert not (is_tf and (top or not dispatch)), (
            f"{rel} imports {mod} {'at module level' if top else 'outside a backend check'}; "
            "keep TensorFlow-only code in named modules or behind keras.backend.backend()")


@pytest.mark.parametrize("rel,path", [m for m in MODULES if m[0].startswith("metrics/")])
def test_metrics_tensorflow_only_in_named_modules(rel, path):
    if rel in TF_ONLY_METRICS:
        return
    tf_only = {_dotted(t) for t in TF_ONLY_METRICS}
    bad = [m for m, top, _ in _imports(rel, path) if top and (
        m == "tensorflow" or m.startswith("tensorflow.") or m in tf_only)]
    assert not bad, f"{rel} imports {bad} at module level; import TensorFlow-only code lazily"


def test_package_top_is_small():
    """At most six modules at the package top (besides ``__init__``); the rest live in
    sub-packages that read like the paper and the official tree."""
    top = sorted(f for f in os.listdir(PKG) if f.endswith(".py") and f != "__init__.py")
    assert len(top) <= 6, top
    assert {"losses.py", "config.py"} <= set(top)
    assert os.path.isfile(os.path.join(PKG, "cli", "__init__.py"))     # the CLI: a package


@pytest.mark.parametrize("old,new", [
    ("sg3keras.augment", "sg3keras.training.augment"),
    ("sg3keras.dataset_tool", "sg3keras.data.dataset_tool"),
    ("sg3keras.demo_data", "sg3keras.data.demo"),
    ("sg3keras.networks", "sg3keras.inference.networks"),
    ("sg3keras.generate", "sg3keras.inference.generate")])
def test_moved_modules_import_from_the_old_path_with_a_warning(old, new):
    import importlib
    import sys
    import warnings
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    assert mod is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message)
               for w in caught)
