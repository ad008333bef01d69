"""gIoU / cIoU / per-class IoU with the MineLISA paper's definitions.

- A sample is one (image, instruction) pair with one predicted and one ground-truth
  binary mask. Its IoU is |P & G| / |P | G| over the pixels that are not ignored.
- No-target rule: empty ground truth and empty prediction -> IoU 1; empty ground
  truth and a non-empty prediction -> IoU 0 (it follows from I/U with U = 0 -> 1).
- gIoU = mean of the per-sample IoUs.
- cIoU = sum of intersections / sum of unions over all samples (foreground pixels
  only). When every union is empty (all samples are correct no-target answers)
  cIoU is 1, by the same rule; with no samples at all both metrics are NaN.

Everything works on integer pixel counts, so scoring stays exact and cheap: the
masks are reduced to (intersection, union) once, with numpy's popcount-speed
``count_nonzero``, and the metrics are sums and means over those counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _counts(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None) -> tuple[int, int, int]:
    """(|P & G|, |P|, |G|) over the pixels that are not ignored."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}"
        )
    pred = pred.astype(bool, copy=False)
    gt = gt.astype(bool, copy=False)
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != gt.shape:
            raise ValueError(
                f"ignore mask shape {ignore.shape} differs from ground truth shape {gt.shape}"
            )
        if ignore.any():
            keep = ~ignore
            pred = pred & keep
            gt = gt & keep
    # |P | G| = |P| + |G| - |P & G|: popcounts only, no union mask is ever built.
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred)), int(np.count_nonzero(gt))


def intersection_union(
    pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[int, int]:
    """Pixel counts |P & G| and |P | G| for one pair of masks of the same shape.

    ``ignore`` (bool, same shape) marks pixels left out of both counts, e.g. label 255.
    Non-bool masks are read as "non-zero = foreground".
    """
    inter, n_pred, n_gt = _counts(pred, gt, ignore)
    return inter, n_pred + n_gt - inter


def score_pair(
    pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[int, int, bool]:
    """(intersection, union, ground truth empty) of one sample, ignored pixels left out."""
    inter, n_pred, n_gt = _counts(pred, gt, ignore)
    return inter, n_pred + n_gt - inter, n_gt == 0


def iou_from_counts(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Per-sample IoU from count arrays, with the no-target rule (U = 0 -> 1)."""
    intersection = np.asarray(intersection, dtype=np.float64)
    union = np.asarray(union, dtype=np.float64)
    out = np.ones_like(union)
    nz = union > 0
    out[nz] = intersection[nz] / union[nz]
    return out


def giou_ciou(intersection: np.ndarray, union: np.ndarray) -> tuple[float, float]:
    """(gIoU, cIoU) from per-sample counts; NaN for an empty set of samples."""
    intersection = np.asarray(intersection, dtype=np.int64)
    union = np.asarray(union, dtype=np.int64)
    if union.size == 0:
        return math.nan, math.nan
    giou = float(iou_from_counts(intersection, union).mean())
    total_union = int(union.sum())
    ciou = 1.0 if total_union == 0 else float(intersection.sum()) / total_union
    return giou, ciou


class IoUAccumulator:
    """Collects per-sample counts during evaluation or training validation.

    >>> acc = IoUAccumulator(["background", "person", "cable"])
    >>> acc.add(pred_mask, gt_mask, class_id=2)
    >>> acc.summary()["giou"]
    """

    def __init__(self, class_names: Sequence[str] | None = None) -> None:
        self.class_names = list(class_names) if class_names is not None else None
        self._inter: list[int] = []
        self._union: list[int] = []
        self._gt_empty: list[bool] = []
        self._class: list[int] = []

    def __len__(self) -> int:
        return len(self._inter)

    def add(
        self, pred: np.ndarray, gt: np.ndarray, class_id: int, ignore: np.ndarray | None = None
    ) -> float:
        """Score one sample; returns its IoU."""
        inter, union, gt_empty = score_pair(pred, gt, ignore)
        self.add_counts(inter, union, class_id, gt_empty)
        return 1.0 if union == 0 else inter / union

    def add_counts(self, intersection: int, union: int, class_id: int, gt_empty: bool) -> None:
        if intersection < 0 or union < intersection:
            raise ValueError(f"invalid counts: intersection={intersection}, union={union}")
        self._inter.append(int(intersection))
        self._union.append(int(union))
        self._gt_empty.append(bool(gt_empty))
        self._class.append(int(class_id))

    def ious(self) -> np.ndarray:
        """Per-sample IoUs in the order the samples were added."""
        return iou_from_counts(self._inter, self._union)

    def _class_name(self, class_id: int) -> str:
        if self.class_names is not None and 0 <= class_id < len(self.class_names):
            return self.class_names[class_id]
        return str(class_id)

    def summary(self) -> dict:
        """``giou``, ``ciou``, ``n_samples``, no-target counts and ``per_class``
        (name -> ``iou`` (class cIoU), ``giou``, ``n``). NaN when undefined."""
        inter = np.asarray(self._inter, dtype=np.int64)
        union = np.asarray(self._union, dtype=np.int64)
        classes = np.asarray(self._class, dtype=np.int64)
        gt_empty = np.asarray(self._gt_empty, dtype=bool)
        giou, ciou = giou_ciou(inter, union)
        per_class: dict[str, dict] = {}
        for cid in sorted(set(self._class)):
            sel = classes == cid
            c_giou, c_ciou = giou_ciou(inter[sel], union[sel])
            per_class[self._class_name(cid)] = {
                "class_id": cid,
                "iou": c_ciou,
                "giou": c_giou,
                "n": int(sel.sum()),
            }
        n_no_target = int(gt_empty.sum())
        # A no-target sample is answered right exactly when the prediction is empty (U = 0).
        no_target_correct = int(np.count_nonzero(gt_empty & (union == 0)))
        return {
            "giou": giou,
            "ciou": ciou,
            "n_samples": int(inter.size),
            "n_no_target": n_no_target,
            "no_target_accuracy": (no_target_correct / n_no_target) if n_no_target else math.nan,
            "per_class": per_class,
        }
