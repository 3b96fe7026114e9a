"""Tests for sg3keras.data.dataset_tool (official dataset writer), sg3keras.data and sg3keras.data.demo.

Oracles: hand-written pixel arrays and labels, PIL's own resize, slicing arithmetic worked out by
hand for the crop geometry, and numpy float32 for the uint8 -> [-1, 1] mapping.
"""

import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest

from sg3keras.data.dataset_tool import DatasetError, convert_dataset

LANCZOS = PIL.Image.Resampling.LANCZOS


# ---------------------------------------------------------------------------- helpers
def _png(arr) -> bytes:
    """PNG bytes of a uint8 array or a PIL image."""
    img = arr if isinstance(arr, PIL.Image.Image) else PIL.Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format="png")
    return buf.getvalue()


def _write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _make_folder(root, images: dict, labels=None):
    """``images``: relpath -> uint8 array (or raw bytes); ``labels``: relpath -> label."""
    for rel, arr in images.items():
        _write(os.path.join(root, *rel.split("/")), arr if isinstance(arr, bytes) else _png(arr))
    if labels is not None:
        _write(os.path.join(root, "dataset.json"),
               json.dumps({"labels": [[k, v] for k, v in labels.items()]}).encode())
    return str(root)


def _make_zip(path, images: dict, labels=None):
    with zipfile.ZipFile(path, "w") as zf:
        for rel, arr in images.items():
            zf.writestr(rel, arr if isinstance(arr, bytes) else _png(arr))
        if labels is not None:
            zf.writestr("dataset.json", json.dumps({"labels": [[k, v] for k, v in labels.items()]}))
    return str(path)


