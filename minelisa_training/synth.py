"""Synthetic scenes in the exact raw MUSeg layout (see ``museg`` for the layout).

Each image is a dim underground roadway seen along its axis: floor, walls and roof
of noisy rock under an uneven cap-lamp light, with objects of the 15 MUSeg classes
drawn as Labelme polygons. Every class has its own colour/texture/shape family
(orange hi-vis person, thin dark cables, shaded pipes, glowing signs, yellow
machines with hazard stripes, rails with sleepers, ...) so that a tiny model can
learn them, with enough variation (colour jitter, size, position, lighting, noise)
that it has to.

The label map is the rasterisation of the polygon file (Labelme's fill, later
shapes over earlier ones), and the image is painted through the same ownership
map, so image, ``_label.png`` and ``_polygons.json`` agree pixel for pixel.

Frames come in capture groups (same layout, small camera motion, objects
sometimes out of view) inside six mines with their own rock tint and light level,
so group-disjoint and held-out-mine splits are meaningful. A few frames are all
background. Everything is drawn from ``numpy.random.default_rng`` streams keyed by
(seed, mine, group, frame) and written with fixed encoder settings and zip
timestamps: the same seed gives the same bytes.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw

from . import museg

# Painter's order (back to front) and how often each class shows up in a capture group.
CLASS_PRESENCE = {
    "rail area": 0.65,
    "door": 0.25,
    "tools & materials": 0.35,
    "container": 0.35,
    "mining equipment": 0.3,
    "electrical equipment": 0.4,
    "electronic equipment": 0.35,
    "rescue equipment": 0.25,
    "support equipment": 0.45,
    "tube": 0.55,
    "metal fixture": 0.45,
    "cable": 0.75,
    "anchoring equipment": 0.5,
    "indicator": 0.5,
    "person": 0.35,
}
FRAME_DROPOUT = 0.15  # chance that an object of the group is out of view in one frame
BACKGROUND_SHARE = 0.05  # frames with no object at all
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps -> identical bytes


def parse_size(text: str) -> tuple[int, int]:
    """'1082x932' -> (1082, 932) as (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 1082x932), got {text!r}") from exc
    if w < 32 or h < 32:
        raise ValueError(f"size {w}x{h} is too small (at least 32x32)")
    return w, h


@dataclass(frozen=True)
class SynthConfig:
    """What ``write_dataset`` writes. ``class_order`` "A" or "B" picks the label ids."""

    images: int = 60
    seed: int = 0
    width: int = 1082
    height: int = 932
    mines: int = 6
    class_order: str = "A"
    val_fraction: float = 0.5
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        if self.images < 1:
            raise ValueError("images must be >= 1")
        if not 1 <= self.mines <= 99:
            raise ValueError("mines must be in 1..99")
        if self.width < 32 or self.height < 32:
            raise ValueError(f"size {self.width}x{self.height} is too small (at least 32x32)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.class_order.upper() not in ("A", "B"):
            raise ValueError(f"class_order must be A or B, got {self.class_order!r}")

    @property
    def class_map(self) -> museg.ClassMap:
        return museg.load_class_map(self.class_order)


# --------------------------------------------------------------------------- geometry


@dataclass
class Shape:
    """One Labelme polygon with its paint function (RGB float patch from coordinate grids)."""

    cls: str  # order-A class name
    points: np.ndarray  # [N, 2] float x, y
    paint: Callable[[np.ndarray, np.ndarray], np.ndarray]
    depth_t: float  # 0 = at the camera's near plane, 1 = the far end of the view
    emissive: bool = False  # lamps and signs keep their brightness in the dark


@dataclass
class Roadway:
    """Perspective frame of the roadway: near cross-section = image border, far
    cross-section = rectangle around the vanishing point."""

    width: int
    height: int
    vx: float
    vy: float
    fw: float  # far half-width
    fh: float  # far half-height

    def scale(self, t: float) -> float:
        return 1.0 - t * (1.0 - 2.0 * self.fw / self.width)

    def section(self, t: float) -> tuple[float, float, float, float]:
        """left, top, right, bottom of the cross-section at depth t."""
        lerp = lambda a, b: a + (b - a) * t  # noqa: E731
        return (lerp(0, self.vx - self.fw), lerp(0, self.vy - self.fh),
                lerp(self.width, self.vx + self.fw), lerp(self.height, self.vy + self.fh))

    def wall_point(self, side: int, t: float, v: float) -> tuple[float, float]:
        """Point on the left (side -1) or right (+1) wall; v = 0 roof line, 1 floor line."""
        left, top, right, bottom = self.section(t)
        return (left if side < 0 else right), top + (bottom - top) * v

    def floor_point(self, t: float, u: float) -> tuple[float, float]:
        """Point on the floor; u = 0 left wall, 1 right wall."""
        left, _, right, bottom = self.section(t)
        return left + (right - left) * u, bottom

    def roof_point(self, t: float, u: float) -> tuple[float, float]:
        left, top, right, _ = self.section(t)
        return left + (right - left) * u, top


def _circle(cx: float, cy: float, r: float, n: int = 16) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _thick_polyline(points: np.ndarray, thickness: np.ndarray) -> np.ndarray:
    """Outline polygon of a polyline with per-vertex thickness."""
    d = np.gradient(points, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], axis=1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    off = n * (thickness[:, None] / 2.0)
    return np.concatenate([points + off, (points - off)[::-1]], axis=0)


# --------------------------------------------------------------------------- textures


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: float = 18.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, dtype=np.float32) + rng.normal(0, amount, 3), 0, 255)


