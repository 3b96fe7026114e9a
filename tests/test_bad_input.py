"""Every input a user can get wrong, through the CLI: one clear line, nothing lost.

The matrix (:data:`ROWS`) runs each command in-process (``click.testing.CliRunner``, stderr
kept apart from stdout) on tiny files made once per module, and checks for every row:

* a non-zero exit status (2 for a malformed command line, else 1);
* exactly one line on stderr, ``Error: ...``, containing the row's words -- the file, flag or
  value, and what was expected -- and no traceback;
* nothing on stdout (no partial output), and the file tree of the fixtures byte-for-byte as
  before: no output, no temporary file, no directory left behind, no existing file replaced.

No row trains: ``train`` rows use ``--dry-run``, which reads (and decodes) every image it
would train on. One fresh-process run checks what only a real process shows (TensorFlow's
start-up log lines).
"""

import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest

from helpers import run_cli, run_cli_process


# ------------------------------------------------------------------------------------ fixtures

def _png(arr):
    buf = io.BytesIO()
    PIL.Image.fromarray(arr).save(buf, format="png")
    return buf.getvalue()


def _rgb(seed, size=16, w=None):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, w or size, 3), dtype=np.uint8)


def _folder(path, files, labels=None):
    os.makedirs(path)
    for name, data in files.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    if labels is not None:
        with open(os.path.join(path, "dataset.json"), "w") as f:
            f.write(labels if isinstance(labels, str) else
                    json.dumps({"labels": [[k, v] for k, v in labels.items()]}))
    return path


def _zip(path, files, labels=None):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        if labels is not None:
            zf.writestr("dataset.json", json.dumps({"labels": [[k, v] for k, v in
                                                               labels.items()]}))
    return path


def _make_files(d):
    good = {f"a{i}.png": _png(_rgb(i)) for i in range(3)}
    gray = _png(np.full((16, 16), 7, np.uint8))
    rgba = _png(np.random.default_rng(9).integers(0, 256, (16, 16, 4), dtype=np.uint8))
    _folder(d / "rgb", good)
    _folder(d / "noimages", {"readme.txt": b"no images here"})
    _folder(d / "zero_img", dict(good, **{"empty.png": b""}))
    _folder(d / "trunc_img", dict(good, **{"cut.png": good["a0.png"][:150]}))
    _folder(d / "rgba", dict(good, **{"z.png": rgba}))
    _folder(d / "gray_in_rgb", dict(good, **{"g.png": gray}))
    _folder(d / "mixed_size", dict(good, **{"small.png": _png(_rgb(5, 8))}))
    _folder(d / "nonsquare", {"wide.png": _png(_rgb(6, 8, 16))})
    _folder(d / "all_bad", {"b0.png": b"", "b1.png": b"not a png"})
    _folder(d / "labels_missing", good, labels={"a0.png": 0, "a1.png": 1})
    _folder(d / "labels_extra", good, labels={"a0.png": 0, "a1.png": 1, "a2.png": 2,
                                             "gone.png": 1})
    _folder(d / "labels_bad_json", good, labels="{not json")
    _zip(d / "good.zip", good)
    _zip(d / "labelled.zip", good, labels={"a0.png": 0, "a1.png": 1, "a2.png": 2})
    _zip(d / "labels2.zip", good, labels={"a0.png": 0, "a1.png": 1, "a2.png": 1})
    _zip(d / "labels_missing.zip", good, labels={"a0.png": 0, "a1.png": 1})
    _zip(d / "labels_extra.zip", good, labels={"a0.png": 0, "a1.png": 1, "a2.png": 2,
                                               "gone.png": 1})
    _zip(d / "res8.zip", {f"a{i}.png": _png(_rgb(i, 8)) for i in range(3)})
    _zip(d / "gray_in_rgb.zip", dict(good, **{"g.png": gray}))
    _zip(d / "nonpow2.zip", {"a.png": _png(_rgb(1, 12))})
    _zip(d / "zero_img.zip", dict(good, **{"empty.png": b""}))
    _zip(d / "trunc_img.zip", dict(good, **{"cut.png": good["a0.png"][:300]}))
    _zip(d / "crc.zip", good)
    data = bytearray((d / "crc.zip").read_bytes())
    at = data.find(good["a1.png"]) + len(good["a1.png"]) // 2    # inside a1.png's pixels
    data[at] ^= 0xFF
    (d / "crc.zip").write_bytes(bytes(data))
    (d / "trunc.zip").write_bytes((d / "good.zip").read_bytes()[:200])
    (d / "empty.zip").write_bytes(b"")
    (d / "existing.zip").write_bytes((d / "good.zip").read_bytes())
    (d / "afile.txt").write_text("a file, not a directory\n")
    (d / "empty.pkl").write_bytes(b"")
    (d / "bad.pkl").write_bytes(b"\x89PNG\r\n\x1a\n not a pickle")
    (d / "empty.keras").write_bytes(b"")
    (d / "garbage.keras").write_bytes(b"garbage, not a zip\n")
    tiny_pkl = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "pickle",
                            "network-snapshot-tiny.pkl")
    (d / "trunc.pkl").write_bytes(open(tiny_pkl, "rb").read()[:4000])
    os.makedirs(d / "dir.zip")
    tick = json.dumps({"Progress/tick": {"num": 1, "mean": 1, "std": 0},
                       "Progress/kimg": {"num": 1, "mean": 4.0, "std": 0}, "timestamp": 1.0})
    _folder(d / "run_ok", {"stats.jsonl": (tick + "\n").encode()})
    _folder(d / "run_damaged", {"stats.jsonl": (tick + "\n{cut short\n" + tick + "\n").encode()})
    os.makedirs(d / "models" / "m" / "1")

    import keras

    from sg3keras.models import Generator
    small = dict(channel_base=256, channel_max=16, z_dim=16, w_dim=16, impl="ref")
    keras.utils.set_random_seed(0)
    Generator.from_preset("stylegan3-t", img_resolution=16, **small).save(d / "G16.keras")
    Generator.from_preset("stylegan3-t", img_resolution=16, c_dim=3, **small).save(
        d / "G16c.keras")
    Generator.from_preset("stylegan2", img_resolution=16, channel_base=256, channel_max=16,
                          z_dim=16, w_dim=16).save(d / "G2.keras")
    (d / "trunc.keras").write_bytes((d / "G16.keras").read_bytes()[:3000])


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    # Network URLs and names go through the download cache: keep it out of the user's.
    monkeypatch.setenv("SG3KERAS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_input")
    _make_files(d)
    return d


