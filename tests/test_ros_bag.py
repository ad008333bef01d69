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

HIDDEN = {"rclpy", "ament_index_python", "cv_bridge", "rosidl_runtime_py", "rcl_interfaces"}


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
    """Uncompressed images, and neither rclpy nor ament_index_python importable (#12)."""
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, StoragePlugin.SQLITE3, compressed=False)
    done = subprocess.run(
        [sys.executable, "-c", HIDE_ROS, *bag_args(src, dst, tiny_bundle)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "segmented 2 image(s) of /cam/image" in done.stdout
    assert len(read_bag(dst)["/minelisa/mask"]) == 2


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
