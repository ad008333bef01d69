#!/usr/bin/env bash
# Creates ./.venv with every dependency at the versions CI tests, then installs
# this tree in editable mode. Safe to re-run. Python 3.10-3.12.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-ci.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
echo "MineLISA environment ready: $(pwd)/.venv"