def _tree(root):
    """Every path under ``root`` (hidden ones too) with its size and content hash."""
    import hashlib
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha1(f.read()).hexdigest()
    return out


# ------------------------------------------------------------------------------------ the matrix
# (id, command line with {D} = fixture folder and {O} = a path that does not exist, words the
# one stderr line must contain). Exit status 2 for rows marked "usage:", else 1.

TRAIN = "train --outdir {O} --cfg stylegan3-t --gpus 1 --batch 4 --gamma 1 --dry-run"
GEN = "generate --seeds 0 --outdir {O}"

ROWS = [
    # --- the group
    ("usage:unknown-command", "genrate --seeds 0", ["No such command", "genrate"]),
    ("usage:unknown-option", "generate --bogus 1", ["--bogus"]),
    # --- generate
    ("gen-network-missing", GEN + " --network {D}/nope.keras", ["nope.keras", "no such file"]),
    ("gen-network-wrong-type", GEN + " --network {D}/afile.txt",
     ["afile.txt", "expected a .keras file"]),
    ("gen-network-dir-without-snapshots", GEN + " --network {D}/rgb",
     ["rgb", "network-snapshot-*.keras"]),
    ("gen-network-corrupt-pkl", GEN + " --network {D}/bad.pkl",
     ["bad.pkl", "not a network pickle", "expected a pickle"]),
    ("gen-network-empty-keras", GEN + " --network {D}/empty.keras",
     ["empty.keras", "is empty", "expected a .keras file"]),
    ("gen-network-garbage-keras", GEN + " --network {D}/garbage.keras",
     ["garbage.keras", "not a zip archive", "expected a .keras file"]),
    ("gen-network-truncated-keras", GEN + " --network {D}/trunc.keras",
     ["trunc.keras", "not a readable .keras", "expected a .keras file"]),
    ("gen-network-empty-pkl", GEN + " --network {D}/empty.pkl",
     ["empty.pkl", "is empty", "expected"]),
    ("gen-network-truncated-pkl", GEN + " --network {D}/trunc.pkl",
     ["--network", "trunc.pkl", "expected"]),
    ("gen-network-unreachable-url", GEN + " --network http://127.0.0.1:9/net.pkl",
     ["--network http://127.0.0.1:9/net.pkl", "cannot download", "nothing was cached",
      "curl -L -o"]),
    ("gen-network-unknown-pretrained-name", GEN + " --network stylegan3-r-afhqv2-512",
     ["stylegan3-r-afhqv2-512", "did you mean stylegan3-r-afhqv2-512x512"]),
    ("gen-seeds-malformed", "generate --network {D}/G16.keras --seeds x-1 --outdir {O}",
     ["--seeds", "'x-1'", "expected"]),
    ("gen-seeds-empty-range", "generate --network {D}/G16.keras --seeds 5-2 --outdir {O}",
     ["--seeds", "'5-2'", "empty", "expected START-END"]),
    ("usage:gen-trunc-not-a-number", GEN + " --network {D}/G16.keras --trunc abc",
     ["--trunc", "'abc' is not a valid float"]),
    ("gen-translate-malformed", GEN + " --network {D}/G16.keras --translate 1",
     ["--translate", "expected 'x,y'"]),
    ("usage:gen-class-negative", GEN + " --network {D}/G16c.keras --class -1",
     ["--class", "-1", "x>=0"]),
    ("usage:gen-noise-mode", GEN + " --network {D}/G16.keras --noise-mode loud",
     ["--noise-mode", "'loud'", "const"]),
    ("gen-conditional-without-class", GEN + " --network {D}/G16c.keras",
     ["--class is required", "conditional", "expected --class 0..2"]),
    ("gen-class-out-of-range", GEN + " --network {D}/G16c.keras --class 3",
     ["--class=3", "expected 0..2"]),
    ("usage:gen-outdir-is-a-file", "generate --network {D}/G16.keras --seeds 0 --outdir "
     "{D}/afile.txt", ["--outdir", "afile.txt", "is a file"]),
    ("gen-outdir-parent-is-a-file", "generate --network {D}/G16.keras --seeds 0 --outdir "
     "{D}/afile.txt/sub", ["--outdir", "afile.txt", "expected a directory"]),
    # --- convert
    ("convert-src-missing", "convert {D}/nope.pkl {O}.keras", ["SRC", "nope.pkl",
                                                               "no such file"]),
    ("convert-src-empty", "convert {D}/empty.pkl {O}.keras",
     ["empty.pkl", "expected a pickle"]),
    ("convert-src-corrupt", "convert {D}/bad.pkl {O}.keras", ["bad.pkl", "expected a pickle"]),
    ("convert-dest-not-keras", "convert {D}/bad.pkl {O}.h5", ["DEST", ".h5", "expected a .keras"]),
    ("convert-dest-exists", "convert {D}/bad.pkl {D}/G16.keras",
     ["G16.keras", "already exists", "--force"]),
    ("convert-dest-parent-is-a-file", "convert {D}/bad.pkl {D}/afile.txt/x.keras",
     ["afile.txt", "expected a directory"]),
    ("convert-all-dest-is-a-file", "convert --all {D}/bad.pkl {D}/afile.txt",
     ["afile.txt", "expected a directory"]),
    ("usage:convert-network-choice", "convert --network H {D}/bad.pkl {O}.keras",
     ["--network", "'H'", "G_ema"]),
    # --- dataset
    ("usage:dataset-source-missing", "dataset --source {D}/nope --dest {O}.zip",
     ["--source", "nope", "not exist"]),
    ("dataset-source-empty-zip", "dataset --source {D}/empty.zip --dest {O}.zip",
     ["empty.zip", "empty file (0 bytes)", "expected"]),
    ("dataset-source-truncated-zip", "dataset --source {D}/trunc.zip --dest {O}.zip",
     ["trunc.zip", "not a readable .zip", "expected a complete .zip"]),
    ("dataset-source-not-a-zip", "dataset --source {D}/afile.txt --dest {O}.zip",
     ["afile.txt", "expected a directory or a .zip"]),
    ("dataset-source-damaged-zip-member", "dataset --source {D}/crc.zip --dest {O}.zip",
     ["crc.zip:a1.png", "damaged zip member", "expected a readable image", "--skip-bad"]),
    ("dataset-source-without-images", "dataset --source {D}/noimages --dest {O}.zip",
     ["noimages", "no image files", "expected images"]),
    ("dataset-zero-byte-image", "dataset --source {D}/zero_img --dest {O}.zip",
     ["empty.png", "empty file (0 bytes)", "expected a readable image", "--skip-bad"]),
    ("dataset-truncated-image", "dataset --source {D}/trunc_img --dest {O}.zip",
     ["cut.png", "truncated", "expected a readable image"]),
    ("dataset-rgba-image", "dataset --source {D}/rgba --dest {O}.zip",
     ["z.png", "'RGBA'", "expected 'L'", "--skip-bad"]),
    ("dataset-grayscale-in-rgb-set", "dataset --source {D}/gray_in_rgb --dest {O}.zip",
     ["g.png", "grayscale", "expected 3 channel(s)", "a0.png", "--skip-bad"]),
    ("dataset-mixed-sizes", "dataset --source {D}/mixed_size --dest {O}.zip",
     ["small.png", "expected 16x16", "--resolution"]),
    ("dataset-non-square", "dataset --source {D}/nonsquare --dest {O}.zip",
     ["wide.png", "expected a square", "--transform center-crop"]),
    ("dataset-all-images-bad", "dataset --source {D}/all_bad --dest {O}.zip --skip-bad",
     ["all_bad", "no usable images", "expected at least one"]),
    ("dataset-resolution-not-power-of-two", "dataset --source {D}/rgb --dest {O}.zip "
     "--resolution 12", ["--resolution 12", "expected a power of two"]),
    ("usage:dataset-resolution-zero", "dataset --source {D}/rgb --dest {O}.zip --resolution 0",
     ["--resolution", "x>=1"]),
    ("dataset-transform-without-resolution", "dataset --source {D}/rgb --dest {O}.zip "
     "--transform center-crop", ["--transform", "requires --resolution"]),
    ("usage:dataset-transform-choice", "dataset --source {D}/rgb --dest {O}.zip --transform zoom",
     ["--transform", "'zoom'", "center-crop"]),
    ("usage:dataset-max-images-zero", "dataset --source {D}/rgb --dest {O}.zip --max-images 0",
     ["--max-images", "x>=1"]),
    ("dataset-labels-missing", "dataset --source {D}/labels_missing --dest {O}.zip",
     ["dataset.json", "no label for image 'a2.png'", "expected a label for every image"]),
    ("dataset-labels-extra", "dataset --source {D}/labels_extra --dest {O}.zip",
     ["dataset.json", "'gone.png'", "expected one entry per image"]),
    ("dataset-labels-not-json", "dataset --source {D}/labels_bad_json --dest {O}.zip",
     ["dataset.json", "expected JSON"]),
    ("dataset-dest-zip-exists", "dataset --source {D}/rgb --dest {D}/existing.zip",
     ["--dest", "existing.zip", "already exists", "--force"]),
    ("dataset-dest-is-a-file", "dataset --source {D}/rgb --dest {D}/afile.txt",
     ["--dest", "afile.txt", "expected a .zip path or an absent or empty directory"]),
    ("dataset-dest-directory-not-empty", "dataset --source {D}/rgb --dest {D}/noimages",
     ["--dest", "noimages", "must be empty or absent"]),
    ("dataset-dest-parent-is-a-file", "dataset --source {D}/rgb --dest {D}/afile.txt/x.zip",
     ["--dest", "afile.txt", "expected a directory"]),
    ("dataset-dest-zip-is-a-directory", "dataset --source {D}/rgb --dest {D}/dir.zip",
     ["--dest", "dir.zip", "expected a .zip file path"]),
    # --- train (dry runs)
    ("usage:train-data-missing", TRAIN + " --data {D}/nope.zip", ["--data", "nope.zip", "not exist"]),
    ("train-data-empty-zip", TRAIN + " --data {D}/empty.zip", ["empty.zip", "empty file"]),
    ("train-data-truncated-zip", TRAIN + " --data {D}/trunc.zip",
     ["trunc.zip", "not a readable .zip"]),
    ("train-data-damaged-zip-member", TRAIN + " --data {D}/crc.zip",
     ["crc.zip:a1.png", "damaged zip member", "expected a readable image"]),
    ("train-data-zero-byte-image", TRAIN + " --data {D}/zero_img.zip",
     ["empty.png", "empty file (0 bytes)"]),
    ("train-data-truncated-image", TRAIN + " --data {D}/trunc_img.zip",
     ["cut.png", "truncated", "expected a readable image"]),
    ("train-data-grayscale-in-rgb-set", TRAIN + " --data {D}/gray_in_rgb.zip",
     ["g.png", "1 channel(s)", "expected 16x16 with 3", "a0.png"]),
    ("train-data-not-power-of-two", TRAIN + " --data {D}/nonpow2.zip",
     ["a.png", "12x12", "expected a square power-of-two", "sg3keras dataset --resolution"]),
    ("train-cond-without-labels", TRAIN + " --data {D}/good.zip --cond 1",
     ["--cond 1", "good.zip", "no labels", "expected a labelled dataset"]),
    ("train-cond-labels-missing", TRAIN + " --data {D}/labels_missing.zip --cond 1",
     ["dataset.json", "no label for image 'a2.png'", "expected a label for every image"]),
    ("train-cond-labels-extra", TRAIN + " --data {D}/labels_extra.zip --cond 1",
     ["dataset.json", "'gone.png'", "expected one entry per image"]),
    ("train-batch-gpu-does-not-divide", TRAIN + " --data {D}/good.zip --batch-gpu 3",
     ["--batch-gpu=3", "must be a multiple"]),
    ("train-missing-required", "train --outdir {O} --cfg stylegan3-t --data {D}/good.zip "
     "--dry-run", ["Missing option(s) --gpus, --batch, --gamma"]),
    ("usage:train-cfg-choice", TRAIN.replace("stylegan3-t", "stylegan4") + " --data {D}/good.zip",
     ["--cfg", "'stylegan4'", "stylegan3-t"]),
    ("usage:train-gamma-negative", TRAIN.replace("--gamma 1", "--gamma -1") +
     " --data {D}/good.zip", ["--gamma", "-1", "x>=0"]),
    ("usage:train-cond-not-boolean", TRAIN + " --data {D}/good.zip --cond maybe",
     ["--cond", "'maybe'", "not a valid boolean"]),
    ("usage:train-p-out-of-range", TRAIN + " --data {D}/good.zip --p 2",
     ["--p", "0<=x<=1"]),
    ("usage:train-outdir-is-a-file", TRAIN.replace("{O}", "{D}/afile.txt") +
     " --data {D}/good.zip", ["--outdir", "afile.txt", "is a file"]),
    # --- metrics
    ("metrics-fid-without-data", "metrics --network {D}/G16.keras --metrics fid50k_full",
     ["--metrics fid50k_full", "expected --data"]),
    ("metrics-conditional-network-unlabelled-data", "metrics --network {D}/G16c.keras "
     "--metrics fid50k_full --data {D}/good.zip",
     ["good.zip", "no labels", "conditional (c_dim=3)", "expected a dataset with"]),
    ("metrics-label-dimension-mismatch", "metrics --network {D}/G16c.keras --metrics "
     "fid50k_full --data {D}/labels2.zip", ["labels2.zip", "2 classes", "expected 3"]),
    ("metrics-resolution-mismatch", "metrics --network {D}/G16.keras --metrics fid50k_full "
     "--data {D}/res8.zip", ["res8.zip", "8x8", "expected 16x16"]),
    ("metrics-unknown-name", "metrics --network {D}/G16.keras --metrics fid1k",
     ["fid1k", "expected names from", "fid50k_full"]),
    ("metrics-data-damaged-zip-member", "metrics --network {D}/G16.keras --metrics fid50k_full "
     "--data {D}/crc.zip", ["crc.zip:a1.png", "damaged zip member"]),
    ("metrics-network-corrupt-pkl", "metrics --network {D}/bad.pkl --metrics eqt50k_int",
     ["bad.pkl", "expected a pickle"]),
    ("usage:metrics-num-samples-zero", "metrics --network {D}/G16.keras --num-samples 0",
     ["--num-samples", "x>=1"]),
    # --- export
    ("export-name-malformed", "export --network {D}/G16.keras --outdir {O} --name a/b",
     ["--name", "'a/b'", "expected a model name"]),
    ("usage:export-version-zero", "export --network {D}/G16.keras --outdir {O} --name m "
     "--version 0", ["--version", "x>=1"]),
    ("usage:export-format-choice", "export --network {D}/G16.keras --outdir {O} --name m "
     "--format tflite", ["--format", "'tflite'", "savedmodel"]),
    ("export-keras-file-exists", "export --network {D}/G16.keras --outdir {D} --name G16 "
     "--format keras", ["G16.keras", "already exists", "--force"]),
    ("export-version-exists", "export --network {D}/G16.keras --outdir {D}/models --name m "
     "--version 1", ["--version 1", "already exists", "never overwritten"]),
    ("export-version-with-keras-format", "export --network {D}/G16.keras --outdir {O} --name m "
     "--format keras --version 2", ["--version", "--format savedmodel only"]),
    ("export-xla-with-onnx-format", "export --network {D}/G16.keras --outdir {O} --name m "
     "--format onnx --xla", ["--xla", "--format savedmodel only"]),
    ("export-outdir-parent-is-a-file", "export --network {D}/G16.keras --outdir "
     "{D}/afile.txt/models --name m", ["--outdir", "afile.txt", "expected a directory"]),
    # --- demo
    ("usage:demo-minutes-zero", "demo --outdir {O} --minutes 0", ["--minutes", "x>0"]),
    ("demo-outdir-parent-is-a-file", "demo --outdir {D}/afile.txt/out",
     ["--outdir", "afile.txt", "expected a directory"]),
    # --- video
    ("video-conditional-without-class", "video --network {D}/G16c.keras --output {O}.mp4",
     ["--class is required", "expected --class 0..2"]),
    ("video-class-out-of-range", "video --network {D}/G16c.keras --output {O}.mp4 --class 3",
     ["--class=3", "expected 0..2"]),
    ("usage:video-grid-malformed", "video --network {D}/G16.keras --output {O}.mp4 --grid 2y2",
     ["--grid", "expected WxH", "'2y2'"]),
    ("usage:video-grid-empty", "video --network {D}/G16.keras --output {O}.mp4 --grid 0x1",
     ["--grid", "W, H >= 1"]),
    ("video-seeds-do-not-fill-grid", "video --network {D}/G16.keras --output {O}.mp4 --seeds 0-2 "
     "--grid 2x1", ["--seeds", "divide evenly", "expected a multiple of 2", "--num-keyframes"]),
    ("video-transform-path-stylegan2", "video --network {D}/G2.keras --output {O}.mp4 "
     "--rotate-path spin", ["--rotate-path needs a StyleGAN3 network", "StyleGAN2Generator"]),
    ("usage:video-w-frames-zero", "video --network {D}/G16.keras --output {O}.mp4 --w-frames 0",
     ["--w-frames", "x>=1"]),
    ("usage:video-kind-choice", "video --network {D}/G16.keras --output {O}.mp4 --kind spline",
     ["--kind", "'spline'", "cubic"]),
    ("usage:video-output-is-a-directory", "video --network {D}/G16.keras --output {D}/rgb",
     ["--output", "rgb", "is a directory"]),
    ("video-output-parent-is-a-file", "video --network {D}/G16.keras --output "
     "{D}/afile.txt/v.mp4", ["--output", "afile.txt", "expected a directory"]),
    # --- sticking
    ("sticking-conditional-without-class", "sticking --network {D}/G16c.keras --outdir {O}",
     ["--class is required", "expected --class 0..2"]),
    ("sticking-one-seed", "sticking --network {D}/G16.keras --outdir {O} --seeds 3",
     ["--seeds 3", "expected at least two seeds"]),
    ("usage:sticking-num-zero", "sticking --network {D}/G16.keras --outdir {O} --num 0",
     ["--num", "x>=1"]),
    ("usage:sticking-space-choice", "sticking --network {D}/G16.keras --outdir {O} --space x",
     ["--space", "'x'", "'z'"]),
    ("sticking-outdir-parent-is-a-file", "sticking --network {D}/G16.keras --outdir "
     "{D}/afile.txt/pics", ["--outdir", "afile.txt", "expected a directory"]),
    # --- eqmap
    ("eqmap-conditional-without-class", "eqmap --network {D}/G16c.keras --outdir {O}",
     ["--class is required", "expected --class 0..2"]),
    ("eqmap-translate-malformed", "eqmap --network {D}/G16.keras --outdir {O} "
     "--translate-int 1,2,3", ["--translate-int", "expected 'x,y'"]),
    ("eqmap-stylegan2-network", "eqmap --network {D}/G2.keras --outdir {O}",
     ["eqmap needs a StyleGAN3 network", "StyleGAN2Generator"]),
    ("usage:eqmap-outdir-is-a-file", "eqmap --network {D}/G16.keras --outdir {D}/afile.txt",
     ["--outdir", "afile.txt", "is a file"]),
    # --- spectra
    ("spectra-no-source", "spectra --outdir {O}", ["exactly one of --data or --network"]),
    ("spectra-two-sources", "spectra --outdir {O} --data {D}/good.zip --network {D}/G16.keras",
     ["exactly one of --data or --network"]),
    ("spectra-network-without-num", "spectra --outdir {O} --network {D}/G16.keras",
     ["--num is required with --network"]),
    ("spectra-class-with-data", "spectra --outdir {O} --data {D}/good.zip --class 1",
     ["--class applies to --network only"]),
    ("spectra-class-out-of-range", "spectra --outdir {O} --network {D}/G16c.keras --num 2 "
     "--class 7", ["--class=7", "expected 0..2"]),
    ("spectra-data-truncated-zip", "spectra --outdir {O} --data {D}/trunc.zip",
     ["trunc.zip", "not a readable .zip"]),
    ("spectra-data-grayscale-in-rgb-set", "spectra --outdir {O} --data {D}/gray_in_rgb.zip",
     ["g.png", "expected 16x16 with 3"]),
    ("usage:spectra-interp-zero", "spectra --outdir {O} --data {D}/good.zip --interp 0",
     ["--interp", "x>=1"]),
    ("spectra-outdir-parent-is-a-file", "spectra --outdir {D}/afile.txt/s --data {D}/good.zip",
     ["--outdir", "afile.txt", "expected a directory"]),
    # --- layers
    ("usage:layers-cfg-choice", "layers --cfg stylegan2", ["--cfg", "'stylegan2'", "stylegan3-r"]),
    ("usage:layers-resolution-zero", "layers --resolution 0", ["--resolution", "x>=1"]),
    ("usage:layers-output-is-a-directory", "layers --output {D}/rgb",
     ["--output", "rgb", "is a directory"]),
    ("layers-output-parent-is-a-file", "layers --output {D}/afile.txt/l.png",
     ["--output", "afile.txt", "expected a directory"]),
    # --- runs
    ("runs-outdir-missing", "runs {D}/nope", ["OUTDIR {D}/nope", "no such directory"]),
    ("runs-outdir-is-a-file", "runs {D}/afile.txt", ["afile.txt", "expected a directory"]),
    ("runs-outdir-without-runs", "runs --json {D}/rgb",
     ["{D}/rgb", "no training runs", "training_options.json"]),
    # --- pretrained
    ("pretrained-unknown-name", "pretrained stylegan3-r-afhqv2-512",
     ["Error: stylegan3-r-afhqv2-512 is not a pretrained network name",
      "did you mean stylegan3-r-afhqv2-512x512"]),
    ("pretrained-not-a-name", "pretrained {D}/afile.txt",
     ["Error: {D}/afile.txt is not a pretrained network name", "`sg3keras pretrained` lists"]),
    # --- visualize (rows that never reach the server)
    ("usage:visualize-without-network", "visualize", ["--network"]),
    ("visualize-network-missing", "visualize --network {D}/nope.keras", ["--network",
                                                                         "nope.keras"]),
    ("visualize-second-network-not-a-network", "visualize --network {D}/G16.keras "
     "--network {D}/afile.txt", ["--network", "afile.txt", "expected"]),
    ("usage:visualize-port-out-of-range", "visualize --network {D}/G16.keras --port 70000",
     ["--port", "70000"]),
    # --- plot
    ("plot-not-a-run-directory", "plot {D}/rgb", ["rgb", "not a run directory", "stats.jsonl"]),
    ("plot-run-directory-missing", "plot {D}/run_ok {D}/no_such_run",
     ["no_such_run", "not a run directory"]),
    ("plot-damaged-stats-line", "plot {D}/run_damaged --output {O}/c.png",
     ["run_damaged/stats.jsonl", "line 2", "expected one object per line"]),
    ("plot-output-parent-is-a-file", "plot {D}/run_ok --output {D}/afile.txt/c.png",
     ["--output", "afile.txt", "expected a directory"]),
    ("plot-output-is-a-directory", "plot {D}/run_ok --output {D}/rgb",
     ["--output", "rgb", "expected a .png file"]),
]


