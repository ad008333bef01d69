"""Depth, points, markers, proximity alerts and following on the real node (one start-up).

RGB-D frames of a flat wall at 2 m (32FC1) stream on image/depth/camera_info; inline
requests carry their own 16UC1 depth at 1.5 m. The tiny random model's masks are
arbitrary but non-empty, and the depth is uniform, so every mask lies at the known
distance.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ros_helpers import (  # noqa: E402
    FRAME_SIZE,
    NodeProcess,
    domain_id,
    interfaces_prefix,
    ros_env,
    run_probe,
)

pytestmark = pytest.mark.ros

INSTRUCTION = "segment the exposed cable"
STANDING = "segment the person"
THRESHOLD_M = 3.0  # the wall at 2 m is within it, but not within half of it: WARN


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_bundle):
    work = tmp_path_factory.mktemp("ros_depth")
    env = ros_env(interfaces_prefix(tmp_path_factory), domain_id=domain_id(40))
    node = NodeProcess(
        env,
        work / "node.log",
        [
            "-p", f"model_path:={tiny_bundle}",
            "-p", "diagnostics_period:=0.2",
            "-p", "use_depth:=true",
            "-p", "depth_sync_tolerance:=0.01",
            "-p", "points_voxel_m:=0.0",
            "-p", "depth_erode_px:=1",
            "-p", "llm_refresh_period:=60.0",
            "-p", "scene_change_threshold:=2.0",
            "-p", f"proximity_alerts:=['{STANDING}={THRESHOLD_M}']",
            "-p", "max_frame_age:=2.0",
            "-r", "image:=/rgbd/color",
            "-r", "depth:=/rgbd/depth",
            "-r", "camera_info:=/rgbd/camera_info",
        ],
    )  # fmt: skip
    try:
        node.wait_for("active: segmenting", timeout=120)
        out = run_probe(
            env,
            "depth",
            work / "probe",
            timeout=240,
            camera="/rgbd/color",
            depth_topic="/rgbd/depth",
            info_topic="/rgbd/camera_info",
            instruction=INSTRUCTION,
            standing=STANDING,
            standing_seconds=3.0,
        )
    finally:
        code = node.stop()
    out["log"], out["exit"] = node.text(), code
    return out


def test_service_distance_from_the_topics_and_inline(report):
    calls = report["calls"]
    topic = calls["topic_32f"]
    assert topic["success"], topic["message"]
    assert topic["depth"]["has_depth"]
    assert abs(topic["depth"]["distance_m"] - 2.0) < 0.02
    assert abs(topic["depth"]["centroid"][2] - 2.0) < 0.02
    assert topic["depth"]["valid_fraction"] == pytest.approx(1.0)
    inline = calls["inline_16u"]
    assert inline["success"], inline["message"]
    assert inline["depth"]["has_depth"] and abs(inline["depth"]["distance_m"] - 1.5) < 0.02
    assert inline["mask"]["frame_id"] == "inline_cam"


def test_bad_depth_is_refused_with_a_message_and_the_node_keeps_serving(report):
    calls = report["calls"]
    assert not calls["bad_zero_k"]["success"]
    assert "camera_info" in calls["bad_zero_k"]["message"]
    assert "all zeros" in calls["bad_zero_k"]["message"]
    assert not calls["bad_size"]["success"]
    assert "30x20" in calls["bad_size"]["message"] and "64x48" in calls["bad_size"]["message"]
    assert not calls["bad_encoding"]["success"]
    assert "8UC1" in calls["bad_encoding"]["message"]
    assert calls["good_after_bad"]["success"]
    assert calls["good_after_bad"]["depth"]["has_depth"]
    assert report["exit"] == 0


def test_points_and_markers(report):
    points = report["topics"]["points"]
    assert points, "no ~/points"
    cloud = points[0]
    assert cloud["fields"] == [["x", 0, 7, 1], ["y", 4, 7, 1], ["z", 8, 7, 1]]
    assert cloud["point_step"] == 12 and cloud["height"] == 1
    assert 0 < cloud["width"] <= FRAME_SIZE[0] * FRAME_SIZE[1]
    assert cloud["frame_id"] == "depth_optical"
    assert set(cloud["z"]) <= {2.0, 1.5}
    texts = [t for m in report["topics"]["markers"] for t in m["texts"] if t]
    assert "exposed cable 2.0 m" in texts
    assert "person 2.0 m" in texts


def test_standing_results_follow_and_raise_an_alert(report):
    standing = [r for r in report["topics"]["result"] if r["source"] == "standing"]
    assert len(standing) >= 2, standing
    assert standing[0]["prompt_fresh"] and standing[0]["prompt_age_s"] == 0.0
    assert not standing[1]["prompt_fresh"] and standing[1]["prompt_age_s"] > 0.0
    assert all(r["has_depth"] and abs(r["distance_m"] - 2.0) < 0.02 for r in standing)
    service = [r for r in report["topics"]["result"] if r["source"] == "service"]
    assert service and all(r["prompt_fresh"] for r in service)
    alerts = report["topics"]["alert"]
    assert alerts and alerts[0]["instruction"] == STANDING
    assert alerts[0]["level"] == 1 and alerts[0]["threshold_m"] == pytest.approx(THRESHOLD_M)
    assert abs(alerts[0]["distance_m"] - 2.0) < 0.02
    after = [d for d in report["topics"]["diagnostics"] if d["t"] > alerts[0]["t"] + 0.3]
    assert after and after[0]["level"] == 1 and "proximity" in after[0]["message"]
    assert after[0]["values"][f"proximity_level[{STANDING}]"] == "1"
    assert not math.isnan(alerts[0]["distance_m"])
