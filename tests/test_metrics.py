import math

import numpy as np
import pytest

from minelisa_training.metrics import IoUAccumulator, giou_ciou, intersection_union, iou_from_counts


def m(rows):
    return np.array(rows, dtype=bool)


def test_hand_computed_pair():
    pred = m([[1, 1, 0], [0, 1, 0]])
    gt = m([[1, 0, 0], [0, 1, 1]])
    assert intersection_union(pred, gt) == (2, 4)
    acc = IoUAccumulator()
    assert acc.add(pred, gt, 1) == pytest.approx(0.5)


def test_no_target_rule():
    empty = np.zeros((4, 5), bool)
    some = empty.copy()
    some[1, 2] = True
    acc = IoUAccumulator()
    assert acc.add(empty, empty, 3) == 1.0  # nothing to find, nothing found
    assert acc.add(some, empty, 3) == 0.0  # nothing to find, something found
    assert acc.add(empty, some, 3) == 0.0  # missed target
    s = acc.summary()
    assert s["giou"] == pytest.approx(1 / 3)
    # cIoU: I = 0 over U = 0 + 1 + 1.
    assert s["ciou"] == 0.0
    assert s["n_no_target"] == 2
    assert s["no_target_accuracy"] == pytest.approx(0.5)


def test_all_empty_sets():
    empty = np.zeros((3, 3), bool)
    acc = IoUAccumulator()
    for _ in range(4):
        acc.add(empty, empty, 1)
    s = acc.summary()
    assert s["giou"] == 1.0 and s["ciou"] == 1.0 and s["n_samples"] == 4
    none = IoUAccumulator().summary()
    assert none["n_samples"] == 0 and math.isnan(none["giou"]) and math.isnan(none["ciou"])
    assert none["per_class"] == {}
    assert all(math.isnan(v) for v in giou_ciou([], []))


def test_one_pixel_objects():
    gt = np.zeros((7, 9), bool)
    gt[3, 4] = True
    hit, miss, wide = gt.copy(), np.zeros_like(gt), gt.copy()
    miss[3, 5] = True
    wide[3, 5] = True
    acc = IoUAccumulator()
    assert acc.add(hit, gt, 1) == 1.0
    assert acc.add(miss, gt, 1) == 0.0
    assert acc.add(wide, gt, 1) == 0.5
    s = acc.summary()
    assert s["giou"] == pytest.approx(0.5)
    assert s["ciou"] == pytest.approx((1 + 0 + 1) / (1 + 2 + 2))


def test_giou_and_ciou_differ_as_defined():
    # Sample 1: I=1, U=2; sample 2: I=90, U=100.
    g, c = giou_ciou(np.array([1, 90]), np.array([2, 100]))
    assert g == pytest.approx((0.5 + 0.9) / 2)
    assert c == pytest.approx(91 / 102)


def test_ignore_pixels_are_left_out():
    gt = m([[1, 1, 0, 0]])
    pred = m([[1, 0, 1, 0]])
    ignore = m([[0, 1, 1, 0]])
    assert intersection_union(pred, gt) == (1, 3)
    assert intersection_union(pred, gt, ignore) == (1, 1)
    # A target that is entirely ignored is a no-target sample.
    acc = IoUAccumulator()
    acc.add(np.zeros((1, 4), bool), m([[0, 1, 0, 0]]), 2, ignore)
    assert acc.summary()["n_no_target"] == 1 and acc.summary()["giou"] == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        intersection_union(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="ignore"):
        intersection_union(np.zeros((2, 2), bool), np.zeros((2, 2), bool), np.zeros((3, 2), bool))


def test_against_brute_force_loop():
    rng = np.random.default_rng(5)
    names = ["background", "a", "b", "c"]
    acc = IoUAccumulator(names)
    rows = []
    for k in range(60):
        h, w = rng.integers(1, 14, 2)
        density = rng.choice([0.0, 0.05, 0.5, 0.95])
        pred = rng.random((h, w)) < rng.choice([0.0, density, 0.3])
        gt = rng.random((h, w)) < density
        ignore = rng.random((h, w)) < 0.1 if k % 3 == 0 else None
        cid = int(rng.integers(1, 4))
        inter = union = 0
        for y in range(h):
            for x in range(w):
                if ignore is not None and ignore[y, x]:
                    continue
                inter += bool(pred[y, x] and gt[y, x])
                union += bool(pred[y, x] or gt[y, x])
        iou = 1.0 if union == 0 else inter / union
        assert acc.add(pred, gt, cid, ignore) == pytest.approx(iou)
        rows.append((cid, inter, union, iou))
    s = acc.summary()
    assert s["n_samples"] == 60
    assert s["giou"] == pytest.approx(sum(r[3] for r in rows) / 60)
    tot_u = sum(r[2] for r in rows)
    assert s["ciou"] == pytest.approx(sum(r[1] for r in rows) / tot_u)
    for cid in (1, 2, 3):
        sel = [r for r in rows if r[0] == cid]
        pc = s["per_class"][names[cid]]
        assert pc["n"] == len(sel) and pc["class_id"] == cid
        assert pc["giou"] == pytest.approx(sum(r[3] for r in sel) / len(sel))
        u = sum(r[2] for r in sel)
        assert pc["iou"] == pytest.approx(sum(r[1] for r in sel) / u if u else 1.0)
    np.testing.assert_allclose(acc.ious(), [r[3] for r in rows])


def test_iou_from_counts_and_invalid_counts():
    np.testing.assert_allclose(iou_from_counts([0, 2, 3], [0, 4, 3]), [1.0, 0.5, 1.0])
    with pytest.raises(ValueError):
        IoUAccumulator().add_counts(3, 2, 1, gt_empty=False)
