"""The raw MUSeg folder layout: where every file of an image lives, and image ids.

::

    ROOT/01-Mine/Image/<id>.jpg
            /Depth/<id>.png              uint16 millimetres, 0 = invalid
            /Label/<id>_label.png        uint8 class ids (255 = ignore, if present)
            /Label/<id>_color.png        visualisation only
            /Label/<id>_polygons.json    Labelme (shapes[].label, shapes[].points)
    ROOT/02-Mine ... 06-Mine
    ROOT/Experiment/DatasetSplit.zip     train.txt / val.txt (or the extracted files)
    ROOT/Experiment/intrinsics.json      optional: the depth images' pinhole intrinsics
                                         ({"width", "height", "k": CameraInfo's 9 values});
                                         ``synth`` writes it, the MUSeg release has none
    ROOT/Experiment/sequences.json       optional: frame sequences (``read_sequences``):
                                         {"fps", "sequences": {capture group: {"mine",
                                         "frames": [ids in time order], "timestamps_s"}}};
                                         ``synth --sequences`` writes it

``Layout`` is the one place these names are spelled: the readers find files with it
and ``synth`` writes its files with it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError, InvalidInputError

if TYPE_CHECKING:
    from ..depth import Intrinsics

logger = logging.getLogger("minelisa.museg")

MINE_DIR_RE = re.compile(r"^(\d{2})-Mine$")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
IMAGE_DIR, DEPTH_DIR, LABEL_DIR = "Image", "Depth", "Label"
MINE_SUBDIRS = (IMAGE_DIR, DEPTH_DIR, LABEL_DIR)
LABEL_SUFFIX = "_label.png"
COLOR_SUFFIX = "_color.png"
POLYGONS_SUFFIX = "_polygons.json"
DEPTH_SUFFIX = ".png"
EXPERIMENT_DIR = "Experiment"
SPLIT_ZIP = "DatasetSplit.zip"
INTRINSICS_FILE = "intrinsics.json"
SEQUENCES_FILE = "sequences.json"

# Ids look like 01-01-01-0014-240523104754-08-99: mine, roadway, capture group, frame, ...
GROUP_FIELDS = 3


def capture_group(image_id: str, fields: int = GROUP_FIELDS) -> str:
    """Capture-group key of an id: its first ``fields`` dash-separated fields
    (three by default: mine-roadway-group of ``01-01-01-0014-240523104754-08-99``)."""
    parts = image_id.split("-")
    return "-".join(parts[:fields]) if len(parts) >= fields else image_id


def mine_key(mine: int | str) -> str:
    """The two-digit mine number of a folder name: 3, "3" and "03" -> "03"."""
    return f"{int(mine):02d}"


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
        return self.label_dir / f"{self.image_id}{LABEL_SUFFIX}"

    @property
    def color_path(self) -> Path:
        return self.label_dir / f"{self.image_id}{COLOR_SUFFIX}"

    @property
    def polygons_path(self) -> Path:
        return self.label_dir / f"{self.image_id}{POLYGONS_SUFFIX}"

    @property
    def depth_path(self) -> Path:
        return self.depth_dir / f"{self.image_id}{DEPTH_SUFFIX}"


@dataclass(frozen=True)
class Layout:
    """The raw layout under ``root``, the folder that holds the ``NN-Mine`` folders."""

    root: Path

    @classmethod
    def find(cls, path: str | Path) -> Layout:
        """The layout of an existing dataset at ``path`` or ``path/MUSeg``."""
        return cls(find_root(path))

    def mine_dir(self, mine: int | str) -> Path:
        return self.root / f"{mine_key(mine)}-Mine"

    def image_dir(self, mine: int | str) -> Path:
        return self.mine_dir(mine) / IMAGE_DIR

    def label_dir(self, mine: int | str) -> Path:
        return self.mine_dir(mine) / LABEL_DIR

    def depth_dir(self, mine: int | str) -> Path:
        return self.mine_dir(mine) / DEPTH_DIR

    @property
    def experiment_dir(self) -> Path:
        return self.root / EXPERIMENT_DIR

    @property
    def split_zip(self) -> Path:
        """Where the official split is written (``Experiment/DatasetSplit.zip``)."""
        return self.experiment_dir / SPLIT_ZIP

    @property
    def intrinsics_path(self) -> Path:
        """Where the depth camera's intrinsics are (``Experiment/intrinsics.json``)."""
        return self.experiment_dir / INTRINSICS_FILE

    @property
    def sequences_path(self) -> Path:
        """Where the frame sequences' manifest is (``Experiment/sequences.json``)."""
        return self.experiment_dir / SEQUENCES_FILE

    def record(self, image_id: str, mine: int | str, image_ext: str = ".jpg") -> ImageRecord:
        """The record of image ``image_id`` of ``mine`` (its files need not exist yet)."""
        key = mine_key(mine)
        return ImageRecord(
            image_id,
            key,
            self.image_dir(key) / f"{image_id}{image_ext}",
            self.label_dir(key),
            self.depth_dir(key),
        )

    def mines(self) -> dict[str, Path]:
        """Mine number ("01") -> folder, for the ``NN-Mine`` folders directly under root."""
        out = {}
        for child in sorted(self.root.iterdir()):
            m = MINE_DIR_RE.match(child.name)
            if m and child.is_dir():
                out[m.group(1)] = child
        return out

    def label_files(self, mine: int | str) -> list[Path]:
        """The ``<id>_label.png`` files of one mine, sorted."""
        return sorted(self.label_dir(mine).glob(f"*{LABEL_SUFFIX}"))

    def scan(self) -> dict[str, ImageRecord]:
        """All images, by id (sorted), found from the ``Image`` folders."""
        records: dict[str, ImageRecord] = {}
        for mine in self.mines():
            image_dir = self.image_dir(mine)
            if not image_dir.is_dir():
                continue
            for p in sorted(image_dir.iterdir()):
                if p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
                    continue
                if p.stem in records:
                    logger.warning(
                        "duplicate image id %s: keeping %s, ignoring %s",
                        p.stem,
                        records[p.stem].image_path,
                        p,
                    )
                    continue
                records[p.stem] = self.record(p.stem, mine, p.suffix)
        return dict(sorted(records.items()))


