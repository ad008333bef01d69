"""`minelisa bag --depth-topic D --camera-info-topic C`: the node's depth outputs, offline.

Each segmented colour image is paired with the depth image (16UC1 millimetres or 32FC1
metres, aligned to the colour image) whose header stamp is nearest, if within
--depth-sync-tolerance, and with the latest camera_info stamped no later than that
depth image (plus the tolerance: a camera's streams stamp the same capture a little
apart). The bag then gets, at the colour image's bag time, what the node publishes
with use_depth: `result` (minelisa/msg/SegmentationResult with the depth fields),
`points` (PointCloud2) and `markers` (MarkerArray), made by the node's own builders
(`spatial`) with rosbags' message classes. A frame without a depth partner gets a
result with has_depth false and no points; bad depth (size, encoding, intrinsics) is
counted and skipped like a corrupt image, never fatal.
"""

from __future__ import annotations

import argparse
import bisect
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from minelisa_training.depth import mask_points
from minelisa_training.errors import InvalidInputError

from .spatial import (
    ERODE_PX,
    ERODE_RANGE,
    SYNC_TOLERANCE_RANGE,
    SYNC_TOLERANCE_S,
    VOXEL_M,
    VOXEL_RANGE,
    fill_depth_fields,
    markers_message,
    no_depth_note,
    points_message,
)

if TYPE_CHECKING:
    from .depth_input import DepthFrame

DEPTH_TYPE = "sensor_msgs/msg/Image"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
RESULT_TYPE = "minelisa/msg/SegmentationResult"
# msg/SegmentationResult.msg without its comments: a pip install has no msg/ folder, and
# rosbags needs the definition to write the type (tests/test_ros_bag.py checks they agree).
RESULT_MSGDEF = """\
std_msgs/Header header
string instruction
string answer
sensor_msgs/Image mask
float32 coverage
float32 inference_ms
string source
bool has_depth
float32 distance_m
float32 distance_p10_m
geometry_msgs/Point centroid
geometry_msgs/Vector3 extent
float32 depth_valid_fraction
bool prompt_fresh
float32 prompt_age_s
"""
# The node's parameters of the same names (parameters.py): their defaults and ranges.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "depth (the node's use_depth outputs)",
        "With --depth-topic and --camera-info-topic, each segmented image also gets a\n"
        "result (how far: distance_m, centroid, extent; has_depth false when no depth\n"
        "image is within the tolerance), the object's point cloud and rviz markers.\n"
        "Depth images of another size or encoding are skipped and counted.",
    )
    add = group.add_argument
    add(
        "--depth-topic",
        metavar="TOPIC",
        help="depth Image aligned (registered) to --topic, same size: "
        "16UC1 millimetres or 32FC1 metres; needs --camera-info-topic",
    )
    add(
        "--camera-info-topic",
        metavar="TOPIC",
        help="CameraInfo of that depth image (for a registered "
        "depth image, the colour camera's); needs --depth-topic",
    )
    add(
        "--depth-sync-tolerance",
        type=float,
        default=SYNC_TOLERANCE_S,
        metavar="S",
        help="pair an image with the depth image of the nearest header stamp if within S "
        "seconds, else its result has no depth (default %(default)s, as the node)",
    )
    add(
        "--depth-erode-px",
        type=int,
        default=ERODE_PX,
        metavar="PX",
        help="erode the mask by PX pixels before measuring its depth (edge pixels mix "
        "object and background); 0: off (default %(default)s)",
    )
    add(
        "--points-voxel-m",
        type=float,
        default=VOXEL_M,
        metavar="M",
        help="one point per M-metre voxel in the cloud; 0: every pixel (default %(default)s)",
    )
    _add_output_topics(group)


