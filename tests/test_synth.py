import json
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from data_fixtures import SYNTH_CFG, synth_data  # noqa: F401
from minelisa_training import museg, synth


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = synth.SynthConfig(images=7, seed=3, width=96, height=80, mines=3)
    synth.write_dataset(tmp_path / "a", cfg, progress=False)
    synth.write_dataset(tmp_path / "b", cfg, progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 7 * 5 + 1  # jpg, depth, label, colour, polygons per image + the split zip
    assert a == b
    other = synth.SynthConfig(images=7, seed=4, width=96, height=80, mines=3)
    synth.write_dataset(tmp_path / "c", other, progress=False)
    c = _files(tmp_path / "c")
    jpgs = lambda f: [v for k, v in sorted(f.items()) if k.endswith(".jpg")]  # noqa: E731
    assert all(x != y for x, y in zip(jpgs(a), jpgs(c)))


def test_layout_ids_and_file_formats(synth_data):
    root, summary = synth_data
    assert sorted(summary["per_mine"]) == [f"{m:02d}" for m in range(1, 7)]
    assert sum(summary["per_mine"].values()) == SYNTH_CFG.images
    id_re = re.compile(r"^\d{2}-\d{2}-\d{2}-\d{4}-\d{12}-\d{2}-99$")
    for mine, n in summary["per_mine"].items():
        images = sorted((root / f"{mine}-Mine" / "Image").glob("*.jpg"))
        assert len(images) == n
        for p in images:
            assert id_re.match(p.stem) and p.stem.startswith(mine + "-")
            img = Image.open(p)
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == (SYNTH_CFG.width, SYNTH_CFG.height)
            depth = np.asarray(Image.open(root / f"{mine}-Mine" / "Depth" / f"{p.stem}.png"))
            assert depth.dtype == np.uint16 and depth.shape == (SYNTH_CFG.height, SYNTH_CFG.width)
            assert (depth == 0).any() and depth.max() > 1000  # invalid pixels and millimetre depths
            label_img = Image.open(root / f"{mine}-Mine" / "Label" / f"{p.stem}_label.png")
            assert label_img.mode == "L"
            label = np.asarray(label_img)
            colour = np.asarray(Image.open(root / f"{mine}-Mine" / "Label" / f"{p.stem}_color.png").convert("RGB"))
            np.testing.assert_array_equal(colour, synth.voc_palette()[label])
    with zipfile.ZipFile(root / "Experiment" / "DatasetSplit.zip") as zf:
        assert sorted(zf.namelist()) == ["train.txt", "val.txt"]
        assert all(i.date_time == synth.ZIP_DATE for i in zf.infolist())
        train = zf.read("train.txt").decode().split()
        val = zf.read("val.txt").decode().split()
    assert sorted(train + val) == sorted(summary["split"]["train"] + summary["split"]["val"])
    assert not {museg.capture_group(i) for i in train} & {museg.capture_group(i) for i in val}


def test_polygons_agree_with_label_maps(synth_data):
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


def test_class_variety_and_background_images(synth_data):
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


def test_classes_have_distinct_looks(synth_data):
    # The mean colour of each class should be far from the others, or a tiny model
    # has nothing to learn from: compare per-class mean RGB under the masks.
    root, _ = synth_data
    sums = np.zeros((16, 3))
    counts = np.zeros(16)
    for p in sorted(root.glob("*-Mine/Image/*.jpg")):
        img = np.asarray(Image.open(p)).reshape(-1, 3).astype(np.float64)
        label = np.asarray(Image.open(p.parent.parent / "Label" / f"{p.stem}_label.png")).ravel()
        np.add.at(sums, label, img)
        counts += np.bincount(label, minlength=16)
    means = sums[1:] / counts[1:, None]
    d = np.linalg.norm(means[:, None] - means[None], axis=-1) + np.eye(15) * 1e9
    assert d.min() > 6.0, d.min()


def test_class_order_b(tmp_path):
    cfg = synth.SynthConfig(images=6, seed=2, width=96, height=80, mines=2, class_order="B")
    synth.write_dataset(tmp_path, cfg, progress=False)
    for poly in sorted(tmp_path.glob("*-Mine/Label/*_polygons.json")):
        data = json.loads(poly.read_text())
        label = np.asarray(Image.open(str(poly).replace("_polygons.json", "_label.png")))
        np.testing.assert_array_equal(museg.rasterize_shapes(data["shapes"], *label.shape, museg.ORDER_B), label)
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
    assert main(["synth", "--out", str(out), "--images", "3", "--size", "64x48", "--mines", "2"]) == 0
    assert len(list(out.glob("*-Mine/Image/*.jpg"))) == 3
    assert "wrote 3 images (64x48" in capsys.readouterr().out
    assert main(["synth", "--out", str(out), "--images", "3"]) == 2  # refuses to mix runs
    assert "not empty" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "t"), "--size", "10x10"]) == 2
    assert "too small" in capsys.readouterr().err
