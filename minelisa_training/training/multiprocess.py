"""Training on several processes (torchrun or the deepspeed launcher, one node or several).

- `join_processes`: each rank on its own GPU (``LOCAL_RANK``), then the process group
  (gloo on CPU, NCCL on CUDA) before anything touches the run folder.
- `check_world`: a run resumes with the number of processes it was saved with (each
  rank's ZeRO optimizer shard and its share of the data depend on it).
- `means_over_ranks`: the logged loss is the mean over every rank's micro-batches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .. import runtime
from ..errors import TrainingError
from .checkpointing import STATE_FILE
from .schedule import LossWindow


def join_processes() -> bool:
    """Under a launcher with several processes: this rank's GPU, then the process group."""
    if runtime.world_size() > 1 and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return runtime.init_distributed()


def check_world(checkpoint: Path, run_dir: Path) -> None:
    """Refuses to resume ``checkpoint`` with another number of processes than saved it."""
    state = json.loads((Path(checkpoint) / STATE_FILE).read_text(encoding="utf-8"))
    saved, now = state.get("world"), runtime.world_size()
    if saved is None or int(saved) == now:  # None: written before the world size was recorded
        return
    how = (
        f"torchrun --nproc_per_node {saved} -m minelisa_training.cli train --resume --out {run_dir}"
        if saved > 1
        else f"minelisa train --resume --out {run_dir}"
    )
    raise TrainingError(
        f"--resume: {checkpoint.name} was saved by a run of {saved} process(es), this one has "
        f"{now}: its optimizer shards and data shares are per process. Resume with {saved} "
        f"process(es), e.g.: {how} (or export it with: minelisa export --run {run_dir})"
    )


def means_over_ranks(window: LossWindow) -> dict[str, float]:
    """The window's mean loss terms over every rank's micro-batches (all ranks call this)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return window.means()
    everyone: list = [None] * runtime.world_size()
    torch.distributed.all_gather_object(everyone, (window.sums, window.count))
    sums: dict[str, float] = {}
    for rank_sums, _ in everyone:
        for key, value in rank_sums.items():
            sums[key] = sums.get(key, 0.0) + value
    count = sum(c for _, c in everyone)
    return {key: value / max(count, 1) for key, value in sums.items()}