def _add_output_topics(group: Any) -> None:
    add = group.add_argument
    add(
        "--result-topic",
        default="/minelisa/result",
        metavar="TOPIC",
        help="minelisa/SegmentationResult of every segmented image (default %(default)s)",
    )
    add(
        "--points-topic",
        default="/minelisa/points",
        metavar="TOPIC",
        help="PointCloud2 (float32 x y z, metres) of the object in the depth image's "
        "frame (default %(default)s)",
    )
    add(
        "--markers-topic",
        default="/minelisa/markers",
        metavar="TOPIC",
        help="MarkerArray: a sphere at the object and 'person 3.2 m' (default %(default)s)",
    )


def check(args: argparse.Namespace) -> str | None:
    """What is wrong with the depth options, or None."""
    if bool(args.depth_topic) != bool(args.camera_info_topic):
        return "--depth-topic and --camera-info-topic go together: give both or neither"
    for name, value, (low, high) in (
        ("--depth-sync-tolerance", args.depth_sync_tolerance, SYNC_TOLERANCE_RANGE),
        ("--depth-erode-px", args.depth_erode_px, ERODE_RANGE),
        ("--points-voxel-m", args.points_voxel_m, VOXEL_RANGE),
    ):
        if not low <= value <= high:
            return f"{name} must be within {low:g}..{high:g}, got {value:g}"
    if not args.depth_topic:
        return None
    inputs = {args.topic, args.depth_topic, args.camera_info_topic}
    outputs = {args.mask_topic, args.overlay_topic, args.result_topic}
    clash = inputs & (outputs | {args.points_topic, args.markers_topic})
    if clash:
        return f"the output topics must differ from the input topics: {', '.join(sorted(clash))}"
    return None


class RosbagsKit:
    """`spatial.MessageKit` with rosbags' classes; unset fields get ROS's zero defaults."""

    def __init__(self, typestore: Any) -> None:
        self._store = typestore

    def cls(self, msgtype: str) -> Any:
        return self._store.types[msgtype]

    def make(self, msgtype: str, **fields: Any) -> Any:
        for name, spec in self._store.fielddefs[msgtype][1]:
            if name not in fields:
                fields[name] = self._default(spec)
        return self.cls(msgtype)(**fields)

    def bytes(self, data: np.ndarray) -> Any:
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)

    def _default(self, spec: tuple) -> Any:
        from rosbags.typesys.base import Nodetype

        kind, detail = spec
        if kind == Nodetype.NAME:
            return self.make(detail)
        if kind == Nodetype.BASE:
            return {"string": "", "bool": False}.get(detail[0], 0)
        (element_kind, element), length = detail  # ARRAY (fixed length) or SEQUENCE (0)
        length = length if kind == Nodetype.ARRAY else 0
        if element_kind == Nodetype.NAME:
            return [self.make(element) for _ in range(length)]
        if element[0] == "string":
            return [""] * length
        dtype = {"byte": "uint8", "char": "uint8"}.get(element[0], element[0])
        return np.zeros(length, dtype=dtype)


def register_result_type(typestore: Any) -> None:
    from rosbags.typesys import get_types_from_msg

    if RESULT_TYPE not in typestore.types:
        typestore.register(get_types_from_msg(RESULT_MSGDEF, RESULT_TYPE))


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _connections(reader: Any, bag: Path, option: str, topic: str, msgtype: str) -> list[Any]:
    """The bag's connections of `topic`; a message naming the bag's `msgtype` topics if
    `topic` is missing or holds another type."""
    found = [c for c in reader.connections if c.topic == topic]
    wrong = next((c.msgtype for c in found if c.msgtype != msgtype), None)
    if found and wrong is None:
        return found
    others = sorted({c.topic for c in reader.connections if c.msgtype == msgtype})
    there = f"{msgtype} topics there: {', '.join(others) or 'none'}"
    if not found:
        raise InvalidInputError(f"{option} {topic} is not in {bag}; {there}")
    raise InvalidInputError(f"{option} {topic} holds {wrong}, not {msgtype}; {there}")


