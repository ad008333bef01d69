"""`minelisa museg check`: verify a MUSeg folder file by file before training on it.

(The module is ``checker`` so that ``museg.check`` stays the function.)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, SampleLoadError
from .classes import IGNORE_VALUE, ORDER_A, ClassMap
from .labelme import derive_class_map, match_order, order_verdict, read_polygons, shape_label_votes
from .layout import DEPTH_DIR, MINE_SUBDIRS, ImageRecord, Layout, capture_group, label_id
from .readers import load_depth, load_label, open_image
from .splits import read_official_split, split_source


@dataclass
class CheckReport:
    """Result of ``check``: ``usable`` is False when training/evaluation cannot run."""

    root: str
    class_map: str
    mines: dict[str, int] = field(default_factory=dict)
    split_source: str | None = None
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    n_images: int = 0
    n_usable: int = 0
    n_all_background: int = 0
    pixel_share: dict[str, float] = field(default_factory=dict)
    derived_map: dict[int, str] = field(default_factory=dict)
    order: str = "unknown"
    order_detail: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.fatal

    def error(self, kind: str, path: Path | str, detail: str) -> None:
        self.errors.append({"kind": kind, "path": str(path), "detail": detail})

    def warn(self, kind: str, path: Path | str, detail: str) -> None:
        self.warnings.append({"kind": kind, "path": str(path), "detail": detail})

    def as_dict(self) -> dict:
        return {
            "root": self.root,
            "usable": self.usable,
            "fatal": self.fatal,
            "class_map": self.class_map,
            "n_images": self.n_images,
            "n_usable": self.n_usable,
            "n_all_background": self.n_all_background,
            "mines": self.mines,
            "split_source": self.split_source,
            "split_counts": self.split_counts,
            "order": self.order,
            "order_detail": self.order_detail,
            "derived_map": {str(k): v for k, v in self.derived_map.items()},
            "pixel_share": self.pixel_share,
            "errors": self.errors,
            "warnings": self.warnings,
        }

    def format(self, max_items: int = 50) -> str:
        lines = [f"MUSeg check: {self.root}", f"class map in use: {self.class_map}", ""]
        lines.append(
            f"images: {self.n_images} found, {self.n_usable} usable, "
            f"{self.n_all_background} all background"
        )
        lines.append("per mine:  " + ", ".join(f"{m}: {n}" for m, n in self.mines.items()))
        lines.extend(self._split_lines())
        if self.pixel_share:
            top = sorted(self.pixel_share.items(), key=lambda kv: -kv[1])
            lines.append("pixel share: " + ", ".join(f"{k} {v:.2%}" for k, v in top))
        lines.append("")
        lines.append(f"class order from the polygon files: {self.order}")
        for value, name in self.derived_map.items():
            lines.append(f"  {value:3d} -> {name}")
        lines.extend(f"  {d}" for d in self.order_detail)
        for title, items in (("errors", self.errors), ("warnings", self.warnings)):
            lines.extend(_item_lines(title, items, max_items))
        lines.append("")
        if self.usable:
            skipped = " (files with errors will be skipped)" if self.errors else ""
            lines.append("verdict: USABLE" + skipped)
        else:
            lines.append("verdict: UNUSABLE")
            lines.extend(f"  - {f}" for f in self.fatal)
        return "\n".join(lines)

    def _split_lines(self) -> list[str]:
        if not self.split_counts:
            return ["official split: none (use --split-scheme groups or mines)"]
        lines = [f"official split ({self.split_source}):"]
        for split, per_mine in self.split_counts.items():
            total = sum(per_mine.values())
            counts = ", ".join(f"{m}: {n}" for m, n in per_mine.items())
            lines.append(f"  {split:5s} {total:6d}  ({counts})")
        return lines


def _item_lines(title: str, items: list[dict[str, str]], max_items: int) -> list[str]:
    lines = ["", f"{title}: {len(items)}"]
    by_kind = Counter(i["kind"] for i in items)
    if by_kind:
        lines.append("  " + ", ".join(f"{k}: {n}" for k, n in sorted(by_kind.items())))
    for item in items[:max_items]:
        lines.append(f"  [{item['kind']}] {item['path']}: {item['detail']}")
    if len(items) > max_items:
        lines.append(f"  ... {len(items) - max_items} more (see --json)")
    return lines


def check(root: str | Path, class_map: ClassMap = ORDER_A, progress: bool = True) -> CheckReport:
    """Verify a MUSeg folder file by file; see ``CheckReport``. Never raises on bad data."""
    report = CheckReport(root=str(root), class_map=class_map.source)
    try:
        layout = Layout.find(root)
    except DataError as exc:
        report.fatal.append(str(exc))
        return report
    report.root = str(layout.root)
    mines = layout.mines()
    for mine in mines:
        for sub in MINE_SUBDIRS:
            if not (layout.mine_dir(mine) / sub).is_dir():
                note = report.warn if sub == DEPTH_DIR else report.error
                note("layout", layout.mine_dir(mine) / sub, "folder is missing")
    records = layout.scan()
    report.n_images = len(records)
    report.mines = {m: sum(1 for r in records.values() if r.mine == m) for m in mines}
    for mine in mines:  # label files with no image next to them
        if layout.label_dir(mine).is_dir():
            for p in layout.label_files(mine):
                if label_id(p) not in records:
                    report.error("orphan label", p, "no image with this id")
    votes, pixels = _check_images(report, records, class_map, progress)
    if report.n_images == 0:
        report.fatal.append("no images found in any NN-Mine/Image folder")
    elif report.n_usable == 0:
        report.fatal.append("no image has a readable label map of the same size")
    _check_class_order(report, votes, pixels, class_map, layout.root)
    _check_split(report, layout.root, records)
    return report


def _check_images(
    report: CheckReport, records: dict[str, ImageRecord], class_map: ClassMap, progress: bool
) -> tuple[dict[str, Counter], np.ndarray]:
    """Check every image's files; returns the polygon votes and the label pixel counts."""
    from tqdm import tqdm

    votes: dict[str, Counter] = defaultdict(Counter)
    pixels = np.zeros(256, dtype=np.int64)
    bar = tqdm(records.values(), desc="checking images", unit="img", disable=not progress)
    for rec in bar:
        label = _checked_label(report, rec, class_map)
        if label is None:
            continue
        counts = np.bincount(label.ravel(), minlength=256)
        report.n_usable += 1
        pixels += counts
        if counts[1 : class_map.num_classes].sum() == 0:
            report.n_all_background += 1
        _check_side_files(report, rec, label.shape)
        try:
            data = read_polygons(rec.polygons_path)
        except SampleLoadError as exc:
            report.warn("polygons", rec.polygons_path, exc.reason)
            continue
        for name, counter in shape_label_votes(data["shapes"], label).items():
            votes[name].update(counter)
    return votes, pixels


