"""The package through the real ROS 2 tools: `ros2 launch`, `ros2 param`, `ros2 service`,
`ros2 topic hz`, `ros2 run`, and Ctrl-C.

The tools come from the venv (scripts/install-ros2-tools.sh) or a ROS installation, or
else are installed for the session from the ros2-tools folder beside the repository
(../shared/ros2-tools); without either these tests skip and say what is missing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from ros_helpers import (  # noqa: E402
    LaunchProcess,
    Ros2Tools,
    domain_id,
    interfaces_prefix,
    missing_modules,
    ros2_tools,
    ros_env,
    run_probe,
)

from minelisa_ros.parameters import parameter_names  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.integration]

CAMERA = "/tools_cam/image_raw"
STANDING = "segment the conveyor"
SLUG = "segment_the_conveyor"
# Lines an unclean run prints (launch's own shutdown lines are INFO).
UNCLEAN = ("[ERROR]", "[FATAL]", "Traceback", "never retrieved", "context is invalid")


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> Ros2Tools:
    prefix = interfaces_prefix(tmp_path_factory)
    found, reason = ros2_tools(ros_env(prefix, 0), tmp_path_factory.mktemp("ros2_tools"))
    if found is None:
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory, tools):
    return tools.env(ros_env(interfaces_prefix(tmp_path_factory), domain_id=domain_id(2)))


def ros2(tools: Ros2Tools, env: dict, *args: str, timeout: float = 60.0) -> str:
    """Run one `ros2 ...` command; its output (stdout and stderr)."""
    done = subprocess.run(
        tools.command(*args), env=env, capture_output=True, text=True, timeout=timeout
    )
    return f"{done.stdout}{done.stderr}\n(exit status {done.returncode})"


def topic_hz(tools: Ros2Tools, env: dict, topic: str, rates: int, timeout: float) -> list[float]:
    """The first `rates` average rates `ros2 topic hz` prints (it runs until interrupted),
    or those printed within `timeout` s: on a loaded machine its start-up and discovery
    alone can take several seconds."""
    proc = subprocess.Popen(
        tools.command("topic", "hz", topic),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    found: list[float] = []
    enough = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            found.extend(float(x) for x in re.findall(r"average rate: ([0-9.]+)", line))
            if len(found) >= rates:
                enough.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    enough.wait(timeout)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(5)
    return list(found)


@pytest.fixture(scope="module")
def launched(tmp_path_factory, tools, env, tiny_bundle):
    """`ros2 launch` with model_path, device and dtype only in the params file, then the
    other tools against the running node, then Ctrl-C with calls in flight."""
    work = tmp_path_factory.mktemp("launch")
    params = work / "params.yaml"
    values = {
        "model_path": str(tiny_bundle),
        "device": "cpu",
        "dtype": "fp32",
        "standing_instructions": [STANDING],
        "standing_rate": 4.0,
        "max_frame_age": 5.0,
    }
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    launch = LaunchProcess(
        tools, env, work / "launch.log",
        "minelisa", "minelisa.launch.py", f"params_file:={params}", f"image:={CAMERA}",
    )  # fmt: skip
    out = SimpleNamespace(values=values)
    stream = None
    try:
        launch.wait_for("active:", timeout=240)
        stream = run_probe(
            env, "stream", work / "stream", background=True, camera=CAMERA, seconds=300.0
        )
        _use_the_tools(tools, env, out)
        flood = run_probe(
            env, "flood", work / "flood", background=True, camera=CAMERA,
            instruction="segment the exposed cable", seconds=60.0,
        )  # fmt: skip
        _wait_for_file(work / "flood" / "flooding", 60)
        time.sleep(1.5)
        out.code = launch.interrupt()
        out.group_gone = launch.wait_group(10.0)
        flood.kill()
        flood.wait()
    finally:
        launch.kill()
        if stream is not None:
            stream.kill()
            stream.wait()
    out.log = launch.text()
    yield out


def _wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _use_the_tools(tools: Ros2Tools, env: dict, out: SimpleNamespace) -> None:
    wait = ["--no-daemon", "--timeout", "30"]
    out.get = {
        name: ros2(tools, env, "param", "get", *wait, "/minelisa", name)
        for name in ("model_path", "device", "dtype")
    }
    out.dump = ros2(tools, env, "param", "dump", *wait, "/minelisa")
    out.call = ros2(
        tools, env, "service", "call", "/minelisa/segment_by_instruction",
        "minelisa/srv/SegmentByInstruction", "{instruction: 'segment the exposed cable'}",
    )  # fmt: skip
    out.hz = topic_hz(tools, env, f"/minelisa/standing/{SLUG}/mask", rates=4, timeout=40.0)
    out.clear = ros2(tools, env, "param", "set", *wait, "/minelisa", "standing_instructions", "[]")
    out.after_clear = ros2(tools, env, "param", "get", *wait, "/minelisa", "standing_instructions")


def test_launch_takes_the_model_from_the_params_file(launched):
    """No model_path on the command line, and device/dtype from the file not the launch
    file's defaults (#11.2)."""
    assert "active: segmenting /tools_cam/image_raw" in launched.log, launched.log[-3000:]
    for name in ("model_path", "device", "dtype"):
        assert f"String value is: {launched.values[name]}" in launched.get[name], launched.get
    loaded = [line for line in launched.log.splitlines() if "loaded on" in line]
    assert any("loaded on cpu (float32, image views exact, compile off" in x for x in loaded), (
        loaded
    )


