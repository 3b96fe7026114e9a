"""Fuzzing the readers of outside data (docs/RELIABILITY.md; the large campaign is
bench/fuzz.py): a small seeded campaign over every reader, the replay of every input a campaign
crashed on (tests/fuzz_regressions/), and checks of the harness itself."""

import gzip
import io
import json
import os
import random
import shutil
import zipfile

import pytest

import fuzz_harness
import fuzz_mutate
import fuzz_seeds
import fuzz_worker

HERE = os.path.dirname(os.path.abspath(__file__))
REGRESSIONS = os.path.join(HERE, "fuzz_regressions")
# Inputs per reader of the small campaign (the model-building readers are the slow ones).
SMALL = {"pickle": 40, "convert": 10, "keras": 10, "dataset-zip": 40, "dataset-dir": 40,
         "projected-w": 40, "torchscript": 40, "vgg16": 8, "inception": 6, "inception-pb": 6,
         "download": 40}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """``get(kinds)``: the valid seeds of those kinds (fuzz_seeds.build), each built once."""
    work, built = str(tmp_path_factory.mktemp("fuzz-seeds")), {}

    def get(kinds):
        built.update(fuzz_seeds.build(work, set(kinds) - set(built)))
        return {k: built[k] for k in kinds}
    return get


def test_small_campaign_covers_every_reader():
    assert set(SMALL) == set(fuzz_harness.READERS)
    assert 250 <= sum(SMALL.values()) <= 400      # "a few hundred", under a minute or two


@pytest.mark.slow
@pytest.mark.timeout(1800)      # worker start-ups and model builds: minutes on a busy machine
def test_small_campaign_finds_no_crash_or_hang(seeds, tmp_path, monkeypatch):
    """Every mutated input loads or is refused with the reader's documented error naming the
    file; nothing else is raised, nothing hangs, nothing allocates beyond 1 GiB (a 1.5 GiB
    zip bomb would)."""
    built = seeds({kind for kind, _, _ in fuzz_harness.READERS.values()})
    monkeypatch.setattr(fuzz_mutate, "BOMB_BYTES", 1536 << 20)
    results = fuzz_harness.campaign(list(SMALL), SMALL, 1, str(tmp_path), headroom=1 << 30,
                                    seeds=built)
    failures = [f"{r} #{f['index']} {f['outcome']}: {f['detail']} [{f['input']}]"
                for r, c in results.items() for f in c["failures"]]
    assert not failures, "\n".join(failures)
    for reader, counts in results.items():
        assert counts["inputs"] == SMALL[reader]
        # Input 0 is the valid seed (it loads, except for the Inception stand-ins, whose tiny
        # shapes the real network refuses); the mutants reach the error paths.
        assert counts["loaded"] >= (0 if reader.startswith("inception") else 1), (reader, counts)
        assert counts["rejected"] >= 1, (reader, counts)


def _regression_inputs(tmp_path):
    """``(reader, path)`` per regression: a file or folder as kept, ``X.gz`` (bombs and big
    files, kept compressed) or ``X.patch.json`` (edits ``[offset, length, hex]`` of a fixture
    under tests/, for a mutated official pickle)."""
    out = []
    for name in sorted(os.listdir(REGRESSIONS)):
        reader = name.split("--")[0]
        src = os.path.join(REGRESSIONS, name)
        if name.endswith(".gz"):
            dest = tmp_path / name[:-3]
            with gzip.open(src) as f, open(dest, "wb") as g:
                shutil.copyfileobj(f, g)
            src = str(dest)
        elif name.endswith(".patch.json"):
            with open(src) as f:
                patch = json.load(f)
            with open(os.path.join(HERE, patch["base"]), "rb") as f:
                data = bytearray(f.read())
            for offset, length, new in reversed(patch["edits"]):
                data[offset:offset + length] = bytes.fromhex(new)
            src = str(tmp_path / name[:-len(".patch.json")])
            with open(src, "wb") as f:
                f.write(data)
        out.append((reader, src))
    return out


