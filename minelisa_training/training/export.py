"""From a training run to the bundle the engine, `minelisa eval` and the ROS node load.

The run folder holds only the trained tensors (LoRA, mask decoder, [SEG] head,
new-token rows); export rebuilds the base model from the run's recipe, loads
them, folds LoRA and the rows into plain weights and writes a bundle with a
model card (recipe, metrics, provenance).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from ..errors import CheckpointError
from .checkpointing import STATE_FILE, TRAINABLE_FILE, CheckpointManager, load_trainable_state
from .config import ConfigError, TrainConfig, load_config
from .run_folder import CONFIG_FILE, SUMMARY_FILE
from .trainable import merge_for_serving, prepare_for_training

WHICH = ("best", "last")


# A run folder that cannot be exported, with the reason (the old name, kept importable;
# a CheckpointError: what was given cannot be used, exit status 2).
ExportError = CheckpointError


def read_run_config(run_dir: Path) -> TrainConfig:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ExportError(f"{run_dir} is not a training run (no {CONFIG_FILE})")
    try:
        return load_config(str(path))
    except ConfigError as exc:
        raise ExportError(f"{path}: {exc}") from exc


def trained_weights_file(run_dir: Path, which: str) -> tuple[Path, dict[str, Any]]:
    """The trainable tensors to export and what is known about them."""
    if which not in WHICH:
        raise ExportError(f"--which must be best or last, got {which!r}")
    manager = CheckpointManager(run_dir)
    if which == "best" and (manager.best_dir / TRAINABLE_FILE).is_file():
        return manager.best_dir / TRAINABLE_FILE, {
            "checkpoint": "best",
            **(manager.best_metrics() or {}),
        }
    latest = manager.latest()
    if latest is None:
        raise ExportError(
            f"{run_dir} has no checkpoint yet (train first, or wait for the first save)"
        )
    state = json.loads((latest / STATE_FILE).read_text(encoding="utf-8"))
    return latest / TRAINABLE_FILE, {"checkpoint": latest.name, "step": state["step"]}


def load_trained_model(
    run_dir: str | Path, which: str = "best", device: str = "cpu", dtype: str = "fp32"
):
    """The trained model *before* merging (LoRA layers and rows in place) and its tokenizer.

    The base model loads straight into `dtype` (no fp32 copy of a 7B model on the host);
    peft merges each LoRA layer's delta in fp32 and casts it back, one layer at a time.
    """
    from ..checkpoint import load_model

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    weights, info = trained_weights_file(run_dir, which)
    loaded = load_model(
        config.model.path, vision_tower=config.model.vision_tower, device=device, dtype=dtype
    )
    model = prepare_for_training(
        loaded.model, sorted(loaded.tokenizer.added_tokens.values()), config.trainable, config.lora
    )
    load_trainable_state(model, weights)
    return model.eval(), loaded.tokenizer, config, info


def export_run(
    run_dir: str | Path, out: str | Path, which: str = "best", dtype: str = "auto"
) -> Path:
    """Merge and write the bundle; returns its path.

    ``dtype`` ``auto`` is the run's training precision (fp16 for the paper's recipe: a
    ~15 GB LISA-7B bundle, not a 31 GB fp32 one; fp32 for CPU recipes).
    """
    from ..checkpoint import save_bundle

    run_dir = Path(run_dir)
    if dtype == "auto":
        dtype = read_run_config(run_dir).runtime.precision
    model, tokenizer, config, info = load_trained_model(run_dir, which, dtype=dtype)
    merge_for_serving(model)
    summary_path = run_dir / SUMMARY_FILE
    card = {
        "name": "MineLISA",
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": config.model.path,
        "run": str(run_dir.resolve()),
        "weights": info,
        "dtype": dtype,
        "method": "LoRA merged into q_proj/v_proj; new-token rows folded into embed_tokens/lm_head"
        if config.trainable.lora
        else "full weights (no LoRA)",
        "training_config": yaml.safe_load(yaml.safe_dump(config.to_dict())),
        "final_metrics": json.loads(summary_path.read_text(encoding="utf-8"))
        if summary_path.is_file()
        else None,
    }
    return save_bundle(model, tokenizer, out, card=card)
