"""One synthetic frame: roadway, objects, lamp light, sensor noise; image, label, depth.

The label map is the rasterisation of the polygon list (Labelme's fill, later shapes
over earlier ones, via ``museg.draw_shape``), and the image is painted through the
same ownership map, so image, label map and polygons agree pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .. import museg
from .camera import MAX_RANGE_M, NEAR_M, synth_intrinsics
from .geometry import Roadway, Shape, polygon_area
from .objects import CLASS_PRESENCE, GENERATORS
from .paint import jitter, rock

FRAME_DROPOUT = 0.15  # chance that an object of the group is out of view in one frame

# (shape index, window of the frame) -> the layout coordinates (Y, X) its paint reads there.
ToLayout = Callable[[int, tuple[slice, slice]], tuple[np.ndarray, np.ndarray]]


@dataclass
class MineStyle:
    rock: np.ndarray  # rock tint, RGB
    light: float  # lamp strength
    ambient: float


def mine_style(seed: int, mine: int) -> MineStyle:
    rng = np.random.default_rng([seed, 7, mine])
    tints = [
        (105, 98, 90),
        (80, 80, 82),
        (118, 104, 84),
        (92, 88, 100),
        (70, 66, 60),
        (135, 118, 80),
    ]
    base = tints[(mine - 1) % 6]
    return MineStyle(jitter(rng, base, 8), rng.uniform(0.5, 0.8), rng.uniform(0.15, 0.28))


@dataclass
class Scene:
    image: np.ndarray  # uint8 RGB [H, W, 3]
    shapes: list[dict] = field(default_factory=list)  # Labelme shapes, draw order
    label: np.ndarray | None = None  # uint8 [H, W]
    depth: np.ndarray | None = None  # uint16 [H, W] mm, the camera of ``camera.synth_intrinsics``


def render_scene(
    layout_rng: np.random.Generator,
    frame_rng: np.random.Generator,
    width: int,
    height: int,
    style: MineStyle,
    class_map: museg.ClassMap,
    all_background: bool = False,
    featured: str | None = None,
) -> Scene:
    """One frame: the layout (objects, roadway) comes from ``layout_rng`` (shared by a
    capture group), camera shake, dropout, light and noise from ``frame_rng``.
    ``featured`` names a class that is always present and never dropped."""
    road, objects = group_layout(layout_rng, width, height, () if featured is None else (featured,))
    shift = frame_rng.normal(0, 0.02, 2) * (width, height)
    road.vx += shift[0]
    road.vy += shift[1]
    shapes: list[Shape] = []
    if not all_background:
        shapes = _visible_shapes(frame_rng, objects, shift, width, height, featured)
    Y, X = np.mgrid[0:height, 0:width].astype(np.float32)
    image, depth = paint_roadway(frame_rng, road, style, Y, X)
    labelme = labelme_shapes(shapes, class_map)

    def to_layout(k: int, window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        # Paint functions work in layout coordinates: undo the camera shake.
        return Y[window] - shift[1], X[window] - shift[0]

    label, lamps = paint_shapes(image, depth, shapes, labelme, class_map, road, to_layout)
    image = light(frame_rng, image, road, style, lamps, Y, X)
    return Scene(image, labelme, label, depth_sensor(frame_rng, depth))


def labelme_shapes(shapes: list[Shape], class_map: museg.ClassMap) -> list[dict]:
    """The Labelme records of ``shapes`` (polygons, in draw order)."""
    return [
        {
            "label": class_map.name(class_map.id_of(s.cls)),
            "points": s.points.tolist(),
            "group_id": None,
            "description": "",
            "shape_type": "polygon",
            "flags": {},
        }
        for s in shapes
    ]


def group_layout(
    rng: np.random.Generator, width: int, height: int, required: Collection[str] = ()
) -> tuple[Roadway, list[tuple[str, list[Shape]]]]:
    """The roadway and the objects (by class, painter's order) of a capture group;
    the classes in ``required`` are always among them."""
    vx, vy = width * rng.uniform(0.42, 0.58), height * rng.uniform(0.36, 0.48)
    fw = width * rng.uniform(0.08, 0.14)
    # The far section has the image's aspect ratio (a pinhole view of a straight
    # roadway). The draw that used to set its height is still made, so that the
    # objects of a capture group come from the same random stream as before.
    rng.uniform(0.07, 0.11)
    intr = synth_intrinsics(width, height)
    road = Roadway(width, height, vx, vy, fw, fw * height / width, intr.fx, NEAR_M)
    present = [c for c, p in CLASS_PRESENCE.items() if rng.random() < p or c in required]
    return road, [(c, GENERATORS[c](rng, road)) for c in present]


def _visible_shapes(
    rng: np.random.Generator,
    objects: list[tuple[str, list[Shape]]],
    shift: np.ndarray,
    width: int,
    height: int,
    featured: str | None,
) -> list[Shape]:
    """The shapes of one frame: some objects dropped, the rest shifted and clipped."""
    shapes = []
    for cls, obj in objects:
        if rng.random() < FRAME_DROPOUT and cls != featured:
            continue
        for s in obj:
            pts = np.round(s.points + shift)
            pts[:, 0] = np.clip(pts[:, 0], 0, width - 1)
            pts[:, 1] = np.clip(pts[:, 1], 0, height - 1)
            if polygon_area(pts) >= 2.0:
                s.points = pts
                shapes.append(s)
    return shapes


def paint_shapes(
    image: np.ndarray,
    depth: np.ndarray,
    shapes: list[Shape],
    labelme: list[dict],
    class_map: museg.ClassMap,
    road: Roadway,
    to_layout: ToLayout,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint each shape where it owns the pixels (in place); returns (label map, lamps).

    ``to_layout(k, window)`` gives the layout coordinates (Y, X) that shape ``k``'s paint
    function reads at the pixels of ``window`` (a pair of slices of the frame).
    """
    height, width = depth.shape
    surface = depth.copy()  # the roadway's own depth, for shapes that lie on it
    # Ownership map: which shape each pixel shows (0 = none), by Labelme's draw order.
    owner_img = Image.new("I", (width, height), 0)
    draw = ImageDraw.Draw(owner_img)
    for k, shp in enumerate(labelme, start=1):
        museg.draw_shape(draw, shp, k)
    owner = np.asarray(owner_img, dtype=np.int32)
    class_of = np.zeros(len(shapes) + 1, dtype=np.uint8)
    lamps = np.zeros((height, width), dtype=bool)
    for k, s in enumerate(shapes, start=1):
        class_of[k] = class_map.id_of(s.cls)
        x0, y0 = np.floor(s.points.min(axis=0)).astype(int)
        x1, y1 = np.ceil(s.points.max(axis=0)).astype(int) + 1
        sub = owner[y0:y1, x0:x1] == k
        if not sub.any():
            continue
        patch = s.paint(*to_layout(k - 1, (slice(y0, y1), slice(x0, x1))))
        image[y0:y1, x0:x1][sub] = patch[sub]
        if s.depth_t is None:
            depth[y0:y1, x0:x1][sub] = surface[y0:y1, x0:x1][sub]
        else:
            depth[y0:y1, x0:x1][sub] = 1000.0 * road.depth_m(s.depth_t)
        if s.emissive:
            lamps[y0:y1, x0:x1] |= sub
    return class_of[owner], lamps


def light(
    rng: np.random.Generator,
    image: np.ndarray,
    road: Roadway,
    style: MineStyle,
    lamps: np.ndarray,
    Y: np.ndarray,
    X: np.ndarray,
    spot_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Cap-lamp light: a soft spot near the vanishing point over a dim ambient level,
    lamps and signs lit, plus sensor noise; uint8 RGB. The spot's offset, size and
    strength come from ``spot_rng`` when given (a sequence's lamp, which moves with
    the camera), else from ``rng``."""
    height, width = Y.shape
    lamp = rng if spot_rng is None else spot_rng
    cx = road.vx + lamp.normal(0, 0.05) * width
    cy = road.vy + lamp.normal(0, 0.05) * height
    sigma = lamp.uniform(0.35, 0.6) * max(width, height)
    spot = np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * sigma**2))
    level = style.ambient + style.light * lamp.uniform(0.6, 1.0) * spot
    level = np.where(lamps, np.maximum(level, 0.95), level)
    noise = rng.standard_normal((height, width, 1), dtype=np.float32)
    image = image * level[..., None] + 3.0 * noise
    return np.clip(image, 0, 255).astype(np.uint8)


def depth_sensor(rng: np.random.Generator, depth: np.ndarray) -> np.ndarray:
    """Depth sensor: ~1% noise, dropouts at random pixels and beyond its range; uint16 mm."""
    depth *= 1.0 + 0.01 * rng.standard_normal(depth.shape, dtype=np.float32)
    dropout = rng.random(depth.shape, dtype=np.float32) < 0.015
    depth[(depth > 1000.0 * MAX_RANGE_M) | dropout] = 0
    return np.rint(np.clip(depth, 0, 65535)).astype(np.uint16)


def roadway_surfaces(
    road: Roadway, Y: np.ndarray, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depth parameter, surface index, far-end mask) at image points (Y, X): the nearest
    of floor (0), roof (1), left (2) and right wall (3) along each view ray, its depth
    parameter (0 at the image border, 1 at the far section) and whether the ray goes
    out through the far end (open roadway)."""
    h, w = road.height, road.width
    # The far cross-section: left, top, right, bottom.
    fl, ft, fr, fb = road.vx - road.fw, road.vy - road.fh, road.vx + road.fw, road.vy + road.fh
    t_floor = (h - Y) / max(h - fb, 1.0)
    t_roof = Y / max(ft, 1.0)
    t_left = X / max(fl, 1.0)
    t_right = (w - X) / max(w - fr, 1.0)
    tt, surface = t_floor, np.zeros(Y.shape, np.uint8)
    for k, t_k in enumerate((t_roof, t_left, t_right), start=1):
        nearer = t_k < tt
        tt = np.where(nearer, t_k, tt)
        surface[nearer] = k
    far = (X > fl) & (X < fr) & (Y > ft) & (Y < fb)
    return np.clip(tt, 0, 1), surface, far


def paint_roadway(
    rng: np.random.Generator,
    road: Roadway,
    style: MineStyle,
    Y: np.ndarray,
    X: np.ndarray,
    texture: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rock surfaces (floor darker, roof lighter, dark far end) and their depth in mm
    (along the optical axis; the far end, open roadway, has none). The rock comes from
    ``rng``, or from ``texture(depth_mm)`` (float RGB) when given."""
    h, w = Y.shape
    tt, surface, far = roadway_surfaces(road, Y, X)
    depth = 1000.0 * road.near_m / (1.0 - tt * (1.0 - 2.0 * road.fw / road.width))
    depth[far] = 0
    gain = np.array([0.7, 1.1, 1.0, 0.95], np.float32)[surface]
    rock_rgb = rock(rng, h, w, style.rock) if texture is None else texture(depth)
    image = rock_rgb * gain[..., None]
    image[far] *= 0.15
    return image.astype(np.float32), depth.astype(np.float32)
