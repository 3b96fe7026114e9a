"""docs/PAPER.md names real code: every ``module:attr.path`` in backticks must import and resolve.

Imports only (no model is built), so a rename or a move of anything the paper map cites fails
here. The map must not be empty.
"""

import importlib
import os
import re

import pytest

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                   "PAPER.md")
# `package.module:Name` or `package.module:Class.method` inside backticks.
REF = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
                 r":([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)`")


def _refs():
    with open(DOC, encoding="utf-8") as f:
        return sorted(set(REF.findall(f.read())))


def test_paper_map_has_entries():
    refs = _refs()
    assert refs, f"{DOC} names no `module:name` entries"
    assert all(module.split(".")[0] == "sg3keras" for module, _ in refs), \
        [f"{m}:{a}" for m, a in refs if m.split(".")[0] != "sg3keras"]


@pytest.mark.parametrize("module,attr", _refs(), ids=lambda v: v)
def test_paper_map_entry_exists(module, attr):
    obj = importlib.import_module(module)
    for part in attr.split("."):
        assert hasattr(obj, part), f"{module}:{attr}: {obj!r} has no attribute {part!r}"
        obj = getattr(obj, part)
