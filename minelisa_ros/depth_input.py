"""The depth side: recent depth frames and the camera's intrinsics, paired with a colour frame.

With `use_depth` the node keeps the last few messages of `depth` (sensor_msgs/Image,
16UC1 millimetres or 32FC1 metres, aligned to the colour image) and the latest
`camera_info`; a colour frame is paired with the depth frame whose stamp is nearest,
within `depth_sync_tolerance` (message_filters' ApproximateTime is not on PyPI, and one
latest colour frame needs no more). A colour frame often arrives before its depth frame
(they are separate topics), so a lookup waits up to `DEPTH_WAIT_S` while the newest depth
frame is older than the colour frame, and no longer once a later one has arrived. A
request may carry its own depth and CameraInfo.

Bad depth or intrinsics raise `RequestError` saying what is wrong; the service answers
with it, standing instructions go on without depth. The ROS message classes are imported
only where the node subscribes: `minelisa bag` checks rosbags' depth messages with
`depth_frame` where ROS is absent.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from minelisa_training.depth import DepthStats, Intrinsics, mask_depth_stats
from minelisa_training.errors import InvalidInputError

from .gate import RequestError
from .image_conversion import is_empty_image

if TYPE_CHECKING:
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

DEPTH_ENCODINGS = {"16UC1": np.dtype("<u2"), "mono16": np.dtype("<u2"), "32FC1": np.dtype("<f4")}
HISTORY = 30  # depth frames kept for pairing (a second at 30 Hz)
DEPTH_WAIT_S = 0.25  # the longest wait for a depth frame that is due (a few frame periods)


@dataclass(frozen=True)
class DepthFrame:
    """A depth image (uint16 mm or float32 m), its intrinsics and its header."""

    depth: np.ndarray
    intrinsics: Intrinsics
    header: Header

    def stats(self, mask: np.ndarray, erode_px: int) -> DepthStats:
        return mask_depth_stats(mask, self.depth, self.intrinsics, erode_px=erode_px)


def stamp_s(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def depth_array(msg: Image) -> np.ndarray:
    """The pixels of a 16UC1 / 32FC1 depth Image; `RequestError` saying what is wrong."""
    dtype = DEPTH_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise RequestError(
            f"depth encoding {msg.encoding!r} is not supported: use 16UC1 (millimetres) "
            "or 32FC1 (metres)"
        )
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h < 1 or w < 1 or h > 16384 or w > 16384:
        raise RequestError(f"depth image size {w}x{h} is empty or absurd")
    if step < w * dtype.itemsize or len(msg.data) != step * h:
        raise RequestError(
            f"depth data length {len(msg.data)} does not match step {step} x height {h} "
            f"(width {w}, {msg.encoding})"
        )
    if msg.is_bigendian:
        dtype = dtype.newbyteorder(">")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(h, step)[:, : w * dtype.itemsize]
    return np.ascontiguousarray(rows).view(dtype).reshape(h, w).astype(dtype.newbyteorder("="))


def intrinsics_of(info: CameraInfo) -> Intrinsics:
    try:
        return Intrinsics.from_k(list(info.k), int(info.width), int(info.height))
    except InvalidInputError as exc:
        raise RequestError(f"camera_info: {exc}") from None


def depth_frame(msg: Image, info: CameraInfo | None, size: tuple[int, int]) -> DepthFrame:
    """A checked depth frame for a colour image of `size` (height, width)."""
    if info is None:
        raise RequestError("no camera_info received yet: the depth cannot be placed")
    depth = depth_array(msg)
    if depth.shape != tuple(size):
        raise RequestError(
            f"depth image is {depth.shape[1]}x{depth.shape[0]}, the colour image "
            f"{size[1]}x{size[0]}: they must be aligned (registered) and the same size"
        )
    return DepthFrame(depth, intrinsics_of(info), msg.header)


class DepthFrames:
    """Recent depth messages and the latest CameraInfo (thread-safe)."""

    def __init__(self, history: int = HISTORY) -> None:
        self._arrived = threading.Condition()
        self._depth: collections.deque[Image] = collections.deque(maxlen=history)
        self._info: CameraInfo | None = None

    def put_depth(self, msg: Image) -> None:
        with self._arrived:
            self._depth.append(msg)
            self._arrived.notify_all()

    def put_info(self, msg: CameraInfo) -> None:
        with self._arrived:
            self._info = msg

    def clear(self) -> None:
        with self._arrived:
            self._depth.clear()
            self._info = None

    def nearest(
        self, header: Header, tolerance: float, wait_s: float = DEPTH_WAIT_S
    ) -> tuple[Image, CameraInfo | None] | None:
        """The depth message nearest `header`'s stamp within `tolerance` s, with the info.

        Waits up to `wait_s` for one while every depth frame so far is older than that;
        None at once when a later depth frame has arrived without a match."""
        target = stamp_s(header)
        deadline = time.monotonic() + wait_s
        with self._arrived:
            while True:
                stamps = [stamp_s(m.header) for m in self._depth]
                if stamps:
                    i = min(range(len(stamps)), key=lambda j: abs(stamps[j] - target))
                    if abs(stamps[i] - target) <= tolerance:
                        return self._depth[i], self._info
                    if max(stamps) > target + tolerance:
                        return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._arrived.wait(remaining)


def request_depth(
    request: Any, frames: DepthFrames | None, header: Header, size: tuple[int, int], tol: float
) -> DepthFrame | None:
    """The depth for a service request: its own when given, else the topics' nearest (with
    `frames`, i.e. use_depth), else None. `RequestError` for bad depth or intrinsics."""
    if not is_empty_image(request.depth):
        return depth_frame(request.depth, request.camera_info, size)
    if frames is None:
        return None
    pair = frames.nearest(header, tol)
    return None if pair is None else depth_frame(pair[0], pair[1], size)


def subscribe(node: Any, qos: Any, group: Any, frames: DepthFrames) -> list[Any]:
    """Subscriptions to `depth` (a few kept, for pairing) and `camera_info` (the latest)."""
    from sensor_msgs.msg import CameraInfo, Image

    depth_qos = type(qos)(history=qos.history, depth=5, reliability=qos.reliability)
    return [
        node.create_subscription(Image, "depth", frames.put_depth, depth_qos, callback_group=group),
        node.create_subscription(
            CameraInfo, "camera_info", frames.put_info, qos, callback_group=group
        ),
    ]
