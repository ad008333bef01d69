"""Labelme polygon files: reading, rasterising, and deriving the class map they imply.

The polygon files carry class names, the label maps carry numbers: comparing the
two (``shape_label_votes`` -> ``derive_class_map``) tells which class order a copy
of the data follows.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import SampleLoadError
from .classes import IGNORE_VALUE, ORDER_A, ORDER_B, ClassMap, normalize_class_name


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
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        draw.rectangle(box, outline=value, fill=value)
    elif kind == "circle" and len(pts) == 2:
        (cx, cy), (px, py) = pts
        r = float(np.hypot(px - cx, py - cy))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=value, fill=value)
    else:
        return False  # lines, points and degenerate shapes carry no area
    return True


def rasterize_shapes(
    shapes: Sequence[dict], height: int, width: int, class_map: ClassMap
) -> np.ndarray:
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
    joint = np.bincount(
        (own * 256 + label.astype(np.int64)).ravel(), minlength=(len(names) + 1) * 256
    )
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
        expected = None
        if value < class_map.num_classes:
            expected = normalize_class_name(class_map.names[value])
        if expected == name:
            agree += 1
        else:
            problems.append(
                f"value {value}: polygons say {name!r}, {class_map.source} says {expected!r}"
            )
    return agree, problems


def order_verdict(derived: dict[int, str], class_map: ClassMap) -> tuple[str, list[str]]:
    """Which order the derived map follows ("order A", "order B", "neither", ...) and
    the disagreements that explain a "neither"."""
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