@pytest.mark.slow
def test_regression_inputs_are_refused_cleanly(seeds, tmp_path):
    """Every input that once crashed a reader (one file each, named ``<reader>--<what>``) now
    loads or is refused with the documented error, within bounded memory and time."""
    inputs = _regression_inputs(tmp_path)
    assert {r for r, _ in inputs} >= {"pickle", "convert", "projected-w", "torchscript",
                                      "dataset-dir", "dataset-zip", "keras", "inception-pb"}
    kinds = {r: fuzz_harness.READERS[r][0] for r, _ in inputs}
    built = seeds(set(kinds.values()))        # each reader warms up on its valid seed first
    worker = fuzz_harness.Worker({r: built[k][1] for r, k in kinds.items()}, 1 << 30)
    try:
        answers = {os.path.basename(p): worker.run(r, p, fuzz_harness.READERS[r][2])
                   for r, p in inputs}
    finally:
        worker.close()
    bad = {k: v for k, v in answers.items() if v["outcome"] not in ("loaded", "rejected")}
    assert not bad, bad
    assert all(v["outcome"] == "rejected" for v in answers.values()), answers


@pytest.mark.parametrize("kind", ["pickle", "dataset-zip", "npz", "torchscript", "http"])
def test_mutations_are_seeded_and_reach_the_format(seeds, kind):
    """The same (seed, reader, index) gives the same input; the format-aware mutations occur."""
    data = seeds([kind])[kind][0][0]
    descs = set()
    for i in range(120):
        a = fuzz_mutate.mutate(data, random.Random(f"7:{kind}:{i}"))
        b = fuzz_mutate.mutate(data, random.Random(f"7:{kind}:{i}"))
        assert a == b
        descs.add(a[1])
    text = " ".join(descs)
    wanted = {"pickle": ["claims", "pickle int", "nested pickle"],
              "dataset-zip": ["zip 0102", "zip 0304", "member", "central directory"],
              "npz": ["npy header", "deflate bomb"], "torchscript": ["member archive/data.pkl"],
              "http": ["Content-Length", "chunked", "status"]}[kind]
    assert all(w in text for w in wanted), (wanted, sorted(descs)[:20])


def test_zip_member_mutation_keeps_a_valid_archive(seeds):
    """A mutated member is re-zipped with its CRC and sizes right, so the damage reaches the
    member's own reader instead of stopping at the zip layer."""
    data = seeds(["dataset-zip"])["dataset-zip"][0][0]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        before = {i.filename: z.read(i) for i in z.infolist()}
    changed = 0
    for i in range(20):
        out, desc = fuzz_mutate._zip_member(data, random.Random(i), 0)
        if "bomb" in desc:
            continue
        with zipfile.ZipFile(io.BytesIO(out)) as z:
            assert z.testzip() is None, desc
            changed += {i.filename: z.read(i) for i in z.infolist()} != before
    assert changed >= 10      # (a duplicated member, or a no-op truncation, changes nothing)


def test_zip_bomb_inflates_to_its_size():
    import zlib
    comp, crc, size = fuzz_mutate.zip_bomb(32 << 20)
    out = zlib.decompressobj(-15).decompress(comp)
    assert len(out) == size == 32 << 20 and zlib.crc32(out) == crc and not any(out[::4096])
    assert len(comp) < size // 500


def _raise_in_library(exc):
    def f():
        raise exc
    f.__code__ = f.__code__.replace(co_filename=zipfile.__file__)
    try:
        f()
    except Exception as e:
        return e


def test_classify():
    """What counts as a clean refusal: the documented type, raised by sg3keras code, naming the
    file; a MemoryError anywhere in the chain is a failure."""
    from sg3keras.data.dataset_tool import DatasetError, read_labels_json
    path = "/x/dataset.json"
    with pytest.raises(DatasetError) as info:
        read_labels_json(b"{", path)
    documented = fuzz_harness.READERS["dataset-zip"][1]
    assert fuzz_worker.classify(info.value, documented, path)[0] == "rejected"
    assert fuzz_worker.classify(info.value, documented, "/x/other.json")[0] == "crash"
    assert fuzz_worker.classify(info.value, ("builtins.KeyError",), path)[0] == "crash"
    memory = DatasetError(f"{path}: no")
    memory.__context__ = MemoryError()
    assert fuzz_worker.classify(memory, documented, path)[1].startswith("memory")
    inside = _raise_in_library(DatasetError(f"{path}: raised by a library"))
    assert "inside a library" in fuzz_worker.classify(inside, documented, path)[1]
