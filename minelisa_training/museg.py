"""MUSeg reader: raw layout, class maps, splits, sample expansion and `museg check`.

Raw release layout (MUSeg, Scientific Data 2025)::

    ROOT/01-Mine/Image/<id>.jpg
            /Depth/<id>.png              uint16 millimetres, 0 = invalid
            /Label/<id>_label.png        uint8 class ids (255 = ignore, if present)
            /Label/<id>_color.png        visualisation only
            /Label/<id>_polygons.json    Labelme (shapes[].label, shapes[].points)
    ROOT/02-Mine ... 06-Mine
    ROOT/Experiment/DatasetSplit.zip     train.txt / val.txt (or the extracted files)

Ids look like ``01-01-01-0014-240523104754-08-99``. The first three fields name
the mine, roadway and capture group; frames of one capture group are near
duplicates, so every split this module makes keeps a group on one side.

The paper turns each image into one sample per class present in its label map
(one instruction <-> one mask). ``expand_samples`` does that, optionally adding
"negative" samples (a class absent from the image, empty target) so that the
no-target rule is trained and measured.

A corrupt or missing file never stops a run: readers raise ``SampleLoadError``
naming the file, and the loops here log a warning and count it in a ``SkipLog``.
"""
from __future__ import annotations

import json
import logging
import re
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger("minelisa.museg")

IGNORE_VALUE = 255

# Order A: the dataset documentation (the default).
ORDER_A_NAMES = (
    "background", "person", "cable", "tube", "indicator", "metal fixture", "container",
    "tools & materials", "door", "electrical equipment", "electronic equipment",
    "mining equipment", "anchoring equipment", "support equipment", "rescue equipment",
    "rail area",
)
# Order B: the public MineLISA code. Which one a copy of the data follows is decided
# by `museg check`, which reads the class names off the polygon files.
ORDER_B_NAMES = (
    "background", "person", "cable", "tube", "indicator", "electrical equipment",
    "electronic equipment", "mining equipment", "rail area", "support equipment", "door",
    "tools and materials", "rescue equipment", "container", "metal fixture",
    "anchoring equipment",
)

# The paper's template comes first and is the evaluation protocol; the others give
# training some variety of phrasing (pass them with ``templates=``).
PAPER_TEMPLATE = "Please segment the {class_name} in this image."
INSTRUCTION_TEMPLATES = (
    PAPER_TEMPLATE,
    "Can you segment the {class_name} in this image?",
    "What is the {class_name} in this image? Please output segmentation mask.",
    "Where is the {class_name} in this picture? Please output the segmentation mask.",
    "Segment the {class_name}.",
)

MINE_DIR_RE = re.compile(r"^(\d{2})-Mine$")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLIT_NAMES = ("train", "val")


class SampleLoadError(ValueError):
    """A file of one image is missing, unreadable or inconsistent; the message names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def normalize_class_name(name: str) -> str:
    """Comparison key for class names: 'Tools_&_Materials' == 'tools and materials'."""
    name = name.strip().lower().replace("&", " and ")
    name = re.sub(r"[_\-\s]+", " ", name)
    return name.strip()


# --------------------------------------------------------------------------- class maps


@dataclass(frozen=True)
class ClassMap:
    """Label value -> class name; value 0 is background, ``IGNORE_VALUE`` is ignored."""

    names: tuple[str, ...]
    source: str = "custom"

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise ValueError("a class map needs background plus at least one class")
        if len(self.names) > IGNORE_VALUE:
            raise ValueError(f"at most {IGNORE_VALUE} classes fit a uint8 label map with {IGNORE_VALUE} = ignore")
        keys = [normalize_class_name(n) for n in self.names]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"duplicate class names in {self.source}: {dupes}")

    @property
    def num_classes(self) -> int:
        """Number of label values, background included."""
        return len(self.names)

    @property
    def foreground_ids(self) -> range:
        return range(1, len(self.names))

    def name(self, class_id: int) -> str:
        return self.names[class_id]

    def id_of(self, name: str) -> int:
        key = normalize_class_name(name)
        for i, n in enumerate(self.names):
            if normalize_class_name(n) == key:
                return i
        raise KeyError(f"class {name!r} is not in the class map ({self.source})")

    @classmethod
    def from_file(cls, path: str | Path) -> "ClassMap":
        """Read a classes file: one class per line, either ``NAME`` (line order = id,
        background first) or ``ID NAME``; blank lines and ``#`` comments are skipped."""
        path = Path(path)
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            raise ValueError(f"{path}: no class names")
        numbered = [re.match(r"^(\d+)\s*[:,\t ]\s*(.+)$", ln) for ln in lines]
        if all(numbered):
            by_id = {int(m.group(1)): m.group(2).strip() for m in numbered if m}
            if sorted(by_id) != list(range(len(by_id))) or len(by_id) != len(lines):
                raise ValueError(f"{path}: class ids must be unique and run 0..N-1, got {sorted(by_id)}")
            names = tuple(by_id[i] for i in range(len(by_id)))
        elif any(numbered):
            raise ValueError(f"{path}: mix of 'ID NAME' and 'NAME' lines; use one form")
        else:
            names = tuple(lines)
        return cls(names, source=str(path))


