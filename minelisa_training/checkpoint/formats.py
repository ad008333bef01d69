"""The model directory formats MineLISA loads, as a small registry.

* ``bundle``: this project's export (`minelisa.json`, `model.safetensors`,
  tokenizer files). Self-contained, CLIP tower included.
* ``lisa``: a LISA release such as xinlai/LISA-7B-v1 (`config.json`, tokenizer
  files, sharded `.bin` or `.safetensors` with an index). The CLIP tower is not
  inside; its config names a hub id, so a local directory must be given.
* ``llava``: a base LLaVA (no SAM, no `[SEG]` head) plus a SAM `.pth`, for
  training the segmentation head from scratch.

`detect` opens the directory once and hands what it learned (files, stored
shapes, the config it read) to the loader in a `DetectedCheckpoint`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError
from .files import weight_files, weight_shapes

BUNDLE_FILE = "minelisa.json"
BUNDLE_WEIGHTS = "model.safetensors"
BUNDLE_VERSION = 1


@dataclass
class DetectedCheckpoint:
    """What format detection learned about a model directory."""

    format: str
    path: Path
    files: list[Path]  # weight files, in load order
    shapes: dict[str, torch.Tensor] = field(repr=False)  # stored key -> meta tensor
    meta: dict  # minelisa.json (bundle) or config.json (lisa, llava)


def _read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {file}: {exc}") from exc


def _detect_bundle(path: Path) -> DetectedCheckpoint | None:
    if not (path / BUNDLE_FILE).is_file():
        return None
    meta = _read_json(path / BUNDLE_FILE)
    if meta.get("version") != BUNDLE_VERSION:
        raise CheckpointError(
            f"{path}: bundle version {meta.get('version')} is not {BUNDLE_VERSION}"
        )
    weights = path / BUNDLE_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{path} is a bundle without {BUNDLE_WEIGHTS}")
    return DetectedCheckpoint("bundle", path, [weights], weight_shapes([weights]), meta)


def _detect_hf(path: Path) -> DetectedCheckpoint | None:
    if not (path / "config.json").is_file():
        return None
    files = weight_files(path)
    shapes = weight_shapes(files)
    fmt = "lisa" if any(k.startswith("model.visual_model.") for k in shapes) else "llava"
    return DetectedCheckpoint(fmt, path, files, shapes, _read_json(path / "config.json"))


# Tried in order; the first that recognises the directory wins.
DETECTORS: tuple[Callable[[Path], DetectedCheckpoint | None], ...] = (_detect_bundle, _detect_hf)


def detect(path: str | Path) -> DetectedCheckpoint:
    """Recognise a model directory.

    Raises:
        CheckpointError: the path is missing, a file, or in no known format.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model path does not exist: {path}")
    if not path.is_dir():
        raise CheckpointError(f"model path must be a directory, got a file: {path}")
    for detector in DETECTORS:
        found = detector(path)
        if found is not None:
            return found
    raise CheckpointError(
        f"{path} is neither a MineLISA bundle ({BUNDLE_FILE}) nor a LISA/LLaVA directory "
        "(config.json)"
    )


def detect_format(path: str | Path) -> str:
    """The format name of a model directory: ``bundle``, ``lisa`` or ``llava``."""
    return detect(path).format
