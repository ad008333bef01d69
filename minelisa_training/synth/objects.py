"""The 15 object painters: each returns the Labelme shapes of one MUSeg class in a roadway.

Every class has its own colour/texture/shape family (orange hi-vis person, thin dark
cables, shaded pipes, glowing signs, yellow machines with hazard stripes, rails with
sleepers, ...) so that a tiny model can learn them, with enough variation (colour
jitter, size, position) that it has to.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .camera import PERSON_HEIGHT_M
from .geometry import Paint, Roadway, Shape, circle, rect, thick_polyline
from .paint import jitter, solid, stripes

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


def _person(rng, road: Roadway) -> list[Shape]:
    t = rng.uniform(0.05, 0.6)
    x, y = road.floor_point(t, rng.uniform(0.25, 0.75))
    hgt = road.px(PERSON_HEIGHT_M * rng.uniform(0.85, 1.1), t)
    wid = hgt * 0.3
    vest = stripes(
        rng,
        jitter(rng, (235, 120, 15), 12),
        np.array([205, 205, 200], np.float32),
        period=hgt * 0.18,
        angle=np.pi / 2,
        duty=0.75,
    )
    legs = solid(rng, jitter(rng, (35, 45, 80), 8), 5)
    helmet = solid(rng, jitter(rng, (235, 215, 40), 10), 5)
    top = y - hgt
    return [
        Shape("person", rect(x - wid * 0.3, y - hgt * 0.45, x - wid * 0.05, y), legs, t),
        Shape("person", rect(x + wid * 0.05, y - hgt * 0.45, x + wid * 0.3, y), legs, t),
        Shape(
            "person",
            np.array(
                [
                    [x - wid / 2, top + hgt * 0.2],
                    [x + wid / 2, top + hgt * 0.2],
                    [x + wid * 0.4, y - hgt * 0.42],
                    [x - wid * 0.4, y - hgt * 0.42],
                ]
            ),
            vest,
            t,
        ),
        Shape("person", circle(x, top + hgt * 0.1, hgt * 0.1), helmet, t),
    ]


def _cable(rng, road: Roadway) -> list[Shape]:
    shapes = []
    side = int(rng.choice([-1, 1]))
    base_v = rng.uniform(0.12, 0.45)
    colour = jitter(rng, [(25, 25, 28), (110, 20, 20), (25, 35, 95)][int(rng.integers(3))], 8)
    for k in range(int(rng.integers(1, 4))):
        ts = np.linspace(0.0, rng.uniform(0.6, 0.95), 24)
        v = base_v + 0.05 * k + 0.06 * np.sin(ts * rng.uniform(6, 14) + rng.uniform(0, 6)) ** 2
        pts = np.array([road.wall_point(side, t, vv) for t, vv in zip(ts, v)])
        thick = np.maximum(road.height * 0.008 * np.array([road.scale(t) for t in ts]), 1.0)
        shapes.append(Shape("cable", thick_polyline(pts, thick), solid(rng, colour, 6), None))
    return shapes


def _tube(rng, road: Roadway) -> list[Shape]:
    side = int(rng.choice([-1, 1]))
    v = rng.uniform(0.08, 0.3)
    t1 = rng.uniform(0.7, 0.98)
    (x0, y0), (x1, y1) = road.wall_point(side, 0.0, v), road.wall_point(side, t1, v)
    r0 = road.height * 0.065 * rng.uniform(0.7, 1.3)
    r1 = r0 * road.scale(t1)
    base = jitter(rng, [(95, 115, 150), (150, 150, 155)][int(rng.integers(2))], 10)

    def paint(Y, X):
        f = np.clip((X - x0) / (x1 - x0 if x1 != x0 else 1.0), 0, 1)
        yc, r = y0 + (y1 - y0) * f, r0 + (r1 - r0) * f
        u = np.clip((Y - yc) / np.maximum(r, 1.0), -1, 1)
        return base * (0.45 + 0.75 * (1 - u**2))[..., None]  # cylinder highlight along the axis

    pts = np.array([[x0, y0 - r0], [x1, y1 - r1], [x1, y1 + r1], [x0, y0 + r0]])
    return [Shape("tube", pts, paint, None)]


def _indicator(rng, road: Roadway) -> list[Shape]:
    shapes = []
    for _ in range(int(rng.integers(1, 3))):
        t = rng.uniform(0.05, 0.7)
        s = road.scale(t)
        x, y = road.wall_point(int(rng.choice([-1, 1])), t, rng.uniform(0.25, 0.5))
        x += rng.uniform(0.03, 0.15) * road.width * s * (1 if x < road.vx else -1)
        if rng.random() < 0.6:  # sign: coloured panel, white border and bar
            w, h = road.width * 0.08 * s, road.height * 0.06 * s
            inner = jitter(rng, [(20, 175, 60), (30, 80, 210)][int(rng.integers(2))], 10)
            white = np.array([245, 245, 240], np.float32)

            def paint(Y, X, x=x, y=y, w=w, h=h, inner=inner, white=white):
                dx, dy = np.abs(X - x) / (w / 2), np.abs(Y - y) / (h / 2)
                border = (dx > 0.8) | (dy > 0.7) | ((dy < 0.2) & (dx < 0.5))
                return np.where(border[..., None], white, inner).astype(np.float32)

            panel = rect(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
            shapes.append(Shape("indicator", panel, paint, t, True))
        else:  # lamp
            colour = jitter(rng, [(240, 40, 30), (60, 240, 80)][int(rng.integers(2))], 8)
            r = max(road.height * 0.02 * s, 1.5)
            shapes.append(Shape("indicator", circle(x, y, r, 12), solid(rng, colour, 3), t, True))
    return shapes


def _metal_fixture(rng, road: Roadway) -> list[Shape]:
    side = int(rng.choice([-1, 1]))
    shapes = []
    for t in np.sort(rng.uniform(0.05, 0.8, int(rng.integers(2, 5)))):
        s = road.scale(t)
        x, y = road.wall_point(side, t, rng.uniform(0.1, 0.35))
        w, h = road.width * 0.035 * s, road.height * 0.08 * s
        d = 1 if side < 0 else -1  # bracket sticks out of the wall
        pts = np.array(
            [
                [x, y],
                [x + d * w * 2, y],
                [x + d * w * 2, y + h * 0.3],
                [x + d * w * 0.5, y + h * 0.3],
                [x + d * w * 0.5, y + h],
                [x, y + h],
            ]
        )
        steel = solid(rng, jitter(rng, (175, 175, 180), 8), 22)
        shapes.append(Shape("metal fixture", pts, steel, t))
    return shapes


def _floor_box(
    rng, road: Roadway, cls: str, size: tuple[float, float], paint: Paint | None
) -> Shape:
    """A box standing on the floor near one wall (front face plus a sliver of top)."""
    t = rng.uniform(0.05, 0.6)
    s = road.scale(t)
    u = rng.uniform(0.05, 0.3) if rng.random() < 0.5 else rng.uniform(0.7, 0.95)
    x, y = road.floor_point(t, u)
    w, h = road.width * size[0] * s, road.height * size[1] * s
    lean = w * 0.15 * (1 if x < road.vx else -1)
    pts = np.array(
        [
            [x - w / 2, y],
            [x + w / 2, y],
            [x + w / 2, y - h],
            [x + w / 2 + lean, y - h * 1.1],
            [x - w / 2 + lean, y - h * 1.1],
            [x - w / 2, y - h],
        ]
    )
    return Shape(cls, pts, paint, t)


def _container(rng, road):
    blue = jitter(rng, (30, 65, 175), 12)
    paint = stripes(rng, blue, blue * 0.55, period=road.width * 0.02, angle=0.0, duty=0.8)
    return [_floor_box(rng, road, "container", (0.15, 0.2), paint)]


def _tools(rng, road):
    wood = jitter(rng, (145, 100, 55), 12)
    paint = stripes(
        rng, wood, wood * 0.7, period=road.height * 0.012, angle=np.pi / 2 + 0.1, duty=0.6
    )
    return [_floor_box(rng, road, "tools & materials", (0.22, 0.09), paint)]


def _electrical(rng, road):
    box = _floor_box(rng, road, "electrical equipment", (0.12, 0.18), None)
    cx, cy = box.points[:, 0].mean(), box.points[:, 1].mean()
    r = (box.points[:, 0].max() - box.points[:, 0].min()) * 0.28
    body, dial = jitter(rng, (140, 130, 70), 10), np.array([40, 40, 35], np.float32)

    def paint(Y, X):
        ring = np.hypot(X - cx, Y - cy) < r  # the big dial of an explosion-proof switch
        return np.where(ring[..., None], dial, body).astype(np.float32)

    box.paint = paint
    return [box]


def _electronic(rng, road):
    box = _floor_box(rng, road, "electronic equipment", (0.11, 0.14), None)
    pitch = max((box.points[:, 0].max() - box.points[:, 0].min()) / 6, 2.0)
    led = jitter(rng, [(60, 240, 90), (240, 60, 40)][int(rng.integers(2))], 6)
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
    pts = np.array(
        [
            [x - w / 2, y],
            [x + w / 2, y],
            [x + w / 2, y - h * 0.6],
            [x + w * 0.1, y - h * 0.6],
            [x + w * 0.05, y - h],
            [x - w * 0.35, y - h],
            [x - w * 0.4, y - h * 0.6],
            [x - w / 2, y - h * 0.6],
        ]
    )
    yellow = jitter(rng, (225, 185, 20), 10)
    black = np.array([25, 25, 25], np.float32)
    paint = stripes(rng, yellow, black, period=h * 0.35, angle=np.pi / 4, duty=0.7)
    return [Shape("mining equipment", pts, paint, t)]


def _anchoring(rng, road):
    shapes = []
    rust, nut = jitter(rng, (155, 80, 35), 10), np.array([30, 25, 20], np.float32)
    for t in rng.uniform(0.05, 0.75, int(rng.integers(3, 8))):
        s = road.scale(t)
        x, y = road.roof_point(t, rng.uniform(0.15, 0.85))
        y += road.height * rng.uniform(0.02, 0.1) * s
        a = max(road.width * 0.025 * s, 2.0)

        def paint(Y, X, x=x, y=y, a=a):
            bolt = np.hypot(X - x, Y - y) < a * 0.35
            return np.where(bolt[..., None], nut, rust).astype(np.float32)

        shapes.append(Shape("anchoring equipment", rect(x - a, y - a, x + a, y + a), paint, t))
    return shapes


def _support(rng, road):
    shapes = []
    red = jitter(rng, (140, 22, 30), 10)
    for t in np.sort(rng.uniform(0.0, 0.8, int(rng.integers(2, 5)))):
        s = road.scale(t)
        for side in (-1, 1):
            x, top = road.wall_point(side, t, 0.02)
            _, bottom = road.wall_point(side, t, 0.98)
            x += side * -road.width * 0.04 * s
            w = road.width * 0.018 * s

            def paint(Y, X, x=x, w=w):
                u = np.clip(np.abs(X - x) / max(w, 1.0), 0, 1)  # chrome ram down the middle
                return red * (0.6 + 0.9 * np.exp(-((u / 0.3) ** 2)))[..., None]

            shapes.append(Shape("support equipment", rect(x - w, top, x + w, bottom), paint, t))
    return shapes


def _rescue(rng, road):
    box = _floor_box(rng, road, "rescue equipment", (0.1, 0.13), None)
    xs, ys = box.points[:, 0], box.points[:, 1]
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    arm = (xs.max() - xs.min()) * 0.3
    white, red = np.array([228, 228, 225], np.float32), jitter(rng, (215, 25, 25), 6)

    def paint(Y, X):
        dx, dy = np.abs(X - cx), np.abs(Y - cy)
        cross = ((dx < arm * 0.3) & (dy < arm)) | ((dy < arm * 0.3) & (dx < arm))
        return np.where(cross[..., None], red, white).astype(np.float32)

    box.paint = paint
    return [box]


def _door(rng, road):
    t = rng.uniform(0.45, 0.8)
    left, top, right, bottom = road.section(t)
    panel = jitter(rng, (70, 100, 85), 10)
    paint = stripes(
        rng, panel, panel * 0.65, period=(bottom - top) * 0.08, angle=np.pi / 2, duty=0.8
    )
    return [Shape("door", rect(left, top, right, bottom), paint, t)]


def _rail(rng, road):
    t1 = 0.97
    u0, u1 = rng.uniform(0.15, 0.3), rng.uniform(0.7, 0.85)
    (ax, ay), (bx, _) = road.floor_point(0.0, u0), road.floor_point(0.0, u1)
    (cx, cy), (dx, _) = road.floor_point(t1, u0), road.floor_point(t1, u1)
    ballast = jitter(rng, (95, 90, 85), 8)
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
        grain = np.random.default_rng(seed).standard_normal(Y.shape, dtype=np.float32)
        return out + 10 * grain[..., None]

    return [Shape("rail area", np.array([[ax, ay], [bx, ay], [dx, cy], [cx, cy]]), paint, None)]


GENERATORS: dict[str, Callable[[np.random.Generator, Roadway], list[Shape]]] = {
    "rail area": _rail,
    "door": _door,
    "tools & materials": _tools,
    "container": _container,
    "mining equipment": _mining,
    "electrical equipment": _electrical,
    "electronic equipment": _electronic,
    "rescue equipment": _rescue,
    "support equipment": _support,
    "tube": _tube,
    "metal fixture": _metal_fixture,
    "cable": _cable,
    "anchoring equipment": _anchoring,
    "indicator": _indicator,
    "person": _person,
}
assert list(GENERATORS) == list(CLASS_PRESENCE)