ORDER_A = ClassMap(ORDER_A_NAMES, source="order A (MUSeg documentation)")
ORDER_B = ClassMap(ORDER_B_NAMES, source="order B (MineLISA code)")


def load_class_map(spec: str | Path | None) -> ClassMap:
    """``None``/``"A"`` -> order A, ``"B"`` -> order B, anything else is a classes file."""
    if spec is None:
        return ORDER_A
    key = str(spec).strip().lower().replace("order", "").strip(" -_")
    if key == "a":
        return ORDER_A
    if key == "b":
        return ORDER_B
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"classes file {path} not found (use A, B or a file with one class per line)")
    return ClassMap.from_file(path)


# --------------------------------------------------------------------------- layout


GROUP_FIELDS = 3


def capture_group(image_id: str, fields: int = GROUP_FIELDS) -> str:
    """Capture-group key of an id: its first ``fields`` dash-separated fields
    (three by default: mine-roadway-group of ``01-01-01-0014-240523104754-08-99``)."""
    parts = image_id.split("-")
    return "-".join(parts[:fields]) if len(parts) >= fields else image_id


@dataclass(frozen=True)
class ImageRecord:
    """Paths of one image's files (they may not exist: the readers check)."""

    image_id: str
    mine: str
    image_path: Path
    label_dir: Path
    depth_dir: Path

    @property
    def group(self) -> str:
        return capture_group(self.image_id)

    @property
    def label_path(self) -> Path:
        return self.label_dir / f"{self.image_id}_label.png"

    @property
    def color_path(self) -> Path:
        return self.label_dir / f"{self.image_id}_color.png"

    @property
    def polygons_path(self) -> Path:
        return self.label_dir / f"{self.image_id}_polygons.json"

    @property
    def depth_path(self) -> Path:
        return self.depth_dir / f"{self.image_id}.png"


