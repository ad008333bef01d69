import json

import numpy as np
import pytest
import torch
from PIL import Image

from minelisa_training import evaluation, museg
from minelisa_training.cli import main as cli_main
from minelisa_training.engine import SegmentationEngine
from minelisa_training.errors import DataError


def _val_samples(root, limit=None, **kw):
    records = museg.read_split(root, "val")[:limit]
    return museg.expand_samples(records, progress=False, **kw)


def _labels(samples):
    return {s.image_id: np.asarray(Image.open(s.record.label_path)) for s in samples}


def test_eval_and_score_agree(tiny_bundle, synth_data, tmp_path):
    root, _ = synth_data
    report_path, masks = tmp_path / "eval.json", tmp_path / "masks"
    common = ["--data", str(root), "--split", "val", "--limit", "2", "--negatives", "0.5"]
    assert (
        cli_main(
            [
                "eval",
                "--model",
                str(tiny_bundle),
                "--out",
                str(report_path),
                "--masks",
                str(masks),
                "--overlays",
                str(tmp_path / "ov"),
                *common,
            ]
        )
        == 0
    )
    ev = json.loads(report_path.read_text())
    samples = _val_samples(root, 2, negative_fraction=0.5, seed=0)
    assert ev["n_samples"] == len(samples) > 0 and ev["n_no_target"] > 0
    assert sorted(p.stem for p in masks.glob("*.png")) == sorted(s.key for s in samples)
    assert len(list((tmp_path / "ov").glob("*.jpg"))) == len(samples)
    assert ev["split"]["name"] == "val" and ev["model"]["path"] == str(tiny_bundle)
    assert (
        ev["timing"]["n_images"] == 2 and ev["timing"]["engine_ms_per_image"]["sam_encoder_ms"] > 0
    )

    assert (
        cli_main(["score", "--pred", str(masks), "--out", str(tmp_path / "score.json"), *common])
        == 0
    )
    sc = json.loads((tmp_path / "score.json").read_text())
    for key in ("giou", "ciou", "n_samples", "n_no_target", "no_target_accuracy", "per_class"):
        assert sc[key] == ev[key], key
    assert [r["iou"] for r in sc["samples"]] == [r["iou"] for r in ev["samples"]]
    assert sc["missing_predictions"]["count"] == 0

    # And both equal an independent recomputation from the mask files.
    labels = _labels(samples)
    ious = []
    for s in samples:
        pred = np.asarray(Image.open(masks / f"{s.key}.png")) > 127
        gt = labels[s.image_id] == s.class_id
        u = np.logical_or(pred, gt).sum()
        ious.append(1.0 if u == 0 else np.logical_and(pred, gt).sum() / u)
    assert ev["giou"] == pytest.approx(float(np.mean(ious)))


