"""Shared fixtures (tiny random models written in the real file formats) and the test tiers.

Tiers: ``integration`` (the demo, kill-and-resume, several processes, bags) and
``ros`` (CMake-built interfaces, node processes, the ROS 2 tools). The everyday loop
is ``python -m pytest -m "not integration and not ros"``; CI and the README run all.
A module's tier is set here, in one place, by its name.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

# Shared dataset fixtures, available to every test module (pytest puts tests/ on sys.path).
from data_fixtures import synth_copy, synth_data  # noqa: E402, F401

INTEGRATION_MODULES = {
    "test_demo",
    "test_train_resume",
    "test_train_accumulation",
    "test_train_distributed",
    "test_eval_distributed",
    "test_ros_bag",
    "test_quantization",
    "test_compile",
    "test_following_bench",
    "test_train_naming",
}


def tier(module_name: str) -> str | None:
    """The marker a test module carries: ``ros``, ``integration`` or None (unit)."""
    if module_name.startswith("test_ros_") and module_name not in INTEGRATION_MODULES:
        return "ros"
    return "integration" if module_name in INTEGRATION_MODULES else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = tier(Path(str(item.fspath)).stem)
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(model, tokenizer) of the tiny preset with random weights."""
    from minelisa_training.testing import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-tokenizer"), seed=0)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """Path of a complete tiny bundle on disk."""
    from minelisa_training.testing import write_tiny_bundle

    return write_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny", seed=0)


@pytest.fixture
def rgb_image():
    """A 1082x932 (W x H) RGB frame, MUSeg's size, with some structure."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 60, size=(932, 1082, 3), dtype=np.uint8)
    img[300:500, 200:700] = (200, 180, 40)
    return img


@pytest.fixture
def one_process(monkeypatch):
    """Rank variables of one launched process (world size 1), restored afterwards: what an
    in-process DeepSpeed run needs."""
    from minelisa_training.training.distributed import free_port

    for var, value in (
        ("RANK", "0"),
        ("WORLD_SIZE", "1"),
        ("LOCAL_RANK", "0"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", str(free_port())),
    ):
        monkeypatch.setenv(var, value)
