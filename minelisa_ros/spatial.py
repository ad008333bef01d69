"""Where the object is, as ROS messages: depth fields, ~/points and ~/markers.

The builders make their messages through a `MessageKit`: the node's rclpy classes by
default (imported on first use), or rosbags' classes in `minelisa bag`
(`bag_depth.RosbagsKit`), so the live topics and a processed bag get the same messages
from the same code and this module imports no ROS package itself.
"""

from __future__ import annotations

import importlib
import math
import re
from functools import cache
from typing import Any, Protocol

import numpy as np

from minelisa_training.depth import DepthStats

from .image_conversion import to_byte_array

NAN = float("nan")
MARKER_LIFETIME_S = 2
POINT, VECTOR3 = "geometry_msgs/msg/Point", "geometry_msgs/msg/Vector3"
POINT_FIELD, POINT_CLOUD = "sensor_msgs/msg/PointField", "sensor_msgs/msg/PointCloud2"
MARKER, MARKER_ARRAY = "visualization_msgs/msg/Marker", "visualization_msgs/msg/MarkerArray"
# Defaults and ranges of the depth settings, one definition for the node's parameters
# (depth_sync_tolerance, depth_erode_px, points_voxel_m) and `minelisa bag`'s options.
SYNC_TOLERANCE_S, SYNC_TOLERANCE_RANGE = 0.05, (0.0, 10.0)
ERODE_PX, ERODE_RANGE = 3, (0, 50)
VOXEL_M, VOXEL_RANGE = 0.02, (0.0, 1.0)


def no_depth_note(tolerance_s: float) -> str:
    """Why a result has no depth: no depth frame was stamped near the colour frame."""
    return f"no depth frame within {tolerance_s:g} s of the colour frame"


class MessageKit(Protocol):
    """Makes messages by type name ("geometry_msgs/msg/Point"); unset fields get defaults."""

    def cls(self, msgtype: str) -> Any: ...  # the class, for its constants (Marker.SPHERE)

    def make(self, msgtype: str, **fields: Any) -> Any: ...

    def bytes(self, data: np.ndarray) -> Any: ...  # the value of a uint8[] field


class RclpyKit:
    """The node's kit: rclpy message classes."""

    def cls(self, msgtype: str) -> Any:
        return _rclpy_class(msgtype)

    def make(self, msgtype: str, **fields: Any) -> Any:
        return _rclpy_class(msgtype)(**fields)

    def bytes(self, data: np.ndarray) -> Any:
        return to_byte_array(data)


@cache
def _rclpy_class(msgtype: str) -> Any:
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


RCLPY = RclpyKit()


def fill_depth_fields(msg: Any, stats: DepthStats | None, kit: MessageKit = RCLPY) -> Any:
    """Set has_depth, distance_m, distance_p10_m, centroid, extent, depth_valid_fraction on a
    SegmentByInstruction response or a SegmentationResult (NaN and False without depth)."""
    has = stats is not None and stats.has_depth
    msg.has_depth = bool(has)
    msg.distance_m = float(stats.distance_m) if has else NAN
    msg.distance_p10_m = float(stats.distance_p10_m) if has else NAN
    centroid = stats.centroid if has else (NAN,) * 3
    extent = stats.extent if has else (NAN,) * 3
    msg.centroid = kit.make(POINT, x=float(centroid[0]), y=float(centroid[1]), z=float(centroid[2]))
    msg.extent = kit.make(VECTOR3, x=float(extent[0]), y=float(extent[1]), z=float(extent[2]))
    fraction = stats.valid_fraction if stats is not None else NAN
    msg.depth_valid_fraction = float(fraction)
    return msg


def points_message(points: np.ndarray, header: Any, kit: MessageKit = RCLPY) -> Any:
    """An unordered float32 x, y, z cloud (metres) in `header`'s frame."""
    points = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
    float32 = kit.cls(POINT_FIELD).FLOAT32
    fields = [
        kit.make(POINT_FIELD, name=name, offset=4 * i, datatype=float32, count=1)
        for i, name in enumerate("xyz")
    ]
    return kit.make(
        POINT_CLOUD,
        header=header,
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=12,
        row_step=12 * len(points),
        data=kit.bytes(points.view(np.uint8).reshape(-1)),
        is_dense=True,
    )


def label(instruction: str) -> str:
    """A short name for a marker: "segment the person" -> "person"."""
    text = re.sub(r"^\s*(please\s+)?(segment|find|show|mark)\s+(the\s+|a\s+|an\s+)?", "",
                  instruction, flags=re.IGNORECASE)  # fmt: skip
    return text.strip() or instruction.strip()


def markers_message(
    instruction: str, slot: int, stats: DepthStats, header: Any, kit: MessageKit = RCLPY
) -> Any:
    """A sphere at the centroid and a text "person 3.2 m" above it (ids 2*slot, 2*slot+1);
    without depth, DELETE actions for both."""
    namespace, marker_cls = "minelisa", kit.cls(MARKER)
    markers = []
    for offset in (0, 1):
        marker = kit.make(MARKER, header=header, ns=namespace, id=2 * slot + offset)
        marker.lifetime.sec = MARKER_LIFETIME_S
        marker.pose.orientation.w = 1.0  # the identity (rosbags' default quaternion is all 0)
        markers.append(marker)
    if not stats.has_depth or any(math.isnan(v) for v in stats.centroid):
        for marker in markers:
            marker.action = marker_cls.DELETE
        return kit.make(MARKER_ARRAY, markers=markers)
    x, y, z = (float(v) for v in stats.centroid)
    sphere, text = markers
    sphere.type, sphere.action = marker_cls.SPHERE, marker_cls.ADD
    sphere.pose.position = kit.make(POINT, x=x, y=y, z=z)
    size = max(0.05, min(0.5, float(np.nanmax(stats.extent[:2])) / 4))
    sphere.scale = kit.make(VECTOR3, x=size, y=size, z=size)
    sphere.color.r, sphere.color.g, sphere.color.b, sphere.color.a = 1.0, 0.3, 0.1, 0.9
    text.type, text.action = marker_cls.TEXT_VIEW_FACING, marker_cls.ADD
    # Optical frame: y points down, so "above" is -y.
    text.pose.position = kit.make(POINT, x=x, y=y - size - 0.1, z=z)
    text.scale.z = 0.2
    text.color.r = text.color.g = text.color.b = text.color.a = 1.0
    text.text = f"{label(instruction)} {stats.distance_m:.1f} m"
    return kit.make(MARKER_ARRAY, markers=markers)
