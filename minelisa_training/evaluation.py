"""Evaluation on MUSeg-layout data: run an engine, or score masks from any system.

Both paths share one scoring loop, so ``minelisa eval`` and ``minelisa score`` give
identical numbers for identical masks:

- ``evaluate(engine, samples, ...)`` encodes each image once and answers all of that
  image's instructions (``engine.segment_batch``; every instruction is
  decoded on its own, so this equals batch-1 inference) and writes each predicted
  mask as ``<masks_dir>/<image id>__<class id>.png`` (0/255).
- ``score_masks(pred_dir, samples, ...)`` reads masks with those names. A missing
  file counts as an empty mask and is listed in the report.

The report is a JSON-ready dict with ``giou``, ``ciou``, ``n_samples``, ``per_class``
(name -> ``iou``, ``giou``, ``n``), skipped files, timing and one row per sample.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from . import museg, runtime
from .depth import DepthErrorAccumulator, Intrinsics, load_aligned_depth
from .errors import DataError
from .fileio import atomic_write
from .metrics import IoUAccumulator, score_pair
from .visualization import overlay_mask


def mask_path(directory: str | Path, sample: museg.Sample) -> Path:
    return Path(directory) / f"{sample.key}.png"


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """A bool mask as a 0/255 one-channel PNG."""
    ok, buf = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
    if not ok:
        raise OSError(f"could not encode {path}")
    Path(path).write_bytes(buf.tobytes())


def read_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A predicted mask: 0/255 PNG (0/1 files are accepted too), foreground > 127
    (> 0 when the file's maximum is 1). Raises ``SampleLoadError`` if unreadable or
    of the wrong size."""
    path = Path(path)
    arr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        raise museg.SampleLoadError(path, "unreadable mask")
    if arr.shape != tuple(shape):
        raise museg.SampleLoadError(
            path,
            f"mask size {arr.shape[1]}x{arr.shape[0]} differs from the image's {shape[1]}x{shape[0]}",
        )
    return arr > (0 if arr.max(initial=0) == 1 else 127)


def group_by_image(
    samples: Sequence[museg.Sample],
) -> list[tuple[museg.ImageRecord, list[museg.Sample]]]:
    """Runs of consecutive samples of the same image (``expand_samples`` keeps them together)."""
    return [(rec, list(run)) for rec, run in itertools.groupby(samples, key=lambda s: s.record)]


class _Scorer:
    """Per-sample scoring shared by ``evaluate`` and ``score_masks``."""

    def __init__(self, class_map: museg.ClassMap) -> None:
        self.class_map = class_map
        self.acc = IoUAccumulator(class_map.names)
        self.rows: list[dict] = []

    def add(self, sample: museg.Sample, pred: np.ndarray, label: np.ndarray) -> float:
        gt, ignore = museg.target_masks(label, sample.class_id, self.class_map)
        inter, union, gt_empty = score_pair(pred, gt, ignore)
        self.acc.add_counts(inter, union, sample.class_id, gt_empty)
        iou = 1.0 if union == 0 else inter / union
        self.rows.append(
            {
                "empty_target": bool(gt_empty),
                "key": sample.key,
                "image_id": sample.image_id,
                "class_id": sample.class_id,
                "class_name": sample.class_name,
                "instruction": sample.instruction,
                "negative": sample.negative,
                "iou": iou,
                "intersection": inter,
                "union": union,
            }
        )
        return iou

    def add_row(self, row: dict) -> None:
        """Add a row another scorer made (merging ranks)."""
        self.acc.add_counts(row["intersection"], row["union"], row["class_id"], row["empty_target"])
        self.rows.append(row)

    def report(self, **extra) -> dict:
        out = self.acc.summary()
        out.update(extra)
        out["samples"] = self.rows
        return out


