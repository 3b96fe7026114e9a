"""The documentation as shipped: no merge-conflict markers in any tracked text file, a README that
renders as the package description, and relative links in README.md and docs/*.md that point to
files of the repository."""

import configparser
import glob
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPEN, SEP, CLOSE, BASE = "<" * 7, "=" * 7, ">" * 7, "|" * 7


def conflict_markers(text):
    """``[(line number, line)]`` of the merge-conflict markers in ``text``.

    ``<<<<<<<`` and ``>>>>>>>`` (alone or followed by a space and a label) count anywhere;
    ``=======`` and the diff3 ``|||||||`` alone on a line count only after an opening marker,
    since Markdown / reST use lines of ``=`` as rules and titles."""
    found, inside = [], False
    for i, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r")
        if line == OPEN or line.startswith(OPEN + " "):
            found.append((i, line))
            inside = True
        elif line == CLOSE or line.startswith(CLOSE + " "):
            found.append((i, line))
            inside = False
        elif inside and (line == SEP or line == BASE or line.startswith(BASE + " ")):
            found.append((i, line))
    return found


def test_conflict_checker_finds_markers():
    text = "\n".join(["# Title", OPEN + " HEAD", "ours", SEP, "theirs", CLOSE + " branch", ""])
    assert [n for n, _ in conflict_markers(text)] == [2, 4, 6]
    # diff3 style, and markers without a label.
    text = "\n".join([OPEN, "a", BASE + " base", "b", SEP, "c", CLOSE])
    assert [n for n, _ in conflict_markers(text)] == [1, 3, 5, 7]
    # A stray closing marker alone is caught too.
    assert conflict_markers("text\n" + CLOSE + " issue19\n") == [(2, CLOSE + " issue19")]


def test_conflict_checker_ignores_rules_and_titles():
    rst = "Title\n" + SEP + "\n\n" + "=" * 8 + "  =====\na        b\n" + "=" * 8 + "  =====\n"
    assert conflict_markers(rst) == []
    assert conflict_markers("x = 1  # " + OPEN + " not at the line start\n") == []
    assert conflict_markers(SEP + "\n") == []


def _tracked_text_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"not a git checkout ({e}): nothing tracked to check")
    for rel in out.decode().split("\0"):
        path = os.path.join(ROOT, rel)
        if not rel or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" in data[:8192]:
            continue                          # binary (PNG, npz, pickle, ...)
        try:
            yield rel, data.decode("utf-8")
        except UnicodeDecodeError:
            continue


def test_no_conflict_markers_in_tracked_files():
    files = list(_tracked_text_files())
    assert any(rel == "README.md" for rel, _ in files)
    bad = [f"{rel}:{n}: {line}" for rel, text in files for n, line in conflict_markers(text)]
    assert not bad, "merge-conflict markers:\n" + "\n".join(bad)


def test_readme_renders_as_package_description():
    import readme_renderer.markdown

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    assert cfg["metadata"]["long_description"] == "file: README.md"
    assert cfg["metadata"]["long_description_content_type"] == "text/markdown"
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    html = readme_renderer.markdown.render(text)
    assert html is not None, "README.md does not render as text/markdown"
    assert re.search(r"<h1[^>]*>sg3keras", html) and "make demo" in html


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _doc_files():
    return ["README.md"] + sorted(os.path.relpath(p, ROOT)
                                  for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))


def relative_links(text):
    """Targets of the Markdown links and images in ``text`` that are paths (no URL, no anchor),
    outside code blocks and code spans."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        out.append(target.split("#", 1)[0])
    return out


def test_link_extraction():
    text = ("[a](docs/X.md) ![i](images/p.png) [u](https://x.org/a.md) [s](#sec) "
            "[f](CHANGELOG.md#top) `[c](not/a/link.md)`\n```\n[d](nope.md)\n```\n")
    assert relative_links(text) == ["docs/X.md", "images/p.png", "CHANGELOG.md"]


@pytest.mark.parametrize("rel", _doc_files())
def test_relative_links_point_to_files(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        links = relative_links(f.read())
    base = os.path.dirname(os.path.join(ROOT, rel))
    missing = [t for t in links if not os.path.exists(os.path.normpath(os.path.join(base, t)))]
    assert not missing, f"{rel}: links to missing files: {missing}"
    outside = [t for t in links
              if not os.path.normpath(os.path.join(base, t)).startswith(ROOT + os.sep)]
    assert not outside, f"{rel}: links outside the repository: {inside}"
