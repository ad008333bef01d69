import json
import re
import zipfile

import cv2
import numpy as np
import pytest
from data_fixtures import SYNTH_CFG
from PIL import Image

from minelisa_training import museg, synth
from minelisa_training.metrics import IoUAccumulator


def _files(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = synth.SynthConfig(images=7, seed=3, width=96, height=80, mines=3)
    synth.write_dataset(tmp_path / "a", cfg, progress=False)
    synth.write_dataset(tmp_path / "b", cfg, progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    # jpg, depth, label, colour, polygons per image + the split zip and the camera intrinsics
    assert len(a) == 7 * 5 + 2
    assert a == b
    other = synth.SynthConfig(images=7, seed=4, width=96, height=80, mines=3)
    synth.write_dataset(tmp_path / "c", other, progress=False)
    c = _files(tmp_path / "c")
    jpgs = lambda f: [v for k, v in sorted(f.items()) if k.endswith(".jpg")]  # noqa: E731
    assert all(x != y for x, y in zip(jpgs(a), jpgs(c)))


def test_layout_ids_and_file_formats(synth_data):  # noqa: F811
    root, summary = synth_data
    assert sorted(summary["per_mine"]) == [f"{m:02d}" for m in range(1, 7)]
    assert sum(summary["per_mine"].values()) == SYNTH_CFG.images
    id_re = re.compile(r"^\d{2}-\d{2}-\d{2}-\d{4}-\d{12}-\d{2}-99$")
    for mine, n in summary["per_mine"].items():
        images = sorted((root / f"{mine}-Mine" / "Image").glob("*.jpg"))
        assert len(images) == n
        for p in images:
            assert id_re.match(p.stem) and p.stem.startswith(mine + "-")
            with Image.open(p) as img:
                assert (
                    img.format == "JPEG"
                    and img.mode == "RGB"
                    and img.size == (SYNTH_CFG.width, SYNTH_CFG.height)
                )
            depth = np.asarray(Image.open(root / f"{mine}-Mine" / "Depth" / f"{p.stem}.png"))
            assert depth.dtype == np.uint16 and depth.shape == (SYNTH_CFG.height, SYNTH_CFG.width)
            assert (depth == 0).any() and depth.max() > 1000  # invalid pixels and millimetre depths
            label_img = Image.open(root / f"{mine}-Mine" / "Label" / f"{p.stem}_label.png")
            assert label_img.mode == "L"
            label = np.asarray(label_img)
            colour = np.asarray(
                Image.open(root / f"{mine}-Mine" / "Label" / f"{p.stem}_color.png").convert("RGB")
            )
            np.testing.assert_array_equal(colour, synth.voc_palette()[label])
    with zipfile.ZipFile(root / "Experiment" / "DatasetSplit.zip") as zf:
        assert sorted(zf.namelist()) == ["train.txt", "val.txt"]
        assert all(i.date_time == synth.ZIP_DATE for i in zf.infolist())
        train = zf.read("train.txt").decode().split()
        val = zf.read("val.txt").decode().split()
    assert sorted(train + val) == sorted(summary["split"]["train"] + summary["split"]["val"])
    assert not {museg.capture_group(i) for i in train} & {museg.capture_group(i) for i in val}


def test_polygons_agree_with_label_maps(synth_data):  # noqa: F811
    root, summary = synth_data
    n_checked = 0
    for poly in sorted(root.glob("*-Mine/Label/*_polygons.json")):
        data = json.loads(poly.read_text())
        label = np.asarray(Image.open(str(poly).replace("_polygons.json", "_label.png")))
        assert (data["imageHeight"], data["imageWidth"]) == label.shape
        assert all(s["shape_type"] == "polygon" and len(s["points"]) >= 3 for s in data["shapes"])
        raster = museg.rasterize_shapes(data["shapes"], *label.shape, museg.ORDER_A)
        np.testing.assert_array_equal(raster, label, err_msg=str(poly))
        n_checked += 1
    assert n_checked == SYNTH_CFG.images


def test_class_variety_and_background_images(synth_data):  # noqa: F811
    root, summary = synth_data
    seen = np.zeros(16, dtype=np.int64)
    per_image = []
    for p in sorted(root.glob("*-Mine/Label/*_label.png")):
        label = np.asarray(Image.open(p))
        assert label.max() <= 15
        present = np.bincount(label.ravel(), minlength=16) > 0
        seen += present
        per_image.append((p.name[: -len("_label.png")], int(present[1:].sum())))
    assert (seen[1:] > 0).all(), f"classes never drawn: {np.flatnonzero(seen[1:] == 0) + 1}"
    counts = [n for _, n in per_image]
    assert max(counts) - min(counts) >= 4  # presence varies from image to image
    background = [i for i, n in per_image if n == 0]
    assert background and sorted(background) == sorted(summary["all_background"])


def _pixel_features(img):
    # Chromaticity survives the uneven lamp light; local mean and spread add texture.
    f = img.astype(np.float32)
    chrom = 3 * f / (f.sum(-1, keepdims=True) + 1)
    mean = cv2.blur(f, (5, 5))
    spread = np.sqrt(np.maximum(cv2.blur(f * f, (5, 5)) - mean * mean, 0))
    return np.concatenate([chrom, mean / 255, spread / 64], -1).reshape(-1, 9)


def test_classes_are_learnable(synth_data):  # noqa: F811
    # A per-pixel nearest-centroid classifier fitted on the train split must segment
    # the val split far better than predicting the whole image: the classes have
    # distinct looks that survive the lighting, so a tiny model has something to learn.
    root, _ = synth_data
    feats, labels = [], []
    for rec in museg.read_split(root, "train"):
        img, lab = museg.load_image_and_label(rec)
        feats.append(_pixel_features(img))
        labels.append(lab.ravel())
    x, y = np.concatenate(feats), np.concatenate(labels)
    # A class missing from the train split gets a centroid no pixel is near.
    centroids = np.stack(
        [x[y == c].mean(0) if (y == c).any() else np.full(9, 1e3) for c in range(16)]
    )
    learned, whole = IoUAccumulator(), IoUAccumulator()
    for s in museg.expand_samples(museg.read_split(root, "val"), progress=False):
        img, lab = museg.load_image_and_label(s.record)
        d = ((_pixel_features(img)[:, None, :] - centroids[None]) ** 2).sum(-1)
        pred = d.argmin(1).reshape(lab.shape)
        learned.add(pred == s.class_id, lab == s.class_id, s.class_id)
        whole.add(np.ones_like(lab, bool), lab == s.class_id, s.class_id)
    g_learned, g_whole = learned.summary()["giou"], whole.summary()["giou"]
    assert g_learned > 0.2 and g_learned > g_whole + 0.15, (g_learned, g_whole)


def test_class_order_b(tmp_path):
    cfg = synth.SynthConfig(images=6, seed=2, width=96, height=80, mines=2, class_order="B")
    synth.write_dataset(tmp_path, cfg, progress=False)
    for poly in sorted(tmp_path.glob("*-Mine/Label/*_polygons.json")):
        data = json.loads(poly.read_text())
        label = np.asarray(Image.open(str(poly).replace("_polygons.json", "_label.png")))
        np.testing.assert_array_equal(
            museg.rasterize_shapes(data["shapes"], *label.shape, museg.ORDER_B), label
        )
        names = {s["label"] for s in data["shapes"]}
        assert "tools & materials" not in names  # order B spells it "tools and materials"


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="class_order"):
        synth.SynthConfig(class_order="C")
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        synth.parse_size("big")
    assert synth.parse_size("1082x932") == (1082, 932)


def test_synth_cli(tmp_path, capsys):
    from minelisa_training.cli import main

    out = tmp_path / "s"
    assert (
        main(["synth", "--out", str(out), "--images", "3", "--size", "64x48", "--mines", "2"]) == 0
    )
    assert len(list(out.glob("*-Mine/Image/*.jpg"))) == 3
    assert "wrote 3 images (64x48" in capsys.readouterr().out
    assert main(["synth", "--out", str(out), "--images", "3"]) == 2  # refuses to mix runs
    assert "not empty" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "t"), "--size", "10x10"]) == 2
    assert "too small" in capsys.readouterr().err