def evaluate(
    engine,
    samples: Sequence[museg.Sample],
    class_map: museg.ClassMap = museg.ORDER_A,
    *,
    masks_dir: str | Path | None = None,
    overlays_dir: str | Path | None = None,
    progress: bool = True,
    skipped: museg.SkipLog | None = None,
    depth: bool = False,
    intrinsics: Intrinsics | None = None,
) -> dict | None:
    """Run ``engine`` (a ``SegmentationEngine``) over ``samples`` and score them.

    Images that cannot be read are skipped and listed under ``skipped``. Under a
    launcher with several processes (``runtime.world_size() > 1`` and a process group),
    each rank takes every N-th image and rank 0 merges the per-sample counts in the
    samples' order, so the report equals one process's; other ranks return None.
    With ``depth``, per-class errors of the masks' median depth under "depth" (``_add_depth``).
    """
    from tqdm import tqdm

    for d in (masks_dir, overlays_dir):
        if d is not None:
            Path(d).mkdir(parents=True, exist_ok=True)
    groups = list(enumerate(group_by_image(samples)))
    mine = groups[runtime.rank() :: runtime.world_size()]
    shard = _Shard(class_map, depth, intrinsics)
    start = time.perf_counter()
    show = progress and runtime.is_main_process()
    bar = tqdm(
        total=sum(len(g) for _, (_, g) in mine), desc="evaluating", unit="sample", disable=not show
    )
    for index, (record, group) in mine:
        shard.run_image(engine, index, record, group, masks_dir, overlays_dir)
        bar.update(len(group))
        bar.set_postfix(
            giou=f"{np.mean(shard.scorer.acc.ious()):.3f}" if len(shard.scorer.acc) else "-"
        )
    bar.close()
    shards = runtime.gather_to_main(shard.payload())
    if shards is None:
        return None
    scorer, engine_ms, n_images, skip_log = _merge(shards, class_map, skipped)
    total = time.perf_counter() - start
    n = len(scorer.acc)
    timing = {
        "total_s": total,
        "n_images": n_images,
        "processes": len(shards),
        "per_image_ms": 1000.0 * total / n_images if n_images else math.nan,
        "per_sample_ms": 1000.0 * total / n if n else math.nan,
        "engine_ms_per_image": {k: v / n_images for k, v in engine_ms.items()} if n_images else {},
    }
    report = scorer.report(
        timing=timing,
        skipped=skip_log.as_dict(),
        masks_dir=str(masks_dir) if masks_dir is not None else None,
    )
    return _add_depth(report, shard.depth, shards)


def _add_depth(report: dict, depth: DepthErrorAccumulator | None, shards: list[dict]) -> dict:
    """``report`` with, when asked for, the depth errors of every rank under ``"depth"``: per
    class, each predicted mask's median depth against its ground truth's on
    ``Depth/<id>.png`` (``depth.DepthErrorAccumulator``; centroid errors with intrinsics)."""
    if depth is not None:
        report["depth"] = depth.merged([s["depth"] for s in shards]).summary()
    return report


class _Shard:
    """What one process scores: per-sample rows keyed by image order, timings, skips."""

    def __init__(
        self, class_map: museg.ClassMap, depth: bool = False, intrinsics: Intrinsics | None = None
    ) -> None:
        self.class_map = class_map
        # Depth errors (issue 14), when asked for.
        self.depth = (
            DepthErrorAccumulator(intrinsics, class_names=class_map.names) if depth else None
        )
        self.scorer = _Scorer(class_map)
        self.order: list[int] = []  # image index of each row
        self.engine_ms: dict[str, float] = {}
        self.n_images = 0
        self.skipped = museg.SkipLog()

    def run_image(self, engine, index, record, group, masks_dir, overlays_dir) -> None:
        try:
            image, label = museg.load_image_and_label(record)
        except museg.SampleLoadError as exc:
            self.skipped.add_error(exc)
            return
        results = engine.segment_batch(image, [s.instruction for s in group], timed=True)
        depth_image = None
        if self.depth is not None:  # None, and listed in skipped, when unreadable
            depth_image = load_aligned_depth(record, label.shape, self.skipped)
        self.n_images += 1
        # The engine times each call once; every result of one call carries the same dict.
        for k, v in results[0].timings.items():
            self.engine_ms[k] = self.engine_ms.get(k, 0.0) + float(v)
        for sample, result in zip(group, results):
            pred = np.asarray(result.mask, dtype=bool)
            if pred.shape != label.shape:
                raise RuntimeError(
                    f"engine returned a {pred.shape} mask for a {label.shape} image ({sample.key})"
                )
            iou = self.scorer.add(sample, pred, label)
            self.order.append(index)
            if depth_image is not None:
                gt, _ = museg.target_masks(label, sample.class_id, self.class_map)
                self.depth.add(pred, gt, depth_image, sample.class_name)
            if masks_dir is not None:
                write_mask(mask_path(masks_dir, sample), pred)
            if overlays_dir is not None:
                gt, _ = museg.target_masks(label, sample.class_id, self.class_map)
                caption = f"{sample.instruction}  IoU {iou:.2f}"
                path = str(Path(overlays_dir) / f"{sample.key}.jpg")
                cv2.imwrite(path, overlay(image, gt, pred, caption)[..., ::-1])

    def payload(self) -> dict:
        """Plain data to send to rank 0."""
        return {
            "rows": list(zip(self.order, self.scorer.rows)),
            "engine_ms": self.engine_ms,
            "n_images": self.n_images,
            "skipped": self.skipped.entries,
            "depth": self.depth.payload() if self.depth is not None else None,
        }


