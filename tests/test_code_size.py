"""The size budgets of docs/CONTRIBUTING.md: no module over 600 lines, no function over 80."""

import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sg3keras")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _sources():
    for root, _, files in os.walk(PKG):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(root, f)
                yield os.path.relpath(path, PKG).replace(os.sep, "/"), path


def long_functions(source, limit=MAX_FUNCTION_LINES):
    """``(name, lines)`` of every function (methods and nested ones included) longer than
    ``limit`` lines, from its ``def`` line (docstring counted, decorators not: a click command's
    option list is declaration, not logic)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append((node.name, n))
    return out


@pytest.mark.parametrize("rel,path", sorted(_sources()))
def test_module_within_budget(rel, path):
    source = open(path).read()
    n = len(source.splitlines())
    assert n <= MAX_MODULE_LINES, f"sg3keras/{rel}: {n} lines > {MAX_MODULE_LINES}; split it"
    assert not long_functions(source), (
        f"sg3keras/{rel}: functions over {MAX_FUNCTION_LINES} lines: {long_functions(source)}")


def test_long_function_is_reported():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}\n") == [("f", MAX_FUNCTION_LINES + 1)]
    assert long_functions(f"def f():\n{body}\n", limit=MAX_FUNCTION_LINES + 1) == []
    decorated = f"@a\n@b\ndef f():\n{body}\n"
    assert long_functions(decorated) == [("f", MAX_FUNCTION_LINES + 1)]
