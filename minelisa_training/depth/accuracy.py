"""Offline depth accuracy: how far the distance read off a predicted mask is from the
distance read off the ground-truth mask, per class (``minelisa eval --depth``).

A segmentation can have a mediocre IoU and still give the right distance (a mask
that misses the person's arm), or a fair IoU and a wrong one (a mask that spills onto
the wall behind). This measures the second number directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .intrinsics import Intrinsics
from .stats import DepthStats, mask_depth_stats

if TYPE_CHECKING:
    from ..museg import ImageRecord
    from ..skips import SkipLog

# Distances do not depend on the intrinsics; without a calibration only the
# centroids are unknown, and these stand-in numbers are never reported.
_STAND_IN = Intrinsics(1.0, 1.0, 0.0, 0.0)


@dataclass
class _ClassErrors:
    errors: list[float] = field(default_factory=list)  # pred median - gt median, metres
    centroid_errors: list[float] = field(default_factory=list)  # |pred - gt| centroid
    gt_without_depth: int = 0
    pred_without_depth: int = 0

    def summary(self) -> dict:
        # Sorted before summing: the same errors give the same bits in any order, so
        # merging the ranks of a distributed evaluation matches one process exactly.
        signed = np.sort(np.asarray(self.errors, dtype=np.float64))
        err = np.sort(np.abs(signed))
        cen = np.sort(np.asarray(self.centroid_errors, dtype=np.float64))
        return {
            "n": len(self.errors),
            "mean_abs_error_m": float(err.mean()) if err.size else math.nan,
            "median_abs_error_m": float(np.median(err)) if err.size else math.nan,
            "mean_error_m": float(signed.mean()) if signed.size else math.nan,
            "mean_centroid_error_m": float(cen.mean()) if cen.size else math.nan,
            "median_centroid_error_m": float(np.median(cen)) if cen.size else math.nan,
            "gt_without_depth": self.gt_without_depth,
            "pred_without_depth": self.pred_without_depth,
        }


class DepthErrorAccumulator:
    """Per class: the error of the predicted mask's median depth against the
    ground-truth mask's median depth (both from ``mask_depth_stats`` with the same
    ``erode_px``, on the same depth image).

    With ``intrinsics`` it also scores the 3D centroid (Euclidean distance between
    the two centroids). A sample whose ground truth is empty (a negative sample) or
    has no valid depth is counted as ``gt_without_depth`` and not scored; one whose
    prediction is empty or has no valid depth while the ground truth has depth is a
    miss, counted as ``pred_without_depth`` and not in the errors.
    """

    def __init__(
        self,
        intrinsics: Intrinsics | None = None,
        erode_px: int = 3,
        class_names: Sequence[str] = (),
    ) -> None:
        self.intrinsics = intrinsics
        self.erode_px = erode_px
        self.class_names = list(class_names)  # the summary's order (then first seen)
        self._classes: dict[str, _ClassErrors] = {}
        self._all = _ClassErrors()

    def add(
        self, pred_mask: np.ndarray, gt_mask: np.ndarray, depth: np.ndarray, class_name: str = ""
    ) -> float | None:
        """Score one sample; returns the signed median-depth error in metres
        (positive: the prediction reads farther), or None when it is not scored."""
        per_class = self._classes.setdefault(class_name, _ClassErrors())
        gt = self._stats(gt_mask, depth)
        if not gt.has_depth:
            per_class.gt_without_depth += 1
            self._all.gt_without_depth += 1
            return None
        pred = self._stats(pred_mask, depth)
        if not pred.has_depth:
            per_class.pred_without_depth += 1
            self._all.pred_without_depth += 1
            return None
        error = pred.distance_m - gt.distance_m
        for bucket in (per_class, self._all):
            bucket.errors.append(error)
            if self.intrinsics is not None:
                bucket.centroid_errors.append(math.dist(pred.centroid, gt.centroid))
        return error

    def _stats(self, mask: np.ndarray, depth: np.ndarray) -> DepthStats:
        return mask_depth_stats(mask, depth, self.intrinsics or _STAND_IN, self.erode_px)

    def __len__(self) -> int:
        return len(self._all.errors)

    def payload(self) -> dict:
        """Everything added so far as plain data, for ``merge`` in another process."""
        return {name: asdict(c) for name, c in self._classes.items()}

    def merge(self, payload: dict) -> None:
        """Add another accumulator's ``payload`` (same settings) to this one."""
        for name, data in payload.items():
            theirs = _ClassErrors(**data)
            for bucket in (self._classes.setdefault(name, _ClassErrors()), self._all):
                bucket.errors.extend(theirs.errors)
                bucket.centroid_errors.extend(theirs.centroid_errors)
                bucket.gt_without_depth += theirs.gt_without_depth
                bucket.pred_without_depth += theirs.pred_without_depth

    def merged(self, payloads: Sequence[dict]) -> DepthErrorAccumulator:
        """A new accumulator with these settings holding ``payloads`` (every rank's)."""
        out = DepthErrorAccumulator(self.intrinsics, self.erode_px, self.class_names)
        for payload in payloads:
            out.merge(payload)
        return out

    def summary(self) -> dict:
        """``{"per_class": {name: row}, "all": row, "erode_px", "intrinsics"}``; a row has
        ``n``, ``mean_abs_error_m``, ``median_abs_error_m``, ``mean_error_m`` (signed),
        ``mean_centroid_error_m``, ``median_centroid_error_m`` (NaN without intrinsics),
        ``gt_without_depth`` and ``pred_without_depth``."""
        order = [n for n in self.class_names if n in self._classes]
        order += [n for n in self._classes if n not in order]
        return {
            "per_class": {name: self._classes[name].summary() for name in order},
            "all": self._all.summary(),
            "erode_px": self.erode_px,
            "intrinsics": self.intrinsics.as_dict() if self.intrinsics is not None else None,
        }


def load_aligned_depth(
    record: ImageRecord, shape: tuple[int, ...], skipped: SkipLog
) -> np.ndarray | None:
    """The image's ``Depth/<id>.png`` if it is readable and of the image's size ``shape``;
    otherwise None, with the file recorded in ``skipped``."""
    from .. import museg

    try:
        depth = museg.load_depth(record.depth_path)
    except museg.SampleLoadError as exc:
        skipped.add_error(exc)
        return None
    if depth.shape != tuple(shape[:2]):
        skipped.add(
            record.depth_path,
            f"depth size {depth.shape[1]}x{depth.shape[0]} differs from the image's "
            f"{shape[1]}x{shape[0]}",
        )
        return None
    return depth


def format_depth_table(summary: dict) -> str:
    """Per-class depth errors for the terminal."""

    def fmt(v: float | None) -> str:
        return "    -  " if v is None or math.isnan(v) else f"{v:7.3f}"

    head = f"{'class':24s} {'n':>5s} {'|err| m':>7s} {'median':>7s} {'bias m':>7s} {'centr.':>7s}"
    lines = [head, "-" * len(head)]
    rows = [*summary["per_class"].items(), ("all", summary["all"])]
    for k, (name, r) in enumerate(rows):
        if k == len(rows) - 1:
            lines.append("-" * len(head))
        lines.append(
            f"{name:24s} {r['n']:5d} {fmt(r['mean_abs_error_m'])} {fmt(r['median_abs_error_m'])} "
            f"{fmt(r['mean_error_m'])} {fmt(r['mean_centroid_error_m'])}"
        )
    total = summary["all"]
    lines.append(
        f"not scored: ground truth without depth {total['gt_without_depth']}, "
        f"prediction without depth {total['pred_without_depth']}"
    )
    return "\n".join(lines)