def find_root(path: str | Path) -> Path:
    """The folder holding the ``NN-Mine`` folders: ``path`` itself or ``path/MUSeg``."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"MUSeg folder {path} does not exist")
    for candidate in (path, path / "MUSeg"):
        if candidate.is_dir() and mine_dirs(candidate):
            return candidate
    raise FileNotFoundError(
        f"{path} has no NN-Mine folders (expected e.g. {path}/01-Mine/Image/<id>.jpg)"
    )


def mine_dirs(root: Path) -> dict[str, Path]:
    """Mine number ("01") -> folder, for the ``NN-Mine`` folders directly under root."""
    out = {}
    for child in sorted(root.iterdir()):
        m = MINE_DIR_RE.match(child.name)
        if m and child.is_dir():
            out[m.group(1)] = child
    return out


def scan(root: str | Path) -> dict[str, ImageRecord]:
    """All images of the dataset, by id (sorted), found from the ``Image`` folders."""
    root = find_root(root)
    records: dict[str, ImageRecord] = {}
    for mine, mdir in mine_dirs(root).items():
        image_dir = mdir / "Image"
        if not image_dir.is_dir():
            continue
        for p in sorted(image_dir.iterdir()):
            if p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
                continue
            if p.stem in records:
                logger.warning("duplicate image id %s: keeping %s, ignoring %s", p.stem, records[p.stem].image_path, p)
                continue
            records[p.stem] = ImageRecord(p.stem, mine, p, mdir / "Label", mdir / "Depth")
    return dict(sorted(records.items()))


# --------------------------------------------------------------------------- splits


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
    exp = root / "Experiment"
    if not exp.is_dir():
        return None
    txt = sorted(exp.rglob("train.txt"))
    if txt and (txt[0].parent / "val.txt").is_file():
        return txt[0].parent
    zips = sorted(exp.glob("*.zip"))
    return zips[0] if zips else None


def read_official_split(root: str | Path) -> dict[str, list[str]]:
    """``{"train": ids, "val": ids}`` from Experiment/ (zip or extracted text files)."""
    root = find_root(root)
    src = split_source(root)
    if src is None:
        raise FileNotFoundError(
            f"no official split under {root / 'Experiment'} (DatasetSplit.zip or train.txt/val.txt); "
            "use the capture-group split (--split-scheme groups) instead"
        )
    out: dict[str, list[str]] = {}
    if src.is_dir():
        for name in SPLIT_NAMES:
            out[name] = _parse_split_text((src / f"{name}.txt").read_text(encoding="utf-8", errors="replace"))
        return out
    try:
        with zipfile.ZipFile(src) as zf:
            members = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
            for name in SPLIT_NAMES:
                if f"{name}.txt" not in members:
                    raise FileNotFoundError(f"{src} has no {name}.txt (members: {sorted(members)})")
                out[name] = _parse_split_text(zf.read(members[f"{name}.txt"]).decode("utf-8", errors="replace"))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{src} is not a readable zip file: {exc}") from exc
    return out


def group_split(
    records: Sequence[ImageRecord], val_fraction: float = 0.2, seed: int = 0, group_fields: int = GROUP_FIELDS
) -> dict[str, list[ImageRecord]]:
    """Capture-group-disjoint split with about ``val_fraction`` of the images in val.

    Groups are visited in a seeded random order and each is put in val when that
    brings the val count closer to the target (the paper's 2,247 / 571 split is
    ``val_fraction=571/2818``).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if group_fields < 1:
        raise ValueError(f"group_fields must be >= 1, got {group_fields}")
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


def mine_split(records: Sequence[ImageRecord], val_mines: Iterable[str]) -> dict[str, list[ImageRecord]]:
    """Held-out-mine split: val = the images of ``val_mines`` ("03" or "3"), train = the rest."""
    val = {f"{int(m):02d}" for m in val_mines}
    if not val:
        raise ValueError("a held-out-mine split needs at least one validation mine")
    present = {r.mine for r in records}
    missing = sorted(val - present)
    if missing:
        raise ValueError(f"validation mine(s) {missing} have no images (mines present: {sorted(present)})")
    if present <= val:
        raise ValueError("every mine is held out: nothing left to train on")
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
            return f"groups(val_fraction={self.val_fraction}, seed={self.seed}, group_fields={self.group_fields})"
        if self.scheme == "mines":
            return f"mines(val={','.join(self.val_mines)})"
        return self.scheme


def make_splits(root: str | Path, spec: SplitSpec = SplitSpec()) -> dict[str, list[ImageRecord]]:
    """``{"train": records, "val": records}`` under ``spec``. Ids listed in the
    official files without an image are skipped with one warning."""
    records = scan(root)
    if spec.scheme == "official":
        official = read_official_split(root)
        out = {}
        for name, ids in official.items():
            missing = [i for i in ids if i not in records]
            if missing:
                logger.warning(
                    "%d id(s) in the official %s split have no image and are skipped (first: %s)",
                    len(missing), name, missing[0],
                )
            out[name] = [records[i] for i in ids if i in records]
        return out
    if spec.scheme == "groups":
        return group_split(list(records.values()), spec.val_fraction, spec.seed, spec.group_fields)
    if spec.scheme == "mines":
        return mine_split(list(records.values()), spec.val_mines)
    raise ValueError(f"unknown split scheme {spec.scheme!r} (official, groups, mines)")


def read_split(root: str | Path, split: str = "val", spec: SplitSpec = SplitSpec()) -> list[ImageRecord]:
    """The records of one split: ``train``, ``val`` or ``all``."""
    if split == "all":
        return list(scan(root).values())
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r} (train, val, all)")
    return make_splits(root, spec)[split]