def test_evaluate_encodes_each_image_once_and_skips_bad_images(tiny, synth_copy):
    model, tok = tiny
    engine = SegmentationEngine(model, tok)
    calls = [0]
    model.visual_model.image_encoder.register_forward_hook(
        lambda *_: calls.__setitem__(0, calls[0] + 1)
    )
    samples = _val_samples(synth_copy, 3)
    images = list(dict.fromkeys(s.image_id for s in samples))
    bad = next(s.record for s in samples if s.image_id == images[1])
    data = bad.image_path.read_bytes()
    bad.image_path.write_bytes(data[: len(data) // 2])
    report = evaluation.evaluate(engine, samples, progress=False)
    assert calls[0] == len(images) - 1
    assert report["skipped"]["count"] == 1 and report["skipped"]["files"][0]["path"] == str(
        bad.image_path
    )
    assert report["n_samples"] == sum(1 for s in samples if s.image_id != bad.image_id)
    # Same numbers as instruction-by-instruction inference (batch 1), on a few samples.
    good = [s for s in samples if s.image_id != bad.image_id][:3]
    singles, current = [], None
    with torch.inference_mode():
        for s in good:
            if s.image_id != current:
                encoded = engine.encode(museg.load_image(s.record.image_path))
                current = s.image_id
            singles.append(engine.segment(encoded, s.instruction).mask)
    acc_ious = []
    labels = _labels(samples)
    for s, pred in zip(good, singles):
        gt = labels[s.image_id] == s.class_id
        u = np.logical_or(pred, gt).sum()
        acc_ious.append(1.0 if u == 0 else np.logical_and(pred, gt).sum() / u)
    # Batched and single decoding round differently: a pixel whose logit is ~0 may
    # flip (the engine tests allow <= 10 px); 1e-3 of IoU is a few pixels here.
    np.testing.assert_allclose(
        [r["iou"] for r in report["samples"][:3]], acc_ious, rtol=0, atol=1e-3
    )


def test_score_ground_truth_missing_and_bad_masks(synth_data, tmp_path):
    root, _ = synth_data
    samples = _val_samples(root, 5)
    labels = _labels(samples)
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for s in samples:
        evaluation.write_mask(pred_dir / f"{s.key}.png", labels[s.image_id] == s.class_id)
    perfect = evaluation.score_masks(pred_dir, samples, progress=False)
    assert (
        perfect["giou"] == 1.0 and perfect["ciou"] == 1.0 and perfect["n_samples"] == len(samples)
    )

    # Missing file -> empty mask (IoU 0 for a positive sample), reported by key.
    gone = samples[0]
    (pred_dir / f"{gone.key}.png").unlink()
    # Wrong size -> unreadable, scored as empty.
    wrong = samples[1]
    Image.fromarray(np.full((5, 5), 255, np.uint8)).save(pred_dir / f"{wrong.key}.png")
    # A 0/1 file is read as a mask too; dilate one target by a row to get a known IoU.
    grown = samples[2]
    gt = labels[grown.image_id] == grown.class_id
    pred = gt | np.roll(gt, 1, axis=0)
    Image.fromarray(pred.astype(np.uint8)).save(pred_dir / f"{grown.key}.png")
    rep = evaluation.score_masks(pred_dir, samples, progress=False)
    assert rep["missing_predictions"] == {"count": 1, "keys": [gone.key]}
    assert (
        rep["unreadable_predictions"]["count"] == 1
        and wrong.key in rep["unreadable_predictions"]["files"][0]["path"]
    )
    rows = {r["key"]: r for r in rep["samples"]}
    assert rows[gone.key]["iou"] == 0.0 and rows[wrong.key]["iou"] == 0.0
    assert rows[grown.key]["iou"] == pytest.approx(gt.sum() / pred.sum())
    expected = (len(samples) - 3 + rows[grown.key]["iou"]) / len(samples)
    assert rep["giou"] == pytest.approx(expected)
    with pytest.raises(DataError, match="prediction folder"):
        evaluation.score_masks(tmp_path / "nope", samples)


def test_score_cli_report_and_table(synth_data, tmp_path, capsys):
    root, _ = synth_data
    pred_dir = tmp_path / "empty_pred"
    pred_dir.mkdir()
    out = tmp_path / "r.json"
    assert (
        cli_main(
            [
                "score",
                "--pred",
                str(pred_dir),
                "--data",
                str(root),
                "--split-scheme",
                "mines",
                "--val-mines",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rep = json.loads(out.read_text())  # valid JSON (no NaN)
    assert rep["giou"] == 0.0 and rep["missing_predictions"]["count"] == rep["n_samples"] > 0
    assert rep["split"]["scheme"] == "mines(val=2)"
    assert {r["image_id"][:2] for r in rep["samples"]} == {"02"}
    text = capsys.readouterr().out
    assert "gIoU" in text and "missing predictions (scored as empty)" in text
    assert set(rep["per_class"]) <= set(museg.ORDER_A_NAMES[1:])


def test_overlay_marks_prediction_and_outline():
    img = np.full((40, 50, 3), 60, np.uint8)
    gt = np.zeros((40, 50), bool)
    gt[10:20, 10:20] = True
    pred = np.zeros_like(gt)
    pred[25:35, 30:45] = True
    out = evaluation.overlay(img, gt, pred, "x")
    assert out.shape == img.shape and out.dtype == np.uint8
    assert out[30, 40, 0] > out[30, 40, 1]  # red tint on the prediction
    assert out[10, 15, 1] > 200  # green outline on the ground truth


def test_cli_errors_are_specific(tmp_path, capsys):
    assert (
        cli_main(
            [
                "score",
                "--pred",
                str(tmp_path),
                "--data",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["museg", "check", str(tmp_path), "--classes", str(tmp_path / "c.txt")]) == 2
    assert "classes file" in capsys.readouterr().err


def test_score_refuses_when_no_prediction_can_be_read(synth_data, tmp_path, capsys):
    root, _ = synth_data
    args = ["--data", str(root), "--split-scheme", "mines", "--val-mines", "2"]
    samples = museg.build_samples(
        root, "val", museg.SplitOptions(scheme="mines", val_mines=("2",))
    ).samples
    pred_dir = tmp_path / "wrong_size"
    pred_dir.mkdir()
    for s in samples:  # every mask 7x5 pixels: none matches its image
        evaluation.write_mask(evaluation.mask_path(pred_dir, s), np.ones((5, 7), bool))
    out = tmp_path / "r.json"
    out.write_text("old report")
    assert cli_main(["score", "--pred", str(pred_dir), *args, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "unreadable prediction" in captured.out
    assert f"none of the {len(samples)} predictions" in captured.err
    assert out.read_text() == "old report"  # nothing written over the old report
