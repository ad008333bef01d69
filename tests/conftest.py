"""Shared fixtures: tiny random models written in the real file formats."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest


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