@pytest.mark.parametrize("row_id,cmd,words", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_gives_one_clear_line_and_leaves_nothing(files, row_id, cmd, words):
    out = files / "out" / row_id.replace(":", "-")
    args = [a.replace("{D}", str(files)).replace("{O}", str(out)) for a in cmd.split()]
    words = [w.replace("{D}", str(files)) for w in words]
    before = _tree(files)
    r = run_cli(*args)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == (2 if row_id.startswith("usage:") else 1), (r.exit_code, r.stderr,
                                                                       r.exception)
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "Traceback" not in r.stderr and "<_io." not in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert r.stdout == "", r.stdout                                   # no partial output
    assert _tree(files) == before                                     # nothing left, nothing lost


# ------------------------------------------------------------------------------------ nothing lost

def test_dataset_skip_bad_names_every_skipped_file_and_keeps_the_rest(files, tmp_path):
    src = tmp_path / "src"
    good = {f"a{i}.png": _png(_rgb(i)) for i in range(3)}
    _folder(src, dict(good, **{"b.png": b"", "g.png": _png(np.zeros((16, 16), np.uint8)),
                               "s.png": _png(_rgb(4, 8)), "z.png": _png(np.zeros((16, 16, 4),
                                                                                 np.uint8))}))
    r = run_cli("dataset", "--source", src, "--dest", tmp_path / "d.zip", "--skip-bad")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["num_images"] == 3
    assert (summary["skipped_corrupt"], summary["skipped_mode"],
            summary["skipped_mismatch"]) == (1, 1, 2)
    skipped = {os.path.basename(s["file"]): s["reason"] for s in summary["skipped"]}
    assert set(skipped) == {"b.png", "g.png", "s.png", "z.png"}
    assert "empty file" in skipped["b.png"] and "grayscale" in skipped["g.png"]
    for name in skipped:                                      # named on stderr as well
        assert any(line.startswith("skipped ") and line.split(":")[0].endswith(name)
                   for line in r.stderr.splitlines()), (name, r.stderr)


def test_dataset_force_replaces_and_files_get_the_users_umask(files, tmp_path):
    dest = tmp_path / "d.zip"
    dest.write_bytes(b"old")
    args = ["dataset", "--source", str(files / "rgb"), "--dest", str(dest)]
    assert run_cli(*args).exit_code == 1 and dest.read_bytes() == b"old"
    old = os.umask(0o027)
    try:
        r = run_cli(*args, "--force")
        r2 = run_cli("dataset", "--source", files / "rgb", "--dest", tmp_path / "dir")
    finally:
        os.umask(old)
    assert r.exit_code == 0 and r2.exit_code == 0, r.stderr + r2.stderr
    assert zipfile.is_zipfile(dest)
    assert os.stat(dest).st_mode & 0o777 == 0o640
    assert os.stat(tmp_path / "dir").st_mode & 0o777 == 0o750
    assert sorted(os.listdir(tmp_path)) == ["d.zip", "dir"]       # no temporary files


def test_dry_run_accepts_what_it_should(files):
    r = run_cli(*TRAIN.replace("{O}", str(files / "out" / "ok")).split(),
                "--data", files / "labelled.zip", "--cond", "1")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["dataset"]["label_dim"] == 3
    assert not os.path.exists(files / "out" / "ok")


def test_unexpected_errors_are_one_line_and_debug_shows_them(files, monkeypatch):
    import sg3keras.data.dataset_tool as tool

    # A handled error keeps its traceback under --debug.
    r = run_cli("--debug", "dataset", "--source", files / "rgb", "--dest",
                files / "existing.zip")
    assert isinstance(r.exception, ValueError) and "already exists" in str(r.exception)

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(tool, "convert_dataset", boom)
    args = ["dataset", "--source", str(files / "rgb"), "--dest", str(files / "out" / "x.zip")]
    r = run_cli(*args)
    assert r.exit_code == 1 and r.stderr.strip().splitlines() == [
        "Error: RuntimeError: boom (unexpected; run with --debug or SG3KERAS_DEBUG=1 for the "
        "traceback)"]
    for debug_args, env in ((["--debug"], {}), ([], {"SG3KERAS_DEBUG": "1"})):
        r = run_cli(*debug_args, *args, env=env)
        assert isinstance(r.exception, RuntimeError), (r.exception, r.stderr)


def test_damage_found_only_while_training_is_one_line(tmp_path):
    """A member damaged past the part the header check reads fails inside tf.data; the CLI's
    line is the reader's own message, without TensorFlow's wrapping."""
    from sg3keras.cli import _describe_error
    from sg3keras.data import ImageDataset
    png = _png(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    data = bytearray(_zip(tmp_path / "big.zip", {"a.png": png, "b.png": png}).read_bytes())
    data[data.find(png) + len(png) - 2000] ^= 0xFF
    (tmp_path / "big.zip").write_bytes(bytes(data))
    ds = ImageDataset(tmp_path / "big.zip")                        # headers are intact
    with pytest.raises(Exception) as info:
        for _ in ds.make_tf_dataset(2, shuffle=False, repeat=False):
            pass
    assert _describe_error(info.value) == (
        f"{tmp_path / 'big.zip'}:a.png: cannot read image (damaged zip member (Bad CRC-32 for "
        "file 'a.png')); expected a readable image file")


@pytest.mark.slow     # renders with four tools (about 20 s)
def test_picture_tools_take_class_for_conditional_networks(files, tmp_path):
    pytest.importorskip("imageio_ffmpeg", reason="MP4 needs imageio-ffmpeg (sg3keras[video])")
    net = str(files / "G16c.keras")
    for args in (["video", "--output", str(tmp_path / "v.mp4"), "--seeds", "0-1",
                  "--w-frames", "2"],
                 ["sticking", "--outdir", str(tmp_path / "s"), "--num", "2"],
                 ["eqmap", "--outdir", str(tmp_path / "e")],
                 ["spectra", "--outdir", str(tmp_path / "p"), "--num", "2"]):
        r = run_cli(*args, "--network", net, "--class", "2")
        assert r.exit_code == 0, (args[0], r.stderr)
        assert r.stderr == "", (args[0], r.stderr)
    assert sorted(os.listdir(tmp_path)) == ["e", "p", "s", "v.mp4"]


# ------------------------------------------------------------------------------------ conventions

def test_no_arguments_show_the_help():
    r = run_cli()
    assert "Commands:" in r.stdout + r.stderr and "generate" in r.stdout + r.stderr


def test_every_option_has_help_and_shows_its_default():
    import click

    from sg3keras.cli import main
    group_ctx = click.Context(main, info_name="sg3keras", **main.context_settings)
    for name, cmd in main.commands.items():
        ctx = cmd.make_context(name, [], parent=group_ctx, resilient_parsing=True)
        assert cmd.help, name
        for opt in cmd.params:
            if not isinstance(opt, click.Option):
                continue
            assert opt.help, f"sg3keras {name} {opt.opts[0]} has no help"
            record = opt.get_help_record(ctx)[1]
            default = opt.get_default(ctx, call=False)
            if not opt.is_flag and not opt.required and default is not None and \
                    type(default).__name__ != "Sentinel":
                assert "default:" in record, (name, opt.opts[0], record)


@pytest.mark.slow     # a fresh process (TensorFlow's start-up lines only show there)
def test_fresh_process_bad_input_is_one_line_without_tensorflow_noise(files):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.pop("SG3KERAS_DEBUG", None)
    r = run_cli_process("generate", "--network", files / "G16c.keras", "--seeds", "0",
                        "--outdir", files / "out" / "fresh", env=env)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == ["Error: --class is required: the network is conditional "
                                     "(c_dim=3); expected --class 0..2"], r.stderr
