"""The options that choose and load a model, defined once.

`minelisa segment`, `eval`, `bag` and the ROS node's parameters all come from
`MODEL_OPTIONS`: the same names, defaults and help everywhere. Device ``auto``
is CUDA when present, else CPU; dtype ``auto`` is fp16 on CUDA, fp32 on CPU
(`runtime.default_dtype`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .acceleration import IMAGE_VIEWS, check_compile, check_image_views
from .errors import InvalidInputError
from .runtime import DTYPES

MODES = ("fast", "chat")
QUANTIZE_MODES = ("none", "int8", "int4")  # minelisa_training.quantization
MAX_NEW_TOKENS_RANGE = (1, 512)


@dataclass(frozen=True)
class OptionSpec:
    """One model option: its command-line flag, its ROS parameter name, default and help."""

    field: str  # ModelOptions field
    flag: str  # command-line flag
    parameter: str  # ROS parameter name
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


MODEL_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "path",
        "--model",
        "model_path",
        "",
        "model directory: a bundle from 'minelisa export', a LISA release (xinlai/LISA-7B-v1 "
        "layout; also give the vision tower) or a base LLaVA directory (also give --sam)",
    ),
    OptionSpec(
        "vision_tower",
        "--vision-tower",
        "vision_tower_path",
        "",
        "local CLIP ViT-L/14 directory, for LISA releases whose config names a hub id "
        "(empty: the bundle's own tower)",
    ),
    OptionSpec(
        "sam_checkpoint",
        "--sam",
        "sam_checkpoint",
        "",
        "SAM .pth (e.g. sam_vit_h_4b8939.pth), only for a base LLaVA directory",
    ),
    OptionSpec(
        "device",
        "--device",
        "device",
        "auto",
        "torch device: auto (CUDA when present, else CPU), cpu, cuda or cuda:N",
    ),
    OptionSpec(
        "dtype",
        "--dtype",
        "dtype",
        "auto",
        "model precision: auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16",
        choices=("auto", *DTYPES),
    ),
    OptionSpec(
        "quantize",
        "--quantize",
        "quantize",
        "none",
        "LLM decoder-layer weights: none (the model dtype), int8 (LLM.int8(), ~1/2 of bf16) "
        "or int4 (NF4, ~1/4); needs bitsandbytes (pip install 'minelisa[quantize]'); saves "
        "GPU memory, is slower on a CPU",
        choices=QUANTIZE_MODES,
    ),
    OptionSpec(
        "image_views",
        "--image-views",
        "image_views",
        "auto",
        "where the encoders' input images are resized: exact (PIL on the host, identical to "
        "the reference processors), device (torch where the model runs: within 1 level of "
        "255 almost everywhere) or auto (device on CUDA, exact on the CPU)",
        choices=IMAGE_VIEWS,
    ),
    OptionSpec(
        "compile",
        "--compile",
        "compile",
        False,
        "torch.compile the SAM image encoder and the LLM prompt prefix (CUDA graphs on a "
        "GPU; the first frame compiles, seconds to minutes; eager with a warning where "
        "compiling fails)",
    ),
    OptionSpec(
        "mode",
        "--mode",
        "answer_mode",
        "fast",
        "fast: one forward pass with the answer '[SEG].' (masks only); chat: generate an "
        "answer, each generated [SEG] gives a mask",
        choices=MODES,
    ),
    OptionSpec(
        "max_new_tokens",
        "--max-new-tokens",
        "max_new_tokens",
        64,
        "chat mode: cap on generated tokens (1-512)",
    ),
)


@dataclass(frozen=True)
class ModelOptions:
    """What `SegmentationEngine.from_options` needs to load and run a model."""

    path: str
    vision_tower: str = ""
    sam_checkpoint: str = ""
    device: str = "auto"
    dtype: str = "auto"
    mode: str = "fast"
    max_new_tokens: int = 64
    quantize: str = "none"  # new fields go last: positional construction keeps its meaning
    image_views: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        if not str(self.path).strip():
            raise InvalidInputError("no model given: a bundle, LISA or LLaVA directory is required")
        if self.dtype not in ("auto", *DTYPES):
            raise InvalidInputError(
                f"unknown dtype {self.dtype!r}: choose auto, {', '.join(DTYPES)}"
            )
        if self.quantize not in QUANTIZE_MODES:
            raise InvalidInputError(
                f"unknown quantization {self.quantize!r}: choose {', '.join(QUANTIZE_MODES)}"
            )
        check_image_views(self.image_views)
        check_compile(self.compile)
        if self.mode not in MODES:
            raise InvalidInputError(
                f"unknown answer mode {self.mode!r}: choose {' or '.join(MODES)}"
            )
        low, high = MAX_NEW_TOKENS_RANGE
        if not low <= int(self.max_new_tokens) <= high:
            raise InvalidInputError(
                f"max_new_tokens must be within {low}..{high}, got {self.max_new_tokens}"
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelOptions:
        """From the namespace `add_model_arguments` filled."""
        return cls(**{spec.field: _plain(getattr(args, spec.field)) for spec in MODEL_OPTIONS})

    @classmethod
    def from_parameters(cls, values: dict[str, Any]) -> ModelOptions:
        """From ROS parameter values keyed by `OptionSpec.parameter`."""
        return cls(**{spec.field: values[spec.parameter] for spec in MODEL_OPTIONS})


def _plain(value: Any) -> Any:
    return "" if value is None else (str(value) if isinstance(value, Path) else value)


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default) if default else "none"


def add_model_arguments(parser: argparse.ArgumentParser, *, chat: bool = True) -> None:
    """Add --model, --vision-tower, --sam, --device, --dtype (and --mode, --max-new-tokens)."""
    group = parser.add_argument_group("model")
    for spec in MODEL_OPTIONS:
        if not chat and spec.field in ("mode", "max_new_tokens"):
            parser.set_defaults(**{spec.field: spec.default})
            continue
        kwargs: dict[str, Any] = {
            "dest": spec.field,
            "help": f"{spec.help} (default: {_shown(spec.default)})",
        }
        if spec.field == "path":
            kwargs.update(required=True, metavar="DIR", help=spec.help)
        elif isinstance(spec.default, bool):  # --compile / --no-compile
            kwargs.update(action=argparse.BooleanOptionalAction, default=spec.default)
        elif isinstance(spec.default, int):
            kwargs.update(type=int, default=spec.default)
        else:
            kwargs.update(default=spec.default)
        if spec.choices:
            kwargs["choices"] = spec.choices
        group.add_argument(spec.flag, **kwargs)
