"""Pairing a colour frame with its depth frame when the depth arrives second."""

from __future__ import annotations

import threading
import time

import pytest
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from minelisa_ros.depth_input import DepthFrames

pytestmark = pytest.mark.ros


def _header(sec: int, nanosec: int = 0) -> Header:
    header = Header()
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    return header


def _depth(sec: int, nanosec: int = 0) -> Image:
    return Image(header=_header(sec, nanosec), encoding="32FC1")


def test_a_depth_frame_that_arrives_after_the_colour_frame_is_paired():
    frames = DepthFrames()
    frames.put_info(CameraInfo())
    frames.put_depth(_depth(9))  # the previous frame's depth is here, this one's is not yet
    timer = threading.Timer(0.05, frames.put_depth, args=(_depth(10),))
    timer.start()
    try:
        pair = frames.nearest(_header(10), tolerance=0.01, wait_s=5.0)
    finally:
        timer.join()
    assert pair is not None and pair[0].header.stamp.sec == 10
    assert isinstance(pair[1], CameraInfo)


def test_no_wait_once_a_later_depth_frame_has_arrived():
    frames = DepthFrames()
    frames.put_depth(_depth(9))
    frames.put_depth(_depth(11))  # frame 10 has no depth: it will not come
    start = time.monotonic()
    assert frames.nearest(_header(10), tolerance=0.01, wait_s=5.0) is None
    assert time.monotonic() - start < 1.0


def test_nearest_within_the_tolerance_and_a_bounded_wait():
    frames = DepthFrames()
    frames.put_depth(_depth(10, 4_000_000))
    pair = frames.nearest(_header(10), tolerance=0.005, wait_s=0.0)
    assert pair is not None and pair[1] is None  # no camera_info yet
    start = time.monotonic()
    assert frames.nearest(_header(12), tolerance=0.005, wait_s=0.2) is None
    assert 0.15 < time.monotonic() - start < 2.0
