import json
import logging
import zipfile

import numpy as np
import pytest
from data_fixtures import SYNTH_CFG
from PIL import Image

from minelisa_training import museg, synth
from minelisa_training.cli import main as cli_main
from minelisa_training.errors import DataError


def _labels(root):
    return {
        p.name[: -len("_label.png")]: np.asarray(Image.open(p))
        for p in root.glob("*-Mine/Label/*_label.png")
    }


# ----------------------------------------------------------------- class maps


def test_class_maps():
    assert museg.ORDER_A.name(15) == "rail area" and museg.ORDER_B.name(8) == "rail area"
    assert museg.ORDER_B.id_of("Tools & Materials") == 11  # names compare case/&-insensitively
    assert museg.load_class_map(None) is museg.ORDER_A
    assert museg.load_class_map("b") is museg.ORDER_B
    assert museg.load_class_map("order-A") is museg.ORDER_A
    assert sorted(museg.ORDER_A_NAMES) != sorted(museg.ORDER_B_NAMES)  # "&" vs "and"
    assert {museg.normalize_class_name(n) for n in museg.ORDER_A_NAMES} == {
        museg.normalize_class_name(n) for n in museg.ORDER_B_NAMES
    }


def test_classes_file(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("# my map\nbackground\nrock\n\ndrill  # comment\n")
    cm = museg.load_class_map(plain)
    assert cm.names == ("background", "rock", "drill") and cm.num_classes == 3
    numbered = tmp_path / "numbered.txt"
    numbered.write_text("1: rock\n0: background\n2\tdrill\n")
    assert museg.ClassMap.from_file(numbered).names == ("background", "rock", "drill")
    gap = tmp_path / "gap.txt"
    gap.write_text("0 background\n2 drill\n")
    with pytest.raises(ValueError, match="0..N-1"):
        museg.ClassMap.from_file(gap)
    dup = tmp_path / "dup.txt"
    dup.write_text("background\nRock\nrock\n")
    with pytest.raises(ValueError, match="duplicate"):
        museg.ClassMap.from_file(dup)
    with pytest.raises(DataError, match="classes file"):
        museg.load_class_map(tmp_path / "nope.txt")


# ----------------------------------------------------------------- layout and splits


def test_scan_counts(synth_data):  # noqa: F811
    root, summary = synth_data
    records = museg.scan(root)
    assert len(records) == SYNTH_CFG.images
    per_mine = {}
    for r in records.values():
        per_mine[r.mine] = per_mine.get(r.mine, 0) + 1
        assert r.label_path.is_file() and r.depth_path.is_file() and r.polygons_path.is_file()
    assert per_mine == summary["per_mine"]
    # The parent of the MUSeg folder works too.
    assert list(museg.scan(root.parent)) == list(records)
    with pytest.raises(DataError, match="NN-Mine"):
        museg.find_root(root / "01-Mine")


def test_official_split_zip_and_text(synth_data, synth_copy):  # noqa: F811
    root, summary = synth_data
    official = museg.read_official_split(root)
    assert official == summary["split"]
    splits = museg.make_splits(root)
    assert [r.image_id for r in splits["val"]] == summary["split"]["val"]
    # Extracted text files with path-style lines give the same ids.
    (synth_copy / "Experiment" / "DatasetSplit.zip").unlink()
    txt_dir = synth_copy / "Experiment" / "DatasetSplit"
    txt_dir.mkdir()
    for name, ids in summary["split"].items():
        (txt_dir / f"{name}.txt").write_text(
            "".join(f"{i[:2]}-Mine/Image/{i}.jpg {i[:2]}-Mine/Label/{i}_label.png\r\n" for i in ids)
        )
    assert museg.read_official_split(synth_copy) == summary["split"]
    assert len(museg.read_split(synth_copy, "all")) == SYNTH_CFG.images


def test_missing_split_is_a_clear_error(synth_copy):  # noqa: F811
    (synth_copy / "Experiment" / "DatasetSplit.zip").unlink()
    with pytest.raises(DataError, match="groups"):
        museg.read_split(synth_copy, "val")
    (synth_copy / "Experiment" / "DatasetSplit.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        museg.read_split(synth_copy, "val")


def test_group_split_is_group_disjoint_and_seeded(synth_data):  # noqa: F811
    root, _ = synth_data
    records = list(museg.scan(root).values())
    n_groups = len({r.group for r in records})
    assert n_groups >= 12
    for seed in (0, 1, 2):
        sp = museg.group_split(records, 0.25, seed)
        train, val = sp["train"], sp["val"]
        assert len(train) + len(val) == len(records)
        assert not {r.group for r in train} & {r.group for r in val}
        assert abs(len(val) - 0.25 * len(records)) <= 4  # groups hold 2-6 frames
        again = museg.group_split(records, 0.25, seed)
        assert [r.image_id for r in again["val"]] == [r.image_id for r in val]
    vals = {tuple(r.image_id for r in museg.group_split(records, 0.25, s)["val"]) for s in range(5)}
    assert len(vals) > 1  # the seed matters
    with pytest.raises(ValueError, match="val_fraction"):
        museg.group_split(records, 1.0)
    spec = museg.SplitSpec("groups", val_fraction=0.25, seed=1)
    assert [r.image_id for r in museg.read_split(root, "val", spec)] == [
        r.image_id for r in museg.group_split(records, 0.25, 1)["val"]
    ]


def test_mine_split(synth_data):  # noqa: F811
    root, _ = synth_data
    spec = museg.SplitSpec("mines", val_mines=("3", "06"))
    train, val = museg.read_split(root, "train", spec), museg.read_split(root, "val", spec)
    assert {r.mine for r in val} == {"03", "06"}
    assert not {r.mine for r in train} & {"03", "06"}
    assert len(train) + len(val) == SYNTH_CFG.images
    with pytest.raises(ValueError, match="no images"):
        museg.read_split(root, "val", museg.SplitSpec("mines", val_mines=("09",)))
    with pytest.raises(ValueError, match="nothing left"):
        museg.read_split(
            root, "val", museg.SplitSpec("mines", val_mines=tuple(f"{m:02d}" for m in range(1, 7)))
        )


# ----------------------------------------------------------------- samples


def test_expansion_counts_and_order(synth_data):  # noqa: F811
    root, summary = synth_data
    records = museg.read_split(root, "all")
    labels = _labels(root)
    samples = museg.expand_samples(records, progress=False)
    expected = {i: set(np.unique(lab).tolist()) - {0} for i, lab in labels.items()}
    assert len(samples) == sum(len(v) for v in expected.values())
    got: dict[str, list[int]] = {}
    for s in samples:
        got.setdefault(s.image_id, []).append(s.class_id)
        assert (
            s.instruction
            == f"Please segment the {museg.instruction_name(s.class_name)} in this image."
        )
        assert not s.negative and s.key == f"{s.image_id}__{s.class_id}"
    assert {i: set(v) for i, v in got.items()} == {i: v for i, v in expected.items() if v}
    assert all(v == sorted(v) for v in got.values())
    assert not set(got) & set(summary["all_background"])  # no positive sample from empty images
    # Samples of one image are contiguous.
    runs = [
        s.image_id for k, s in enumerate(samples) if k == 0 or samples[k - 1].image_id != s.image_id
    ]
    assert len(runs) == len(set(runs))
    tools = [s for s in samples if s.class_id == 7]
    assert tools and tools[0].instruction == "Please segment the tools and materials in this image."


def test_negatives(synth_data):  # noqa: F811
    root, summary = synth_data
    records = museg.read_split(root, "all")
    labels = _labels(root)
    pos = museg.expand_samples(records, progress=False)
    mixed = museg.expand_samples(records, negative_fraction=0.5, seed=3, progress=False)
    neg = [s for s in mixed if s.negative]
    assert len(neg) == round(0.5 * len(pos)) and len(mixed) == len(pos) + len(neg)
    assert len({s.key for s in mixed}) == len(mixed)
    for s in neg:
        assert not (labels[s.image_id] == s.class_id).any()
        item = museg.load_sample(s)
        assert item.mask.dtype == bool and not item.mask.any()
    again = museg.expand_samples(records, negative_fraction=0.5, seed=3, progress=False)
    assert [s.key for s in again] == [s.key for s in mixed]
    other = museg.expand_samples(records, negative_fraction=0.5, seed=4, progress=False)
    assert [s.key for s in other] != [s.key for s in mixed]
    with pytest.raises(ValueError, match="negative_fraction"):
        museg.expand_samples(records, negative_fraction=-1, progress=False)


def test_templates(synth_data):  # noqa: F811
    root, _ = synth_data
    records = museg.read_split(root, "train")
    samples = museg.expand_samples(
        records, templates=museg.INSTRUCTION_TEMPLATES, seed=0, progress=False
    )
    used = set()
    for s in samples:
        name = museg.instruction_name(s.class_name)
        matches = [
            t for t in museg.INSTRUCTION_TEMPLATES if t.format(class_name=name) == s.instruction
        ]
        assert matches
        used.add(matches[0])
    assert len(used) >= 3
    with pytest.raises(ValueError, match="class_name"):
        museg.expand_samples(records, templates=("segment it",), progress=False)


def test_load_sample_and_ignore_value(synth_copy):  # noqa: F811
    records = museg.read_split(synth_copy, "all")
    samples = museg.expand_samples(records, progress=False)
    s = samples[0]
    label = np.asarray(Image.open(s.record.label_path)).copy()
    item = museg.load_sample(s)
    assert item.image.dtype == np.uint8 and item.image.shape == label.shape + (3,)
    np.testing.assert_array_equal(item.mask, label == s.class_id)
    assert (
        item.instruction == s.instruction and item.class_id == s.class_id and not item.ignore.any()
    )
    # Paint 255 over part of the target and over background: ignored, not a class.
    ys, xs = np.nonzero(label == s.class_id)
    label[ys[: len(ys) // 2], xs[: len(xs) // 2]] = 255
    label[0, :5] = 255
    Image.fromarray(label).save(s.record.label_path)
    item = museg.load_sample(s)
    np.testing.assert_array_equal(item.ignore, label == 255)
    np.testing.assert_array_equal(item.mask, label == s.class_id)
    presence = museg.class_presence(label, museg.ORDER_A)
    assert presence.shape == (16,)
    again = museg.expand_samples([s.record], progress=False)
    assert {x.class_id for x in again} == set(np.unique(label).tolist()) - {0, 255}


def test_unreadable_files_are_skipped_and_counted(synth_copy, caplog):  # noqa: F811
    records = museg.read_split(synth_copy, "all")
    bad = records[5]
    bad.label_path.unlink()
    skipped = museg.SkipLog()
    with caplog.at_level(logging.WARNING, logger="minelisa.museg"):
        samples = museg.expand_samples(records, skipped=skipped, progress=False)
    assert len(skipped) == 1 and skipped.entries[0].path == str(bad.label_path)
    assert skipped.entries[0].reason == "file is missing"
    assert str(bad.label_path) in caplog.text
    assert bad.image_id not in {s.image_id for s in samples}
    # A truncated JPEG fails loudly, naming the file.
    s = samples[0]
    data = s.record.image_path.read_bytes()
    s.record.image_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(museg.SampleLoadError, match=s.record.image_path.name):
        museg.load_sample(s)


# ----------------------------------------------------------------- check


def test_check_clean_set(synth_data, capsys):  # noqa: F811
    root, summary = synth_data
    report = museg.check(root, progress=False)
    assert report.usable and not report.errors and not report.warnings
    assert report.order == "order A"
    assert report.mines == summary["per_mine"] and report.n_usable == SYNTH_CFG.images
    assert report.n_all_background == len(summary["all_background"])
    assert sum(report.split_counts["val"].values()) == len(summary["split"]["val"])
    assert report.derived_map[15] == "rail area" and report.derived_map[7] == "tools and materials"
    assert cli_main(["museg", "check", str(root)]) == 0
    assert "verdict: USABLE" in capsys.readouterr().out


def test_check_reports_planted_faults(synth_copy, tmp_path, capsys):  # noqa: F811
    records = list(museg.scan(synth_copy).values())
    truncated, wrong_size, no_label, value17 = records[1], records[8], records[15], records[22]
    data = truncated.image_path.read_bytes()
    truncated.image_path.write_bytes(data[: len(data) // 3])
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(wrong_size.label_path)
    no_label.label_path.unlink()
    lab = np.asarray(Image.open(value17.label_path)).copy()
    lab[3, 4] = 17
    Image.fromarray(lab).save(value17.label_path)

    report = museg.check(synth_copy, progress=False)
    kinds = {(e["kind"], e["path"]) for e in report.errors}
    assert ("unreadable image", str(truncated.image_path)) in kinds
    assert ("size mismatch", str(wrong_size.label_path)) in kinds
    assert ("missing label", str(no_label.label_path)) in kinds
    assert ("label value out of range", str(value17.label_path)) in kinds
    assert len(report.errors) == 4
    assert "[17]" in next(
        e["detail"] for e in report.errors if e["kind"] == "label value out of range"
    )
    # Still usable (bad files are skipped); --strict turns errors into a failure.
    assert report.usable and report.n_usable == SYNTH_CFG.images - 3
    out_json = tmp_path / "check.json"
    assert cli_main(["museg", "check", str(synth_copy), "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    for rec in (truncated, wrong_size, no_label, value17):
        assert rec.image_id in text
    assert json.loads(out_json.read_text())["usable"] is True
    assert cli_main(["museg", "check", str(synth_copy), "--strict"]) == 1
    # The 17 is ignored, never turned into a class, by the reader.
    item = museg.load_sample(museg.Sample(value17, 15, "rail area", "x"))
    assert item.ignore[3, 4]


def test_check_says_order_b(tmp_path, capsys):
    cfg = synth.SynthConfig(images=30, seed=5, width=128, height=96, class_order="B")
    synth.write_dataset(tmp_path, cfg, progress=False)
    report = museg.check(tmp_path, progress=False)
    assert report.order == "order B"
    assert not report.usable and "--classes B" in report.fatal[0]  # default order A would mislabel
    assert cli_main(["museg", "check", str(tmp_path)]) == 1
    assert "order B" in capsys.readouterr().out
    assert museg.check(tmp_path, museg.ORDER_B, progress=False).usable
    assert cli_main(["museg", "check", str(tmp_path), "--classes", "B"]) == 0


def test_check_unusable_and_split_problems(tmp_path, synth_copy, capsys):  # noqa: F811
    assert cli_main(["museg", "check", str(tmp_path / "nothing")]) == 1
    (tmp_path / "empty").mkdir()
    report = museg.check(tmp_path / "empty", progress=False)
    assert not report.usable and "NN-Mine" in report.fatal[0]
    # A split id without an image, and an id in both splits.
    zpath = synth_copy / "Experiment" / "DatasetSplit.zip"
    with zipfile.ZipFile(zpath) as zf:
        train, val = zf.read("train.txt").decode(), zf.read("val.txt").decode()
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("DatasetSplit/train.txt", train + "01-01-99-0001-240501000000-08-99\n")
        zf.writestr("DatasetSplit/val.txt", val + train.split()[0] + "\n")
    report = museg.check(synth_copy, progress=False)
    kinds = [e["kind"] for e in report.errors]
    assert "split id without image" in kinds and "split overlap" in kinds


# ----------------------------------------------------------------- augmentation


def test_augmentation_is_deterministic_and_photometric():
    from minelisa_training.augment import MineAugment, mine_augment

    img = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    a = mine_augment(img, np.random.default_rng(7))
    b = mine_augment(img, np.random.default_rng(7))
    assert a.dtype == np.uint8 and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    outs = {mine_augment(img, np.random.default_rng(s)).tobytes() for s in range(6)}
    assert len(outs) > 3
    off = MineAugment(p_dim=0, p_gamma=0, p_noise=0, p_blur=0)
    np.testing.assert_array_equal(off(img, np.random.default_rng(1)), img)
    dim = MineAugment(p_dim=1, dim_range=(0.4, 0.4), p_gamma=0, p_noise=0, p_blur=0)(
        img, np.random.default_rng(1)
    )
    np.testing.assert_allclose(dim.astype(float), np.rint(img * 0.4), atol=1)
    dark = MineAugment(p_dim=0, p_gamma=1, gamma_range=(1.5, 1.5), p_noise=0, p_blur=0)(
        img, np.random.default_rng(1)
    )
    assert dark.mean() < img.mean() - 10
    blurred = MineAugment(p_dim=0, p_gamma=0, p_noise=0, p_blur=1)(img, np.random.default_rng(1))
    assert (
        np.abs(np.diff(blurred.astype(float), axis=1)).mean()
        < np.abs(np.diff(img.astype(float), axis=1)).mean()
    )
    noisy = MineAugment(p_dim=0, p_gamma=0, p_noise=1, noise_sigma=(10, 10), p_blur=0)(
        img, np.random.default_rng(1)
    )
    assert 5 < np.abs(noisy.astype(float) - img).mean() < 12
    with pytest.raises(ValueError, match="RGB uint8"):
        mine_augment(img.astype(np.float32), np.random.default_rng(0))


def test_group_fields_choose_the_grouping(synth_data):  # noqa: F811
    root, _ = synth_data
    records = list(museg.scan(root).values())
    assert museg.capture_group("01-02-03-0014-240523104754-08-99", 2) == "01-02"
    by_mine = museg.group_split(records, 0.3, seed=0, group_fields=1)
    assert not {r.mine for r in by_mine["train"]} & {r.mine for r in by_mine["val"]}
    with pytest.raises(ValueError, match="group_fields"):
        museg.group_split(records, 0.3, group_fields=0)
