"""Depth scenario of ros_probe.py: RGB-D frames of a flat wall at a known distance.

Colour, depth (32FC1, uniform) and camera_info are published with the same stamps; any
non-empty mask of the tiny random model then lies at exactly that distance.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from minelisa.msg import ProximityAlert, SegmentationResult
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ros_helpers import FRAME_SIZE, frame_pixels
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from minelisa_ros.image_conversion import fill_image, to_byte_array

K = [50.0, 0.0, 31.5, 0.0, 50.0, 23.5, 0.0, 0.0, 1.0]
WALL_M = 2.0  # the streamed depth
INLINE_MM = 1500  # the inline request's depth


def depth_image(values: np.ndarray, encoding: str) -> Image:
    msg = Image(height=values.shape[0], width=values.shape[1], encoding=encoding)
    msg.step = values.shape[1] * values.itemsize
    msg.data = to_byte_array(np.ascontiguousarray(values).view(np.uint8))
    return msg


def camera_info(k=K, size=FRAME_SIZE) -> CameraInfo:
    return CameraInfo(height=size[0], width=size[1], k=list(k), distortion_model="plumb_bob")


def _record(probe, kind: str, msg_type, topic: str, summarise) -> None:
    probe.topics.setdefault(kind, [])
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    probe.node.create_subscription(
        msg_type, topic, lambda msg: probe.topics[kind].append(summarise(msg)), qos
    )


def _result(msg) -> dict:
    return {
        "t": time.monotonic(),
        "instruction": msg.instruction,
        "source": msg.source,
        "has_depth": msg.has_depth,
        "distance_m": msg.distance_m,
        "prompt_fresh": msg.prompt_fresh,
        "prompt_age_s": msg.prompt_age_s,
        "frame_id": msg.header.frame_id,
    }


def _points(msg) -> dict:
    fields = [[f.name, f.offset, f.datatype, f.count] for f in msg.fields]
    xyz = np.frombuffer(msg.data, np.float32).reshape(-1, 3)
    z = sorted({round(float(v), 4) for v in xyz[:, 2]})
    return {
        "fields": fields, "width": msg.width, "height": msg.height,
        "point_step": msg.point_step, "frame_id": msg.header.frame_id,
        "stamp": msg.header.stamp.sec, "z": z[:5],
    }  # fmt: skip


def _markers(msg) -> dict:
    return {"texts": [m.text for m in msg.markers], "types": [m.type for m in msg.markers]}


def _alert(msg) -> dict:
    return {
        "t": time.monotonic(), "instruction": msg.instruction, "level": int(msg.level),
        "distance_m": msg.distance_m, "threshold_m": msg.threshold_m,
    }  # fmt: skip


def start_rgbd(probe, rate: float = 15.0) -> threading.Event:
    node = probe.node
    image_pub = node.create_publisher(Image, probe.camera, qos_profile_sensor_data)
    depth_pub = node.create_publisher(Image, probe.spec["depth_topic"], qos_profile_sensor_data)
    info_pub = node.create_publisher(CameraInfo, probe.spec["info_topic"], qos_profile_sensor_data)
    stop = threading.Event()
    wall = np.full(FRAME_SIZE, WALL_M, np.float32)

    def run() -> None:
        index = 0
        while not stop.is_set():
            msgs = [
                fill_image(Image(), frame_pixels(index), "rgb8"),
                depth_image(wall, "32FC1"),
                camera_info(),
            ]
            for msg in msgs:
                msg.header.stamp.sec, msg.header.frame_id = 1000 + index, "camera_optical"
            msgs[1].header.frame_id = "depth_optical"
            depth_pub.publish(msgs[1])
            info_pub.publish(msgs[2])
            image_pub.publish(msgs[0])
            index += 1
            time.sleep(1.0 / rate)

    threading.Thread(target=run, daemon=True).start()
    return stop


def inline_request(probe, depth: np.ndarray, encoding: str, k=K):
    req = probe.request(probe.spec["instruction"], fill_image(Image(), frame_pixels(3), "rgb8"))
    req.image.header.frame_id = "inline_cam"
    req.depth = depth_image(depth, encoding)
    req.camera_info = camera_info(k)
    return req


def scenario_depth(probe) -> None:
    spec, name = probe.spec, probe.node_name
    _record(probe, "result", SegmentationResult, f"{name}/result", _result)
    _record(probe, "points", PointCloud2, f"{name}/points", _points)
    _record(probe, "markers", MarkerArray, f"{name}/markers", _markers)
    _record(probe, "alert", ProximityAlert, f"{name}/alert", _alert)
    probe.node.create_subscription(DiagnosticArray, "/diagnostics", probe._on_diagnostics, 50)
    stop = start_rgbd(probe)
    time.sleep(1.5)
    probe.call("topic_32f", probe.request(spec["instruction"]))
    mm = np.full(FRAME_SIZE, INLINE_MM, np.uint16)
    probe.call("inline_16u", inline_request(probe, mm, "16UC1"))
    probe.call("bad_zero_k", inline_request(probe, mm, "16UC1", k=[0.0] * 9))
    probe.call("bad_size", inline_request(probe, mm[:20, :30].copy(), "16UC1"))
    probe.call("bad_encoding", inline_request(probe, mm.astype(np.uint8), "8UC1"))
    probe.call("good_after_bad", inline_request(probe, mm, "16UC1"))
    probe.set_parameters(standing_instructions=[spec["standing"]], standing_rate=4.0)
    time.sleep(spec["standing_seconds"])
    probe.set_parameters(standing_rate=0.0)
    time.sleep(0.5)
    stop.set()
