"""Weight files of Hugging Face-style directories: which files, their keys and shapes.

Pickled ``.bin`` shards load with ``weights_only=True`` and memory-mapped, so a
10 GB shard is paged in as it is copied, never read up front or unpickled freely.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..errors import CheckpointError

# LISA key prefix -> MineLisaModel prefix, most specific first.
LISA_PREFIXES = (
    ("model.mm_projector.", "mm_projector."),
    ("model.visual_model.", "visual_model."),
    ("model.text_hidden_fcs.", "text_hidden_fcs."),
    # LLaVA files that do carry CLIP
    ("model.vision_tower.vision_tower.vision_model.", "vision_tower."),
    ("model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
)
RECOMPUTED_SUFFIX = "rotary_emb.inv_freq"  # LLaVA-era buffers; recomputed from the config


def weight_files(path: Path) -> list[Path]:
    """The weight files of a Hugging Face-style directory, shards in index order."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError) as exc:
                raise CheckpointError(f"{index} is not a weight index: {exc}") from exc
            files = sorted(set(weight_map.values()))
            missing = [f for f in files if not (path / f).is_file()]
            if missing:
                raise CheckpointError(
                    f"{index} lists shards that are not there: {', '.join(missing)}"
                )
            return [path / f for f in files]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (path / single).is_file():
            return [path / single]
    raise CheckpointError(
        f"{path} holds no weights (no *.index.json, model.safetensors or pytorch_model.bin)"
    )


def read_weights(file: Path) -> dict[str, torch.Tensor]:
    """All tensors of one file (safetensors, or a ``.bin`` pickle loaded weights-only)."""
    try:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated or foreign files surface here
        raise CheckpointError(f"cannot read weights from {file}: {exc}") from exc


def weight_shapes(files: list[Path]) -> dict[str, torch.Tensor]:
    """Key -> meta tensor of the stored shape and dtype, without reading the data."""
    shapes: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            try:
                with safe_open(str(file), framework="pt") as handle:
                    for key in handle.keys():
                        piece = handle.get_slice(key)
                        dtype = _SAFETENSORS_DTYPES.get(piece.get_dtype(), torch.float32)
                        shapes[key] = torch.empty(piece.get_shape(), dtype=dtype, device="meta")
            except Exception as exc:
                raise CheckpointError(f"cannot read weights from {file}: {exc}") from exc
        else:
            for key, value in read_weights(file).items():
                shapes[key] = torch.empty(value.shape, dtype=value.dtype, device="meta")
    return shapes


_SAFETENSORS_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
    "BOOL": torch.bool,
    "U8": torch.uint8,
}


def map_lisa_key(key: str) -> str | None:
    """The model's name for a LISA checkpoint key (None: not a model weight)."""
    for old, new in LISA_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return None
