"""Synthetic scenes in the exact raw MUSeg layout (see ``museg.layout`` for the layout).

Each image is a dim underground roadway seen along its axis: floor, walls and roof
of noisy rock under an uneven cap-lamp light, with objects of the 15 MUSeg classes
drawn as Labelme polygons. The label map is the rasterisation of the polygon file,
and the image is painted through the same ownership map, so image, ``_label.png``
and ``_polygons.json`` agree pixel for pixel. Frames come in capture groups inside
mines with their own rock tint and light level, so group-disjoint and held-out-mine
splits are meaningful; a few frames are all background. The same seed gives the
same bytes.

Depth is that of a pinhole camera (``camera``: Azure Kinect-like intrinsics, written to
``Experiment/intrinsics.json``): back-projecting an object's pixels at their depth gives
its size in metres.

Sequences (``SynthConfig.sequences``, ``minelisa synth --sequences N --frames F``) are
short clips of a camera driving along a roadway, past a walking person and swinging
cables: one capture group each, frames ordered by the id's frame field and listed
with their timestamps in ``Experiment/sequences.json`` (``museg.read_sequences``).

Modules: ``camera`` (intrinsics, metric scale), ``geometry`` (roadway perspective,
shapes), ``paint`` (textures), ``objects`` (the 15 class painters), ``scene``
(``render_scene``, mine styles), ``motion`` (camera path, object motions, moved
shapes), ``sequence`` (sequence layouts, frames, ids, manifest), ``config``
(``SynthConfig``, ``parse_size``) and ``writer`` (``write_dataset``: ids, files through
``museg.Layout``, the split zip, the intrinsics, the sequences' manifest).
"""

from __future__ import annotations

from .camera import synth_intrinsics
from .config import SynthConfig, parse_size
from .geometry import Roadway, Shape
from .motion import CameraPath, Motion, Pose
from .objects import CLASS_PRESENCE, GENERATORS
from .scene import FRAME_DROPOUT, MineStyle, Scene, mine_style, render_scene
from .sequence import SequenceLayout, render_frame, sequence_ids, sequence_layout
from .writer import BACKGROUND_SHARE, ZIP_DATE, make_ids, voc_palette, write_dataset

__all__ = [
    "BACKGROUND_SHARE",
    "CLASS_PRESENCE",
    "CameraPath",
    "FRAME_DROPOUT",
    "GENERATORS",
    "MineStyle",
    "Motion",
    "Pose",
    "Roadway",
    "Scene",
    "SequenceLayout",
    "Shape",
    "SynthConfig",
    "ZIP_DATE",
    "make_ids",
    "mine_style",
    "parse_size",
    "render_frame",
    "render_scene",
    "sequence_ids",
    "sequence_layout",
    "synth_intrinsics",
    "voc_palette",
    "write_dataset",
]