@dataclass
class DepthTally:
    """What the depth side did, for the summary."""

    with_depth: int = 0
    seconds: float = 0.0  # pairing, depth statistics, cloud and messages
    without: Counter = field(default_factory=Counter)  # why a frame has no depth partner
    skipped: Counter = field(default_factory=Counter)  # bad depth or intrinsics

    def summary(self, depth_topic: str) -> str:
        each = f", {self.seconds * 1000 / self.with_depth:.0f} ms each" if self.with_depth else ""
        return f"{self.with_depth} with depth from {depth_topic}{each}"

    def problems(self) -> list[str]:
        lines = [f"no depth for {n} image(s): {why}" for why, n in self.without.items()]
        return lines + [f"skipped {n} depth image(s): {why}" for why, n in self.skipped.items()]


class DepthSource:
    """The bag's depth images and camera_info, indexed by header stamp (one pass, headers
    only kept); a depth image is read again, by its bag time, when a frame needs it, so
    memory stays small whatever the bag's length."""

    def __init__(self, reader: Any, lookup: Any, args: argparse.Namespace) -> None:
        depth = _connections(reader, args.input, "--depth-topic", args.depth_topic, DEPTH_TYPE)
        infos = _connections(
            reader, args.input, "--camera-info-topic", args.camera_info_topic, INFO_TYPE
        )
        self._lookup, self.tolerance_s = lookup, args.depth_sync_tolerance
        self._tolerance_ns = round(args.depth_sync_tolerance * 1e9)
        self._depth: list[tuple[int, int, Any]] = []  # (stamp, bag time, connection)
        info_list: list[tuple[int, Any]] = []
        for conn, timestamp, raw in reader.messages(connections=depth + infos):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.msgtype == DEPTH_TYPE:
                self._depth.append((_stamp_ns(msg.header), timestamp, conn))
            else:
                _add_info(info_list, _stamp_ns(msg.header), msg)
        self._depth.sort(key=lambda entry: entry[:2])
        self._depth_stamps = [entry[0] for entry in self._depth]
        self._infos = _changes(info_list)
        self._info_stamps = [stamp for stamp, _ in self._infos]

    def frame(self, header: Any, size: tuple[int, int]) -> tuple[DepthFrame | None, str]:
        """The depth frame for a colour image of `size` (height, width), or None and why
        not; `InvalidInputError` (RequestError) for bad depth or intrinsics."""
        target = _stamp_ns(header)
        i = bisect.bisect_left(self._depth_stamps, target)
        near = [j for j in (i - 1, i) if 0 <= j < len(self._depth)]
        best = min(near, key=lambda j: abs(self._depth_stamps[j] - target), default=None)
        if best is None or abs(self._depth_stamps[best] - target) > self._tolerance_ns:
            return None, no_depth_note(self.tolerance_s)
        # Imported here: depth_input imports the engine (torch, seconds), which
        # `minelisa bag --help` and the option checks do not need.
        from .depth_input import depth_frame

        stamp, timestamp, conn = self._depth[best]
        k = bisect.bisect_right(self._info_stamps, stamp + self._tolerance_ns) - 1
        if k < 0:
            return None, "no camera_info stamped at or before the depth frame"
        return depth_frame(self._read(conn, timestamp, stamp), self._infos[k][1], size), ""

    def _read(self, conn: Any, timestamp: int, stamp: int) -> Any:
        for _, _, raw in self._lookup.messages(
            connections=[conn], start=timestamp, stop=timestamp + 1
        ):
            msg = self._lookup.deserialize(raw, conn.msgtype)
            if _stamp_ns(msg.header) == stamp:  # several messages may share a bag time
                return msg
        raise InvalidInputError(f"depth message at bag time {timestamp} could not be read again")


def _intrinsics(info: Any) -> tuple:
    return tuple(float(v) for v in info.k), int(info.width), int(info.height)


def _add_info(infos: list[tuple[int, Any]], stamp: int, info: Any) -> None:
    """Append a camera_info, or fold it into the previous one (keeping the earlier stamp)
    when the intrinsics repeat: a bag holds one per frame, nearly always the same."""
    if infos and _intrinsics(infos[-1][1]) == _intrinsics(info):
        infos[-1] = (min(infos[-1][0], stamp), infos[-1][1])
    else:
        infos.append((stamp, info))