def test_param_dump_lists_every_parameter_with_a_value(launched):
    """(#11.1)"""
    dumped = yaml.safe_load(launched.dump.rsplit("(exit status", 1)[0])
    values = dumped["/minelisa"]["ros__parameters"]
    for name in parameter_names():
        assert name in values and values[name] is not None, (name, launched.dump)
    assert values["standing_instructions"] == [STANDING]


def test_service_call_succeeds_while_frames_flow(launched):
    assert "success=True" in launched.call, launched.call[-2000:]


def test_standing_instruction_has_its_own_mask_topic_at_its_rate(launched):
    """`ros2 topic hz` on ~/standing/<slug>/mask (#11.6); standing_rate is 4 Hz."""
    assert launched.hz, "ros2 topic hz printed no rate"
    # At most the rate asked for; less on a loaded CPU (a tick is skipped while one runs).
    assert 0.2 < max(launched.hz) < 6.0, launched.hz


def test_ros2_param_set_empty_list_clears_the_standing_instructions(launched):
    """ros2cli sends "[]" as a bool array (#11.10)."""
    assert "Set parameter successful" in launched.clear, launched.clear
    assert "String values are: []" in launched.after_clear, launched.after_clear


def test_ctrl_c_ends_with_status_0_no_errors_and_nothing_left(launched):
    """SIGINT to the launch's process group while service calls run (#11.5)."""
    assert launched.code == 0, launched.log[-3000:]
    assert launched.group_gone, "a process of the launch outlived it"
    found = [word for word in UNCLEAN if word in launched.log]
    assert not found, f"{found}:\n{launched.log[-4000:]}"
    assert "process has finished cleanly" in launched.log


def test_rviz_without_rviz2_fails_cleanly_and_starts_nothing(tools, env, tiny_bundle, tmp_path):
    """(#11.3)"""
    if not missing_modules(env, ("rviz2",)) or "rviz2" in ros2(tools, env, "pkg", "list"):
        pytest.skip("rviz2 is installed here")
    launch = LaunchProcess(
        tools, env, tmp_path / "launch.log", "minelisa", "minelisa.launch.py",
        f"model_path:={tiny_bundle}", "rviz:=true",
    )  # fmt: skip
    try:
        code = launch.proc.wait(timeout=120)
        left = not launch.wait_group(10.0)
    finally:
        launch.kill()
    log = launch.text()
    assert code != 0, log
    assert "rviz2 is not installed" in log, log
    assert not left, f"processes left running:\n{log}"
    assert "process started" not in log  # the node was never started


def test_launch_fails_when_the_node_cannot_configure(tools, env, tmp_path):
    """The node exits non-zero and so does the launch (#11.10)."""
    launch = LaunchProcess(
        tools, env, tmp_path / "launch.log", "minelisa", "minelisa.launch.py",
        f"model_path:={tmp_path / 'no_model'}",
    )  # fmt: skip
    try:
        code = launch.proc.wait(timeout=180)
        left = not launch.wait_group(10.0)
    finally:
        launch.kill()
    log = launch.text()
    assert "could not load the model" in log, log
    assert code != 0, log
    assert not left


def test_ros2_run_starts_the_node(tools, env, tiny_bundle, tmp_path):
    """`ros2 run` starts nodes/minelisa_node with `#!/usr/bin/env python3`: the venv is
    first on PATH here (as the README says it must be)."""
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            tools.command(
                "run", "minelisa", "minelisa_node", "--ros-args",
                "-p", f"model_path:={tiny_bundle}", "-r", "__node:=minelisa_run",
            ),
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while "active:" not in log.read_text() and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        assert "active:" in log.read_text(), log.read_text()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: ros2 run and the node both get it
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # ros2 run and the node it started
        except ProcessLookupError:
            pass
        proc.wait()
