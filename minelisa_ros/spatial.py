"""Where the object is, as ROS messages: depth fields, ~/points and ~/markers."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from minelisa_training.depth import DepthStats

from .image_conversion import to_byte_array

NAN = float("nan")
MARKER_LIFETIME_S = 2
POINT_FIELDS = [
    PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
    for i, name in enumerate("xyz")
]


def fill_depth_fields(msg: Any, stats: DepthStats | None) -> Any:
    """Set has_depth, distance_m, distance_p10_m, centroid, extent, depth_valid_fraction on a
    SegmentByInstruction response or a SegmentationResult (NaN and False without depth)."""
    has = stats is not None and stats.has_depth
    msg.has_depth = bool(has)
    msg.distance_m = float(stats.distance_m) if has else NAN
    msg.distance_p10_m = float(stats.distance_p10_m) if has else NAN
    centroid = stats.centroid if has else (NAN,) * 3
    extent = stats.extent if has else (NAN,) * 3
    msg.centroid = Point(x=float(centroid[0]), y=float(centroid[1]), z=float(centroid[2]))
    msg.extent = Vector3(x=float(extent[0]), y=float(extent[1]), z=float(extent[2]))
    fraction = stats.valid_fraction if stats is not None else NAN
    msg.depth_valid_fraction = float(fraction)
    return msg


def points_message(points: np.ndarray, header: Header) -> PointCloud2:
    """An unordered float32 x, y, z cloud (metres) in `header`'s frame."""
    points = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
    return PointCloud2(
        header=header,
        height=1,
        width=len(points),
        fields=POINT_FIELDS,
        is_bigendian=False,
        point_step=12,
        row_step=12 * len(points),
        data=to_byte_array(points.view(np.uint8)),
        is_dense=True,
    )


def label(instruction: str) -> str:
    """A short name for a marker: "segment the person" -> "person"."""
    text = re.sub(r"^\s*(please\s+)?(segment|find|show|mark)\s+(the\s+|a\s+|an\s+)?", "",
                  instruction, flags=re.IGNORECASE)  # fmt: skip
    return text.strip() or instruction.strip()


def markers_message(instruction: str, slot: int, stats: DepthStats, header: Header) -> MarkerArray:
    """A sphere at the centroid and a text "person 3.2 m" above it (ids 2*slot, 2*slot+1);
    without depth, DELETE actions for both."""
    namespace = "minelisa"
    markers = []
    for offset in (0, 1):
        marker = Marker(header=header, ns=namespace, id=2 * slot + offset)
        marker.lifetime.sec = MARKER_LIFETIME_S
        markers.append(marker)
    if not stats.has_depth or any(math.isnan(v) for v in stats.centroid):
        for marker in markers:
            marker.action = Marker.DELETE
        return MarkerArray(markers=markers)
    x, y, z = (float(v) for v in stats.centroid)
    sphere, text = markers
    sphere.type, sphere.action = Marker.SPHERE, Marker.ADD
    sphere.pose.position = Point(x=x, y=y, z=z)
    sphere.pose.orientation.w = 1.0
    size = max(0.05, min(0.5, float(np.nanmax(stats.extent[:2])) / 4))
    sphere.scale = Vector3(x=size, y=size, z=size)
    sphere.color.r, sphere.color.g, sphere.color.b, sphere.color.a = 1.0, 0.3, 0.1, 0.9
    text.type, text.action = Marker.TEXT_VIEW_FACING, Marker.ADD
    # Optical frame: y points down, so "above" is -y.
    text.pose.position = Point(x=x, y=y - size - 0.1, z=z)
    text.pose.orientation.w = 1.0
    text.scale.z = 0.2
    text.color.r = text.color.g = text.color.b = text.color.a = 1.0
    text.text = f"{label(instruction)} {stats.distance_m:.1f} m"
    return MarkerArray(markers=markers)
