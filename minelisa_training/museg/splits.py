"""Train/val splits of the images: the official files, capture groups or held-out mines.

Frames of one capture group are near duplicates, so every split made here keeps a
group on one side.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .layout import GROUP_FIELDS, ImageRecord, Layout, capture_group, find_root, mine_key, scan

logger = logging.getLogger("minelisa.museg")

SPLIT_NAMES = ("train", "val")
SCHEMES = ("official", "groups", "mines")


def _id_from_split_line(line: str) -> str | None:
    # Split files may list bare ids or paths ("01-Mine/Image/<id>.jpg", "<id>_label.png"),
    # possibly followed by more columns (e.g. the label path): the first column names the image.
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    name = re.split(r"[\\/]", re.split(r"[\s,;]+", line)[0])[-1]
    name = re.sub(r"\.(jpe?g|png|json|txt)$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"_(label|color|polygons)$", "", name)
    return name or None


def _parse_split_text(text: str) -> list[str]:
    ids = (_id_from_split_line(ln) for ln in text.splitlines())
    return list(dict.fromkeys(i for i in ids if i))  # de-duplicated, order kept


def split_source(root: Path) -> Path | None:
    """Where the official split lives: the extracted train.txt/val.txt or the zip."""
    exp = Layout(Path(root)).experiment_dir
    if not exp.is_dir():
        return None
    txt = sorted(exp.rglob("train.txt"))
    if txt and (txt[0].parent / "val.txt").is_file():
        return txt[0].parent
    zips = sorted(exp.glob("*.zip"))
    return zips[0] if zips else None


def _read_split_zip(src: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    try:
        with zipfile.ZipFile(src) as zf:
            members = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
            for name in SPLIT_NAMES:
                if f"{name}.txt" not in members:
                    raise DataError(f"{src} has no {name}.txt (members: {sorted(members)})")
                text = zf.read(members[f"{name}.txt"]).decode("utf-8", errors="replace")
                out[name] = _parse_split_text(text)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{src} is not a readable zip file: {exc}") from exc
    return out


def read_official_split(root: str | Path) -> dict[str, list[str]]:
    """``{"train": ids, "val": ids}`` from Experiment/ (zip or extracted text files)."""
    root = find_root(root)
    src = split_source(root)
    if src is None:
        raise DataError(
            f"no official split under {Layout(root).experiment_dir} (DatasetSplit.zip or "
            "train.txt/val.txt); use the capture-group split (--split-scheme groups) instead"
        )
    if not src.is_dir():
        return _read_split_zip(src)
    return {
        name: _parse_split_text((src / f"{name}.txt").read_text(encoding="utf-8", errors="replace"))
        for name in SPLIT_NAMES
    }


def group_split(
    records: Sequence[ImageRecord],
    val_fraction: float = 0.2,
    seed: int = 0,
    group_fields: int = GROUP_FIELDS,
) -> dict[str, list[ImageRecord]]:
    """Capture-group-disjoint split with about ``val_fraction`` of the images in val.

    Groups are visited in a seeded random order and each is put in val when that
    brings the val count closer to the target (the paper's 2,247 / 571 split is
    ``val_fraction=571/2818``).
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if group_fields < 1:
        raise DataError(f"group_fields must be >= 1, got {group_fields}")
    key = {r.image_id: capture_group(r.image_id, group_fields) for r in records}
    by_group: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_group[key[r.image_id]].append(r)
    groups = sorted(by_group)
    order = np.random.default_rng(seed).permutation(len(groups))
    target = val_fraction * len(records)
    val_groups: set[str] = set()
    n_val = 0
    for gi in order:
        g = groups[gi]
        size = len(by_group[g])
        if abs(n_val + size - target) < abs(n_val - target):
            val_groups.add(g)
            n_val += size
    return {
        "train": [r for r in records if key[r.image_id] not in val_groups],
        "val": [r for r in records if key[r.image_id] in val_groups],
    }


def mine_split(
    records: Sequence[ImageRecord], val_mines: Iterable[str]
) -> dict[str, list[ImageRecord]]:
    """Held-out-mine split: val = the images of ``val_mines`` ("03" or "3"), train = the rest."""
    val = {mine_key(m) for m in val_mines}
    if not val:
        raise DataError("a held-out-mine split needs at least one validation mine")
    present = {r.mine for r in records}
    missing = sorted(val - present)
    if missing:
        raise DataError(
            f"validation mine(s) {missing} have no images (mines present: {sorted(present)})"
        )
    if present <= val:
        raise DataError("every mine is held out: nothing left to train on")
    return {
        "train": [r for r in records if r.mine not in val],
        "val": [r for r in records if r.mine in val],
    }


@dataclass(frozen=True)
class SplitSpec:
    """How to split: ``official`` (Experiment/ files), ``groups`` (capture-group
    disjoint, ``val_fraction`` + ``seed``) or ``mines`` (held-out ``val_mines``)."""

    scheme: str = "official"
    val_fraction: float = 0.2
    seed: int = 0
    val_mines: tuple[str, ...] = ()
    group_fields: int = GROUP_FIELDS  # leading id fields that name a capture group

    def describe(self) -> str:
        if self.scheme == "groups":
            return (
                f"groups(val_fraction={self.val_fraction}, seed={self.seed}, "
                f"group_fields={self.group_fields})"
            )
        if self.scheme == "mines":
            return f"mines(val={','.join(self.val_mines)})"
        return self.scheme


def _official_records(root: str | Path, records: dict[str, ImageRecord]) -> dict:
    out = {}
    for name, ids in read_official_split(root).items():
        missing = [i for i in ids if i not in records]
        if missing:
            logger.warning(
                "%d id(s) in the official %s split have no image and are skipped (first: %s)",
                len(missing),
                name,
                missing[0],
            )
        out[name] = [records[i] for i in ids if i in records]
    return out


def make_splits(root: str | Path, spec: SplitSpec = SplitSpec()) -> dict[str, list[ImageRecord]]:
    """``{"train": records, "val": records}`` under ``spec``. Ids listed in the
    official files without an image are skipped with one warning."""
    records = scan(root)
    if spec.scheme == "official":
        return _official_records(root, records)
    if spec.scheme == "groups":
        return group_split(list(records.values()), spec.val_fraction, spec.seed, spec.group_fields)
    if spec.scheme == "mines":
        return mine_split(list(records.values()), spec.val_mines)
    raise DataError(f"unknown split scheme {spec.scheme!r} ({', '.join(SCHEMES)})")


def read_split(
    root: str | Path, split: str = "val", spec: SplitSpec = SplitSpec()
) -> list[ImageRecord]:
    """The records of one split: ``train``, ``val`` or ``all``."""
    if split == "all":
        return list(scan(root).values())
    if split not in SPLIT_NAMES:
        raise DataError(f"unknown split {split!r} (train, val, all)")
    return make_splits(root, spec)[split]
