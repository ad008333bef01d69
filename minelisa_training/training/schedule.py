"""How a run walks through its data: the micro-batches of an epoch, the optimizer
steps they make, and the loss averages between two log lines."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import runtime
from .config import TrainConfig
from .data import EncodedExample, TrainBatch, collate
from .dataset import Skipped


@dataclass
class TrainState:
    """Everything besides DeepSpeed's own state that a resumed run needs."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # current epoch
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed
    best_giou: float | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    validated_step: int | None = None  # step of the last validation (every rank)
    last_validation: dict[str, Any] | None = None  # its metrics (rank 0)
    world: int = 1  # processes of the run: a resume needs as many

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RunPlan:
    """How this rank's share of the data divides into micro-batches and optimizer steps."""

    world: int
    rank: int
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int

    @classmethod
    def for_config(cls, config: TrainConfig, n_train: int) -> RunPlan:
        world, rank = runtime.world_size(), runtime.rank()
        batches = math.ceil(math.ceil(n_train / world) / config.train.batch_size)
        steps = math.ceil(batches / config.train.gradient_accumulation_steps)
        total = config.train.epochs * steps
        if config.train.max_steps is not None:
            total = min(total, config.train.max_steps)
        return cls(world, rank, batches, steps, total)


class LossWindow:
    """Loss sums and throughput since the last log line."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.samples = 0
        self.start = time.perf_counter()

    def add(self, losses: dict[str, float], samples: int) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        self.samples += samples

    def means(self) -> dict[str, float]:
        return {key: value / max(self.count, 1) for key, value in self.sums.items()}

    def speed(self, world: int) -> float:
        return self.samples * world / max(time.perf_counter() - self.start, 1e-9)


def collate_or_skip(
    items: Sequence[EncodedExample | Skipped], pad_id: int
) -> tuple[TrainBatch | None, list[Skipped]]:
    skipped = [x for x in items if isinstance(x, Skipped)]
    good = [x for x in items if not isinstance(x, Skipped)]
    return (collate(good, pad_id) if good else None), skipped


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int
) -> list[list[int]]:
    """This rank's micro-batches of one epoch: a seeded shuffle, so a resumed run replays it.

    Every rank gets ``ceil(n / world)`` samples, so every rank makes the same number of
    steps (a collective op such as a ZeRO gradient reduce would otherwise wait forever):
    when ``n`` does not divide, the shuffled order is padded by repeating its first
    samples (no sample is dropped; a few are seen twice in that epoch). The shares are
    disjoint apart from that padding.
    """
    order = torch.randperm(
        n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    ).tolist()
    share = math.ceil(n / world) if n else 0
    while len(order) < share * world:  # a loop: n may be smaller than the padding
        order += order[: share * world - len(order)]
    mine = order[rank::world]
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


def accumulation_window(position: int, n_batches: int, accumulation: int) -> tuple[int, bool]:
    """For micro-batch ``position`` (0-based) of an epoch of ``n_batches``: the number of
    micro-batches its optimizer step averages, and whether it is the step's last one.

    The epoch's micro-batches are taken in groups of ``accumulation``; the last group of
    an epoch may be shorter and is stepped as it is (no micro-batch is dropped).
    """
    start = position - position % accumulation
    size = min(accumulation, n_batches - start)
    return size, position == start + size - 1