def _merge(shards: list[dict], class_map: museg.ClassMap, skipped: museg.SkipLog | None):
    """One scorer with every rank's rows in the samples' order, summed timings, all skips."""
    scorer = _Scorer(class_map)
    rows = sorted((r for s in shards for r in s["rows"]), key=lambda item: item[0])
    for _, row in rows:  # sorted() is stable: rows of one image keep their order
        scorer.add_row(row)
    engine_ms: dict[str, float] = {}
    for s in shards:
        for k, v in s["engine_ms"].items():
            engine_ms[k] = engine_ms.get(k, 0.0) + v
    skip_log = skipped if skipped is not None else museg.SkipLog()
    for s in shards:
        skip_log.extend(s["skipped"])
    return scorer, engine_ms, sum(s["n_images"] for s in shards), skip_log


def score_masks(
    pred_dir: str | Path,
    samples: Sequence[museg.Sample],
    class_map: museg.ClassMap = museg.ORDER_A,
    *,
    progress: bool = True,
    skipped: museg.SkipLog | None = None,
) -> dict:
    """Score ``<pred_dir>/<image id>__<class id>.png`` masks against the label maps.

    A missing or unreadable mask counts as an empty prediction and is listed under
    ``missing_predictions`` / ``unreadable_predictions``. Images whose label map
    cannot be read are skipped (listed under ``skipped``).
    """
    from tqdm import tqdm

    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"prediction folder {pred_dir} does not exist")
    skipped = skipped if skipped is not None else museg.SkipLog()
    scorer = _Scorer(class_map)
    missing: list[str] = []
    unreadable = museg.SkipLog()
    start = time.perf_counter()
    bar = tqdm(total=len(samples), desc="scoring", unit="mask", disable=not progress)
    for record, group in group_by_image(samples):
        try:
            label = museg.load_label(record.label_path)
        except museg.SampleLoadError as exc:
            skipped.add_error(exc)
            bar.update(len(group))
            continue
        for sample in group:
            path = mask_path(pred_dir, sample)
            pred = np.zeros(label.shape, dtype=bool)
            if not path.is_file():
                missing.append(sample.key)
            else:
                try:
                    pred = read_mask(path, label.shape)
                except museg.SampleLoadError as exc:
                    unreadable.add_error(exc)
            scorer.add(sample, pred, label)
        bar.update(len(group))
    bar.close()
    return scorer.report(
        timing={"total_s": time.perf_counter() - start},
        skipped=skipped.as_dict(),
        missing_predictions={"count": len(missing), "keys": missing},
        unreadable_predictions=unreadable.as_dict(),
        pred_dir=str(pred_dir),
    )


def overlay(image: np.ndarray, gt: np.ndarray, pred: np.ndarray, caption: str) -> np.ndarray:
    """RGB picture: prediction tinted red, ground-truth outline green, caption on top."""
    out = overlay_mask(image, pred, color=(255, 40, 40))
    contours, _ = cv2.findContours(gt.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (40, 255, 40), max(1, image.shape[0] // 300))
    scale = max(image.shape[0] / 900, 0.35)
    thickness = max(1, int(2 * scale))
    for colour, extra in (
        ((0, 0, 0), 2),
        ((255, 255, 255), 0),
    ):  # dark rim keeps it readable on any image
        cv2.putText(
            out,
            caption,
            (8, int(24 * scale) + 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.7 * scale,
            colour,
            thickness + extra,
            cv2.LINE_AA,
        )
    return out


def _finite(value):
    """NaN -> None so that the report is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_report(report: dict, path: str | Path) -> None:
    """Write the report JSON atomically (a failed write leaves the old report)."""
    atomic_write(path, json.dumps(_finite(report), indent=2) + "\n")


def format_table(report: dict) -> str:
    """Per-class table plus the totals, for the terminal."""

    def fmt(v: float | None) -> str:
        return "   -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:6.3f}"

    lines = [f"{'class':24s} {'n':>6s} {'gIoU':>6s} {'cIoU':>6s}", "-" * 45]
    for name, row in report["per_class"].items():
        lines.append(f"{name:24s} {row['n']:6d} {fmt(row['giou'])} {fmt(row['iou'])}")
    lines.append("-" * 45)
    lines.append(
        f"{'all':24s} {report['n_samples']:6d} {fmt(report['giou'])} {fmt(report['ciou'])}"
    )
    if report.get("n_no_target"):
        lines.append(
            f"no-target samples: {report['n_no_target']}, answered empty: {fmt(report['no_target_accuracy'])}"
        )
    skipped = report.get("skipped", {}).get("count", 0)
    if skipped:
        lines.append(f"skipped files: {skipped} (see the report's 'skipped')")
    missing = report.get("missing_predictions", {}).get("count", 0)
    if missing:
        lines.append(f"missing predictions (scored as empty): {missing}")
    return "\n".join(lines)
