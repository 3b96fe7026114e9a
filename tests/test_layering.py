"""The strict floors of the package: each sub-package imports only from the floors below it.

Parses every module's imports (absolute and relative, module level and inside functions, and the
string tables that ``importlib.import_module`` reads: a string constant that names an sg3keras
module counts as an import of it; no execution) and fails on an upward import, on an import
between two packages of the same floor, on a circle between packages, on an import cycle between
modules, and on TensorFlow in the backend-neutral code (outside a function that dispatches on
``keras.backend.backend()``). This is the only test of these rules; the checkers are functions
of a ``{module: imports}`` mapping, fed a synthetic breach at the end of this file.
"""

import ast
import os
import re

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sg3keras")

# Floor of each sub-package / top module. A module imports only from lower floors and from its
# own package: never from another package of its own floor, never from a floor above.
FLOORS = {
    "utils": 0, "config": 0,
    "ops": 1, "data": 1,
    "layers": 2, "losses": 2,
    "models": 3,
    "convert": 4, "runtime": 4,
    "networks": 5, "detectors": 5,
    "inference": 6, "metrics": 6, "runs": 6,
    "training": 7, "tools": 7, "export": 7,
    "demo": 8, "visualize": 8,
    "cli": 9,
}
# Backend-neutral code (runs under KERAS_BACKEND=jax): no TensorFlow except behind a backend
# check, and no import of a TensorFlow-only module.
BACKEND_NEUTRAL = ("ops", "layers", "models", "losses", "convert", "runtime")
# Augmentation runs under any backend too (it lives with the training code that uses it).
BACKEND_NEUTRAL_MODULES = {"training/augment.py"}
# The named TensorFlow-only modules below the training floor.
TF_ONLY = {"ops/xla.py", "runtime/strategy.py", "metrics/distributed.py"}
# Packages that import TensorFlow (and the TensorFlow-only modules) lazily only, in functions
# that run on the TensorFlow backend, so that importing them stays cheap.
LAZY_TF = ("networks", "detectors", "metrics")
# A string constant of this form is a module path (``importlib.import_module`` tables).
_MODULE_STRING = re.compile(r"sg3keras(\.[A-Za-z_][A-Za-z0-9_]*)+")


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


def _package(rel):
    """The package (first path part) of ``ops/xla.py``, or the top module ``cli.py`` -> ``cli``."""
    return rel.split("/")[0].removesuffix(".py")


def _target(mod):
    """The package of an imported ``sg3keras.*`` module, or None for other modules."""
    return mod.split(".")[1] if mod.startswith("sg3keras.") else None


class _Imports(ast.NodeVisitor):
    """Every import of a module as ``(dotted module, top_level, inside_backend_check)``."""

    def __init__(self, rel):
        self.rel, self.found, self.depth, self.dispatch = rel, [], 0, 0
        pkg = _dotted(rel)
        self.package = pkg if rel.endswith("__init__.py") else pkg.rsplit(".", 1)[0]

    def _add(self, name, top=None):
        self.found.append((name, self.depth == 0 if top is None else top, self.dispatch > 0))

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

    def visit_Constant(self, node):
        # ``"sg3keras.convert.generator"`` in a table for ``importlib.import_module``: an import
        # (a lazy one) of the longest prefix that is a module below the package top.
        if isinstance(node.value, str) and _MODULE_STRING.fullmatch(node.value):
            parts = node.value.split(".")
            for n in range(len(parts), 1, -1):
                if _is_module(".".join(parts[:n])):
                    self._add(".".join(parts[:n]), top=False)
                    break


def _imports_of_source(rel, source):
    v = _Imports(rel)
    v.visit(ast.parse(source))
    return v.found


def _imports(rel, path):
    with open(path) as f:
        return _imports_of_source(rel, f.read())


IMPORTS = {rel: _imports(rel, path) for rel, path in MODULES}


# ---------------------------------------------------------------------------------------------
# The checkers: functions of {module path ("ops/xla.py"): [(dotted import, top, dispatch)]}.