# --------------------------------------------------------------------------- file readers


class SkipLog:
    """Files skipped during a run: each is logged once as a warning and counted."""

    def __init__(self) -> None:
        self.entries: list[dict[str, str]] = []

    def add(self, path: str | Path, reason: str) -> None:
        logger.warning("skipping %s: %s", path, reason)
        self.entries.append({"path": str(path), "reason": reason})

    def add_error(self, exc: SampleLoadError) -> None:
        self.add(exc.path, exc.reason)

    def __len__(self) -> int:
        return len(self.entries)

    def as_dict(self) -> dict:
        return {"count": len(self.entries), "files": list(self.entries)}


def _open_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise SampleLoadError(path, "file is missing")
    try:
        img = Image.open(path)
        img.load()  # decodes fully: a truncated JPEG or PNG fails here, not later
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise SampleLoadError(path, f"unreadable ({exc})") from exc
    return img


def load_image(path: str | Path) -> np.ndarray:
    """RGB uint8 [H, W, 3] (writable); raises ``SampleLoadError`` naming the file."""
    img = _open_image(Path(path))
    return np.array(img.convert("RGB"))


def load_label(path: str | Path) -> np.ndarray:
    """Label map, uint8 [H, W] of class ids. Palette PNGs give their indices (as
    Labelme writes them); colour images are refused: they are visualisations."""
    path = Path(path)
    img = _open_image(path)
    if img.mode in ("L", "P"):
        return np.array(img, dtype=np.uint8)
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        arr = np.asarray(img)
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise SampleLoadError(path, f"label values outside 0..255 ({int(arr.min())}..{int(arr.max())})")
        return arr.astype(np.uint8)
    raise SampleLoadError(path, f"mode {img.mode} is not a label map of class ids (L or P expected)")


def load_depth(path: str | Path) -> np.ndarray:
    """Depth in millimetres, uint16 [H, W], 0 = invalid."""
    path = Path(path)
    img = _open_image(path)
    arr = np.asarray(img)
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.int32, np.uint8):
        raise SampleLoadError(path, f"depth must be a one-channel 16-bit PNG (mode {img.mode})")
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
        raise SampleLoadError(path, f"depth values outside 0..65535 ({int(arr.min())}..{int(arr.max())})")
    return arr.astype(np.uint16)


def class_presence(label: np.ndarray, class_map: ClassMap) -> np.ndarray:
    """Bool [num_classes]: which label values occur (background included)."""
    counts = np.bincount(label.ravel(), minlength=256)
    return counts[: class_map.num_classes] > 0


def ignore_mask(label: np.ndarray, class_map: ClassMap) -> np.ndarray:
    """Pixels left out of scoring: value 255 and values outside the class map."""
    return label >= class_map.num_classes


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One instruction on one image with one target class (empty target when negative)."""

    record: ImageRecord
    class_id: int
    class_name: str
    instruction: str
    negative: bool = False

    @property
    def image_id(self) -> str:
        return self.record.image_id

    @property
    def key(self) -> str:
        """``<image id>__<class id>``: the file stem of this sample's mask."""
        return f"{self.record.image_id}__{self.class_id}"


def instruction_name(class_name: str) -> str:
    """The class name as written in an instruction ("tools & materials" -> "tools and materials")."""
    return re.sub(r"\s+", " ", class_name.replace("&", "and")).strip()


def _check_templates(templates: Sequence[str]) -> None:
    if not templates:
        raise ValueError("no instruction templates")
    for t in templates:
        if "{class_name}" not in t:
            raise ValueError(f"instruction template {t!r} lacks '{{class_name}}'")


