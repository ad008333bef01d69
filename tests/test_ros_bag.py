"""`minelisa bag` on rosbag2 files written here with rosbags (sqlite3 and MCAP)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from minelisa_training.cli import main

TYPES = get_typestore(Stores.ROS2_JAZZY)
Image = TYPES.types["sensor_msgs/msg/Image"]
CompressedImage = TYPES.types["sensor_msgs/msg/CompressedImage"]
String = TYPES.types["std_msgs/msg/String"]
Header = TYPES.types["std_msgs/msg/Header"]
Time = TYPES.types["builtin_interfaces/msg/Time"]
INSTRUCTION = "segment the conveyor belt"


def pixels(index: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 256, size=(36, 52, 3), dtype=np.uint8)


def header(index: int) -> Header:
    return Header(stamp=Time(sec=100 + index, nanosec=5), frame_id="front_camera")


def write_bag(path: Path, storage: StoragePlugin, compressed: bool) -> None:
    """Two good frames, one corrupt frame, and an unrelated topic."""
    msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    with Writer(path, version=9, storage_plugin=storage) as writer:
        cam = writer.add_connection("/cam/image", msgtype, typestore=TYPES)
        notes = writer.add_connection("/notes", "std_msgs/msg/String", typestore=TYPES)
        for index in range(3):
            rgb = pixels(index)
            if compressed:
                data = cv2.imencode(".png", rgb[..., ::-1])[1].reshape(-1)
                if index == 2:
                    data = data[:20]  # truncated PNG
                msg = CompressedImage(header=header(index), format="png", data=data)
            else:
                data = rgb.reshape(-1)[: (100 if index == 2 else None)]  # frame 2: wrong length
                msg = Image(
                    header=header(index),
                    height=36,
                    width=52,
                    encoding="rgb8",
                    is_bigendian=0,
                    step=156,
                    data=data,
                )
            writer.write(cam, 1_000 + index, TYPES.serialize_cdr(msg, msgtype))
            writer.write(
                notes,
                1_001 + index,
                TYPES.serialize_cdr(String(data=f"note {index}"), "std_msgs/msg/String"),
            )


def read_bag(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    with AnyReader([path], default_typestore=TYPES) as reader:
        for conn, timestamp, raw in reader.messages(connections=reader.connections):
            out.setdefault(conn.topic, []).append(
                (timestamp, reader.deserialize(raw, conn.msgtype))
            )
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from minelisa_training.testing import write_tiny_bundle

    return write_tiny_bundle(tmp_path_factory.mktemp("bag_bundle") / "tiny", seed=0)


@pytest.mark.parametrize(
    "storage,compressed", [(StoragePlugin.SQLITE3, False), (StoragePlugin.MCAP, True)]
)
def test_bag_gets_mask_and_overlay_topics(tmp_path, bundle, capsys, storage, compressed):
    from minelisa_training.engine import SegmentationEngine

    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, storage, compressed)
    rc = main(
        [
            "bag",
            "--in",
            str(src),
            "--topic",
            "/cam/image",
            "--instruction",
            INSTRUCTION,
            "--out",
            str(dst),
            "--model",
            str(bundle),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "segmented 2 image(s) of /cam/image" in captured.out
    reason = (
        "could not decode the compressed image"
        if compressed
        else "image data length 100 does not match"
    )
    assert f"skipped 1 image(s): {reason}" in captured.err

    expected_storage = "mcap" if storage == StoragePlugin.MCAP else "sqlite3"
    assert f"storage_identifier: {expected_storage}" in (dst / "metadata.yaml").read_text()
    topics = read_bag(dst)
    assert [m.data for _, m in topics["/notes"]] == [
        "note 0",
        "note 1",
        "note 2",
    ]  # copied untouched
    assert len(topics["/cam/image"]) == 3
    masks, overlays = topics["/minelisa/mask"], topics["/minelisa/overlay"]
    assert [t for t, _ in masks] == [1_000, 1_001] == [t for t, _ in overlays]  # source bag times
    engine = SegmentationEngine.from_pretrained(bundle)
    for index, ((_, mask), (_, overlay)) in enumerate(zip(masks, overlays)):
        for msg in (mask, overlay):
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
                100 + index,
                5,
                "front_camera",
            )
            assert (msg.height, msg.width) == (36, 52)
        assert (
            mask.encoding == "mono8" and mask.step == 52 and set(np.unique(mask.data)) <= {0, 255}
        )
        assert overlay.encoding == "rgb8" and overlay.step == 156
        if index == 0:
            expected = engine.segment(pixels(0), INSTRUCTION).mask
            got = mask.data.reshape(36, 52) == 255
            assert np.mean(got != expected) <= 0.002
            blended = overlay.data.reshape(36, 52, 3)
            np.testing.assert_array_equal(
                blended[~got], pixels(0)[~got]
            )  # outside the mask: untouched
            if got.any():
                assert np.any(blended[got] != pixels(0)[got])


def test_bag_errors_are_specific(tmp_path, bundle, capsys):
    src = tmp_path / "in"
    write_bag(src, StoragePlugin.SQLITE3, compressed=False)
    base = ["bag", "--in", str(src), "--instruction", INSTRUCTION, "--model", str(bundle)]

    assert main([*base, "--topic", "/front/image", "--out", str(tmp_path / "a")]) == 2
    assert "topic /front/image is not in" in capsys.readouterr().err
    assert main([*base, "--topic", "/notes", "--out", str(tmp_path / "b")]) == 2
    assert "/notes holds std_msgs/msg/String, not an image type" in capsys.readouterr().err
    assert main([*base, "--topic", "/cam/image", "--out", str(src)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (
        main(
            [
                "bag",
                "--in",
                str(tmp_path),
                "--topic",
                "/cam/image",
                "--instruction",
                "x",
                "--model",
                str(bundle),
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    assert "not a rosbag2 directory" in capsys.readouterr().err
    assert (
        main(
            [
                *base[:-1],
                str(tmp_path / "no_model"),
                "--topic",
                "/cam/image",
                "--out",
                str(tmp_path / "d"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    # The CLI's one error format: "minelisa bag: <message>", naming the model path.
    assert err.startswith("minelisa bag: ") and "no_model" in err, err
    assert "internal error" not in err and "Traceback" not in err


# -- #12: no ROS installed, interrupted runs, corrupt bags --------------------------------------
HIDE_ROS = """
import importlib.abc, sys

