"""Roadway perspective and polygon shapes of the synthetic scenes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# A paint function: RGB float patch [h, w, 3] from coordinate grids Y, X [h, w].
Paint = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Shape:
    """One Labelme polygon with its paint function (RGB float patch from coordinate grids)."""

    cls: str  # order-A class name
    points: np.ndarray  # [N, 2] float x, y
    paint: Paint
    # 0 = the near cross-section, 1 = the far one; None: the shape lies on the roadway's
    # surface (cable, pipe, rail) and has the surface's depth at each pixel.
    depth_t: float | None
    emissive: bool = False  # lamps and signs keep their brightness in the dark


@dataclass
class Roadway:
    """Perspective frame of the roadway: near cross-section = image border, far
    cross-section = rectangle around the vanishing point, with the image's aspect
    ratio (``fw / width == fh / height``), so that every cross-section is the image
    rectangle scaled by ``scale(t)``: a pinhole view (see ``camera``)."""

    width: int
    height: int
    vx: float
    vy: float
    fw: float  # far half-width
    fh: float  # far half-height
    focal: float = 1.0  # the camera's focal length in pixels
    near_m: float = 1.0  # depth of the near cross-section

    def scale(self, t: float) -> float:
        return 1.0 - t * (1.0 - 2.0 * self.fw / self.width)

    def depth_m(self, t: float) -> float:
        """Depth of the cross-section at ``t``, metres."""
        return self.near_m / self.scale(t)

    def t_at_depth(self, depth_m: float) -> float:
        """The depth parameter of the cross-section ``depth_m`` metres away (inverse of
        ``depth_m``; below 0 nearer than the near cross-section)."""
        return (1.0 - self.near_m / depth_m) / (1.0 - 2.0 * self.fw / self.width)

    def px(self, metres: float, t: float) -> float:
        """Image size in pixels of ``metres`` facing the camera at depth ``t``."""
        return metres * self.focal / self.depth_m(t)

    def section(self, t: float) -> tuple[float, float, float, float]:
        """left, top, right, bottom of the cross-section at depth t."""
        lerp = lambda a, b: a + (b - a) * t  # noqa: E731
        return (
            lerp(0, self.vx - self.fw),
            lerp(0, self.vy - self.fh),
            lerp(self.width, self.vx + self.fw),
            lerp(self.height, self.vy + self.fh),
        )

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


def circle(cx: float, cy: float, r: float, n: int = 16) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def thick_polyline(points: np.ndarray, thickness: np.ndarray) -> np.ndarray:
    """Outline polygon of a polyline with per-vertex thickness."""
    d = np.gradient(points, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], axis=1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    off = n * (thickness[:, None] / 2.0)
    return np.concatenate([points + off, (points - off)[::-1]], axis=0)


def polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