def expand_samples(
    records: Sequence[ImageRecord],
    class_map: ClassMap = ORDER_A,
    *,
    templates: Sequence[str] = (PAPER_TEMPLATE,),
    negative_fraction: float = 0.0,
    seed: int = 0,
    skipped: SkipLog | None = None,
    presence: dict[str, np.ndarray] | None = None,
    progress: bool = True,
) -> list[Sample]:
    """One sample per (image, class present in its label map), as the paper does.

    - ``templates``: with one template (the default, the paper's) every sample uses
      it; with several, each sample draws one with ``seed``.
    - ``negative_fraction``: adds ``round(f * n_positive)`` samples of classes absent
      from their image (empty target), drawn with ``seed`` from all absent pairs.
    - Images whose label map cannot be read are skipped and logged in ``skipped``.
    - ``presence`` (id -> bool [num_classes]) skips reading the label maps.

    Samples of one image are contiguous, in class-id order, images in input order.
    """
    _check_templates(templates)
    if negative_fraction < 0:
        raise ValueError(f"negative_fraction must be >= 0, got {negative_fraction}")
    from tqdm import tqdm

    skipped = skipped if skipped is not None else SkipLog()
    rng = np.random.default_rng(seed)
    present_by_id: dict[str, np.ndarray] = {}
    for rec in tqdm(records, desc="reading label maps", unit="img", disable=not progress or presence is not None):
        if presence is not None and rec.image_id in presence:
            present_by_id[rec.image_id] = np.asarray(presence[rec.image_id], dtype=bool)
            continue
        try:
            present_by_id[rec.image_id] = class_presence(load_label(rec.label_path), class_map)
        except SampleLoadError as exc:
            skipped.add_error(exc)

    kept = [r for r in records if r.image_id in present_by_id]
    fg = np.asarray(class_map.foreground_ids)
    pairs: list[tuple[int, int, bool]] = []  # (record index, class id, negative)
    absent: list[tuple[int, int]] = []
    for i, rec in enumerate(kept):
        present = present_by_id[rec.image_id][fg]
        pairs.extend((i, int(c), False) for c in fg[present])
        absent.extend((i, int(c)) for c in fg[~present])
    n_neg = min(len(absent), int(round(negative_fraction * len(pairs))))
    if n_neg:
        chosen = rng.choice(len(absent), size=n_neg, replace=False)
        pairs.extend((absent[j][0], absent[j][1], True) for j in chosen)
    pairs.sort(key=lambda p: (p[0], p[1]))

    samples = []
    for i, cid, negative in pairs:
        template = templates[0] if len(templates) == 1 else templates[int(rng.integers(len(templates)))]
        name = class_map.name(cid)
        samples.append(
            Sample(kept[i], cid, name, template.format(class_name=instruction_name(name)), negative)
        )
    return samples


@dataclass
class LoadedSample:
    """What training and evaluation consume for one sample.

    ``image`` RGB uint8 [H, W, 3]; ``mask`` bool [H, W] (the target class; all False
    for a negative); ``ignore`` bool [H, W] (label 255 or out-of-range values, left
    out of losses and metrics); ``instruction``; ``class_id``.
    """

    image: np.ndarray
    mask: np.ndarray
    ignore: np.ndarray
    instruction: str
    class_id: int
    sample: Sample


def target_masks(label: np.ndarray, class_id: int, class_map: ClassMap) -> tuple[np.ndarray, np.ndarray]:
    """(target mask, ignore mask) of one class in a label map."""
    return label == class_id, ignore_mask(label, class_map)


