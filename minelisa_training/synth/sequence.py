"""Short synthetic sequences: a camera driving along a roadway, frame by frame.

Each sequence is one capture group (roadway field ``02`` of the id, so it never
shares a group with the still images, which use ``01``) whose frames are numbered in
time order, ``fps`` frames a second. Its layout comes from ``scene.group_layout`` (a
person and a cable always among the objects, plus one featured class in turn, as the
still images' groups); ``motion`` moves the camera and the objects over time, and the
scene painters of ``scene`` draw every frame. The roadway's rock texture is drawn once
and warped with the camera, the cap lamp's light spot moves with the camera, and the
sensor noise is new every frame. Random streams are keyed by (seed, sequence[,
frame]): the same seed gives the same bytes, and the still images' streams are not
touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import cv2
import numpy as np

from .. import museg
from .config import SynthConfig
from .geometry import Roadway, Shape
from .motion import CameraPath, Motion, Pose, draw_motions, move_shape, unproject, vertex_depths
from .objects import CLASS_PRESENCE
from .paint import rock
from .scene import (
    MineStyle,
    Scene,
    depth_sensor,
    group_layout,
    labelme_shapes,
    light,
    mine_style,
    paint_roadway,
    paint_shapes,
)

SEQUENCE_ROADWAY = 2  # the id's roadway field of sequence frames (still images: 1)
MOVING_CLASSES = ("person", "cable")  # always in a sequence, and moving


@dataclass(frozen=True)
class SequenceLayout:
    """What every frame of one sequence shares: frame 0's roadway and shapes, how each
    shape and the camera move, the rock texture and the lamp."""

    road: Roadway
    shapes: list[Shape]
    motions: list[Motion]
    depths: list[np.ndarray]  # frame-0 depth (metres) of each shape's vertices
    path: CameraPath
    texture: np.ndarray  # float RGB [H, W, 3] rock, in frame-0 coordinates
    lamp_seed: int


def sequence_layout(cfg: SynthConfig, index: int, featured: str | None) -> SequenceLayout:
    """The layout of sequence ``index`` (0-based) of the dataset ``cfg`` describes."""
    rng = np.random.default_rng([cfg.seed, 10, index])
    required = (*MOVING_CLASSES, featured) if featured else MOVING_CLASSES
    road, objects = group_layout(rng, cfg.width, cfg.height, required)
    motions = draw_motions(np.random.default_rng([cfg.seed, 11, index]), road, objects)
    shapes = [s for _, obj in objects for s in obj]
    looks = np.random.default_rng([cfg.seed, 12, index])
    return SequenceLayout(
        road=road,
        shapes=shapes,
        motions=motions,
        depths=[vertex_depths(road, s) for s in shapes],
        path=CameraPath.draw(looks),
        texture=rock(looks, cfg.height, cfg.width, np.ones(3, np.float32)),
        lamp_seed=int(looks.integers(2**31)),
    )


def render_frame(
    seq: SequenceLayout,
    t: float,
    rng: np.random.Generator,
    style: MineStyle,
    class_map: museg.ClassMap,
) -> Scene:
    """The frame ``t`` seconds into the sequence; ``rng`` gives its sensor noise."""
    road0 = seq.road
    pose = seq.path.pose(t, road0.focal)
    road = dataclasses.replace(
        road0, vx=road0.vx + pose.shift_px[0], vy=road0.vy + pose.shift_px[1]
    )
    Y, X = np.mgrid[0 : road.height, 0 : road.width].astype(np.float32)
    camera = np.asarray(pose.offset_m)
    far_m = road.depth_m(1.0)

    def surface_m(depth_mm: np.ndarray) -> np.ndarray:
        return np.where(depth_mm > 0, depth_mm / 1000.0, far_m)

    def texture(depth_mm: np.ndarray) -> np.ndarray:
        y0, x0 = unproject(road0, pose, Y, X, surface_m(depth_mm), -camera)
        warped = cv2.remap(
            seq.texture,
            x0.astype(np.float32),
            y0.astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )
        return warped * style.rock

    image, depth = paint_roadway(rng, road, style, Y, X, texture)
    z_surface = surface_m(depth)
    shapes, placed = _moved_shapes(seq, road, pose, t, camera)
    labelme = labelme_shapes(shapes, class_map)

    def to_layout(k: int, window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        rel, z = placed[k]
        return unproject(
            road0, pose, Y[window], X[window], z_surface[window] if z is None else z, rel
        )

    label, lamps = paint_shapes(image, depth, shapes, labelme, class_map, road, to_layout)
    lamp = np.random.default_rng(seq.lamp_seed)  # the same draws every frame: a steady lamp
    image = light(rng, image, road, style, lamps, Y, X, spot_rng=lamp)
    return Scene(image, labelme, label, depth_sensor(rng, depth))


def _moved_shapes(
    seq: SequenceLayout, road: Roadway, pose: Pose, t: float, camera: np.ndarray
) -> tuple[list[Shape], list[tuple[np.ndarray, float | None]]]:
    """The shapes in view at ``t`` and, for each, (offset relative to the camera, its
    frame depth in metres, or None for a shape on the roadway's surface)."""
    shapes, placed = [], []
    for shape, motion, depth in zip(seq.shapes, seq.motions, seq.depths):
        rel = motion.offset(t) - camera
        moved = move_shape(seq.road, road, pose, shape, depth, rel)
        if moved is not None:
            shapes.append(moved)
            placed.append((rel, None if shape.depth_t is None else float(depth[0] + rel[2])))
    return shapes, placed


def sequence_ids(cfg: SynthConfig) -> list[tuple[int, str, list[str]]]:
    """(mine, sequence id = capture group, frame ids in time order) per sequence, in
    MUSeg's id format; sequences go to the mines in turn."""
    out = []
    for index in range(cfg.sequences):
        mine, group = index % cfg.mines + 1, index // cfg.mines + 1
        rng = np.random.default_rng([cfg.seed, 14, index])
        start = datetime(2024, 6, int(rng.integers(1, 29)), int(rng.integers(7, 20)))
        start += timedelta(seconds=int(rng.integers(3600)))
        key = f"{mine:02d}-{SEQUENCE_ROADWAY:02d}-{group:02d}"
        frames = []
        for k in range(cfg.frames):
            stamp = (start + timedelta(seconds=k / cfg.fps)).strftime("%y%m%d%H%M%S")
            frames.append(f"{key}-{k + 1:04d}-{stamp}-08-99")
        out.append((mine, key, frames))
    return out


def render_sequences(
    cfg: SynthConfig, class_map: museg.ClassMap
) -> Iterator[tuple[int, str, Scene]]:
    """(mine, frame id, scene) of every frame of every sequence, in order."""
    classes = list(CLASS_PRESENCE)
    for index, (mine, _, frame_ids) in enumerate(sequence_ids(cfg)):
        featured = classes[index % len(classes)]
        seq = sequence_layout(cfg, index, featured)
        style = mine_style(cfg.seed, mine)
        for k, frame_id in enumerate(frame_ids):
            rng = np.random.default_rng([cfg.seed, 13, index, k])
            yield mine, frame_id, render_frame(seq, k / cfg.fps, rng, style, class_map)


def manifest(cfg: SynthConfig) -> dict:
    """What ``Experiment/sequences.json`` holds (``museg.read_sequences`` reads it)."""
    return {
        "fps": cfg.fps,
        "description": (
            "synthetic camera driving along a roadway; frames in time order, "
            "timestamps_s from the first frame"
        ),
        "sequences": {
            key: {
                "mine": museg.mine_key(mine),
                "frames": frames,
                "timestamps_s": [round(k / cfg.fps, 6) for k in range(len(frames))],
            }
            for mine, key, frames in sequence_ids(cfg)
        },
    }