def _checked_label(report: CheckReport, rec: ImageRecord, class_map: ClassMap) -> np.ndarray | None:
    """The label map of an image whose image and label files are fine, else None (reported)."""
    try:
        w, h = open_image(rec.image_path).size  # full decode: truncation shows up here
    except SampleLoadError as exc:
        report.error("unreadable image", rec.image_path, exc.reason)
        return None
    if not rec.label_path.exists():
        report.error("missing label", rec.label_path, "no label map for this image")
        return None
    try:
        label = load_label(rec.label_path)
    except SampleLoadError as exc:
        report.error("unreadable label", rec.label_path, exc.reason)
        return None
    if label.shape != (h, w):
        report.error(
            "size mismatch",
            rec.label_path,
            f"label {label.shape[1]}x{label.shape[0]} vs image {w}x{h}",
        )
        return None
    valid_max = class_map.num_classes - 1
    counts = np.bincount(label.ravel(), minlength=256)
    bad = [v for v in np.flatnonzero(counts) if valid_max < v != IGNORE_VALUE]
    if bad:
        report.error(
            "label value out of range",
            rec.label_path,
            f"values {[int(v) for v in bad]} outside 0..{valid_max} (and {IGNORE_VALUE} "
            f"= ignore); {int(counts[bad].sum())} pixels will be ignored",
        )
    return label


