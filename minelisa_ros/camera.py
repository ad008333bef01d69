"""The camera side: the latest frame, numbered; decoding request and camera images.

Frames carry a sequence number that only grows, so "has this frame been segmented"
is a comparison of numbers (an object's id() can be reused once it is freed).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from .diagnostics import RateMeter
from .gate import RequestError
from .image_conversion import (
    ImageConversionError,
    compressed_to_rgb,
    image_to_rgb,
    is_empty_compressed,
    is_empty_image,
)


@dataclass(frozen=True)
class Frame:
    """A camera message as it arrived."""

    msg: Image | CompressedImage
    received: float  # time.monotonic() at arrival
    seq: int  # 1, 2, 3, ... in arrival order


class LatestFrame:
    """The most recent camera frame (thread-safe) and the arrival rate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._seq = 0
        self.meter = RateMeter()

    def put(self, msg: Image | CompressedImage) -> Frame:
        now = time.monotonic()
        with self._lock:
            self._seq += 1
            self._frame = Frame(msg, now, self._seq)
            frame = self._frame
        self.meter.tick(now)
        return frame

    def get(self) -> Frame | None:
        with self._lock:
            return self._frame

    def clear(self) -> None:
        with self._lock:
            self._frame = None


def decode(msg: Image | CompressedImage) -> np.ndarray:
    """RGB pixels of an Image or CompressedImage; raises `ImageConversionError`."""
    return compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)


def inline_image(request: Any) -> tuple[np.ndarray, Header] | None:
    """The request's own image (Image first, then CompressedImage), or None when it has none."""
    if not is_empty_image(request.image):
        return image_to_rgb(request.image), request.image.header
    if not is_empty_compressed(request.compressed_image):
        return compressed_to_rgb(request.compressed_image), request.compressed_image.header
    return None


def frame_image(
    frame: Frame | None, topic: str, max_age: float, reliability: str
) -> tuple[np.ndarray, Header]:
    """The pixels and header of the latest frame, or `RequestError` saying why not."""
    if frame is None:
        raise RequestError(
            f"no frame received yet on {topic}: is the camera publishing, and does "
            f"its QoS match qos_reliability={reliability}? (or send an image)"
        )
    age = time.monotonic() - frame.received
    if max_age > 0 and age > max_age:
        raise RequestError(
            f"the latest frame on {topic} is {age:.2f} s old, older than "
            f"max_frame_age={max_age:g} s: the camera stopped publishing?"
        )
    try:
        return decode(frame.msg), frame.msg.header
    except ImageConversionError as exc:
        raise RequestError(f"latest frame on {topic}: {exc}") from None


def no_frame_hint(publishers: list[Any], reliability: str) -> str:
    """Why no frame may be arriving, from the topic's publishers (`TopicEndpointInfo`)."""
    if not publishers:
        return "no publisher on that topic: remap `image` (e.g. -r image:=/camera/image_raw)"
    theirs = sorted({p.qos_profile.reliability.name.lower() for p in publishers})
    hint = f"{len(publishers)} publisher(s) with reliability {', '.join(theirs)}"
    if reliability == "reliable" and "best_effort" in theirs:
        hint += (
            "; this node asks for reliable, which a best_effort publisher cannot serve: "
            "set qos_reliability:=best_effort"
        )
    return hint


class NoFrameWarning:
    """Decides when to warn that no frame arrives: every period, an unchanged hint once a
    minute."""

    def __init__(self, repeat_s: float = 60.0) -> None:
        self._last: tuple[str, float] = ("", 0.0)
        self._repeat_s = repeat_s

    def due(self, hint: str) -> bool:
        now = time.monotonic()
        if self._last[0] == hint and now - self._last[1] < self._repeat_s:
            return False
        self._last = (hint, now)
        return True
