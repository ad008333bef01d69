"""The ROS extras of setup.py against the versions CI installs (requirements-ci.txt)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_extras() -> dict[str, list[str]]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "EXTRAS_REQUIRE" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no EXTRAS_REQUIRE")


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "requirements-ci.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[name.lower().replace("_", "-")] = version
    return out


def split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"([A-Za-z0-9_.\-]+)(.*)", requirement).groups()
    return name.lower().replace("_", "-"), spec.strip()


def test_ros_build_extra_has_every_cmake_package_ci_needs():
    """`pip install -e .[ros,ros-build]` then a cmake configure needs all of them (#11.8)."""
    extras = setup_extras()
    declared = dict(split(r) for r in extras["ros"] + extras["ros-build"])
    needed = [n for n in pins() if n.startswith("ros-jazzy-")]
    missing = sorted(set(needed) - set(declared))
    assert not missing, f"missing from the ros/ros-build extras: {missing}"
    for name in (
        "ros-jazzy-ament-cmake-include-directories",
        "ros-jazzy-ament-cmake-gmock",
        "ros-jazzy-ament-cmake-gtest",
        "ros-jazzy-ament-cmake-pytest",
    ):
        assert name in dict(split(r) for r in extras["ros-build"]), name


def test_ros_extras_admit_the_ci_versions():
    from packaging.requirements import Requirement

    ci = pins()
    for requirement in setup_extras()["ros"] + setup_extras()["ros-build"]:
        parsed = Requirement(requirement)
        name = parsed.name.lower().replace("_", "-")
        if name in ci:
            assert parsed.specifier.contains(ci[name]), (requirement, ci[name])
