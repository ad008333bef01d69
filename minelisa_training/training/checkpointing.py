"""Interrupt-safe run checkpoints.

Layout of a run folder::

    run/
      config.yaml              the recipe as run (export and resume read it)
      metrics.jsonl            one JSON object per logged step / validation
      checkpoints/
        latest                 text file naming the checkpoint to resume from
        step00000120/          DeepSpeed state (module, ZeRO optimizer, LR schedule) +
          trainable.safetensors  the trainable tensors alone (what export reads)
          trainer_state.json     step, epoch, position in the epoch, best gIoU
          manifest.json          every other file with its size; written last
        step00000120-1/        a later save of the same step (e.g. after its validation)
      best/                    trainable.safetensors + metrics of the best validation gIoU

A save writes a new folder under a temporary name, syncs every file and folder to
disk, writes ``manifest.json`` last, renames the folder into place, then replaces
``latest`` atomically, and only then removes older checkpoints. A checkpoint is
complete when its manifest exists and every file it lists has the listed size, so a
kill at any moment leaves ``latest`` naming a complete checkpoint (or no ``latest``
before the first save finished); a save of a step that already has a checkpoint
gets a new name and never removes the one ``latest`` names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import runtime
from ..errors import CheckpointError
from ..fileio import atomic_dir, atomic_write, fsync_dir, fsync_tree

DEEPSPEED_TAG = "state"
TRAINABLE_FILE = "trainable.safetensors"
STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "latest"
# Test hook: "<point>" or "<point>@<checkpoint name>" ends the process (os._exit) at that
# point of a save; points: before-manifest, before-latest, before-prune.
CRASH_ENV = "MINELISA_TEST_CRASH_AT"
CRASH_STATUS = 86
_NAME = re.compile(r"^step(\d{8})(?:-(\d+))?$")


def crash_point(point: str, name: str) -> None:
    """Ends the process here when ``MINELISA_TEST_CRASH_AT`` names this point (tests only)."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted in (point, f"{point}@{name}"):
        os._exit(CRASH_STATUS)


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


def write_manifest(folder: Path) -> None:
    """Lists every file under ``folder`` with its size; written (and synced) last."""
    files = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }
    atomic_write(folder / MANIFEST_FILE, json.dumps({"version": 1, "files": files}, indent=1))


def incomplete_reason(folder: Path) -> str | None:
    """None for a complete checkpoint; otherwise what is wrong with it."""
    if not folder.is_dir():
        return "missing"
    try:
        files = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return f"incomplete (no {MANIFEST_FILE}: its save did not finish)"
    except (ValueError, KeyError, TypeError):
        return f"damaged (unreadable {MANIFEST_FILE})"
    for required in (STATE_FILE, TRAINABLE_FILE):
        if required not in files:
            return f"incomplete ({MANIFEST_FILE} lists no {required})"
    for rel, size in files.items():
        path = folder / rel
        if not path.is_file():
            return f"incomplete ({rel} is missing)"
        if path.stat().st_size != size:
            return f"damaged ({rel} has {path.stat().st_size} bytes, the manifest says {size})"
    return None


def _order(path: Path) -> tuple[int, int]:
    match = _NAME.match(path.name)
    return (int(match[1]), int(match[2] or 0)) if match else (-1, -1)


