"""The allowed range of every training-recipe value, checked in one pass when a recipe
is loaded (and again when a trainer starts), before any data or model is read.

A value out of range is a `ConfigError` that names the key, the allowed range and the
value given: ``runtime.save_every_steps must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .config import TrainConfig

Check = Callable[[Any, "TrainConfig"], bool]

AT_LEAST_1 = ("an integer >= 1", lambda v, c: v >= 1)
AT_LEAST_0 = ("a number >= 0", lambda v, c: v >= 0)
OPTIONAL_AT_LEAST_1 = ("null or an integer >= 1", lambda v, c: v is None or v >= 1)
POSITIVE = ("a number > 0", lambda v, c: v > 0)


def _one_of(*choices: Any) -> tuple[str, Check]:
    names = [str(x) for x in choices]
    return f"{', '.join(names[:-1])} or {names[-1]}", lambda v, c: v in choices


def _templates(value: list[str], _config: TrainConfig) -> bool:
    return bool(value) and all("{class_name}" in t for t in value)


# key -> (allowed, check(value, config)); every key of the recipe with a range.
RULES: dict[str, tuple[str, Check]] = {
    "data.split": _one_of("official", "groups", "mines"),
    "data.val_fraction": ("a number in (0, 1)", lambda v, c: 0 < v < 1),
    "data.group_fields": AT_LEAST_1,
    "data.templates": ("a non-empty list of texts with {class_name}", _templates),
    "data.negative_fraction": ("a number in [0, 1]", lambda v, c: 0 <= v <= 1),
    "data.max_train_images": OPTIONAL_AT_LEAST_1,
    "data.max_val_images": OPTIONAL_AT_LEAST_1,
    "data.max_train_samples": OPTIONAL_AT_LEAST_1,
    "data.max_val_samples": OPTIONAL_AT_LEAST_1,
    "data.num_workers": ("an integer >= 0", lambda v, c: v >= 0),
    "lora.r": AT_LEAST_1,
    "lora.alpha": POSITIVE,
    "lora.dropout": ("a number in [0, 1)", lambda v, c: 0 <= v < 1),
    "lora.target_modules": ("a non-empty list of module names", lambda v, c: len(v) > 0),
    "loss.ce": AT_LEAST_0,
    "loss.dice": AT_LEAST_0,
    "loss.bce": AT_LEAST_0,
    "loss.dice_eps": POSITIVE,
    "optim.lr": POSITIVE,
    "optim.betas": (
        "two values in [0, 1)",
        lambda v, c: len(v) == 2 and all(0 <= b < 1 for b in v),
    ),
    "optim.weight_decay": AT_LEAST_0,
    "optim.warmup_steps": ("an integer >= 0", lambda v, c: v >= 0),
    "optim.min_lr": ("a number in [0, optim.lr]", lambda v, c: 0 <= v <= c.optim.lr),
    "optim.grad_clip": ("a number >= 0 (0: no clipping)", lambda v, c: v >= 0),
    "train.epochs": AT_LEAST_1,
    "train.max_steps": OPTIONAL_AT_LEAST_1,
    "train.batch_size": AT_LEAST_1,
    "train.gradient_accumulation_steps": AT_LEAST_1,
    "train.seed": ("an integer in [0, 2**32)", lambda v, c: 0 <= v < 2**32),
    "runtime.device": (
        "auto, cpu, cuda or cuda:N",
        lambda v, c: re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None,
    ),
    "runtime.precision": _one_of("fp16", "bf16", "fp32"),
    "runtime.zero_stage": _one_of(0, 1, 2),
    "runtime.log_every": AT_LEAST_1,
    "runtime.save_every_steps": AT_LEAST_1,
    "runtime.keep_checkpoints": AT_LEAST_1,
    "runtime.validate_every_epochs": AT_LEAST_1,
}


def _value(config: TrainConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def check_values(config: TrainConfig) -> None:
    """Raises `ConfigError` for the first value out of its range (in recipe order)."""
    for key, (allowed, ok) in RULES.items():
        value = _value(config, key)
        if not ok(value, config):
            raise ConfigError(f"{key} must be {allowed}, got {value!r}")
    loss = config.loss
    if loss.ce == loss.dice == loss.bce == 0:
        raise ConfigError("loss.ce, loss.dice and loss.bce are all 0: nothing to train on")
    if not any(vars(config.trainable).values()):
        raise ConfigError("trainable: nothing is trainable (set at least one group to true)")
