"""Interrupt-safe run checkpoints.

Layout of a run folder::

    run/
      config.yaml              the recipe as run (export and resume read it)
      metrics.jsonl            one JSON object per logged step / validation
      checkpoints/
        latest                 text file naming the newest complete checkpoint
        step00000120/          DeepSpeed state (module, ZeRO optimizer, scheduler) +
          trainable.safetensors  the trainable tensors alone (what export reads)
          trainer_state.json     step, epoch, position in the epoch, best gIoU
      best/                    trainable.safetensors + metrics of the best validation gIoU

Every checkpoint is written under a temporary name and renamed when complete, and
``latest`` is replaced atomically afterwards, so a kill at any moment leaves
``latest`` pointing at a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import runtime
from ..errors import CheckpointError
from ..fileio import atomic_dir, atomic_write

DEEPSPEED_TAG = "state"
TRAINABLE_FILE = "trainable.safetensors"
STATE_FILE = "trainer_state.json"


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors that training changes, by their names in the prepared model."""
    return {
        n: p.detach().to("cpu").contiguous().clone()
        for n, p in model.named_parameters()
        if p.requires_grad
    }


def load_trainable_state(model: torch.nn.Module, path: Path) -> None:
    """Copies saved trainable tensors into a model prepared with the same recipe."""
    tensors = load_file(str(path))
    params = dict(model.named_parameters())
    missing = sorted(n for n, p in params.items() if p.requires_grad and n not in tensors)
    unexpected = sorted(n for n in tensors if n not in params)
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match the model prepared from the run's config: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor.to(params[name].dtype))


class CheckpointManager:
    def __init__(self, run_dir: str | Path, keep: int = 2) -> None:
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "checkpoints"
        self.best_dir = self.run_dir / "best"
        self.keep = keep
        if runtime.is_main_process() and not self.best_dir.exists():
            # A kill between the two renames of fileio.atomic_dir leaves the old best/ aside.
            for old in sorted(self.run_dir.glob(f".{self.best_dir.name}.old-*")):
                os.rename(old, self.best_dir)
                break

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None for a fresh run."""
        pointer = self.root / "latest"
        if not pointer.is_file():
            return None
        path = self.root / pointer.read_text(encoding="utf-8").strip()
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(f"{pointer} names {path.name}, which is incomplete or missing")
        return path

    def save(self, engine: Any, state: dict[str, Any]) -> Path:
        """Writes a checkpoint for ``state['step']`` (all ranks call this)."""
        name = f"step{int(state['step']):08d}"
        tmp = self.root / f".tmp-{name}"
        final = self.root / name
        if runtime.is_main_process():
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)  # left over from a kill during a save
        runtime.barrier()
        engine.save_checkpoint(
            str(tmp),
            tag=DEEPSPEED_TAG,
            client_state={"trainer": state},
            save_latest=False,
            exclude_frozen_parameters=True,
        )
        if runtime.is_main_process():
            save_file(trainable_state_dict(engine.module), str(tmp / TRAINABLE_FILE))
            # The state file is written last: its presence marks a complete checkpoint.
            atomic_write(tmp / STATE_FILE, json.dumps(state, indent=2))
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)
            atomic_write(self.root / "latest", name + "\n")
            self._prune(keep_name=name)
        runtime.barrier()
        return final

    def load(self, engine: Any, path: Path) -> dict[str, Any]:
        """Restores module, optimizer and scheduler; returns the trainer state."""
        _, client_state = engine.load_checkpoint(
            str(path),
            tag=DEEPSPEED_TAG,
            load_module_strict=False,  # frozen weights are not in the checkpoint; they come from the base model
            load_optimizer_states=True,
            load_lr_scheduler_states=True,
        )
        if client_state is None:
            raise FileNotFoundError(f"DeepSpeed found no checkpoint in {path}")
        return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))

    def save_best(self, model: torch.nn.Module, metrics: dict[str, Any]) -> None:
        if not runtime.is_main_process():
            return
        with atomic_dir(self.best_dir) as tmp:
            save_file(trainable_state_dict(model), str(tmp / TRAINABLE_FILE))
            atomic_write(tmp / "metrics.json", json.dumps(metrics, indent=2))

    def best_metrics(self) -> dict[str, Any] | None:
        path = self.best_dir / "metrics.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def _prune(self, keep_name: str) -> None:
        complete = sorted(p for p in self.root.glob("step*") if p.is_dir())
        stale = [p for p in complete if p.name != keep_name][: max(0, len(complete) - self.keep)]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        for path in self.root.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
