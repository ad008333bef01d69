"""Class maps: label value -> class name, the two published orders and classes files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

IGNORE_VALUE = 255

# Order A: the dataset documentation (the default).
ORDER_A_NAMES = (
    "background",
    "person",
    "cable",
    "tube",
    "indicator",
    "metal fixture",
    "container",
    "tools & materials",
    "door",
    "electrical equipment",
    "electronic equipment",
    "mining equipment",
    "anchoring equipment",
    "support equipment",
    "rescue equipment",
    "rail area",
)
# Order B: the public MineLISA code. Which one a copy of the data follows is decided
# by `museg check`, which reads the class names off the polygon files.
ORDER_B_NAMES = (
    "background",
    "person",
    "cable",
    "tube",
    "indicator",
    "electrical equipment",
    "electronic equipment",
    "mining equipment",
    "rail area",
    "support equipment",
    "door",
    "tools and materials",
    "rescue equipment",
    "container",
    "metal fixture",
    "anchoring equipment",
)


def normalize_class_name(name: str) -> str:
    """Comparison key for class names: 'Tools_&_Materials' == 'tools and materials'."""
    name = name.strip().lower().replace("&", " and ")
    name = re.sub(r"[_\-\s]+", " ", name)
    return name.strip()


@dataclass(frozen=True)
class ClassMap:
    """Label value -> class name; value 0 is background, ``IGNORE_VALUE`` is ignored."""

    names: tuple[str, ...]
    source: str = "custom"

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise DataError("a class map needs background plus at least one class")
        if len(self.names) > IGNORE_VALUE:
            raise DataError(
                f"at most {IGNORE_VALUE} classes fit a uint8 label map with {IGNORE_VALUE} = ignore"
            )
        keys = [normalize_class_name(n) for n in self.names]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise DataError(f"duplicate class names in {self.source}: {dupes}")

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
    def from_file(cls, path: str | Path) -> ClassMap:
        """Read a classes file: one class per line, either ``NAME`` (line order = id,
        background first) or ``ID NAME``; blank lines and ``#`` comments are skipped."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            raise DataError(f"{path}: no class names")
        numbered = [re.match(r"^(\d+)\s*[:,\t ]\s*(.+)$", ln) for ln in lines]
        if all(numbered):
            by_id = {int(m.group(1)): m.group(2).strip() for m in numbered if m}
            if sorted(by_id) != list(range(len(by_id))) or len(by_id) != len(lines):
                raise DataError(
                    f"{path}: class ids must be unique and run 0..N-1, got {sorted(by_id)}"
                )
            names = tuple(by_id[i] for i in range(len(by_id)))
        elif any(numbered):
            raise DataError(f"{path}: mix of 'ID NAME' and 'NAME' lines; use one form")
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
        raise DataError(
            f"classes file {path} not found (use A, B or a file with one class per line)"
        )
    return ClassMap.from_file(path)