def _rand(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _tagged(n, res=8, channels=3):
    """n images whose pixel [0, 0, 0] is the image index and [0, 1, 0] / [0, -1, 0] mark left/right."""
    out = []
    for i in range(n):
        a = _rand((res, res, channels), 100 + i)
        a[0, 0, 0], a[0, 1, 0], a[0, -1, 0] = i, 0, 255
        out.append(a)
    return out


def _ids(images):
    """Recover (index, flipped) of each tagged image in a float batch in [-1, 1]."""
    u8 = np.rint((np.asarray(images) + 1) * 127.5).astype(np.int64)
    ids = []
    for a in u8:
        flipped = a[0, 0, 0] == 255 and a[0, -2, 0] == 0  # x-flip moves [0, -1] to [0, 0]
        ids.append((int(a[0, -1, 0] if flipped else a[0, 0, 0]), bool(flipped)))
    return ids


# ---------------------------------------------------------------------------- converter
@pytest.mark.parametrize("dest_name", ["out.zip", "outdir"])
def test_round_trip_preserves_pixels_labels_and_layout(tmp_path, dest_name):
    from sg3keras.data import ImageDataset
    # Path-component order (official converter): a/y < a-z < b/x (although "a-z" < "a/y" as text).
    imgs = {"b/x.png": _rand((8, 8, 3), 1), "a-z.png": _rand((8, 8, 3), 2),
            "a/y.png": _rand((8, 8, 3), 3)}
    src = _make_folder(tmp_path / "src", imgs, labels={"b/x.png": 2, "a-z.png": 0, "a/y.png": 1})
    summary = convert_dataset(src, tmp_path / dest_name)
    assert summary["num_images"] == 3 and summary["resolution"] == 8 and summary["channels"] == 3
    assert summary["has_labels"]
    expected_order = ["a/y.png", "a-z.png", "b/x.png"]
    ds = ImageDataset(tmp_path / dest_name)
    assert ds.names == ["00000/img00000000.png", "00000/img00000001.png", "00000/img00000002.png"]
    assert (len(ds), ds.resolution, ds.num_channels, ds.label_dim) == (3, 8, 3, 3)
    for i, rel in enumerate(expected_order):
        np.testing.assert_array_equal(ds.get_image(i), imgs[rel])
    np.testing.assert_array_equal(np.stack([ds.get_label(i) for i in range(3)]),
                                  np.eye(3, dtype=np.float32)[[1, 0, 2]])
    meta = json.loads(ds.source.read_bytes("dataset.json"))
    assert meta == {"labels": [[n, lab] for n, lab in zip(ds.names, [1, 0, 2])]}
    png = ds.source.read_bytes(ds.names[0])
    assert len(png) > 8 * 8 * 3  # compress_level=0: stored deflate blocks, never smaller than raw
    if dest_name.endswith(".zip"):
        with zipfile.ZipFile(tmp_path / dest_name) as zf:
            assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    leftovers = [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
    assert leftovers == []


def test_grayscale_float_labels_and_null_labels(tmp_path):
    from sg3keras.data import ImageDataset
    gray = {f"g{i}.png": _rand((4, 4), i) for i in range(3)}
    src = _make_folder(tmp_path / "g", gray, labels={f"g{i}.png": [0.5 * i, -1.0] for i in range(3)})
    convert_dataset(src, tmp_path / "g.zip")
    ds = ImageDataset(tmp_path / "g.zip")
    assert ds.num_channels == 1 and ds.label_dim == 2 and ds.name == "g"
    np.testing.assert_array_equal(ds.get_image(2)[:, :, 0], gray["g2.png"])
    np.testing.assert_array_equal(ds.get_label(2), np.float32([1.0, -1.0]))
    # One image without a label: an error naming it (the official tool silently drops every
    # label); nothing is written.
    src2 = _make_folder(tmp_path / "h", gray, labels={"g0.png": 1, "g1.png": 0})
    with pytest.raises(DatasetError, match=r"no label for image 'g2.png'.*expected a label"):
        convert_dataset(src2, tmp_path / "h.zip")
    assert not os.path.exists(tmp_path / "h.zip")
    # A label for a file that is not in the source: an error naming it.
    _write(os.path.join(src2, "dataset.json"),
           json.dumps({"labels": [[f"g{i}.png", 0] for i in range(4)]}).encode())
    with pytest.raises(DatasetError, match=r"label for 'g3.png', which is not an image"):
        convert_dataset(src2, tmp_path / "h.zip")
    # "labels": null -> unconditional dataset.
    _write(os.path.join(src2, "dataset.json"), b'{"labels": null}')
    assert convert_dataset(src2, tmp_path / "h.zip")["has_labels"] is False
    ds2 = ImageDataset(tmp_path / "h.zip")
    assert json.loads(ds2.source.read_bytes("dataset.json")) == {"labels": None}
    assert not ds2.has_labels and ds2.label_dim == 0 and ds2.get_label(0).shape == (0,)


def test_resize_matches_pil_lanczos_and_max_images(tmp_path):
    from sg3keras.data import ImageDataset
    imgs = {f"{i}.png": _rand((12, 20, 3), 10 + i) for i in range(3)}  # 20 wide, 12 high
    src = _make_folder(tmp_path / "s", imgs)
    s = convert_dataset(src, tmp_path / "r.zip", resolution=8, max_images=2)
    assert s["num_images"] == 2 and s["num_source"] == 2
    ds = ImageDataset(tmp_path / "r.zip")
    for i in range(2):
        expect = np.asarray(PIL.Image.fromarray(imgs[f"{i}.png"]).resize((8, 8), LANCZOS))
        np.testing.assert_array_equal(ds.get_image(i), expect)


@pytest.mark.parametrize("w,h,cols,rows", [(12, 8, (2, 10), (0, 8)), (11, 8, (1, 9), (0, 8)),
                                           (8, 13, (0, 8), (2, 10))])
def test_center_crop_geometry(tmp_path, w, h, cols, rows):
    from sg3keras.data import ImageDataset
    arr = _rand((h, w, 3), 5)
    src = _make_folder(tmp_path / "s", {"a.png": arr})
    convert_dataset(src, tmp_path / "c.zip", resolution=8, transform="center-crop")
    out = ImageDataset(tmp_path / "c.zip").get_image(0)
    np.testing.assert_array_equal(out, arr[rows[0]:rows[1], cols[0]:cols[1]])


def test_center_crop_wide_geometry_and_drops(tmp_path):
    from sg3keras.data import ImageDataset
    exact = _rand((8, 16, 3), 1)     # 16x8: ch = 8 rows, no resize, pasted at rows 4..12
    cropped = _rand((24, 32, 3), 2)  # 32x24 -> ch = round(16*24/32) = 12 source rows 6..18
    narrow = _rand((16, 8, 3), 3)    # width 8 < 16: dropped
    flat = _rand((8, 64, 3), 4)      # ch = round(16*8/64) = 2 < 8: dropped
    src = _make_folder(tmp_path / "s", {"0.png": exact, "1.png": cropped, "2.png": narrow,
                                        "3.png": flat})
    s = convert_dataset(src, tmp_path / "w", resolution=16, transform="center-crop-wide")
    assert (s["num_images"], s["dropped_too_small"], s["resolution"]) == (2, 2, 16)
    ds = ImageDataset(tmp_path / "w")
    expect0 = np.zeros((16, 16, 3), np.uint8)
    expect0[4:12] = exact
    np.testing.assert_array_equal(ds.get_image(0), expect0)
    expect1 = np.zeros((16, 16, 3), np.uint8)
    expect1[4:12] = np.asarray(PIL.Image.fromarray(cropped[6:18]).resize((16, 8), LANCZOS))
    np.testing.assert_array_equal(ds.get_image(1), expect1)


def _bad_files():
    good = _png(_rand((8, 8, 3), 0))
    cmyk = io.BytesIO()
    PIL.Image.new("CMYK", (8, 8), (1, 2, 3, 4)).save(cmyk, format="jpeg")
    return {
        "corrupt": b"this is not an image at all" * 10,
        "truncated": good[: len(good) * 2 // 3],
        "rgba": _png(_rand((8, 8, 4), 1)),
        "palette": _png(PIL.Image.fromarray(_rand((8, 8, 3), 2)).convert("P")),
        "cmyk": cmyk.getvalue(),
        "nonsquare": _png(_rand((8, 16, 3), 3)),
        "nonpow2": _png(_rand((12, 12, 3), 4)),
        "mixed": _png(_rand((16, 16, 3), 5)),
    }


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "rgba", "palette", "cmyk", "nonsquare",
                                  "nonpow2", "mixed"])
def test_convert_errors_name_the_file(tmp_path, kind):
    ext = ".jpg" if kind == "cmyk" else ".png"
    bad_name = f"z_bad_{kind}{ext}"
    images = {"a.png": _rand((8, 8, 3), 7), bad_name: _bad_files()[kind]}
    src = _make_folder(tmp_path / "s", images)
    with pytest.raises(DatasetError, match=bad_name):
        convert_dataset(src, tmp_path / "out.zip")
    assert sorted(os.listdir(tmp_path)) == ["s"]  # nothing written, no temp files left


def test_convert_skip_bad_counts_and_keeps_indices(tmp_path):
    from sg3keras.data import ImageDataset
    bad = _bad_files()
    good = {f"g{i}.png": _rand((8, 8, 3), 20 + i) for i in range(3)}
    images = dict(good, **{"b0.png": bad["corrupt"], "b1.png": bad["truncated"],
                           "b2.png": bad["rgba"], "b3.jpg": bad["cmyk"]})
    src = _make_folder(tmp_path / "s", images)
    s = convert_dataset(src, tmp_path / "o.zip", skip_bad=True)
    assert (s["num_images"], s["skipped_corrupt"], s["skipped_mode"]) == (3, 2, 2)
    ds = ImageDataset(tmp_path / "o.zip")
    # Sorted sources: b0 b1 b2 b3.jpg g0 g1 g2 -> good images keep source indices 4, 5, 6.
    assert [n[-12:] for n in ds.names] == ["00000004.png", "00000005.png", "00000006.png"]
    np.testing.assert_array_equal(ds.get_image(2), good["g2.png"])


def test_convert_argument_errors(tmp_path):
    src = _make_folder(tmp_path / "s", {"a.png": _rand((8, 8, 3), 0)})
    with pytest.raises(DatasetError, match="resolution"):
        convert_dataset(src, tmp_path / "o.zip", resolution=12)
    with pytest.raises(DatasetError, match="transform"):
        convert_dataset(src, tmp_path / "o.zip", transform="zoom")
    with pytest.raises(DatasetError, match="requires --resolution"):
        convert_dataset(src, tmp_path / "o.zip", transform="center-crop")
    with pytest.raises(DatasetError, match="expected a directory or a .zip"):
        convert_dataset(tmp_path / "missing", tmp_path / "o.zip")
    _write(str(tmp_path / "full" / "x.txt"), b"x")
    with pytest.raises(DatasetError, match="must be empty"):
        convert_dataset(src, tmp_path / "full")


# ---------------------------------------------------------------------------- reader
@pytest.mark.parametrize("kind", ["corrupt", "rgba", "palette", "cmyk", "nonsquare", "nonpow2",
                                  "mixed"])
def test_reader_validation_names_the_file(tmp_path, kind):
    from sg3keras.data import ImageDataset
    ext = ".jpg" if kind == "cmyk" else ".png"
    bad_name = f"00000/img9{kind}{ext}"
    path = _make_zip(tmp_path / "d.zip", {"00000/img0.png": _rand((8, 8, 3), 0),
                                          bad_name: _bad_files()[kind]})
    with pytest.raises(DatasetError, match=bad_name):
        ImageDataset(path)


def test_reader_skip_bad_verify_and_resolution(tmp_path):
    from sg3keras.data import ImageDataset
    bad = _bad_files()
    path = _make_zip(tmp_path / "d.zip", {"a.png": _rand((8, 8, 3), 0), "b.png": bad["corrupt"],
                                          "c.png": bad["rgba"], "d.png": bad["truncated"],
                                          "e.png": _rand((8, 8, 3), 1)})
    ds = ImageDataset(path, skip_bad=True)  # header-only check: the truncated file passes
    assert ds.names == ["a.png", "d.png", "e.png"] and ds.num_skipped == {"corrupt": 1, "mode": 1}
    ds = ImageDataset(path, skip_bad=True, verify=True)
    assert ds.names == ["a.png", "e.png"] and ds.num_skipped == {"corrupt": 2, "mode": 1}
    with pytest.raises(DatasetError, match="d.png"):
        ImageDataset(_make_zip(tmp_path / "t.zip", {"d.png": bad["truncated"]}), verify=True)
    with pytest.raises(DatasetError, match="expected 16x16"):
        ImageDataset(_make_zip(tmp_path / "r.zip", {"a.png": _rand((8, 8, 3), 0)}), resolution=16)


def test_reader_label_errors(tmp_path):
    from sg3keras.data import ImageDataset
    imgs = {"a.png": _rand((8, 8, 3), 0), "b.png": _rand((8, 8, 3), 1)}
    with pytest.raises(DatasetError, match="b.png"):
        ImageDataset(_make_zip(tmp_path / "m.zip", imgs, labels={"a.png": 0}))
    with pytest.raises(DatasetError, match="dataset.json"):
        ImageDataset(_make_zip(tmp_path / "f.zip", imgs, labels={"a.png": 0.5, "b.png": 1.5}))
    ds = ImageDataset(_make_zip(tmp_path / "u.zip", imgs, labels={"a.png": 0}), use_labels=False)
    assert ds.label_dim == 0 and not ds.has_labels


def test_iter_uint8_and_sample_labels(tmp_path):
    from sg3keras.data import ImageDataset
    imgs = {f"{i}.png": a for i, a in enumerate(_tagged(5))}
    ds = ImageDataset(_make_zip(tmp_path / "d.zip", imgs,
                                labels={"0.png": 0, "1.png": 0, "2.png": 0, "3.png": 1, "4.png": 0}))
    batches = list(ds.iter_uint8(2))
    assert [b.shape[0] for b in batches] == [2, 2, 1] and batches[0].dtype == np.uint8
    np.testing.assert_array_equal(np.concatenate(batches), np.stack(list(imgs.values())))
    labels = ds.sample_labels(4000, np.random.default_rng(0))
    assert labels.shape == (4000, 2) and labels.dtype == np.float32
    assert set(map(tuple, labels.tolist())) == {(1.0, 0.0), (0.0, 1.0)}
    assert abs(labels[:, 1].mean() - 0.2) < 0.03  # 1 of 5 images has class 1
    np.testing.assert_array_equal(ds.sample_labels(7, 3), ds.sample_labels(7, 3))


# ---------------------------------------------------------------------------- tf.data
@pytest.fixture(scope="module")
def tagged_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("tagged")
    imgs = {f"{i:02d}.png": a for i, a in enumerate(_tagged(12))}
    labels = {k: i % 3 for i, k in enumerate(imgs)}
    return {"zip": _make_zip(root / "t.zip", imgs, labels),
            "dir": _make_folder(root / "tdir", imgs, labels), "images": list(imgs.values())}


def _collect(tfds, steps=None):
    xs, cs = [], []
    for k, (x, c) in enumerate(tfds):
        if steps is not None and k >= steps:
            break
        xs.append(x.numpy())
        cs.append(c.numpy())
    return xs, cs


@pytest.mark.parametrize("fmt", ["zip", "dir"])
def test_tf_dataset_exact_values_and_onehot(tagged_sets, fmt):
    from sg3keras.data import ImageDataset
    ds = ImageDataset(tagged_sets[fmt])
    xs, cs = _collect(ds.make_tf_dataset(5, shuffle=False, repeat=False))
    assert [x.shape for x in xs] == [(5, 8, 8, 3), (5, 8, 8, 3), (2, 8, 8, 3)]
    x, c = np.concatenate(xs), np.concatenate(cs)
    u8 = np.stack(tagged_sets["images"])
    np.testing.assert_array_equal(x, u8.astype(np.float32) / np.float32(127.5) - np.float32(1))
    assert x.dtype == np.float32 and x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(c, np.eye(3, dtype=np.float32)[np.arange(12) % 3])


def test_tf_dataset_mirror_doubles_and_flips(tagged_sets):
    from sg3keras.data import ImageDataset
    ds = ImageDataset(tagged_sets["zip"])
    xs, cs = _collect(ds.make_tf_dataset(6, shuffle=False, repeat=False, mirror=True))
    x, c = np.concatenate(xs), np.concatenate(cs)
    assert x.shape[0] == 24
    np.testing.assert_array_equal(x[12:], x[:12, :, ::-1, :])
    np.testing.assert_array_equal(c[12:], c[:12])
    ids = _ids(x)
    assert ids == [(i, False) for i in range(12)] + [(i, True) for i in range(12)]


def test_tf_dataset_shuffle_is_seeded_permutation_per_epoch(tagged_sets):
    from sg3keras.data import ImageDataset
    ds = ImageDataset(tagged_sets["dir"])
    a = _ids(np.concatenate(_collect(ds.make_tf_dataset(4, seed=1, mirror=True), steps=12)[0]))
    b = _ids(np.concatenate(_collect(ds.make_tf_dataset(4, seed=1, mirror=True), steps=12)[0]))
    c = _ids(np.concatenate(_collect(ds.make_tf_dataset(4, seed=2, mirror=True), steps=12)[0]))
    assert a == b and a != c
    everything = sorted((i, f) for i in range(12) for f in (False, True))
    assert sorted(a[:24]) == everything and sorted(a[24:]) == everything
    assert a[:24] != a[24:] and a[:24] != sorted(a[:24])


def test_tf_dataset_sharding_is_disjoint_and_covers(tagged_sets):
    import tensorflow as tf
    from sg3keras.data import ImageDataset
    ds = ImageDataset(tagged_sets["zip"])
    ctxs = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                       num_replicas_in_sync=2) for i in range(2)]
    # One epoch, no repeat: shards are disjoint and together cover the (mirrored) set.
    shards = [_ids(np.concatenate(_collect(ds.make_tf_dataset(
        4, seed=3, mirror=True, repeat=False, input_context=ctx))[0])) for ctx in ctxs]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted((i, f) for i in range(12) for f in (0, 1))
    # Infinite stream: each global step's shards (per-replica batch 2) form the global batch.
    full = [_ids(x) for x in _collect(ds.make_tf_dataset(4, seed=3), steps=8)[0]]
    per = [[_ids(x) for x in _collect(ds.make_tf_dataset(4, seed=3, input_context=ctx),
                                     steps=8)[0]] for ctx in ctxs]
    assert all(x.shape[0] == 2 for x in _collect(ds.make_tf_dataset(4, input_context=ctxs[0]),
                                                 steps=1)[0])
    for k in range(8):
        assert sorted(per[0][k] + per[1][k]) == sorted(full[k])


