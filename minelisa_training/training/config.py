"""The training recipe: nested dataclasses read from YAML, with dotted command-line overrides.

Shipped recipes live in ``minelisa_training/configs/`` (``museg_lisa7b.yaml`` is the
paper's; ``tiny_cpu.yaml`` runs on a laptop CPU). Every key is checked: a key the
recipe does not know is an error that names it, so a typo never silently trains
with a default.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from ..errors import ConfigError

__all__ = ["ConfigError", "TrainConfig", "load_config", "resolve_config_path", "shipped_configs"]


@dataclass
class ModelSection:
    path: str | None = None  # LISA-format dir or exported bundle (see checkpoint.load_model)
    vision_tower: str | None = None  # local CLIP dir when the model's config names a hub id


@dataclass
class DataSection:
    root: str | None = None  # raw MUSeg layout (real or `minelisa synth`)
    classes: str | None = None  # class order: null/A (documentation), B (MineLISA code) or a file
    # official (Experiment/ files) | groups (capture-group disjoint) | mines
    split: str = "official"
    val_fraction: float = 0.2  # for split=groups
    val_mines: list[str] = field(default_factory=list)  # for split=mines
    split_seed: int = 0
    group_fields: int = 3  # for split=groups: leading id fields that name a capture group
    templates: list[str] = field(
        default_factory=lambda: ["Please segment the {class_name} in this image."]
    )
    negative_fraction: float = 0.0  # extra samples naming an absent class (empty target)
    augment: bool = True  # mine-style photometric augmentation of training images
    # Subsets, as `minelisa eval --limit-images / --limit-samples` (museg.SplitOptions):
    max_train_images: int | None = None  # the first N images of the split, in split order
    max_val_images: int | None = None
    max_train_samples: int | None = None  # a split_seed random subset of the expanded samples
    max_val_samples: int | None = None
    num_workers: int = 0


@dataclass
class TrainableSection:
    """What receives gradients. The paper: LoRA + mask decoder + [SEG] head (+ new token rows)."""

    lora: bool = True
    mask_decoder: bool = True
    text_hidden_fcs: bool = True
    new_token_rows: bool = True  # embedding and lm_head rows of tokens added to the base vocabulary
    # Not in the paper's recipe; used by the demo's base-training stage of a random tiny model.
    language_model: bool = False
    mm_projector: bool = False
    sam_image_encoder: bool = False
    sam_prompt_encoder: bool = False


@dataclass
class LoraSection:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class LossSection:
    ce: float = 0.5
    dice: float = 1.5
    bce: float = 1.0
    dice_eps: float = 1.0


@dataclass
class OptimSection:
    lr: float = 3e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.0
    warmup_steps: int = 100
    min_lr: float = 0.0  # the linear decay after warm-up ends at min_lr (lr_schedule.py)
    grad_clip: float = 1.0


@dataclass
class TrainSection:
    epochs: int = 20
    max_steps: int | None = None  # stop early (smoke runs, the demo)
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    seed: int = 42


@dataclass
class RuntimeSection:
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp16"  # fp16 | bf16 | fp32 (CPU runs use fp32 or bf16)
    zero_stage: int = 2
    gradient_checkpointing: bool = True
    # Encode each image once; only where that cannot change a number: frozen encoders
    # and no augmentation (training.step.embedding_cache_for).
    cache_image_embeddings: bool = True
    log_every: int = 10
    save_every_steps: int = 500
    keep_checkpoints: int = 2
    validate_every_epochs: int = 1
    progress: bool = True


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    trainable: TrainableSection = field(default_factory=TrainableSection)
    lora: LoraSection = field(default_factory=LoraSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    runtime: RuntimeSection = field(default_factory=RuntimeSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Checks every value against its allowed range (`config_rules.RULES`)."""
        from .config_rules import check_values

        check_values(self)


SHIPPED_DIR = "configs"


def shipped_configs() -> list[str]:
    """Names of the recipes shipped with the package (without .yaml)."""
    folder = resources.files("minelisa_training").joinpath(SHIPPED_DIR)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str) -> Path:
    """A file path, or the name of a shipped recipe (``tiny_cpu``, ``museg_lisa7b``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = resources.files("minelisa_training").joinpath(SHIPPED_DIR, f"{path.stem}.yaml")
    if path.suffix in ("", ".yaml") and path.parent == Path(".") and shipped.is_file():
        return Path(str(shipped))
    raise ConfigError(
        f"config {name_or_path!r} is neither a file nor a shipped recipe ({', '.join(shipped_configs())})"
    )


def load_config(name_or_path: str | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Reads a recipe (or the defaults), applies ``section.key=value`` overrides, validates."""
    data = _read_recipe(name_or_path, ()) if name_or_path is not None else {}
    for item in overrides:
        _apply_override(data, item)
    config = _build(TrainConfig, data, prefix="")
    config.validate()
    return config


def _read_recipe(name_or_path: str, chain: tuple[Path, ...]) -> dict[str, Any]:
    """A recipe file's mapping; ``extends: NAME`` starts from recipe NAME (a shipped name,
    or a file beside this one) and changes only the keys given."""
    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    base = data.pop("extends", None)
    if base is None:
        return data
    if path.resolve() in chain or not isinstance(base, str):
        raise ConfigError(f"{path}: extends: {base!r} is not a recipe name (or extends itself)")
    beside = path.parent / base
    parent = _read_recipe(str(beside) if beside.is_file() else base, (*chain, path.resolve()))
    return _merged(parent, data)


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} must look like section.key=value")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part!r} is a value, not a section")
        node = child
    # YAML parsing gives numbers, booleans, null and [lists] their natural types.
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = (
                f" (did you mean {prefix}{close[0]}?)" if close else f" (known: {', '.join(names)})"
            )
            raise ConfigError(f"unknown config key {prefix}{key}{hint}")
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        kwargs[name] = _coerce(hints[name], data[name], f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.")
    args = get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key} must not be null")
    if type(None) in args:  # Optional[X] -> X
        hint = next(a for a in args if a is not type(None))
    if get_origin(hint) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (item_type,) = get_args(hint)
        return [_coerce(item_type, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # PyYAML reads 3e-5 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # mine ids like 01 read as numbers
    if hint in (int, bool, str) and type(value) is hint:
        return value
    raise ConfigError(f"{key} must be {getattr(hint, '__name__', hint)}, got {value!r}")