def load_image_and_label(record: ImageRecord) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3], label uint8 [H, W]) of one image, sizes checked."""
    image = load_image(record.image_path)
    label = load_label(record.label_path)
    if label.shape != image.shape[:2]:
        raise SampleLoadError(
            record.label_path,
            f"label size {label.shape[1]}x{label.shape[0]} differs from image size {image.shape[1]}x{image.shape[0]}",
        )
    return image, label


def load_sample(sample: Sample, class_map: ClassMap = ORDER_A) -> LoadedSample:
    """Read the image and label map of ``sample``; ``SampleLoadError`` names a bad file.

    Typical training loop::

        for s in samples:
            try:
                item = load_sample(s, class_map)
            except SampleLoadError as exc:
                skipped.add_error(exc)
                continue
    """
    image, label = load_image_and_label(sample.record)
    mask, ignore = target_masks(label, sample.class_id, class_map)
    return LoadedSample(image, mask, ignore, sample.instruction, sample.class_id, sample)


# --------------------------------------------------------------------------- polygons


def read_polygons(path: str | Path) -> dict:
    """A Labelme JSON file; ``SampleLoadError`` when missing or not Labelme."""
    path = Path(path)
    if not path.is_file():
        raise SampleLoadError(path, "file is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SampleLoadError(path, f"unreadable ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise SampleLoadError(path, "not a Labelme file (no 'shapes' list)")
    return data


def draw_shape(draw: ImageDraw.ImageDraw, shape: dict, value: int) -> bool:
    """Fill one Labelme shape with ``value`` the way Labelme's ``shape_to_mask`` does
    (PIL polygon fill with outline). Returns False for shapes without area."""
    kind = shape.get("shape_type") or "polygon"
    pts = [tuple(float(c) for c in p) for p in shape.get("points", [])]
    if kind == "polygon" and len(pts) >= 3:
        draw.polygon(pts, outline=value, fill=value)
    elif kind == "rectangle" and len(pts) == 2:
        (x0, y0), (x1, y1) = pts
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=value, fill=value)
    elif kind == "circle" and len(pts) == 2:
        (cx, cy), (px, py) = pts
        r = float(np.hypot(px - cx, py - cy))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=value, fill=value)
    else:
        return False  # lines, points and degenerate shapes carry no area
    return True


def rasterize_shapes(shapes: Sequence[dict], height: int, width: int, class_map: ClassMap) -> np.ndarray:
    """uint8 label map from Labelme shapes, later shapes over earlier ones.

    Shapes whose label is not in ``class_map`` raise ``KeyError``.
    """
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        draw_shape(draw, shape, class_map.id_of(str(shape.get("label", ""))))
    return np.asarray(canvas, dtype=np.uint8)


def shape_label_votes(shapes: Sequence[dict], label: np.ndarray) -> dict[str, Counter]:
    """normalised shape name -> Counter(label value -> pixels) over the pixels each
    shape still owns after later shapes are drawn over it (Labelme's order)."""
    h, w = label.shape
    owner = Image.new("I", (w, h), 0)
    draw = ImageDraw.Draw(owner)
    names = []
    for shape in shapes:
        if draw_shape(draw, shape, len(names) + 1):
            names.append(normalize_class_name(str(shape.get("label", ""))))
    if not names:
        return {}
    own = np.asarray(owner, dtype=np.int64)
    joint = np.bincount((own * 256 + label.astype(np.int64)).ravel(), minlength=(len(names) + 1) * 256)
    joint = joint.reshape(len(names) + 1, 256)
    votes: dict[str, Counter] = defaultdict(Counter)
    for k, name in enumerate(names, start=1):
        for value in np.flatnonzero(joint[k]):
            votes[name][int(value)] += int(joint[k, value])
    return votes


def derive_class_map(votes: dict[str, Counter]) -> dict[int, str]:
    """label value -> shape name, each name taking the value most of its pixels have."""
    out: dict[int, str] = {}
    ranked = sorted(votes.items(), key=lambda kv: -sum(kv[1].values()))
    for name, counter in ranked:
        value, _ = counter.most_common(1)[0]
        if value in (0, IGNORE_VALUE) or value in out:
            continue  # a name whose pixels are mostly background tells nothing
        out[value] = name
    return dict(sorted(out.items()))


def match_order(derived: dict[int, str], class_map: ClassMap) -> tuple[int, list[str]]:
    """(how many derived ids agree with ``class_map``, the disagreements as text)."""
    agree = 0
    problems = []
    for value, name in derived.items():
        expected = normalize_class_name(class_map.names[value]) if value < class_map.num_classes else None
        if expected == name:
            agree += 1
        else:
            problems.append(f"value {value}: polygons say {name!r}, {class_map.source} says {expected!r}")
    return agree, problems


# --------------------------------------------------------------------------- check


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
            "root": self.root, "usable": self.usable, "fatal": self.fatal, "class_map": self.class_map,
            "n_images": self.n_images, "n_usable": self.n_usable, "n_all_background": self.n_all_background,
            "mines": self.mines, "split_source": self.split_source, "split_counts": self.split_counts,
            "order": self.order, "order_detail": self.order_detail,
            "derived_map": {str(k): v for k, v in self.derived_map.items()},
            "pixel_share": self.pixel_share, "errors": self.errors, "warnings": self.warnings,
        }

    def format(self, max_items: int = 50) -> str:
        lines = [f"MUSeg check: {self.root}", f"class map in use: {self.class_map}", ""]
        lines.append(f"images: {self.n_images} found, {self.n_usable} usable, {self.n_all_background} all background")
        lines.append("per mine:  " + ", ".join(f"{m}: {n}" for m, n in self.mines.items()))
        if self.split_counts:
            lines.append(f"official split ({self.split_source}):")
            for split, per_mine in self.split_counts.items():
                total = sum(per_mine.values())
                lines.append(f"  {split:5s} {total:6d}  (" + ", ".join(f"{m}: {n}" for m, n in per_mine.items()) + ")")
        else:
            lines.append("official split: none (use --split-scheme groups or mines)")
        if self.pixel_share:
            top = sorted(self.pixel_share.items(), key=lambda kv: -kv[1])
            lines.append("pixel share: " + ", ".join(f"{k} {v:.2%}" for k, v in top))
        lines.append("")
        lines.append(f"class order from the polygon files: {self.order}")
        for value, name in self.derived_map.items():
            lines.append(f"  {value:3d} -> {name}")
        lines.extend(f"  {d}" for d in self.order_detail)
        for title, items in (("errors", self.errors), ("warnings", self.warnings)):
            lines.append("")
            lines.append(f"{title}: {len(items)}")
            by_kind = Counter(i["kind"] for i in items)
            if by_kind:
                lines.append("  " + ", ".join(f"{k}: {n}" for k, n in sorted(by_kind.items())))
            for item in items[:max_items]:
                lines.append(f"  [{item['kind']}] {item['path']}: {item['detail']}")
            if len(items) > max_items:
                lines.append(f"  ... {len(items) - max_items} more (see --json)")
        lines.append("")
        if self.usable:
            lines.append("verdict: USABLE" + (" (files with errors will be skipped)" if self.errors else ""))
        else:
            lines.append("verdict: UNUSABLE")
            lines.extend(f"  - {f}" for f in self.fatal)
        return "\n".join(lines)