def _solid(rng: np.random.Generator, rgb: np.ndarray, grain: float) -> Callable:
    seed = int(rng.integers(2**31))

    def paint(Y: np.ndarray, X: np.ndarray) -> np.ndarray:
        noise = grain * np.random.default_rng(seed).standard_normal(Y.shape, dtype=np.float32)[..., None]
        return np.broadcast_to(rgb, Y.shape + (3,)) + noise

    return paint


def _stripes(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, period: float, angle: float,
             duty: float = 0.5, grain: float = 6.0) -> Callable:
    seed = int(rng.integers(2**31))
    ca, sa = np.cos(angle), np.sin(angle)

    def paint(Y: np.ndarray, X: np.ndarray) -> np.ndarray:
        phase = ((X * ca + Y * sa) / max(period, 1.0)) % 1.0
        out = np.where((phase < duty)[..., None], a, b).astype(np.float32)
        return out + grain * np.random.default_rng(seed).standard_normal(Y.shape, dtype=np.float32)[..., None]

    return paint


def _rock(rng: np.random.Generator, h: int, w: int, tint: np.ndarray) -> np.ndarray:
    """Rock/shotcrete: low-frequency blotches plus grain, as float RGB [h, w, 3]."""
    low = cv2.resize(rng.standard_normal((max(h // 24, 2), max(w // 24, 2)), dtype=np.float32), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal((h, w), dtype=np.float32)
    shade = 1.0 + 0.22 * low + 0.10 * grain
    return tint[None, None, :] * shade[..., None]


# --------------------------------------------------------------------------- objects


def _person(rng, road: Roadway) -> list[Shape]:
    t = rng.uniform(0.05, 0.6)
    s = road.scale(t)
    x, y = road.floor_point(t, rng.uniform(0.25, 0.75))
    hgt = road.height * 0.42 * s * rng.uniform(0.85, 1.1)
    wid = hgt * 0.3
    vest = _stripes(rng, _jitter(rng, (235, 120, 15), 12), np.array([205, 205, 200], np.float32),
                    period=hgt * 0.18, angle=np.pi / 2, duty=0.75)
    legs = _solid(rng, _jitter(rng, (35, 45, 80), 8), 5)
    helmet = _solid(rng, _jitter(rng, (235, 215, 40), 10), 5)
    top = y - hgt
    return [
        Shape("person", _rect(x - wid * 0.3, y - hgt * 0.45, x - wid * 0.05, y), legs, t),
        Shape("person", _rect(x + wid * 0.05, y - hgt * 0.45, x + wid * 0.3, y), legs, t),
        Shape("person", np.array([[x - wid / 2, top + hgt * 0.2], [x + wid / 2, top + hgt * 0.2],
                                  [x + wid * 0.4, y - hgt * 0.42], [x - wid * 0.4, y - hgt * 0.42]]), vest, t),
        Shape("person", _circle(x, top + hgt * 0.1, hgt * 0.1), helmet, t),
    ]


def _cable(rng, road: Roadway) -> list[Shape]:
    shapes = []
    side = int(rng.choice([-1, 1]))
    base_v = rng.uniform(0.12, 0.45)
    colour = _jitter(rng, [(25, 25, 28), (110, 20, 20), (25, 35, 95)][int(rng.integers(3))], 8)
    for k in range(int(rng.integers(1, 4))):
        ts = np.linspace(0.0, rng.uniform(0.6, 0.95), 24)
        v = base_v + 0.05 * k + 0.06 * np.sin(ts * rng.uniform(6, 14) + rng.uniform(0, 6)) ** 2
        pts = np.array([road.wall_point(side, t, vv) for t, vv in zip(ts, v)])
        thick = np.maximum(road.height * 0.008 * np.array([road.scale(t) for t in ts]), 1.0)
        shapes.append(Shape("cable", _thick_polyline(pts, thick), _solid(rng, colour, 6), 0.3))
    return shapes


def _tube(rng, road: Roadway) -> list[Shape]:
    side = int(rng.choice([-1, 1]))
    v = rng.uniform(0.08, 0.3)
    t1 = rng.uniform(0.7, 0.98)
    (x0, y0), (x1, y1) = road.wall_point(side, 0.0, v), road.wall_point(side, t1, v)
    r0 = road.height * 0.065 * rng.uniform(0.7, 1.3)
    r1 = r0 * road.scale(t1)
    base = _jitter(rng, [(95, 115, 150), (150, 150, 155)][int(rng.integers(2))], 10)

    def paint(Y, X):
        f = np.clip((X - x0) / (x1 - x0 if x1 != x0 else 1.0), 0, 1)
        yc, r = y0 + (y1 - y0) * f, r0 + (r1 - r0) * f
        u = np.clip((Y - yc) / np.maximum(r, 1.0), -1, 1)
        return base * (0.45 + 0.75 * (1 - u**2))[..., None]  # cylinder highlight along the axis

    pts = np.array([[x0, y0 - r0], [x1, y1 - r1], [x1, y1 + r1], [x0, y0 + r0]])
    return [Shape("tube", pts, paint, 0.35)]


def _indicator(rng, road: Roadway) -> list[Shape]:
    shapes = []
    for _ in range(int(rng.integers(1, 3))):
        t = rng.uniform(0.05, 0.7)
        s = road.scale(t)
        x, y = road.wall_point(int(rng.choice([-1, 1])), t, rng.uniform(0.25, 0.5))
        x += rng.uniform(0.03, 0.15) * road.width * s * (1 if x < road.vx else -1)
        if rng.random() < 0.6:  # sign: coloured panel, white border and bar
            w, h = road.width * 0.08 * s, road.height * 0.06 * s
            inner = _jitter(rng, [(20, 175, 60), (30, 80, 210)][int(rng.integers(2))], 10)
            white = np.array([245, 245, 240], np.float32)

            def paint(Y, X, x=x, y=y, w=w, h=h, inner=inner, white=white):
                dx, dy = np.abs(X - x) / (w / 2), np.abs(Y - y) / (h / 2)
                border = (dx > 0.8) | (dy > 0.7) | ((dy < 0.2) & (dx < 0.5))
                return np.where(border[..., None], white, inner).astype(np.float32)

            shapes.append(Shape("indicator", _rect(x - w / 2, y - h / 2, x + w / 2, y + h / 2), paint, t, True))
        else:  # lamp
            colour = _jitter(rng, [(240, 40, 30), (60, 240, 80)][int(rng.integers(2))], 8)
            r = max(road.height * 0.02 * s, 1.5)
            shapes.append(Shape("indicator", _circle(x, y, r, 12), _solid(rng, colour, 3), t, True))
    return shapes


def _metal_fixture(rng, road: Roadway) -> list[Shape]:
    side = int(rng.choice([-1, 1]))
    shapes = []
    for t in np.sort(rng.uniform(0.05, 0.8, int(rng.integers(2, 5)))):
        s = road.scale(t)
        x, y = road.wall_point(side, t, rng.uniform(0.1, 0.35))
        w, h = road.width * 0.035 * s, road.height * 0.08 * s
        d = 1 if side < 0 else -1  # bracket sticks out of the wall
        pts = np.array([[x, y], [x + d * w * 2, y], [x + d * w * 2, y + h * 0.3], [x + d * w * 0.5, y + h * 0.3],
                        [x + d * w * 0.5, y + h], [x, y + h]])
        shapes.append(Shape("metal fixture", pts, _solid(rng, _jitter(rng, (175, 175, 180), 8), 22), t))
    return shapes


def _floor_box(rng, road: Roadway, cls: str, size: tuple[float, float], paint: Callable) -> Shape:
    """A box standing on the floor near one wall (front face plus a sliver of top)."""
    t = rng.uniform(0.05, 0.6)
    s = road.scale(t)
    u = rng.uniform(0.05, 0.3) if rng.random() < 0.5 else rng.uniform(0.7, 0.95)
    x, y = road.floor_point(t, u)
    w, h = road.width * size[0] * s, road.height * size[1] * s
    lean = w * 0.15 * (1 if x < road.vx else -1)
    pts = np.array([[x - w / 2, y], [x + w / 2, y], [x + w / 2, y - h], [x + w / 2 + lean, y - h * 1.1],
                    [x - w / 2 + lean, y - h * 1.1], [x - w / 2, y - h]])
    return Shape(cls, pts, paint, t)


def _container(rng, road):
    blue = _jitter(rng, (30, 65, 175), 12)
    paint = _stripes(rng, blue, blue * 0.55, period=road.width * 0.02, angle=0.0, duty=0.8)
    return [_floor_box(rng, road, "container", (0.15, 0.2), paint)]


def _tools(rng, road):
    wood = _jitter(rng, (145, 100, 55), 12)
    paint = _stripes(rng, wood, wood * 0.7, period=road.height * 0.012, angle=np.pi / 2 + 0.1, duty=0.6)
    return [_floor_box(rng, road, "tools & materials", (0.22, 0.09), paint)]


def _electrical(rng, road):
    box = _floor_box(rng, road, "electrical equipment", (0.12, 0.18), None)
    cx, cy = box.points[:, 0].mean(), box.points[:, 1].mean()
    r = (box.points[:, 0].max() - box.points[:, 0].min()) * 0.28
    body, dial = _jitter(rng, (140, 130, 70), 10), np.array([40, 40, 35], np.float32)

    def paint(Y, X):
        ring = np.hypot(X - cx, Y - cy) < r  # the big dial of an explosion-proof switch
        return np.where(ring[..., None], dial, body).astype(np.float32)

    box.paint = paint
    return [box]


def _electronic(rng, road):
    box = _floor_box(rng, road, "electronic equipment", (0.11, 0.14), None)
    pitch = max((box.points[:, 0].max() - box.points[:, 0].min()) / 6, 2.0)
    led = _jitter(rng, [(60, 240, 90), (240, 60, 40)][int(rng.integers(2))], 6)
    body = np.array([32, 33, 38], np.float32)

    def paint(Y, X):
        dots = ((X % pitch) < pitch * 0.35) & ((Y % pitch) < pitch * 0.35)
        return np.where(dots[..., None], led, body).astype(np.float32)

    box.paint = paint
    box.emissive = True
    return [box]


def _mining(rng, road):
    t = rng.uniform(0.1, 0.55)
    s = road.scale(t)
    x, y = road.floor_point(t, rng.uniform(0.35, 0.65))
    w, h = road.width * 0.45 * s, road.height * 0.3 * s
    pts = np.array([[x - w / 2, y], [x + w / 2, y], [x + w / 2, y - h * 0.6], [x + w * 0.1, y - h * 0.6],
                    [x + w * 0.05, y - h], [x - w * 0.35, y - h], [x - w * 0.4, y - h * 0.6], [x - w / 2, y - h * 0.6]])
    yellow = _jitter(rng, (225, 185, 20), 10)
    paint = _stripes(rng, yellow, np.array([25, 25, 25], np.float32), period=h * 0.35, angle=np.pi / 4, duty=0.7)
    return [Shape("mining equipment", pts, paint, t)]


def _anchoring(rng, road):
    shapes = []
    rust, nut = _jitter(rng, (155, 80, 35), 10), np.array([30, 25, 20], np.float32)
    for t in rng.uniform(0.05, 0.75, int(rng.integers(3, 8))):
        s = road.scale(t)
        x, y = road.roof_point(t, rng.uniform(0.15, 0.85))
        y += road.height * rng.uniform(0.02, 0.1) * s
        a = max(road.width * 0.025 * s, 2.0)

        def paint(Y, X, x=x, y=y, a=a):
            return np.where((np.hypot(X - x, Y - y) < a * 0.35)[..., None], nut, rust).astype(np.float32)

        shapes.append(Shape("anchoring equipment", _rect(x - a, y - a, x + a, y + a), paint, t))
    return shapes


def _support(rng, road):
    shapes = []
    red = _jitter(rng, (140, 22, 30), 10)
    for t in np.sort(rng.uniform(0.0, 0.8, int(rng.integers(2, 5)))):
        s = road.scale(t)
        for side in (-1, 1):
            x, top = road.wall_point(side, t, 0.02)
            _, bottom = road.wall_point(side, t, 0.98)
            x += side * -road.width * 0.04 * s
            w = road.width * 0.018 * s

            def paint(Y, X, x=x, w=w):
                u = np.clip(np.abs(X - x) / max(w, 1.0), 0, 1)  # chrome ram down the middle
                return red * (0.6 + 0.9 * np.exp(-(u / 0.3) ** 2))[..., None]

            shapes.append(Shape("support equipment", _rect(x - w, top, x + w, bottom), paint, t))
    return shapes


def _rescue(rng, road):
    box = _floor_box(rng, road, "rescue equipment", (0.1, 0.13), None)
    xs, ys = box.points[:, 0], box.points[:, 1]
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    arm = (xs.max() - xs.min()) * 0.3
    white, red = np.array([228, 228, 225], np.float32), _jitter(rng, (215, 25, 25), 6)

    def paint(Y, X):
        cross = ((np.abs(X - cx) < arm * 0.3) & (np.abs(Y - cy) < arm)) | ((np.abs(Y - cy) < arm * 0.3) & (np.abs(X - cx) < arm))
        return np.where(cross[..., None], red, white).astype(np.float32)

    box.paint = paint
    return [box]


def _door(rng, road):
    t = rng.uniform(0.45, 0.8)
    left, top, right, bottom = road.section(t)
    panel = _jitter(rng, (70, 100, 85), 10)
    paint = _stripes(rng, panel, panel * 0.65, period=(bottom - top) * 0.08, angle=np.pi / 2, duty=0.8)
    return [Shape("door", _rect(left, top, right, bottom), paint, t)]


def _rail(rng, road):
    t1 = 0.97
    u0, u1 = rng.uniform(0.15, 0.3), rng.uniform(0.7, 0.85)
    (ax, ay), (bx, _) = road.floor_point(0.0, u0), road.floor_point(0.0, u1)
    (cx, cy), (dx, _) = road.floor_point(t1, u0), road.floor_point(t1, u1)
    ballast = _jitter(rng, (95, 90, 85), 8)
    sleeper, steel = np.array([90, 60, 35], np.float32), np.array([200, 200, 205], np.float32)
    vy = road.vy
    seed = int(rng.integers(2**31))

    def paint(Y, X):
        f = np.clip((ay - Y) / max(ay - cy, 1.0), 0, 1)
        lx, rx = ax + (cx - ax) * f, bx + (dx - bx) * f
        u = (X - lx) / np.maximum(rx - lx, 1.0)
        z = 1.0 / np.maximum(Y - vy, 1.0)  # perspective: sleepers get denser with distance
        sleepers = ((z * road.height * 1.5) % 1.0) < 0.35
        rails = (np.abs(u - 0.25) < 0.03) | (np.abs(u - 0.75) < 0.03)
        out = np.where(sleepers[..., None], sleeper, ballast)
        out = np.where(rails[..., None], steel, out).astype(np.float32)
        return out + 10 * np.random.default_rng(seed).standard_normal(Y.shape, dtype=np.float32)[..., None]

    return [Shape("rail area", np.array([[ax, ay], [bx, ay], [dx, cy], [cx, cy]]), paint, 0.5)]


GENERATORS: dict[str, Callable[[np.random.Generator, Roadway], list[Shape]]] = {
    "rail area": _rail, "door": _door, "tools & materials": _tools, "container": _container,
    "mining equipment": _mining, "electrical equipment": _electrical, "electronic equipment": _electronic,
    "rescue equipment": _rescue, "support equipment": _support, "tube": _tube,
    "metal fixture": _metal_fixture, "cable": _cable, "anchoring equipment": _anchoring,
    "indicator": _indicator, "person": _person,
}
assert list(GENERATORS) == list(CLASS_PRESENCE)


# --------------------------------------------------------------------------- scenes


@dataclass
class MineStyle:
    rock: np.ndarray  # rock tint, RGB
    light: float  # lamp strength
    ambient: float


def mine_style(seed: int, mine: int) -> MineStyle:
    rng = np.random.default_rng([seed, 7, mine])
    base = [(105, 98, 90), (80, 80, 82), (118, 104, 84), (92, 88, 100), (70, 66, 60), (135, 118, 80)][(mine - 1) % 6]
    return MineStyle(_jitter(rng, base, 8), rng.uniform(0.5, 0.8), rng.uniform(0.15, 0.28))


@dataclass
class Scene:
    image: np.ndarray  # uint8 RGB [H, W, 3]
    shapes: list[dict] = field(default_factory=list)  # Labelme shapes, draw order
    label: np.ndarray | None = None  # uint8 [H, W]
    depth: np.ndarray | None = None  # uint16 [H, W]


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


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
    road = Roadway(width, height, width * layout_rng.uniform(0.42, 0.58), height * layout_rng.uniform(0.36, 0.48),
                   width * layout_rng.uniform(0.08, 0.14), height * layout_rng.uniform(0.07, 0.11))
    present = [c for c, p in CLASS_PRESENCE.items() if layout_rng.random() < p or c == featured]
    objects = [(c, GENERATORS[c](layout_rng, road)) for c in present]

    shift = frame_rng.normal(0, 0.02, 2) * (width, height)
    road.vx += shift[0]
    road.vy += shift[1]
    shapes: list[Shape] = []
    if not all_background:
        for cls, obj in objects:
            if frame_rng.random() < FRAME_DROPOUT and cls != featured:
                continue
            for s in obj:
                pts = np.round(s.points + shift)
                pts[:, 0] = np.clip(pts[:, 0], 0, width - 1)
                pts[:, 1] = np.clip(pts[:, 1], 0, height - 1)
                if _polygon_area(pts) >= 2.0:
                    s.points = pts
                    shapes.append(s)

    Y, X = np.mgrid[0:height, 0:width].astype(np.float32)
    image, depth = _paint_roadway(frame_rng, road, style, Y, X)

    # Ownership map: which shape each pixel shows (0 = none), by Labelme's draw order.
    labelme = [
        {"label": class_map.name(class_map.id_of(s.cls)), "points": s.points.tolist(), "group_id": None,
         "description": "", "shape_type": "polygon", "flags": {}}
        for s in shapes
    ]
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
        # Paint functions work in layout coordinates: undo the camera shake.
        patch = s.paint(Y[y0:y1, x0:x1] - shift[1], X[y0:y1, x0:x1] - shift[0])
        image[y0:y1, x0:x1][sub] = patch[sub]
        z = 1500.0 / road.scale(s.depth_t)
        depth[y0:y1, x0:x1][sub] = z
        if s.emissive:
            lamps[y0:y1, x0:x1] |= sub

    # Cap-lamp light: a soft spot near the vanishing point over a dim ambient level.
    cx, cy = road.vx + frame_rng.normal(0, 0.05) * width, road.vy + frame_rng.normal(0, 0.05) * height
    sigma = frame_rng.uniform(0.35, 0.6) * max(width, height)
    spot = np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * sigma**2))
    light = (style.ambient + style.light * frame_rng.uniform(0.6, 1.0) * spot)
    light = np.where(lamps, np.maximum(light, 0.95), light)
    image = image * light[..., None] + 3.0 * frame_rng.standard_normal((height, width, 1), dtype=np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)

    # Depth sensor: ~1% noise, dropouts at random pixels and beyond 15 m.
    depth *= 1.0 + 0.01 * frame_rng.standard_normal(depth.shape, dtype=np.float32)
    depth[(depth > 15000) | (frame_rng.random(depth.shape, dtype=np.float32) < 0.015)] = 0
    return Scene(image, labelme, class_of[owner], np.clip(depth, 0, 65535).astype(np.uint16))


def _paint_roadway(rng, road: Roadway, style: MineStyle, Y: np.ndarray, X: np.ndarray):
    """Rock surfaces (floor darker, roof lighter, dark far end) and their depth in mm."""
    h, w = Y.shape
    l, t, r, b = road.vx - road.fw, road.vy - road.fh, road.vx + road.fw, road.vy + road.fh
    # Depth parameter of each surface point (0 at the image border, 1 at the far section).
    t_floor = (h - Y) / max(h - b, 1.0)
    t_roof = Y / max(t, 1.0)
    t_left = X / max(l, 1.0)
    t_right = (w - X) / max(w - r, 1.0)
    # The nearest surface along each view ray is the one with the smallest depth parameter.
    tt, surface = t_floor, np.zeros(Y.shape, np.uint8)
    for k, t_k in enumerate((t_roof, t_left, t_right), start=1):
        nearer = t_k < tt
        tt = np.where(nearer, t_k, tt)
        surface[nearer] = k
    tt = np.clip(tt, 0, 1)
    far = (X > l) & (X < r) & (Y > t) & (Y < b)
    gain = np.array([0.7, 1.1, 1.0, 0.95], np.float32)[surface]
    image = _rock(rng, h, w, style.rock) * gain[..., None]
    image[far] *= 0.15
    depth = 1500.0 / (1.0 - tt * (1.0 - 2.0 * road.fw / road.width))
    depth[far] = 0
    return image.astype(np.float32), depth.astype(np.float32)


# --------------------------------------------------------------------------- files


def voc_palette() -> np.ndarray:
    """Labelme's colour map (PASCAL VOC's): uint8 [256, 3] RGB."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def make_ids(cfg: SynthConfig) -> list[tuple[int, int, str]]:
    """(mine, capture group, id) for every image, in MUSeg's id format."""
    rng = np.random.default_rng([cfg.seed, 1])
    per_mine = [cfg.images // cfg.mines + (1 if m < cfg.images % cfg.mines else 0) for m in range(cfg.mines)]
    out = []
    for m, n in enumerate(per_mine, start=1):
        frame, group = 0, 0
        while frame < n:
            group += 1
            size = min(int(rng.integers(2, 7)), n - frame)
            day, hour, minute = int(rng.integers(1, 29)), int(rng.integers(7, 20)), int(rng.integers(60))
            for k in range(size):
                frame += 1
                stamp = f"2405{day:02d}{hour:02d}{minute:02d}{(k * 7) % 60:02d}"
                out.append((m, group, f"{m:02d}-01-{group:02d}-{frame:04d}-{stamp}-08-99"))
    return out


def _zip_bytes(files: dict[str, str]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, text.encode("utf-8"))
    return buf.getvalue()


def _write(path: Path, ext: str, array: np.ndarray, params: list[int] | None = None) -> None:
    ok, buf = cv2.imencode(ext, array, params or [])
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def write_dataset(out: str | Path, cfg: SynthConfig = SynthConfig(), progress: bool = True) -> dict:
    """Write ``cfg.images`` scenes under ``out`` in the raw MUSeg layout; returns a
    summary (ids per split, images per mine, all-background ids)."""
    from tqdm import tqdm

    out = Path(out)
    class_map = cfg.class_map
    ids = make_ids(cfg)
    bg_rng = np.random.default_rng([cfg.seed, 2])
    background = bg_rng.random(len(ids)) < BACKGROUND_SHARE
    if len(ids) >= 8 and not background.any():
        background[int(bg_rng.integers(len(ids)))] = True
    palette = voc_palette()
    for m in range(1, cfg.mines + 1):
        for sub in ("Image", "Depth", "Label"):
            (out / f"{m:02d}-Mine" / sub).mkdir(parents=True, exist_ok=True)

    # Each capture group features one class in turn, so that every class shows up
    # once there are 15 groups, whatever the random presence draws.
    group_index = {key: i for i, key in enumerate(dict.fromkeys((m, g) for m, g, _ in ids))}
    classes = list(CLASS_PRESENCE)
    for (mine, group, image_id), all_bg in tqdm(list(zip(ids, background)), desc="synthesising", unit="img",
                                                disable=not progress):
        frame = int(image_id.split("-")[3])
        scene = render_scene(
            np.random.default_rng([cfg.seed, 3, mine, group]), np.random.default_rng([cfg.seed, 4, mine, frame]),
            cfg.width, cfg.height, mine_style(cfg.seed, mine), class_map, bool(all_bg),
            featured=classes[group_index[mine, group] % len(classes)],
        )
        mdir = out / f"{mine:02d}-Mine"
        _write(mdir / "Image" / f"{image_id}.jpg", ".jpg", scene.image[..., ::-1],
               [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        _write(mdir / "Depth" / f"{image_id}.png", ".png", scene.depth)
        _write(mdir / "Label" / f"{image_id}_label.png", ".png", scene.label)
        _write(mdir / "Label" / f"{image_id}_color.png", ".png", palette[scene.label][..., ::-1])
        labelme = {
            "version": "5.2.1", "flags": {}, "shapes": scene.shapes, "imagePath": f"../Image/{image_id}.jpg",
            "imageData": None, "imageHeight": cfg.height, "imageWidth": cfg.width,
        }
        (mdir / "Label" / f"{image_id}_polygons.json").write_text(json.dumps(labelme, indent=2), encoding="utf-8")

    records = [museg.ImageRecord(i, f"{m:02d}", Path(), Path(), Path()) for m, _, i in ids]
    split = museg.group_split(records, cfg.val_fraction, cfg.seed)
    texts = {f"{name}.txt": "".join(f"{r.image_id}\n" for r in split[name]) for name in museg.SPLIT_NAMES}
    (out / "Experiment").mkdir(parents=True, exist_ok=True)
    (out / "Experiment" / "DatasetSplit.zip").write_bytes(_zip_bytes(texts))
    return {
        "root": str(out),
        "images": len(ids),
        "class_order": cfg.class_order.upper(),
        "per_mine": {f"{m:02d}": sum(1 for mm, _, _ in ids if mm == m) for m in range(1, cfg.mines + 1)},
        "split": {name: [r.image_id for r in split[name]] for name in museg.SPLIT_NAMES},
        "all_background": [i for (_, _, i), bg in zip(ids, background) if bg],
    }