def _check_side_files(report: CheckReport, rec: ImageRecord, shape: tuple[int, int]) -> None:
    """Depth and colour files: problems there are warnings (RGB training needs neither)."""
    h, w = shape
    if not rec.depth_path.exists():
        report.warn("missing depth", rec.depth_path, "no depth map (RGB training does not need it)")
    else:
        try:
            depth = load_depth(rec.depth_path)
            if depth.shape != (h, w):
                report.warn(
                    "size mismatch",
                    rec.depth_path,
                    f"depth {depth.shape[1]}x{depth.shape[0]} vs image {w}x{h}",
                )
        except SampleLoadError as exc:
            report.warn("unreadable depth", rec.depth_path, exc.reason)
    if not rec.color_path.exists():
        report.warn("missing colour label", rec.color_path, "visualisation file absent")


def _check_class_order(
    report: CheckReport,
    votes: dict[str, Counter],
    pixels: np.ndarray,
    class_map: ClassMap,
    root: Path,
) -> None:
    """Derived class map, order verdict, pixel shares and a mismatch with ``class_map``."""
    report.derived_map = derive_class_map(votes)
    report.order, report.order_detail = order_verdict(report.derived_map, class_map)
    total = pixels.sum()
    if total:
        # Name values as the polygons do where they tell, so the shares stay right
        # even when the class map in use is the wrong one.
        def name(v: int) -> str:
            return report.derived_map.get(v) or class_map.names[v]

        report.pixel_share = {
            name(v): float(pixels[v] / total) for v in range(class_map.num_classes) if pixels[v]
        }
        if pixels[IGNORE_VALUE]:
            report.pixel_share["ignore (255)"] = float(pixels[IGNORE_VALUE] / total)
    if not report.derived_map:
        return
    agree, _ = match_order(report.derived_map, class_map)
    if agree < len(report.derived_map) and not report.order.startswith("neither"):
        hint = " (pass --classes B)" if report.order == "order B" else " (pass --classes A)"
        report.fatal.append(
            f"the label maps follow {report.order} but the class map in use is "
            f"{class_map.source}{hint}"
        )
    elif agree < len(report.derived_map):
        report.warn(
            "class names",
            root,
            "polygon names fit neither order A nor B; write a "
            "classes file from the derived map above and pass --classes FILE",
        )


def _check_split(report: CheckReport, root: Path, records: dict[str, ImageRecord]) -> None:
    """The official split: per-mine counts, unknown ids, overlaps, shared capture groups."""
    src = split_source(root)
    if src is None:
        report.warn(
            "split",
            Layout(root).experiment_dir,
            "no official split (DatasetSplit.zip or train.txt/val.txt)",
        )
        return
    report.split_source = str(src)
    try:
        official = read_official_split(root)
    except (OSError, ValueError) as exc:
        report.error("split", src, str(exc))
        official = {}
    seen: dict[str, str] = {}
    for split, ids in official.items():
        per_mine: Counter = Counter()
        unknown = [i for i in ids if i not in records]
        for i in ids:
            if i in records:
                per_mine[records[i].mine] += 1
            if i in seen:
                report.error("split overlap", src, f"{i} is in both {seen[i]} and {split}")
            seen[i] = split
        report.split_counts[split] = dict(sorted(per_mine.items()))
        if unknown:
            report.error(
                "split id without image", src, f"{len(unknown)} {split} id(s), e.g. {unknown[0]}"
            )
    unlisted = [i for i in records if i not in seen]
    if official and unlisted:
        report.warn("split", src, f"{len(unlisted)} image(s) in no split file, e.g. {unlisted[0]}")
    groups = {s: {capture_group(i) for i in ids} for s, ids in official.items()}
    if len(groups) == 2:
        shared = groups["train"] & groups["val"]
        if shared:
            report.warn(
                "split",
                src,
                f"{len(shared)} capture group(s) in both train and val, e.g. {sorted(shared)[0]}",
            )
