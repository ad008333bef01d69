"""Small builders shared by the training tests (tiny model, one training batch)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from minelisa_training.checkpoint import save_bundle
from minelisa_training.testing import build_model, write_tiny_tokenizer
from minelisa_training.training.data import Example, ExampleEncoder, TrainBatch, collate
from minelisa_training.training.demo import demo_model_config


def tiny_demo_model(tmp_path: Path, seed: int = 0):
    """The demo's tiny model (SAM at 256 px: fast on a CPU) and its tokenizer."""
    tokenizer = write_tiny_tokenizer(tmp_path / "tokenizer")
    return build_model(demo_model_config(len(tokenizer)), tokenizer, seed), tokenizer


def tiny_demo_bundle(tmp_path: Path, seed: int = 0) -> Path:
    model, tokenizer = tiny_demo_model(tmp_path, seed)
    return save_bundle(model, tokenizer, tmp_path / "bundle")


def training_batch(
    model, tokenizer, seed: int = 0, instruction: str = "Please segment the cable in this image."
) -> TrainBatch:
    """One example: a 120x96 image with a bright box and its mask."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, size=(96, 120, 3), dtype=np.uint8)
    mask = np.zeros((96, 120), dtype=bool)
    mask[30:70, 20:90] = True
    image[mask] = (200, 180, 40)
    encoder = ExampleEncoder(tokenizer, model.config)
    return collate(
        [encoder(Example("img", image, instruction, mask, class_id=2))], tokenizer.pad_id
    )


def subprocess_env() -> dict[str, str]:
    """The environment for a `minelisa` child process: the command fills in the rank
    variables for one process itself (inherited ones could name a port in use)."""
    env = dict(os.environ)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    return env


class FakeEngine:
    """What training.checkpointing.CheckpointManager uses of a DeepSpeed engine."""

    def __init__(self) -> None:
        import torch

        self.module = torch.nn.Linear(3, 2)

    def save_checkpoint(self, path, tag, client_state, save_latest, exclude_frozen_parameters):
        import torch

        folder = Path(path) / tag
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"client": client_state}, folder / "mp_rank_00_model_states.pt")