@dataclass(frozen=True)
class Found:
    """The checkpoint to resume from (None: no complete one) and, when it is not the one
    ``latest`` names, why."""

    path: Path | None
    note: str | None = None


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

    # -- finding -----------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Every checkpoint folder (complete or not), oldest first."""
        if not self.root.is_dir():
            return []
        return sorted((p for p in self.root.iterdir() if _NAME.match(p.name)), key=_order)

    def find(self) -> Found:
        """The checkpoint ``latest`` names when complete, else the newest complete one."""
        pointer = self.root / LATEST_FILE
        note = None
        if pointer.is_file():
            named = pointer.read_text(encoding="utf-8").strip()
            reason = incomplete_reason(self.root / named)
            if reason is None:
                return Found(self.root / named)
            note = f"{pointer} names {named}, which is {reason}"
        complete = [p for p in reversed(self.checkpoints()) if incomplete_reason(p) is None]
        if not complete:
            return Found(None, note)
        why = note or f"{pointer} is missing"
        return Found(
            complete[0], f"{why}; using the newest complete checkpoint, {complete[0].name}"
        )

    def latest(self) -> Path | None:
        """The checkpoint to resume or export from; None before the first complete save."""
        return self.find().path

    # -- saving ------------------------------------------------------------------
    def save(self, engine: Any, state: dict[str, Any]) -> Path:
        """Writes a checkpoint for ``state['step']`` (all ranks call this)."""
        if runtime.is_main_process():
            self.root.mkdir(parents=True, exist_ok=True)
            for leftover in self.root.glob(".tmp-*"):  # from a kill during a save
                shutil.rmtree(leftover, ignore_errors=True)
        runtime.barrier()
        name = self._new_name(int(state["step"]))
        tmp = self.root / f".tmp-{name}"
        engine.save_checkpoint(
            str(tmp),
            tag=DEEPSPEED_TAG,
            client_state={"trainer": state},
            save_latest=False,
            exclude_frozen_parameters=True,
        )
        runtime.barrier()  # every rank's optimizer shard is written
        if runtime.is_main_process():
            save_file(trainable_state_dict(engine.module), str(tmp / TRAINABLE_FILE))
            atomic_write(tmp / STATE_FILE, json.dumps(state, indent=2))
            self._publish(tmp, name)
        runtime.barrier()
        return self.root / name

    def _new_name(self, step: int) -> str:
        """``stepNNNNNNNN``, or ``stepNNNNNNNN-K`` when that step was saved before."""
        seqs = [_order(p)[1] for p in self.checkpoints() if _order(p)[0] == step]
        return f"step{step:08d}" + (f"-{max(seqs) + 1}" if seqs else "")

    def _publish(self, tmp: Path, name: str) -> None:
        """Sync, manifest, rename, then move ``latest``; older checkpoints go last."""
        fsync_tree(tmp)
        crash_point("before-manifest", name)
        write_manifest(tmp)
        final = self.root / name
        os.rename(tmp, final)
        fsync_dir(self.root)
        crash_point("before-latest", name)
        atomic_write(self.root / LATEST_FILE, name + "\n")
        crash_point("before-prune", name)
        self._prune(final)

    def _prune(self, current: Path) -> None:
        """Keeps ``current`` and the newest complete checkpoints of earlier steps, ``keep``
        in all; a checkpoint ordered after ``current`` was never named by ``latest``
        (a kill came first) and goes too."""
        kept, steps = [], set()
        for path in reversed(self.checkpoints()):
            older = _order(path) <= _order(current)
            fresh = _order(path)[0] not in steps  # an earlier save of a step is superseded
            if path == current or (
                older and fresh and len(kept) < self.keep and incomplete_reason(path) is None
            ):
                kept.append(path)
                steps.add(_order(path)[0])
            else:
                shutil.rmtree(path, ignore_errors=True)

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
            raise CheckpointError(f"DeepSpeed found no checkpoint in {path}")
        return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))

    def clear(self) -> None:
        """Removes the checkpoints and best/ of a run that is started over (rank 0)."""
        if runtime.is_main_process():
            shutil.rmtree(self.root, ignore_errors=True)
            shutil.rmtree(self.best_dir, ignore_errors=True)
        runtime.barrier()

    # -- best weights ------------------------------------------------------------
    def save_best(self, model: torch.nn.Module, metrics: dict[str, Any]) -> None:
        if not runtime.is_main_process():
            return
        with atomic_dir(self.best_dir) as tmp:
            save_file(trainable_state_dict(model), str(tmp / TRAINABLE_FILE))
            atomic_write(tmp / "metrics.json", json.dumps(metrics, indent=2))

    def best_metrics(self) -> dict[str, Any] | None:
        path = self.best_dir / "metrics.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
