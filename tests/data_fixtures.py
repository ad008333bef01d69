"""Synthetic MUSeg-layout datasets shared by the data and evaluation tests.

Import the fixtures into a test module (``from data_fixtures import synth_data``);
tests/conftest.py stays with the model fixtures.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from minelisa_training import synth

# Small images keep the suite fast; 48 images give every mine several capture groups.
SYNTH_CFG = synth.SynthConfig(images=48, seed=11, width=160, height=128)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> tuple[Path, dict]:
    """(root, write_dataset summary) of a read-only synthetic dataset (order A)."""
    root = tmp_path_factory.mktemp("synth") / "MUSeg"
    summary = synth.write_dataset(root, SYNTH_CFG, progress=False)
    return root, summary


@pytest.fixture
def synth_copy(synth_data, tmp_path) -> Path:
    """A private copy of ``synth_data`` that a test may damage."""
    dst = tmp_path / "MUSeg"
    shutil.copytree(synth_data[0], dst)
    return dst
