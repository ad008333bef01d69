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


class _LoggedProcess:
    """A child process whose output goes to ``self.log``; ``what`` names it in errors."""

    what = "process"

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.what} exited with {self.proc.returncode}:\n{self.text()}"
                )
            time.sleep(0.2)
        raise TimeoutError(f"{self.what} did not log {needle!r} in {timeout} s:\n{self.text()}")


class NodeProcess(_LoggedProcess):
    """`python -m minelisa_ros.node` as a child process, its log in a file."""

    what = "node"

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


# -- the ROS 2 command-line tools and launch ---------------------------------------------------
SHARED_TOOLS = REPO.parent / "shared" / "ros2-tools"
TOOL_MODULES = (
    "launch",
    "launch_ros",
    "ros2cli",
    "ros2launch",
    "ros2param",
    "ros2service",
    "ros2topic",
    "ros2run",
    "osrf_pycommon",
    "composition_interfaces.srv",
)
ROS2_MAIN = "import sys; from ros2cli.cli import main; sys.exit(main())"


class Ros2Tools:
    """`ros2 ...` commands, from the venv (or a ROS installation) or installed for the session
    from the ros2-tools folder beside the repository."""

    def __init__(self, source: str, paths: dict[str, list[str]] | None = None) -> None:
        self.source = source
        self.paths = paths or {}

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        for name, values in self.paths.items():
            env[name] = os.pathsep.join([*values, *([env[name]] if env.get(name) else [])])
        return env

    @staticmethod
    def command(*args: str) -> list[str]:
        return [sys.executable, "-c", ROS2_MAIN, *args]


def missing_modules(env: dict[str, str], modules: tuple[str, ...] = TOOL_MODULES) -> list[str]:
    """The modules a child Python with `env` cannot import."""
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        print(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *modules], env=env, capture_output=True, text=True
    )
    return done.stdout.split()


def ros2_tools(base_env: dict[str, str], workdir: Path) -> tuple[Ros2Tools | None, str]:
    """The tools, or None and why not (a skip reason naming what is missing)."""
    if os.environ.get("MINELISA_TEST_ROS2_TOOLS") != "shared":
        missing = missing_modules(base_env)
        if not missing:
            return Ros2Tools("installed"), ""
    else:
        missing = list(TOOL_MODULES)
    if not (SHARED_TOOLS / "wheels").is_dir():
        return None, (
            f"ROS 2 command-line tools not installed (cannot import {', '.join(missing)}) and "
            f"no {SHARED_TOOLS} to install them from: run scripts/install-ros2-tools.sh, or "
            "install ROS 2 Jazzy"
        )
    return _install_shared(base_env, workdir)


def _install_shared(base_env: dict[str, str], workdir: Path) -> tuple[Ros2Tools | None, str]:
    site, prefix = workdir / "site", workdir / "prefix"
    wheels = sorted(str(p) for p in (SHARED_TOOLS / "wheels").glob("*.whl"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    done = subprocess.run([*pip, *wheels], capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"installing {SHARED_TOOLS}/wheels failed: {done.stderr[-500:]}"
    tools = Ros2Tools(
        "shared",
        {
            "PYTHONPATH": [str(site), str(site_packages(prefix))],
            "LD_LIBRARY_PATH": [str(prefix / "lib")],
            "AMENT_PREFIX_PATH": [str(prefix)],
        },
    )
    if "osrf_pycommon" in missing_modules(tools.env(base_env), ("osrf_pycommon",)):
        # Pure Python, from PyPI (launch runs processes with it).
        subprocess.run([*pip, "osrf-pycommon==2.0.2"], capture_output=True, text=True)
    if "composition_interfaces.srv" in missing_modules(
        tools.env(base_env), ("composition_interfaces.srv",)
    ):
        problem = _build_composition_interfaces(workdir, prefix)
        if problem:
            return None, problem
    missing = missing_modules(tools.env(base_env))
    if missing:
        return None, f"ROS 2 tools from {SHARED_TOOLS} still lack: {', '.join(missing)}"
    return tools, ""


def _build_composition_interfaces(workdir: Path, prefix: Path) -> str:
    """CMake build of the composition_interfaces source (launch_ros imports it)."""
    cmake = shutil.which("cmake", path=str(VENV / "bin")) or shutil.which("cmake")
    if cmake is None:
        return "cmake not found (pip install cmake), needed for composition_interfaces"
    # The wheels' stale include paths, dropped as in the package's own CMakeLists.txt.
    include = REPO / "cmake" / "include_dirs.cmake"
    build = workdir / "build_composition_interfaces"
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV))
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = [
        cmake, "-S", str(SHARED_TOOLS / "composition_interfaces"), "-B", str(build), *generator,
        f"-DCMAKE_PREFIX_PATH={VENV}", f"-DPython3_EXECUTABLE={sys.executable}",
        f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DBUILD_TESTING=OFF",
        f"-DCMAKE_PROJECT_INCLUDE={include}",
    ]  # fmt: skip
    for command in (configure, [cmake, "--build", str(build)], [cmake, "--install", str(build)]):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return f"building composition_interfaces failed: {done.stdout[-1500:]}"
    return ""


class LaunchProcess(_LoggedProcess):
    """`ros2 launch ...` in a session of its own, as a terminal would run it (Ctrl-C goes to
    the whole process group)."""

    what = "launch"

    def __init__(self, tools: Ros2Tools, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                tools.command("launch", *args),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pgid = self.proc.pid

    def group_alive(self) -> bool:
        """Whether any process of the launch's process group is still running."""
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait_group(self, timeout: float) -> bool:
        """Wait until the whole process group has gone; False if some process is left."""
        deadline = time.monotonic() + timeout
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        return not self.group_alive()

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C: SIGINT to the process group; the launch's exit status."""
        os.killpg(self.pgid, signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.group_alive():
            os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait()