def upward_imports(imports, floors=FLOORS):
    """``"rel (floor f) imports mod (floor g)"`` for every import of a higher floor (or of an
    sg3keras package without a floor)."""
    out = []
    for rel, found in sorted(imports.items()):
        if rel == "__init__.py":
            continue
        mine = floors.get(_package(rel))
        if mine is None:
            out.append(f"{rel}: add {_package(rel)!r} to FLOORS in tests/test_layering.py")
            continue
        for mod, _, _ in found:
            target = _target(mod)
            if target is None:
                continue
            floor = floors.get(target)
            if floor is None:
                out.append(f"{rel} imports unknown sg3keras module {mod}")
            elif floor > mine:
                out.append(f"{rel} (floor {mine}) imports {mod} (floor {floor})")
    return out


def sideways_imports(imports, floors=FLOORS):
    """``"rel (package p, floor f) imports mod (package q, the same floor)"`` for every import
    between two different packages of one floor (lazy and string imports included)."""
    out = []
    for rel, found in sorted(imports.items()):
        mine = _package(rel)
        if rel == "__init__.py" or mine not in floors:
            continue
        for mod, _, _ in found:
            target = _target(mod)
            if target is not None and target != mine and floors.get(target) == floors[mine]:
                out.append(f"{rel} ({mine}, floor {floors[mine]}) imports {mod} ({target}, the "
                           f"same floor); move what both need to a lower floor")
    return out


def package_graph(imports):
    """``{package: {package it imports}}`` over the sub-packages and top modules (the package
    top ``__init__.py`` left out)."""
    graph = {}
    for rel, found in imports.items():
        if rel == "__init__.py":
            continue
        mine = _package(rel)
        graph.setdefault(mine, set())
        graph[mine] |= {t for t in map(_target, (m for m, _, _ in found))
                        if t is not None and t != mine}
    return graph


def find_cycle(graph, allowed=lambda a, b: False):
    """One cycle of ``graph`` (``{node: {node}}``) as ``[a, b, ..., a]``, or None; a cycle all
    of whose edges ``(a, b)`` are ``allowed`` does not count."""
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                if not all(allowed(a, b) for a, b in zip(cycle, cycle[1:])):
                    return cycle
            elif nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def module_graph(imports):
    """``{dotted module: {sg3keras module it imports}}``."""
    return {_dotted(rel): {m for m, _, _ in found
                           if m.startswith("sg3keras") and m != _dotted(rel) and _is_module(m)}
            for rel, found in imports.items()}


def _parent_and_child(a, b):
    # A package importing its own submodules (re-exports) is not a cycle of code.
    return b.startswith(a + ".") or a.startswith(b + ".")


# ---------------------------------------------------------------------------------------------
# The rules, on the real tree.

@pytest.mark.parametrize("rel", [rel for rel, _ in MODULES])
def test_no_upward_imports(rel):
    assert not upward_imports({rel: IMPORTS[rel]})


@pytest.mark.parametrize("rel", [rel for rel, _ in MODULES])
def test_no_sideways_imports(rel):
    assert not sideways_imports({rel: IMPORTS[rel]})


def test_no_circle_between_packages():
    """The package import graph has no arrow running back up (lazy and string imports count)."""
    cycle = find_cycle(package_graph(IMPORTS))
    assert cycle is None, "import circle between packages: " + " -> ".join(cycle)


def test_no_import_cycles():
    """No two modules import each other, directly or through others (lazy imports count)."""
    cycle = find_cycle(module_graph(IMPORTS), allowed=_parent_and_child)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _tensorflow(mod, tf_only):
    return mod == "tensorflow" or mod.startswith("tensorflow.") or mod in tf_only


@pytest.mark.parametrize("rel", [rel for rel, _ in MODULES
                                 if _package(rel) in BACKEND_NEUTRAL
                                 or rel in BACKEND_NEUTRAL_MODULES])
def test_backend_neutral_code_has_no_tensorflow(rel):
    if rel in TF_ONLY:
        return
    tf_only = {_dotted(t) for t in TF_ONLY}
    for mod, top, dispatch in IMPORTS[rel]:
        assert not (_tensorflow(mod, tf_only) and (top or not dispatch)), (
            f"{rel} imports {mod} {'at module level' if top else 'outside a backend check'}; "
            "keep TensorFlow-only code in named modules or behind keras.backend.backend()")


