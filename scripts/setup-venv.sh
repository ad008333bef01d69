#!/usr/bin/env bash
# Creates ./.venv with every dependency at the versions CI tests, then installs
# this tree in editable mode. Safe to re-run. Python 3.10-3.12.
# Where ../shared/ros2-tools (or $ROS2_TOOLS) exists, the ROS 2 command-line tools
# and launch system are installed too (scripts/install-ros2-tools.sh); without them
# the tests that drive `ros2 launch` / `ros2 param` skip and say what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-ci.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
if [ -d "${ROS2_TOOLS:-../shared/ros2-tools}/wheels" ]; then
  scripts/install-ros2-tools.sh
else
  echo "ROS 2 tools not found (${ROS2_TOOLS:-../shared/ros2-tools}): ros2 CLI tests will skip"
fi
echo "MineLISA environment ready: $(pwd)/.venv"