def test_tf_dataset_start_batch_resumes_exactly(tagged_sets):
    from sg3keras.data import ImageDataset
    ds = ImageDataset(tagged_sets["zip"])
    full_x, full_c = _collect(ds.make_tf_dataset(5, seed=4, mirror=True), steps=11)
    tail_x, tail_c = _collect(ds.make_tf_dataset(5, seed=4, mirror=True, start_batch=7), steps=4)
    for k in range(4):  # batches 7..10 cross the epoch boundary at item 24
        np.testing.assert_array_equal(tail_x[k], full_x[7 + k])
        np.testing.assert_array_equal(tail_c[k], full_c[7 + k])
    with pytest.raises(DatasetError, match="start_batch"):
        ds.make_tf_dataset(5, start_batch=-1)


# ---------------------------------------------------------------------------- demo data
def test_demo_dataset_builds_and_is_valid(tmp_path):
    # Needs scikit-image (bundled photos); a missing dependency must fail, not skip.
    from sg3keras.data import ImageDataset
    from sg3keras.data.demo import DEMO_IMAGES, make_demo_dataset
    s = make_demo_dataset(tmp_path / "demo.zip", resolution=32, num_images=48, seed=0)
    assert s["num_images"] == 48
    ds = ImageDataset(tmp_path / "demo.zip")
    assert (len(ds), ds.resolution, ds.num_channels) == (48, 32, 3)
    assert 1 < ds.label_dim <= len(DEMO_IMAGES)
    imgs = np.concatenate(list(ds.iter_uint8(16)))
    assert imgs.reshape(48, -1).std(axis=1).min() > 1.0  # real content, not flat fills
    make_demo_dataset(tmp_path / "same.zip", num_images=48, seed=0)
    make_demo_dataset(tmp_path / "other.zip", num_images=48, seed=1)
    same = np.concatenate(list(ImageDataset(tmp_path / "same.zip").iter_uint8(48)))
    other = np.concatenate(list(ImageDataset(tmp_path / "other.zip").iter_uint8(48)))
    np.testing.assert_array_equal(same, imgs)
    assert not np.array_equal(other, imgs)


def test_tf_dataset_never_resizes(tagged_sets):
    import tensorflow as tf
    from sg3keras.data import ImageDataset
    ds = ImageDataset(tagged_sets["dir"])
    ds._resolution = 16  # simulate a file whose pixels disagree with the validated header
    with pytest.raises(tf.errors.InvalidArgumentError, match="00.png"):
        _collect(ds.make_tf_dataset(2, shuffle=False, repeat=False), steps=1)
