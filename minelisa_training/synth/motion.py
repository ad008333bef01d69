"""Camera and object motion of synthetic sequences: poses over time and moved shapes.

A sequence is one capture group's layout (``scene.group_layout``: roadway and objects,
frame 0) seen by a camera driving along the roadway, while a person walks and cables
swing. Geometry (the pinhole camera of ``camera``): a point shown at (x0, y0) at depth
Z in frame 0 (vanishing point (vx, vy), focal length f) that has moved by (ox, oy, oz)
metres (right, down, away along the roadway) while the camera moved by (a, b, d) and
turned by (sx, sy) pixels shows at

    x = vx + sx + ((x0 - vx) Z + f (ox - a)) / (Z + oz - d)      (y alike, with oy - b)

Driving forward expands the image about the vanishing point, near things faster;
sway shifts near things more than far ones; a turn (yaw) shifts everything. Paint
functions read frame-0 coordinates, so each pixel is mapped back (``unproject``) at
its depth. The roadway's outline is an infinite straight tunnel, the same from every
point along it: only the turn moves it (its rock texture shows the sway too; the
outline ignores those few centimetres).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .geometry import Roadway, Shape, polygon_area
from .scene import roadway_surfaces

MIN_DEPTH_M = 0.5  # an object nearer than this has passed the camera: it is left out


@dataclass(frozen=True)
class Pose:
    """Where the camera is at one time, relative to frame 0.

    Attributes:
        offset_m: (right, down, forward along the roadway) metres moved.
        shift_px: (x, y) image shift of the turn (yaw, pitch), pixels.
    """

    offset_m: tuple[float, float, float]
    shift_px: tuple[float, float]


@dataclass(frozen=True)
class CameraPath:
    """A robot's camera driving along the roadway: steady speed, side-to-side sway with a
    bob at twice its rate, and a slow turn."""

    speed_m_s: float
    sway_m: float
    sway_hz: float
    phase: float
    turn_rad_s: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> CameraPath:
        """A walking-pace path: 0.4-1.0 m/s, sway 2-6 cm at 0.6-1.2 Hz, turn up to 4 deg/s."""
        return cls(
            speed_m_s=rng.uniform(0.4, 1.0),
            sway_m=rng.uniform(0.02, 0.06),
            sway_hz=rng.uniform(0.6, 1.2),
            phase=rng.uniform(0, 2 * math.pi),
            turn_rad_s=math.radians(rng.uniform(-4.0, 4.0)),
        )

    def pose(self, t: float, focal: float) -> Pose:
        """The pose ``t`` seconds after frame 0 for a camera of focal length ``focal`` px."""
        w = 2 * math.pi * self.sway_hz * t + self.phase
        sway = self.sway_m * (math.sin(w) - math.sin(self.phase))
        bob = 0.25 * self.sway_m * (math.sin(2 * w) - math.sin(2 * self.phase))
        return Pose((sway, bob, self.speed_m_s * t), (focal * math.tan(self.turn_rad_s * t), 0.0))


@dataclass(frozen=True)
class Motion:
    """An object's own motion: metres (right, down, away) at time t =
    ``velocity * t + swing * (sin(2 pi hz t + phase) - sin(phase))``."""

    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    swing: tuple[float, float, float] = (0.0, 0.0, 0.0)
    hz: float = 0.0
    phase: float = 0.0

    def offset(self, t: float) -> np.ndarray:
        wave = math.sin(2 * math.pi * self.hz * t + self.phase) - math.sin(self.phase)
        return np.asarray(self.velocity) * t + np.asarray(self.swing) * wave


STILL = Motion()


def draw_motions(
    rng: np.random.Generator, road: Roadway, objects: list[tuple[str, list[Shape]]]
) -> list[Motion]:
    """One motion per shape, in the order of ``objects``: people walk along the roadway
    (legs striding), cables swing off their wall, everything else stays put."""
    motions: list[Motion] = []
    for cls, shapes in objects:
        if cls == "person":
            walk = (rng.uniform(-0.2, 0.2), 0.0, rng.uniform(0.6, 1.4) * rng.choice([-1, 1]))
            stride = rng.uniform(0.8, 1.0)  # Hz
            legs = [Motion(walk, (0.0, 0.0, 0.25), stride, p) for p in (0.0, math.pi)]
            motions += (legs + [Motion(walk)] * len(shapes))[: len(shapes)]
        elif cls == "cable":
            for s in shapes:
                off_wall = 1.0 if s.points[:, 0].mean() < road.vx else -1.0
                amp = rng.uniform(0.05, 0.15)
                swing = (off_wall * amp, 0.3 * amp, 0.0)
                motions.append(
                    Motion(swing=swing, hz=rng.uniform(0.4, 0.9), phase=rng.uniform(0, 6))
                )
        else:
            motions += [STILL] * len(shapes)
    return motions


def vertex_depths(road: Roadway, shape: Shape) -> np.ndarray:
    """Frame-0 depth (metres) of each vertex: the shape's own depth, or for a shape on
    the roadway's surface (cable, pipe, rail) the surface's depth there."""
    if shape.depth_t is not None:
        return np.full(len(shape.points), road.depth_m(shape.depth_t))
    x, y = shape.points[:, 0], shape.points[:, 1]
    tt, _, far = roadway_surfaces(road, y, x)
    depth = road.near_m / (1.0 - tt * (1.0 - 2.0 * road.fw / road.width))
    return np.where(far, road.depth_m(1.0), depth)


def project(
    road0: Roadway, pose: Pose, points: np.ndarray, depth: np.ndarray, rel: np.ndarray
) -> np.ndarray:
    """Frame positions of frame-0 ``points`` [N, 2] at ``depth`` [N] metres, moved by
    ``rel`` (the object's offset minus the camera's, metres)."""
    z = np.maximum(depth + rel[2], MIN_DEPTH_M)
    x = road0.vx + pose.shift_px[0] + ((points[:, 0] - road0.vx) * depth + road0.focal * rel[0]) / z
    y = road0.vy + pose.shift_px[1] + ((points[:, 1] - road0.vy) * depth + road0.focal * rel[1]) / z
    return np.stack([x, y], axis=1)


def unproject(
    road0: Roadway,
    pose: Pose,
    Y: np.ndarray,
    X: np.ndarray,
    z: np.ndarray | float,
    rel: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-0 coordinates (Y, X) of frame pixels (Y, X) at frame depth ``z`` metres, for
    a point moved by ``rel``: the inverse of ``project``."""
    depth0 = np.maximum(z - rel[2], 0.1)
    x0 = road0.vx + ((X - road0.vx - pose.shift_px[0]) * z - road0.focal * rel[0]) / depth0
    y0 = road0.vy + ((Y - road0.vy - pose.shift_px[1]) * z - road0.focal * rel[1]) / depth0
    return y0, x0


def move_shape(
    road0: Roadway, road: Roadway, pose: Pose, shape: Shape, depth: np.ndarray, rel: np.ndarray
) -> Shape | None:
    """``shape`` as the frame of ``pose`` shows it (clipped to the image; ``road`` is that
    frame's roadway), or None when it is out of view or has passed the camera."""
    if shape.depth_t is not None and depth[0] + rel[2] < MIN_DEPTH_M:
        return None
    pts = np.round(project(road0, pose, shape.points, depth, rel))
    pts[:, 0] = np.clip(pts[:, 0], 0, road.width - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, road.height - 1)
    if polygon_area(pts) < 2.0:
        return None
    depth_t = None if shape.depth_t is None else road.t_at_depth(float(depth[0] + rel[2]))
    return dataclasses.replace(shape, points=pts, depth_t=depth_t)