def _order_verdict(derived: dict[int, str], class_map: ClassMap) -> tuple[str, list[str]]:
    if not derived:
        return "unknown (no polygon shapes to compare)", []
    a, a_problems = match_order(derived, ORDER_A)
    b, b_problems = match_order(derived, ORDER_B)
    n = len(derived)
    if a == n and b == n:
        return "order A and order B both fit (only classes 1-4 seen)", []
    if a == n:
        return "order A", []
    if b == n:
        return "order B", []
    if class_map not in (ORDER_A, ORDER_B):
        c, c_problems = match_order(derived, class_map)
        if c == n:
            return f"neither order A nor B; matches {class_map.source}", []
        return "neither", c_problems
    return "neither", (a_problems if a >= b else b_problems)


def check(root: str | Path, class_map: ClassMap = ORDER_A, progress: bool = True) -> CheckReport:
    """Verify a MUSeg folder file by file; see ``CheckReport``. Never raises on bad data."""
    from tqdm import tqdm

    report = CheckReport(root=str(root), class_map=class_map.source)
    try:
        real_root = find_root(root)
    except FileNotFoundError as exc:
        report.fatal.append(str(exc))
        return report
    report.root = str(real_root)
    mdirs = mine_dirs(real_root)
    for mine, mdir in mdirs.items():
        for sub in ("Image", "Depth", "Label"):
            if not (mdir / sub).is_dir():
                (report.error if sub in ("Image", "Label") else report.warn)("layout", mdir / sub, "folder is missing")

    records = scan(real_root)
    report.n_images = len(records)
    report.mines = {m: sum(1 for r in records.values() if r.mine == m) for m in mdirs}

    # Label files with no image next to them.
    for mine, mdir in mdirs.items():
        label_dir = mdir / "Label"
        if label_dir.is_dir():
            for p in sorted(label_dir.glob("*_label.png")):
                if p.name[: -len("_label.png")] not in records:
                    report.error("orphan label", p, "no image with this id")

    valid_max = class_map.num_classes - 1
    votes: dict[str, Counter] = defaultdict(Counter)
    pixels = np.zeros(256, dtype=np.int64)
    for rec in tqdm(records.values(), desc="checking images", unit="img", disable=not progress):
        try:
            w, h = _open_image(rec.image_path).size  # full decode: truncation shows up here
        except SampleLoadError as exc:
            report.error("unreadable image", rec.image_path, exc.reason)
            continue
        if not rec.label_path.exists():
            report.error("missing label", rec.label_path, "no label map for this image")
            continue
        try:
            label = load_label(rec.label_path)
        except SampleLoadError as exc:
            report.error("unreadable label", rec.label_path, exc.reason)
            continue
        if label.shape != (h, w):
            report.error("size mismatch", rec.label_path,
                         f"label {label.shape[1]}x{label.shape[0]} vs image {w}x{h}")
            continue
        counts = np.bincount(label.ravel(), minlength=256)
        bad = [v for v in np.flatnonzero(counts) if valid_max < v != IGNORE_VALUE]
        if bad:
            report.error("label value out of range", rec.label_path,
                         f"values {[int(v) for v in bad]} outside 0..{valid_max} (and {IGNORE_VALUE} = ignore); "
                         f"{int(counts[bad].sum())} pixels will be ignored")
        report.n_usable += 1
        pixels += counts
        if counts[1 : valid_max + 1].sum() == 0:
            report.n_all_background += 1

        if not rec.depth_path.exists():
            report.warn("missing depth", rec.depth_path, "no depth map (RGB training does not need it)")
        else:
            try:
                depth = load_depth(rec.depth_path)
                if depth.shape != (h, w):
                    report.warn("size mismatch", rec.depth_path, f"depth {depth.shape[1]}x{depth.shape[0]} vs image {w}x{h}")
            except SampleLoadError as exc:
                report.warn("unreadable depth", rec.depth_path, exc.reason)
        if not rec.color_path.exists():
            report.warn("missing colour label", rec.color_path, "visualisation file absent")
        try:
            data = read_polygons(rec.polygons_path)
        except SampleLoadError as exc:
            report.warn("polygons", rec.polygons_path, exc.reason)
            continue
        for name, counter in shape_label_votes(data["shapes"], label).items():
            votes[name].update(counter)

    if report.n_images == 0:
        report.fatal.append("no images found in any NN-Mine/Image folder")
    elif report.n_usable == 0:
        report.fatal.append("no image has a readable label map of the same size")

    report.derived_map = derive_class_map(votes)
    report.order, report.order_detail = _order_verdict(report.derived_map, class_map)
    total = pixels.sum()
    if total:
        # Name values as the polygons do where they tell, so the shares stay right
        # even when the class map in use is the wrong one.
        name = lambda v: report.derived_map.get(v) or class_map.names[v]  # noqa: E731
        report.pixel_share = {name(v): float(pixels[v] / total) for v in range(class_map.num_classes) if pixels[v]}
        if pixels[IGNORE_VALUE]:
            report.pixel_share["ignore (255)"] = float(pixels[IGNORE_VALUE] / total)
    if report.derived_map:
        agree, problems = match_order(report.derived_map, class_map)
        if agree < len(report.derived_map) and not report.order.startswith("neither"):
            hint = " (pass --classes B)" if report.order == "order B" else " (pass --classes A)"
            report.fatal.append(
                f"the label maps follow {report.order} but the class map in use is {class_map.source}{hint}"
            )
        elif agree < len(report.derived_map):
            report.warn("class names", real_root, "polygon names fit neither order A nor B; "
                        "write a classes file from the derived map above and pass --classes FILE")

    src = split_source(real_root)
    if src is None:
        report.warn("split", real_root / "Experiment", "no official split (DatasetSplit.zip or train.txt/val.txt)")
    else:
        report.split_source = str(src)
        try:
            official = read_official_split(real_root)
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
                report.error("split id without image", src, f"{len(unknown)} {split} id(s), e.g. {unknown[0]}")
        unlisted = [i for i in records if i not in seen]
        if official and unlisted:
            report.warn("split", src, f"{len(unlisted)} image(s) in no split file, e.g. {unlisted[0]}")
        groups = {s: {capture_group(i) for i in ids} for s, ids in official.items()}
        if len(groups) == 2:
            shared = groups["train"] & groups["val"]
            if shared:
                report.warn("split", src, f"{len(shared)} capture group(s) in both train and val, e.g. {sorted(shared)[0]}")
    return report

