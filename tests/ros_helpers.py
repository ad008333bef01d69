"""Running the ROS 2 package for tests: build its interfaces with the PyPI wheels'
toolchain, start the node as a process, run ROS client scripts in subprocesses.

ROS processes need the interface build's `lib/` on LD_LIBRARY_PATH before
Python starts, so everything that talks ROS runs in a child process with
`ros_env()`; the pytest process only reads their results.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
PROBE = Path(__file__).with_name("ros_probe.py")
FRAME_SIZE = (48, 64)  # height, width of the streamed test frames


def frame_pixels(index: int) -> np.ndarray:
    """The RGB content of streamed frame `index` (the probe and the tests agree on it)."""
    rng = np.random.default_rng(1000 + index)
    return rng.integers(0, 256, size=FRAME_SIZE + (3,), dtype=np.uint8)


def build_interfaces(workdir: Path) -> Path:
    """cmake configure + build + install of this package; returns the install prefix."""
    cmake = shutil.which("cmake", path=str(VENV / "bin")) or shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("cmake not found (pip install cmake)")
    build, prefix = workdir / "build", workdir / "install"
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV))  # else "No 'rosidl_typesupport_c' found"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = [
        cmake,
        "-S",
        str(REPO),
        "-B",
        str(build),
        *generator,
        f"-DCMAKE_PREFIX_PATH={VENV}",
        f"-DPython3_EXECUTABLE={sys.executable}",
        f"-DCMAKE_INSTALL_PREFIX={prefix}",
        "-DBUILD_TESTING=OFF",
    ]
    for command in (
        configure,
        [cmake, "--build", str(build), "--parallel"],
        [cmake, "--install", str(build)],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
    return prefix


_PREFIXES: dict[Path, Path] = {}


def interfaces_prefix(tmp_path_factory) -> Path:
    """The package built and installed once per test session (about 10 s of CMake)."""
    base = tmp_path_factory.getbasetemp()
    if base not in _PREFIXES:
        _PREFIXES[base] = build_interfaces(tmp_path_factory.mktemp("ros_build"))
    return _PREFIXES[base]


def domain_id(offset: int) -> int:
    """A ROS domain for one group of tests: apart from other groups and other sessions."""
    return (os.getpid() + offset) % 100 + 1


def site_packages(prefix: Path) -> Path:
    version = sysconfig.get_python_version()
    return prefix / "lib" / f"python{version}" / "site-packages"


def ros_env(prefix: Path, domain_id: int) -> dict[str, str]:
    env = dict(os.environ)

    def prepend(name: str, value: str) -> None:
        # Never replace: the wheels put their libraries there.
        env[name] = value + (os.pathsep + env[name] if env.get(name) else "")

    # `ros2 run` and `ros2 launch` start the node with `#!/usr/bin/env python3`.
    prepend("PATH", str(VENV / "bin"))
    prepend("LD_LIBRARY_PATH", str(prefix / "lib"))
    prepend("PYTHONPATH", str(site_packages(prefix)))
    prepend("AMENT_PREFIX_PATH", f"{prefix}{os.pathsep}{VENV}")
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONUNBUFFERED="1",
        RCUTILS_COLORIZED_OUTPUT="0",
    )
    return env


class NodeProcess:
    """`python -m minelisa_ros.node` as a child process, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path, ros_args: list[str]) -> None:
        self.log = log
        self._file = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minelisa_ros.node", "--ros-args", *ros_args],
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
        )

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.2)
        raise TimeoutError(f"node did not log {needle!r} in {timeout} s:\n{self.text()}")

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._file.close()
        return self.proc.returncode


def run_probe(
    env: dict[str, str],
    scenario: str,
    out_dir: Path,
    timeout: float = 120.0,
    background: bool = False,
    **options,
):
    """Run one client scenario of ros_probe.py; returns its JSON report (arrays in out_dir),
    or with `background` the running process (its output in out_dir/probe.log)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = json.dumps({"scenario": scenario, "out_dir": str(out_dir), **options})
    command = [sys.executable, str(PROBE), spec]
    if background:
        log = open(out_dir / "probe.log", "w")  # noqa: SIM115 (the child writes it)
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return proc
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    (out_dir / "probe.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(
            f"probe {scenario} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-6000:]}"
        )
    return json.loads((out_dir / "report.json").read_text())
