#!/usr/bin/env bash
# Installs the ROS 2 Jazzy command-line tools and launch system (`ros2 launch`, `ros2 run`,
# `ros2 param`, `ros2 service`, `ros2 topic`, `ros2 lifecycle`, ...) into ./.venv, next to
# the ROS wheels from PyPI (scripts/setup-venv.sh). PyPI has no wheels of them: they come
# from the ros2-tools folder (wheels built from the ROS 2 `jazzy` sources, and the
# composition_interfaces source that launch_ros imports), by default ../shared/ros2-tools
# beside this repository; ROS2_TOOLS=<folder> names another. Safe to re-run.
# A machine with a real ROS 2 installation already has all of this.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV="$REPO/.venv"
TOOLS=${ROS2_TOOLS:-"$REPO/../shared/ros2-tools"}
if [ ! -x "$VENV/bin/python" ]; then
  echo "install-ros2-tools: no $VENV: run scripts/setup-venv.sh first" >&2
  exit 1
fi
if [ ! -d "$TOOLS/wheels" ] || [ ! -d "$TOOLS/composition_interfaces" ]; then
  echo "install-ros2-tools: $TOOLS has no wheels/ and composition_interfaces/" >&2
  exit 1
fi
PY="$VENV/bin/python"

# 1. launch, launch_ros, ros2cli and its verbs (no dependencies: the rest is already here),
#    and their pure-Python dependencies from PyPI.
"$PY" -m pip install -q --no-deps "$TOOLS"/wheels/*.whl
"$PY" -m pip install -q osrf-pycommon==2.0.2 argcomplete==3.7.2 importlib-metadata==10.2.0

# 2. composition_interfaces (launch_ros imports it), built with the wheels' rosidl toolchain
#    and installed into the venv prefix: its lib/ is on LD_LIBRARY_PATH there (the wheels'
#    bootstrapper adds it) and its site-packages is the venv's.
if "$PY" -c "import composition_interfaces.srv" 2>/dev/null; then
  echo "composition_interfaces: already installed"
else
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  CMAKE_BIN="$VENV/bin/cmake"
  [ -x "$CMAKE_BIN" ] || CMAKE_BIN=cmake
  GENERATOR=()
  if command -v ninja >/dev/null || [ -x "$VENV/bin/ninja" ]; then
    GENERATOR=(-G Ninja -DCMAKE_MAKE_PROGRAM="$(command -v ninja || echo "$VENV/bin/ninja")")
  fi
  AMENT_PREFIX_PATH="$VENV" "$CMAKE_BIN" -S "$TOOLS/composition_interfaces" -B "$WORK/build" \
    "${GENERATOR[@]}" -DCMAKE_PREFIX_PATH="$VENV" -DPython3_EXECUTABLE="$PY" \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
    -DCMAKE_PROJECT_INCLUDE="$REPO/cmake/include_dirs.cmake" >"$WORK/configure.log" 2>&1 \
    || { tail -40 "$WORK/configure.log" >&2; exit 1; }
  AMENT_PREFIX_PATH="$VENV" "$CMAKE_BIN" --build "$WORK/build" --parallel >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log" >&2; exit 1; }
  "$CMAKE_BIN" --install "$WORK/build" >"$WORK/install.log" 2>&1 \
    || { tail -40 "$WORK/install.log" >&2; exit 1; }
fi

# 3. Check: the tools import and find their verbs.
"$PY" -c "import launch, launch_ros, ros2cli, composition_interfaces.srv" 
"$VENV/bin/ros2" --help >/dev/null
echo "ROS 2 tools ready: $VENV/bin/ros2 (put $VENV/bin first on PATH for \`ros2 run\`)"
