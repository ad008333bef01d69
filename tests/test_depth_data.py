"""Depth on MUSeg-format data (issue 14): the synthetic camera and `minelisa eval --depth`."""

import json
import math

import numpy as np
import pytest
from data_fixtures import SYNTH_CFG

from minelisa_training import museg
from minelisa_training.depth import DepthErrorAccumulator, Intrinsics, mask_depth_stats
from minelisa_training.errors import DataError
from minelisa_training.synth import mine_style, render_scene
from minelisa_training.synth.camera import NEAR_M, PERSON_HEIGHT_M, synth_intrinsics

W, H = 541, 466  # half of MUSeg's size


def _scene(seed, featured):
    return render_scene(
        np.random.default_rng([seed, 3]),
        np.random.default_rng([seed, 4]),
        W,
        H,
        mine_style(seed, 1),
        museg.ORDER_A,
        featured=featured,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_objects_have_metric_sizes(seed):
    # Back-projecting a synthetic object's pixel size at its measured depth gives its
    # size in metres: the door spans the roadway (W * NEAR_M / fx wide), people are
    # 0.85-1.1 times PERSON_HEIGHT_M tall.
    intr = synth_intrinsics(W, H)
    roadway_m = W * NEAR_M / intr.fx
    for featured, class_id in (("door", 8), ("person", 1)):
        scene = _scene(seed, featured)
        pts = np.array([p for s in scene.shapes if s["label"] == featured for p in s["points"]])
        stats = mask_depth_stats(scene.label == class_id, scene.depth, intr, erode_px=1)
        assert stats.has_depth and stats.valid_fraction > 0.95
        width = np.ptp(pts[:, 0]) * stats.distance_m / intr.fx
        height = np.ptp(pts[:, 1]) * stats.distance_m / intr.fy
        if featured == "door":
            assert width == pytest.approx(roadway_m, rel=0.03)
            assert stats.extent[0] == pytest.approx(roadway_m, rel=0.05)
        else:
            assert 0.85 * PERSON_HEIGHT_M * 0.97 < height < 1.1 * PERSON_HEIGHT_M * 1.03
            assert stats.extent[1] == pytest.approx(height, rel=0.05)


def test_synth_writes_intrinsics_that_read_back(synth_data, synth_copy):
    root, _ = synth_data
    intr = museg.read_intrinsics(root)
    assert intr == synth_intrinsics(SYNTH_CFG.width, SYNTH_CFG.height)
    assert intr.fx == pytest.approx(913.0 / 1082.0 * SYNTH_CFG.width)
    assert museg.Layout(root).intrinsics_path == root / "Experiment" / "intrinsics.json"
    path = museg.Layout(synth_copy).intrinsics_path
    path.write_text(json.dumps({"width": 4, "height": 3, "k": [0.0] * 9}))
    with pytest.raises(DataError, match="intrinsics.json: not usable camera intrinsics"):
        museg.read_intrinsics(synth_copy)
    path.write_text("{")
    with pytest.raises(DataError, match="intrinsics.json"):
        museg.read_intrinsics(synth_copy)
    path.unlink()
    assert museg.read_intrinsics(synth_copy) is None


def _val_targets(root):
    """(class name, gt mask, depth) of every (val image, class present)."""
    for rec in museg.read_split(root, "val"):
        label = museg.load_label(rec.label_path)
        depth = museg.load_depth(rec.depth_path)
        for class_id in np.unique(label):
            if class_id != 0:
                yield museg.ORDER_A.name(int(class_id)), label == class_id, depth


def test_ground_truth_against_itself_scores_zero(synth_data):
    root, _ = synth_data
    acc = DepthErrorAccumulator(museg.read_intrinsics(root))
    for name, gt, depth in _val_targets(root):
        acc.add(gt, gt, depth, name)
    summary = acc.summary()
    assert summary["all"]["n"] > 10 and len(summary["per_class"]) > 5
    for row in (*summary["per_class"].values(), summary["all"]):
        assert row["mean_abs_error_m"] == 0.0 and row["median_centroid_error_m"] == 0.0


def test_depth_errors_per_class():
    intr = Intrinsics(100.0, 100.0, 49.5, 39.5, 100, 80)
    depth = np.full((80, 100), 6000, np.uint16)  # wall at 6 m
    depth[20:60, 20:50] = 2000  # a person at 2 m
    gt = np.zeros((80, 100), bool)
    gt[20:60, 20:50] = True
    acc = DepthErrorAccumulator(intr, class_names=["person", "cable"])
    assert acc.add(gt, gt, depth, "person") == 0.0
    spill = np.zeros_like(gt)
    spill[20:60, 40:100] = True  # mostly the wall behind
    assert acc.add(spill, gt, depth, "person") == pytest.approx(4.0)
    assert acc.add(np.zeros_like(gt), gt, depth, "person") is None  # a miss
    assert acc.add(gt, np.zeros_like(gt), depth, "cable") is None  # negative sample
    other = DepthErrorAccumulator(intr)
    other.add(gt, gt, depth, "person")
    acc.merge(other.payload())
    s = acc.summary()
    person = s["per_class"]["person"]
    assert person["n"] == 3 and person["pred_without_depth"] == 1
    assert person["mean_abs_error_m"] == pytest.approx(4.0 / 3)
    assert person["median_abs_error_m"] == 0.0 and person["mean_error_m"] > 0
    assert person["mean_centroid_error_m"] > 1.0
    assert s["per_class"]["cable"]["gt_without_depth"] == 1
    assert list(s["per_class"]) == ["person", "cable"] and s["all"]["n"] == 3
    no_intr = DepthErrorAccumulator()
    no_intr.add(spill, gt, depth, "person")
    row = no_intr.summary()["per_class"]["person"]
    assert row["mean_abs_error_m"] == pytest.approx(4.0)
    assert math.isnan(row["mean_centroid_error_m"])  # centroids need intrinsics


def test_eval_depth_reports_per_class_depth_errors(tiny_bundle, synth_data, tmp_path, capsys):
    from minelisa_training.cli import main as cli_main

    root, _ = synth_data
    out = tmp_path / "eval.json"
    args = ["eval", "--model", str(tiny_bundle), "--data", str(root), "--split", "val"]
    assert cli_main([*args, "--limit-images", "2", "--out", str(out), "--depth"]) == 0
    report = json.loads(out.read_text())
    depth = report["depth"]
    assert depth["intrinsics"] == synth_intrinsics(SYNTH_CFG.width, SYNTH_CFG.height).as_dict()
    assert depth["erode_px"] == 3 and depth["per_class"]
    classes = {s["class_name"] for s in report["samples"]}
    assert set(depth["per_class"]) <= classes
    counted = 0
    for row in depth["per_class"].values():
        counted += row["n"] + row["pred_without_depth"] + row["gt_without_depth"]
        assert (row["n"] == 0) == (row["mean_abs_error_m"] is None)  # NaN -> null in JSON
        assert row["n"] == 0 or row["mean_abs_error_m"] >= 0
    assert counted == report["n_samples"]  # every sample, scored or counted as not
    assert "|err| m" in capsys.readouterr().out
    assert cli_main([*args, "--limit-images", "1", "--out", str(out)]) == 0
    assert "depth" not in json.loads(out.read_text())