@pytest.mark.parametrize("rel", [rel for rel, _ in MODULES if _package(rel) in LAZY_TF])
def test_tensorflow_only_in_named_modules(rel):
    """metrics, detectors, networks: TensorFlow (and TensorFlow-only modules) imported lazily."""
    if rel in TF_ONLY:
        return
    tf_only = {_dotted(t) for t in TF_ONLY}
    bad = [m for m, top, _ in IMPORTS[rel] if top and _tensorflow(m, tf_only)]
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
    ("sg3keras.generate", "sg3keras.inference.generate"),
    ("sg3keras.inference.networks", "sg3keras.networks.loading"),
    ("sg3keras.inference.pretrained", "sg3keras.networks.pretrained"),
    ("sg3keras.training.optimizers", "sg3keras.runtime.optimizers"),
    ("sg3keras.metrics.detectors", "sg3keras.detectors.loading"),
    ("sg3keras.metrics.inception", "sg3keras.detectors.inception"),
    ("sg3keras.metrics.vgg16", "sg3keras.detectors.vgg16")])
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


# ---------------------------------------------------------------------------------------------
# The checkers catch a breach: synthetic modules and graphs.

def test_a_sideways_import_is_reported():
    # inference -> metrics: both on floor 6, so not upward, but sideways.
    fake = {"inference/projector.py": [("sg3keras.metrics.registry", False, False)],
            "metrics/evaluate.py": [("sg3keras.detectors.loading", False, False)]}
    assert not upward_imports(fake)
    found = sideways_imports(fake)
    assert len(found) == 1 and "inference/projector.py (inference, floor 6) imports " \
        "sg3keras.metrics.registry (metrics, the same floor)" in found[0], found


@pytest.mark.parametrize("source", [
    "def f():\n    from sg3keras.metrics import registry\n",             # lazy
    "def f():\n    from ..metrics.registry import calc_metric\n",        # lazy, relative
    "import importlib\n\n\ndef f():\n"
    "    return importlib.import_module('sg3keras.metrics.registry')\n",  # a string
    "_EXPORTS = {'calc_metric': 'sg3keras.metrics.registry'}\n",          # a string table
    "_T = {'G': ('Generator', 'sg3keras.metrics.registry', 'fn')}\n",     # a tuple in a table
])
def test_lazy_and_string_imports_are_imports(source):
    found = _imports_of_source("inference/fake.py", source)
    assert ("sg3keras.metrics.registry", False, False) in found, found
    assert len(sideways_imports({"inference/fake.py": found})) == 1


def test_docstrings_and_messages_are_not_imports():
    source = ('"""Uses :mod:`sg3keras.metrics.registry`."""\n\n\ndef f(name):\n'
              '    raise AttributeError(f"module \'sg3keras.metrics\' has no {name!r}")\n')
    assert _imports_of_source("inference/fake.py", source) == []


def test_an_upward_import_is_reported():
    fake = {"metrics/distributed.py": [("sg3keras.training.distribute", False, False)]}
    found = upward_imports(fake)
    assert found == ["metrics/distributed.py (floor 6) imports sg3keras.training.distribute "
                     "(floor 7)"], found


def test_a_circle_between_packages_is_reported():
    # metrics -> networks -> inference -> metrics (lazy imports); ops imports no package.
    fake = {"metrics/evaluate.py": [("sg3keras.networks.loading", False, False)],
            "networks/loading.py": [("sg3keras.inference.generate", False, False)],
            "inference/projector.py": [("sg3keras.metrics.registry", False, False)],
            "ops/misc.py": [("numpy", True, False)]}
    graph = package_graph(fake)
    assert graph == {"metrics": {"networks"}, "networks": {"inference"},
                     "inference": {"metrics"}, "ops": set()}
    assert find_cycle(graph) == ["inference", "metrics", "networks", "inference"]
    assert find_cycle(package_graph({k: v for k, v in fake.items()
                                     if not k.startswith("inference/")})) is None


def test_a_module_cycle_is_reported_but_not_a_package_re_export():
    graph = {"sg3keras.a": {"sg3keras.a.x"}, "sg3keras.a.x": {"sg3keras.a"}}
    assert find_cycle(graph, allowed=_parent_and_child) is None
    graph["sg3keras.a.x"] = {"sg3keras.b"}
    graph["sg3keras.b"] = {"sg3keras.a.x"}
    assert find_cycle(graph, allowed=_parent_and_child) == [
        "sg3keras.a.x", "sg3keras.b", "sg3keras.a.x"]