def label_id(path: Path) -> str | None:
    """The image id a ``<id>_label.png`` file belongs to (None for other names)."""
    name = path.name
    return name[: -len(LABEL_SUFFIX)] if name.endswith(LABEL_SUFFIX) else None


def read_intrinsics(root: str | Path) -> Intrinsics | None:
    """The depth images' pinhole intrinsics from ``ROOT/Experiment/intrinsics.json``,
    or None when there is no such file (the MUSeg release has none: write one from
    the camera's calibration to get metric centroids). Keys: ``width``, ``height`` and
    ``k`` (row-major 3x3, as ``CameraInfo.k``), or ``fx``, ``fy``, ``cx``, ``cy``.
    A file that is there but unusable raises ``DataError`` naming it."""
    from ..depth import Intrinsics  # here: depth's evaluation helpers import museg

    path = Layout.find(root).intrinsics_path
    if not path.is_file():
        return None
    try:
        return Intrinsics.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, InvalidInputError) as exc:
        raise DataError(f"{path}: not usable camera intrinsics ({exc})") from exc


@dataclass(frozen=True)
class FrameSequence:
    """One sequence of ``Experiment/sequences.json``: its frames in time order.

    Attributes:
        sequence_id: the frames' capture group (e.g. ``01-02-03``).
        records: the frames' records (their files need not exist: the readers check).
        timestamps_s: each frame's time in seconds from the first.
        fps: the manifest's frame rate.
    """

    sequence_id: str
    records: tuple[ImageRecord, ...]
    timestamps_s: tuple[float, ...]
    fps: float


def read_sequences(root: str | Path) -> dict[str, FrameSequence]:
    """The frame sequences of ``ROOT/Experiment/sequences.json`` by id, in the file's
    order; empty when there is no such file (the MUSeg release has none). A file that
    is there but unusable raises ``DataError`` naming it and why."""
    layout = Layout.find(root)
    path = layout.sequences_path
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fps = float(data["fps"])
        out = {}
        for key, entry in data["sequences"].items():
            frames, stamps = list(entry["frames"]), [float(t) for t in entry["timestamps_s"]]
            if len(frames) != len(stamps) or any(b <= a for a, b in zip(stamps, stamps[1:])):
                raise ValueError(f"sequence {key}: frames and increasing timestamps must pair up")
            if any(capture_group(str(f)) != key for f in frames):
                raise ValueError(f"sequence {key}: a frame id outside capture group {key}")
            records = tuple(layout.record(str(f), entry["mine"]) for f in frames)
            out[str(key)] = FrameSequence(str(key), records, tuple(stamps), fps)
    except (OSError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: not a usable sequence manifest ({exc!r})") from exc
    except ValueError as exc:
        raise DataError(f"{path}: not a usable sequence manifest ({exc})") from exc
    return out


def find_root(path: str | Path) -> Path:
    """The folder holding the ``NN-Mine`` folders: ``path`` itself or ``path/MUSeg``."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"MUSeg folder {path} does not exist")
    for candidate in (path, path / "MUSeg"):
        if candidate.is_dir() and mine_dirs(candidate):
            return candidate
    raise DataError(f"{path} has no NN-Mine folders (expected e.g. {path}/01-Mine/Image/<id>.jpg)")


def mine_dirs(root: Path) -> dict[str, Path]:
    """Mine number ("01") -> folder, for the ``NN-Mine`` folders directly under root."""
    return Layout(Path(root)).mines()


def scan(root: str | Path) -> dict[str, ImageRecord]:
    """All images of the dataset, by id (sorted), found from the ``Image`` folders."""
    return Layout.find(root).scan()
