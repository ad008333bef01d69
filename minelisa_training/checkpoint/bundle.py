"""Writing the bundle the robot serves, and LISA-format state dicts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..fileio import atomic_dir
from ..modeling.lisa import MineLisaModel
from ..tokenization import LisaTokenizer
from .files import LISA_PREFIXES
from .formats import BUNDLE_FILE, BUNDLE_VERSION, BUNDLE_WEIGHTS


def save_bundle(
    model: MineLisaModel, tokenizer: LisaTokenizer, out_dir: str | Path, card: dict | None = None
) -> Path:
    """Write a self-contained bundle (config, safetensors, tokenizer, CLIP tower inside).

    The new bundle replaces `out_dir` only once it is complete and synced, so a failed
    write leaves any previous bundle in place.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        meta = {
            "format": "minelisa-bundle",
            "version": BUNDLE_VERSION,
            "config": model.config.to_dict(),
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / BUNDLE_WEIGHTS), metadata={"format": "pt"})
        tokenizer.save(tmp)
        if card is not None:
            (tmp / "model_card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    return out_dir


def iter_lisa_state_dict(model: MineLisaModel) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's weights under LISA's key names (no CLIP tower), for LISA-format files."""
    reverse = [
        (new, old) for old, new in LISA_PREFIXES if not old.startswith("model.vision_tower.")
    ]
    for key, value in model.state_dict().items():
        if key.startswith("vision_tower."):
            continue
        for new, old in reverse:
            if key.startswith(new):
                yield old + key[len(new) :], value
                break
