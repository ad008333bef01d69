"""What a run folder allows: a new run, a resume, or nothing to do; and what to tell
the user when a run stops.

- A new run refuses a folder that holds a complete checkpoint (``--resume`` continues
  it). A folder whose run stopped before its first checkpoint was complete is started
  over by the same command, without manual deletion.
- ``--resume`` continues from the checkpoint ``latest`` names, or from the newest
  complete one when that one is damaged (and says so); without any complete
  checkpoint it says to run the command without ``--resume``.
- ``--resume`` of a finished run (``summary.json`` written) changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..errors import InvalidInputError
from ..fileio import atomic_write
from .checkpointing import STATE_FILE, CheckpointManager, Found
from .config import TrainConfig

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"


def save_run_config(config: TrainConfig, run_dir: Path) -> None:
    atomic_write(Path(run_dir) / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a finished run, None while it is not finished."""
    path = Path(run_dir) / SUMMARY_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def prepare_new_run(
    run_dir: Path, checkpoints: CheckpointManager, echo: Callable[[str], None]
) -> None:
    """Refuses a folder holding a run; starts over one stopped before its first checkpoint."""
    if not checkpoints.root.exists() and read_summary(run_dir) is None:
        return
    found = checkpoints.find()
    if found.path is not None or read_summary(run_dir) is not None:
        held = f" (checkpoint {found.path.name})" if found.path is not None else ""
        raise InvalidInputError(
            f"{run_dir} already holds a run{held}: pass --resume to continue it, "
            "or choose another --out"
        )
    if checkpoints.checkpoints():  # never delete what may be someone's only copy
        raise InvalidInputError(_damaged(run_dir, checkpoints, found))
    echo(
        f"{run_dir} holds a run that stopped before its first checkpoint was complete: "
        "starting it over in the same folder"
    )
    checkpoints.clear()


def _damaged(run_dir: Path, checkpoints: CheckpointManager, found: Found) -> str:
    why = f" ({found.note})" if found.note else ""
    return (
        f"{run_dir} holds checkpoints, but none is complete{why}: they are damaged, or were "
        f"written by an older MineLISA (no manifest.json). Look at {checkpoints.root}; "
        "delete it to start the run over, or choose another --out"
    )


def find_resume_point(run_dir: Path, checkpoints: CheckpointManager) -> Found:
    """The checkpoint ``--resume`` continues from; refused when there is none."""
    found = checkpoints.find()
    if found.path is not None:
        return found
    if checkpoints.checkpoints():
        raise InvalidInputError("--resume: " + _damaged(run_dir, checkpoints, found))
    raise InvalidInputError(
        f"--resume: {run_dir} has no complete checkpoint; the run stopped before its first "
        "checkpoint was written. Start it over with the same command without --resume "
        f"(it reuses {run_dir})."
    )


def interruption_message(run_dir: Path, step: int, checkpoints: CheckpointManager) -> str:
    """What a stopped run has to offer: a checkpoint to resume from, or nothing."""
    found = checkpoints.find()
    if found.path is None:
        return (
            f"interrupted at step {step} before any checkpoint was complete: nothing was saved. "
            f"Run the same command again (without --resume) to start over in {run_dir}."
        )
    saved = json.loads((found.path / STATE_FILE).read_text(encoding="utf-8"))["step"]
    return (
        f"interrupted at step {step}; the last complete checkpoint is {found.path.name} "
        f"(step {saved}). Continue with: minelisa train --resume --out {run_dir}"
    )
