"""The ROS package stays split along its seams: small modules, short functions, short lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minelisa_ros"
MODULES = sorted(PACKAGE.glob("*.py"))
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_LINE = 400, 60, 100


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_shape(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{path.name}: {len(lines)} lines"
    long_lines = [n for n, line in enumerate(lines, 1) if len(line) > MAX_LINE]
    assert not long_lines, f"{path.name}: lines over {MAX_LINE} characters: {long_lines}"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}: {node.name} has {length} lines"


def test_node_module_is_wiring_only():
    """node.py delegates: parameters, gate, camera, publishing and diagnostics live beside it."""
    for name in ("parameters", "gate", "camera", "publishing", "diagnostics"):
        assert (PACKAGE / f"{name}.py").is_file(), name
    source = (PACKAGE / "node.py").read_text()
    assert "id(frame)" not in source  # frames are told apart by sequence number
    assert "-> tuple[Any" not in source  # engine calls are typed
