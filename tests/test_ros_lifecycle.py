"""The node's life: answering in every lifecycle state, failing to configure, Ctrl-C.

Each test starts its own node process (`python -m minelisa_ros.node`) against real
ROS 2 (Jazzy PyPI wheels, Fast DDS on loopback) and drives it from a probe process.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ros_helpers import NodeProcess, domain_id, interfaces_prefix, ros_env, run_probe  # noqa: E402

pytestmark = pytest.mark.ros

# What an unclean exit prints: rclpy's context shut down under running callbacks, a task
# whose service was destroyed before it answered, an error log line.
UNCLEAN = (
    "Traceback",
    "never retrieved",
    "context is invalid",
    "cannot use Destroyable",
    "[ERROR]",
    "[FATAL]",
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return ros_env(interfaces_prefix(tmp_path_factory), domain_id=domain_id(1))


def test_service_answers_with_a_reason_in_every_state(env, tmp_path):
    """Unconfigured, and after a failed configure, the service exists and says why (#11.10)."""
    missing = tmp_path / "no_such_model"
    node = NodeProcess(
        env,
        tmp_path / "node.log",
        ["-p", f"model_path:={missing}", "-p", "autostart:=false", "-r", "__node:=minelisa_s"],
    )
    try:
        report = run_probe(
            env, "states", tmp_path / "probe", node="/minelisa_s", camera="/x", service_timeout=40.0
        )
    finally:
        code = node.stop()
    calls = report["calls"]
    assert not calls["unconfigured"]["success"]
    assert calls["unconfigured"]["message"].startswith("node is not configured"), calls
    assert "ros2 lifecycle set /minelisa_s configure" in calls["unconfigured"]["message"]
    assert report["configured"] is False
    failed = calls["failed_configure"]["message"]
    assert (
        failed.startswith("node is not configured: the model failed to load: ")
        and str(missing) in failed
    ), failed
    assert code == 0


def test_node_exits_non_zero_when_configure_fails(env, tmp_path):
    node = NodeProcess(env, tmp_path / "node.log", ["-p", f"model_path:={tmp_path / 'nothing'}"])
    try:
        code = node.proc.wait(timeout=120)
    finally:
        node.stop()
    assert code != 0
    assert "could not load the model" in node.text()


def test_ctrl_c_with_calls_in_flight_exits_cleanly(env, tmp_path, tiny_bundle):
    """SIGINT while service calls, standing instructions and topics are busy (#11.5)."""
    node = NodeProcess(
        env,
        tmp_path / "node.log",
        [
            "-p", f"model_path:={tiny_bundle}",
            "-p", "standing_instructions:=['segment the conveyor']",
            "-p", "standing_rate:=20.0",
            "-p", "max_queued_requests:=1",
            "-r", "__node:=minelisa_f",
            "-r", "image:=/flood_cam/image_raw",
        ],
    )  # fmt: skip
    node.wait_for("active:", timeout=180)
    out = tmp_path / "probe"
    probe = run_probe(
        env,
        "flood",
        out,
        background=True,
        node="/minelisa_f",
        camera="/flood_cam/image_raw",
        instruction="segment the exposed cable",
        seconds=30.0,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "flooding").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # calls answered and in flight, topics publishing
        node.proc.send_signal(signal.SIGINT)
        code = node.proc.wait(timeout=30)
    finally:
        node.stop()
        probe.kill()
        probe.wait()
    log = node.text()
    assert code == 0, log[-3000:]
    in_flight = re.search(r"shutting down: (\d+) service call\(s\) in flight", log)
    assert in_flight and int(in_flight.group(1)) >= 1, log[-3000:]
    found = [word for word in UNCLEAN if word in log]
    assert not found, f"{found} in the node's log:\n{log[-4000:]}"