def _changes(infos: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """The camera_info messages by stamp, one where the intrinsics change."""
    kept: list[tuple[int, Any]] = []
    for stamp, info in sorted(infos, key=lambda entry: entry[0]):
        if not kept or _intrinsics(kept[-1][1]) != _intrinsics(info):
            kept.append((stamp, info))
    return kept


def open_source(
    reader: Any, args: argparse.Namespace, typestore: Any, stack: ExitStack
) -> DepthSource | None:
    """The depth source with --depth-topic (topics checked, stamps indexed), else None."""
    if not args.depth_topic:
        return None
    from rosbags.highlevel import AnyReader

    # A reader of its own for the depth look-ups: they interleave with the main pass.
    lookup = stack.enter_context(AnyReader([args.input], default_typestore=typestore))
    return DepthSource(reader, lookup, args)


@dataclass(frozen=True)
class Segmented:
    """One segmented colour image, as the depth side needs it."""

    result: Any  # minelisa_training.engine.SegmentationResult
    header: Any  # the colour image's
    mask: Any  # the mono8 mask Image (rosbags)
    inference_ms: float


class DepthOutputs:
    """Writes the result, points and markers topics of each segmented image."""

    def __init__(self, source: DepthSource, writer: Any, typestore: Any, args: Any) -> None:
        register_result_type(typestore)
        self._source, self._writer, self._store = source, writer, typestore
        self._kit = RosbagsKit(typestore)
        self._erode_px = args.depth_erode_px
        self._voxel_m = args.points_voxel_m if args.points_voxel_m > 0 else None
        add = writer.add_connection
        self._result = add(args.result_topic, RESULT_TYPE, typestore=typestore)
        self._points = add(args.points_topic, "sensor_msgs/msg/PointCloud2", typestore=typestore)
        self._markers = add(
            args.markers_topic, "visualization_msgs/msg/MarkerArray", typestore=typestore
        )
        self.tally = DepthTally()

    def write(self, timestamp: int, item: Segmented) -> None:
        """The frame's outputs at the colour image's bag time `timestamp`."""
        start = time.perf_counter()
        mask = item.result.mask
        depth, stats = self._depth(item.header, mask)
        msg = self._kit.make(
            RESULT_TYPE,
            header=item.header,
            instruction=item.result.instruction,
            answer=item.result.answer,
            mask=item.mask,
            coverage=float(item.result.coverage),
            inference_ms=float(item.inference_ms),
            source="bag",
            prompt_fresh=True,  # the whole model runs on every image
            prompt_age_s=0.0,
        )
        self._put(self._result, timestamp, fill_depth_fields(msg, stats, self._kit))
        if depth is not None:  # as the node: cloud and markers in the depth image's frame
            points = mask_points(mask, depth.depth, depth.intrinsics, self._voxel_m)
            self._put(self._points, timestamp, points_message(points, depth.header, self._kit))
            markers = markers_message(item.result.instruction, 0, stats, depth.header, self._kit)
            self._put(self._markers, timestamp, markers)
            self.tally.with_depth += 1
            self.tally.seconds += time.perf_counter() - start

    def _depth(self, header: Any, mask: np.ndarray) -> tuple[DepthFrame | None, Any]:
        """The paired depth frame and the mask's DepthStats; (None, None) without depth
        (counted: no partner, or bad depth)."""
        try:
            depth, why = self._source.frame(header, mask.shape[:2])
            if depth is None:
                self.tally.without[why] += 1
                return None, None
            return depth, depth.stats(mask, self._erode_px)
        except InvalidInputError as exc:  # RequestError: wrong size, encoding, K
            self.tally.skipped[str(exc)] += 1
            return None, None

    def _put(self, conn: Any, timestamp: int, msg: Any) -> None:
        self._writer.write(conn, timestamp, self._store.serialize_cdr(msg, conn.msgtype))