HIDDEN = {"rclpy", "ament_index_python", "cv_bridge", "rosidl_runtime_py", "rcl_interfaces",
          "sensor_msgs", "std_msgs", "geometry_msgs", "visualization_msgs", "builtin_interfaces",
          "minelisa"}  # the ROS message packages too: the depth outputs use rosbags' classes


class HideRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None


sys.meta_path.insert(0, HideRos())
from minelisa_training.cli import main

code = main(sys.argv[1:])
assert not HIDDEN & set(sys.modules), sorted(HIDDEN & set(sys.modules))
sys.exit(code)
"""


def bag_args(src: Path, dst: Path, bundle: Path) -> list[str]:
    return [
        "bag",
        "--in",
        str(src),
        "--topic",
        "/cam/image",
        "--instruction",
        INSTRUCTION,
        "--out",
        str(dst),
        "--model",
        str(bundle),
    ]


@pytest.mark.integration
def test_bag_runs_without_ros_installed(tmp_path, tiny_bundle):
    """Uncompressed images with depth, and no ROS package importable (#12, #14)."""
    src, dst = tmp_path / "in", tmp_path / "out"
    write_depth_bag(src, StoragePlugin.SQLITE3, "16UC1", 2.0)
    done = subprocess.run(
        [sys.executable, "-c", HIDE_ROS, *bag_args(src, dst, tiny_bundle), *DEPTH_ARGS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "segmented 3 image(s) of /cam/image" in done.stdout
    assert "1 with depth from /cam/depth" in done.stdout
    topics = read_bag(dst)
    assert len(topics["/minelisa/mask"]) == len(topics["/minelisa/result"]) == 3
    assert len(topics["/minelisa/points"]) == len(topics["/minelisa/markers"]) == 1


@pytest.mark.integration
def test_interrupted_run_leaves_no_bag_behind(tmp_path, tiny_bundle, capsys, monkeypatch):
    from minelisa_training.engine import SegmentationEngine

    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, StoragePlugin.SQLITE3, compressed=False)
    segment = SegmentationEngine.segment
    calls = []

    def fail_on_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash mid-bag")
        return segment(self, *args, **kwargs)

    monkeypatch.setattr(SegmentationEngine, "segment", fail_on_second)
    assert main(bag_args(src, dst, tiny_bundle)) == 1
    assert "simulated crash mid-bag" in capsys.readouterr().err
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no partial folder either
    monkeypatch.setattr(SegmentationEngine, "segment", segment)
    assert main(bag_args(src, dst, tiny_bundle)) == 0  # a rerun into the same --out works
    assert len(read_bag(dst)["/minelisa/mask"]) == 2


def _garbage_metadata(bag: Path) -> None:
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [version: {")


def _not_bag_metadata(bag: Path) -> None:
    (bag / "metadata.yaml").write_text("hello: world\n")


def _garbage_storage(bag: Path) -> None:
    (bag / "in.db3").write_bytes(b"definitely not sqlite " * 100)


def _missing_storage(bag: Path) -> None:
    (bag / "in.db3").unlink()


@pytest.mark.parametrize(
    "damage", [_garbage_metadata, _not_bag_metadata, _garbage_storage, _missing_storage]
)
def test_corrupt_bags_are_refused_with_a_clear_message(tmp_path, tiny_bundle, capsys, damage):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, StoragePlugin.SQLITE3, compressed=False)
    damage(src)
    assert main(bag_args(src, dst, tiny_bundle)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"minelisa bag: --in {src}: "), err
    assert "internal error" not in err and "Traceback" not in err
    assert not dst.exists()


# -- #14 item 4: depth and camera_info topics -> result, points and markers -------------------
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
CameraInfo = TYPES.types[INFO_TYPE]
RegionOfInterest = TYPES.types["sensor_msgs/msg/RegionOfInterest"]
K = [50.0, 0.0, 26.0, 0.0, 50.0, 18.0, 0.0, 0.0, 1.0]  # fx, fy 50 px; centre of 52x36
MASK = np.zeros((36, 52), bool)
MASK[8:28, 10:42] = True  # 20 x 32 px on the wall, whatever the random tiny model says
DEPTH_ARGS = ["--depth-topic", "/cam/depth", "--camera-info-topic", "/cam/info"]


def depth_pixels(encoding: str, metres: float, shape: tuple[int, int] = (36, 52)) -> np.ndarray:
    """A flat wall `metres` away, 16UC1 millimetres or 32FC1 metres (with invalid pixels)."""
    if encoding == "16UC1":
        depth = np.full(shape, round(metres * 1000), np.uint16)
        depth[0, :] = 0  # invalid (no return): outside the mask, must not matter
        return depth
    depth = np.full(shape, metres, np.float32)
    depth[0, :], depth[1, :4] = np.nan, np.inf
    return depth


def write_depth_bag(path: Path, storage: StoragePlugin, encoding: str, metres: float) -> None:
    """Three colour frames with camera_info; depth stamped 3 ms after the colour, except
    frame 1 (no depth at all) and frame 2 (depth of the wrong size)."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        cam = writer.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=TYPES)
        depth_conn = writer.add_connection("/cam/depth", "sensor_msgs/msg/Image", typestore=TYPES)
        info_conn = writer.add_connection(
            "/cam/info", "sensor_msgs/msg/CameraInfo", typestore=TYPES
        )
        for index in range(3):
            image = Image(header=header(index), height=36, width=52, encoding="rgb8",
                          is_bigendian=0, step=156, data=pixels(index).reshape(-1))  # fmt: skip
            writer.write(cam, 1_000 + index, TYPES.serialize_cdr(image, Image.__msgtype__))
            info = camera_info(header(index))
            writer.write(info_conn, 1_000 + index, TYPES.serialize_cdr(info, INFO_TYPE))
            if index == 1:
                continue
            stamp = Header(stamp=Time(sec=100 + index, nanosec=3_000_005), frame_id="depth_optical")
            shape = (20, 30) if index == 2 else (36, 52)
            depth = depth_pixels(encoding, metres, shape)
            msg = Image(header=stamp, height=shape[0], width=shape[1], encoding=encoding,
                        is_bigendian=0, step=depth.strides[0],
                        data=depth.view(np.uint8).reshape(-1))  # fmt: skip
            writer.write(depth_conn, 1_002 + index, TYPES.serialize_cdr(msg, Image.__msgtype__))


def camera_info(stamp: Header) -> CameraInfo:
    eye = np.eye(3).reshape(-1)
    return CameraInfo(
        header=stamp, height=36, width=52, distortion_model="plumb_bob", d=np.zeros(5),
        k=np.array(K), r=eye, p=np.array([*K[:3], 0.0, *K[3:6], 0.0, *K[6:], 0.0]),
        binning_x=0, binning_y=0,
        roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )  # fmt: skip


@pytest.fixture
def fixed_mask(monkeypatch):
    """The real engine runs; its mask is replaced by MASK, so the depth has a known answer."""
    import dataclasses

    from minelisa_training.engine import SegmentationEngine

    segment = SegmentationEngine.segment

    def with_fixed_mask(self, *args, **kwargs):
        return dataclasses.replace(segment(self, *args, **kwargs), mask=MASK.copy())

    monkeypatch.setattr(SegmentationEngine, "segment", with_fixed_mask)


@pytest.mark.parametrize(
    "storage,encoding,metres",
    [(StoragePlugin.SQLITE3, "16UC1", 2.0), (StoragePlugin.MCAP, "32FC1", 1.5)],
)
def test_bag_with_depth_gets_result_points_and_markers(
    tmp_path, bundle, capsys, fixed_mask, storage, encoding, metres
):
    from minelisa_training.depth import Intrinsics, mask_depth_stats, mask_points

    src, dst = tmp_path / "in", tmp_path / "out"
    write_depth_bag(src, storage, encoding, metres)
    assert main([*bag_args(src, dst, bundle), *DEPTH_ARGS]) == 0
    captured = capsys.readouterr()
    assert "segmented 3 image(s) of /cam/image" in captured.out
    assert "; 1 with depth from /cam/depth" in captured.out
    assert "no depth for 1 image(s): no depth frame within 0.05 s" in captured.err
    assert "skipped 1 depth image(s): depth image is 30x20, the colour image 52x36" in captured.err
    topics = read_bag(dst)
    assert len(topics["/cam/depth"]) == 2 and len(topics["/cam/info"]) == 3  # copied

    results = topics["/minelisa/result"]
    assert [t for t, _ in results] == [1_000, 1_001, 1_002]  # the colour images' bag times
    (_, good), (_, missing), (_, bad) = results
    assert (good.header.stamp.sec, good.header.frame_id) == (100, "front_camera")
    assert good.has_depth and abs(good.distance_m - metres) <= 0.02
    assert abs(good.distance_p10_m - metres) <= 0.02
    np.testing.assert_array_equal(good.mask.data.reshape(36, 52) == 255, MASK)
    assert good.source == "bag" and good.prompt_fresh and good.inference_ms > 0
    assert good.coverage == pytest.approx(MASK.mean())
    depth = depth_pixels(encoding, metres)
    intrinsics = Intrinsics.from_k(K, 52, 36)
    stats = mask_depth_stats(MASK, depth, intrinsics, erode_px=3)
    got = (good.centroid.x, good.centroid.y, good.centroid.z)
    np.testing.assert_allclose(got, stats.centroid, atol=1e-6)
    np.testing.assert_allclose(
        (good.extent.x, good.extent.y, good.extent.z), stats.extent, atol=1e-6
    )
    assert good.depth_valid_fraction == pytest.approx(1.0)
    for msg in (missing, bad):  # no partner; wrong size: a result all the same, without depth
        assert not msg.has_depth and np.isnan(msg.distance_m) and np.isnan(msg.centroid.z)
        assert msg.header.stamp.sec in (101, 102)

    ((points_time, cloud),) = topics["/minelisa/points"]  # only the frame with depth
    assert points_time == 1_000
    # As the node: the depth image's header (frame and stamp), float32 x y z.
    assert (cloud.header.frame_id, cloud.header.stamp.nanosec) == ("depth_optical", 3_000_005)
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
    ]
    xyz = cloud.data.view(np.float32).reshape(-1, 3)
    assert cloud.point_step == 12 and cloud.height == 1 and cloud.width == len(xyz)
    np.testing.assert_allclose(xyz, mask_points(MASK, depth, intrinsics, 0.02), rtol=1e-6)
    assert len(xyz) == MASK.sum()  # 4 cm between pixels at this range: a point per voxel
    np.testing.assert_allclose(xyz[:, 2], metres, rtol=1e-6)

    ((_, markers),) = topics["/minelisa/markers"]
    sphere, text = markers.markers
    assert text.text == f"conveyor belt {metres:.1f} m"
    assert (sphere.type, sphere.action, text.type) == (2, 0, 9)
    assert sphere.header.frame_id == "depth_optical"
    np.testing.assert_allclose(
        (sphere.pose.position.x, sphere.pose.position.y, sphere.pose.position.z),
        stats.centroid,
        atol=1e-6,
    )


def test_depth_options_errors_name_what_the_bag_has(tmp_path, bundle, capsys):
    src = tmp_path / "in"
    write_depth_bag(src, StoragePlugin.SQLITE3, "16UC1", 2.0)

    def run(*extra: str) -> str:
        assert main([*bag_args(src, tmp_path / "out", bundle), *extra]) == 2
        return capsys.readouterr().err

    err = run("--depth-topic", "/cam/depth")
    assert "--depth-topic and --camera-info-topic go together" in err
    err = run("--depth-topic", "/cam/nodepth", "--camera-info-topic", "/cam/info")
    assert "--depth-topic /cam/nodepth is not in" in err
    assert "sensor_msgs/msg/Image topics there: /cam/depth, /cam/image" in err
    err = run("--depth-topic", "/cam/depth", "--camera-info-topic", "/cam/depth")
    assert "--camera-info-topic /cam/depth holds sensor_msgs/msg/Image, not " in err
    assert "sensor_msgs/msg/CameraInfo topics there: /cam/info" in err
    err = run(*DEPTH_ARGS, "--depth-sync-tolerance", "-1")
    assert "--depth-sync-tolerance must be within 0..10, got -1" in err
    err = run(*DEPTH_ARGS, "--points-topic", "/cam/info")
    assert "must differ from the input topics: /cam/info" in err
    assert not (tmp_path / "out").exists()


def test_result_definition_matches_the_msg_file():
    from minelisa_ros.bag_depth import RESULT_MSGDEF

    text = (Path(__file__).resolve().parents[1] / "msg" / "SegmentationResult.msg").read_text()
    fields = [line.split("#")[0].strip() for line in text.splitlines()]
    assert [f for f in fields if f] == RESULT_MSGDEF.splitlines()


def test_bag_depth_defaults_are_the_node_parameters():
    pytest.importorskip("rclpy")
    from minelisa_ros import bag_depth
    from minelisa_ros.parameters import NODE_PARAMETERS

    node = {p.name: p for p in NODE_PARAMETERS}
    for name, default, bounds in (
        ("depth_sync_tolerance", bag_depth.SYNC_TOLERANCE_S, bag_depth.SYNC_TOLERANCE_RANGE),
        ("depth_erode_px", bag_depth.ERODE_PX, bag_depth.ERODE_RANGE),
        ("points_voxel_m", bag_depth.VOXEL_M, bag_depth.VOXEL_RANGE),
    ):
        assert node[name].default == default, name
        assert (node[name].float_range or node[name].int_range) == bounds, name


@pytest.mark.parametrize("has_depth", [True, False])
def test_bag_and_node_build_the_same_messages(has_depth):
    """The same builders with rosbags' and rclpy's classes give the same CDR bytes."""
    pytest.importorskip("rclpy")
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header as RosHeader

    from minelisa_ros.bag_depth import RosbagsKit
    from minelisa_ros.spatial import markers_message, points_message
    from minelisa_training.depth import Intrinsics, mask_depth_stats, mask_points

    depth = depth_pixels("16UC1", 2.0) if has_depth else np.zeros((36, 52), np.uint16)
    intrinsics = Intrinsics.from_k(K, 52, 36)
    stats = mask_depth_stats(MASK, depth, intrinsics, erode_px=3)
    points = mask_points(MASK, depth, intrinsics, 0.02)
    ros_header = RosHeader(frame_id="depth_optical")
    ros_header.stamp.sec, ros_header.stamp.nanosec = 7, 9
    bag_header = Header(stamp=Time(sec=7, nanosec=9), frame_id="depth_optical")
    kit = RosbagsKit(TYPES)
    pairs = [
        (points_message(points, ros_header), points_message(points, bag_header, kit)),
        (
            markers_message(INSTRUCTION, 1, stats, ros_header),
            markers_message(INSTRUCTION, 1, stats, bag_header, kit),
        ),
    ]
    for node_msg, bag_msg in pairs:
        msgtype = bag_msg.__msgtype__
        # Through rosbags once: Fast-CDR leaves its padding bytes uninitialised.
        node_cdr = TYPES.deserialize_cdr(serialize_message(node_msg), msgtype)
        assert bytes(TYPES.serialize_cdr(node_cdr, msgtype)) == bytes(
            TYPES.serialize_cdr(bag_msg, msgtype)
        )


def test_depth_pairing_by_stamp_and_the_camera_info_of_its_time(tmp_path):
    """Nearest depth stamp within the tolerance; the latest camera_info stamped no later
    than that depth image (plus the tolerance); no model needed."""
    import argparse

    from minelisa_ros.bag_depth import DepthSource

    bag = tmp_path / "in"
    depth = depth_pixels("16UC1", 2.0)
    with Writer(bag, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        depth_conn = writer.add_connection("/cam/depth", Image.__msgtype__, typestore=TYPES)
        info_conn = writer.add_connection("/cam/info", INFO_TYPE, typestore=TYPES)
        for sec, nanosec, fx in ((99, 0, 50.0), (100, 180_000_000, 80.0)):
            info = camera_info(Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="c"))
            info.k[0] = info.k[4] = fx
            writer.write(info_conn, sec * 10**9 + nanosec, TYPES.serialize_cdr(info, INFO_TYPE))
        for index, nanosec in enumerate((0, 100_000_000, 200_000_000)):
            stamp = Header(stamp=Time(sec=100, nanosec=nanosec), frame_id=f"d{index}")
            msg = Image(header=stamp, height=36, width=52, encoding="16UC1", is_bigendian=0,
                        step=104, data=depth.view(np.uint8).reshape(-1))  # fmt: skip
            writer.write(depth_conn, 5 + index, TYPES.serialize_cdr(msg, Image.__msgtype__))
    args = argparse.Namespace(input=bag, depth_topic="/cam/depth", camera_info_topic="/cam/info",
                              depth_sync_tolerance=0.05)  # fmt: skip
    with AnyReader([bag], default_typestore=TYPES) as reader:
        source = DepthSource(reader, reader, args)

        def pair(nanosec: int) -> tuple:
            frame, why = source.frame(
                Header(stamp=Time(sec=100, nanosec=nanosec), frame_id="c"), (36, 52)
            )
            return (frame.header.frame_id, frame.intrinsics.fx) if frame else why

        assert pair(10_000_000) == ("d0", 50.0)
        assert pair(140_000_000) == ("d1", 50.0)  # 40 ms from d1; B is stamped after d1
        assert pair(160_000_000) == ("d2", 80.0)  # nearer d2, after B
        assert pair(330_000_000) == "no depth frame within 0.05 s of the colour frame"
