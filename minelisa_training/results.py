"""What the engine takes and gives: encoded images, results, and instruction checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Union

import numpy as np
import torch

from .errors import InvalidInputError
from .prefix import PromptPrefix

MAX_INSTRUCTION_CHARS = 1000
# Control strings of every LISA tokenizer; a model's own added tokens are refused too.
RESERVED_TOKENS = (
    "<image>",
    "<im_start>",
    "<im_end>",
    "<im_patch>",
    "[SEG]",
    "<s>",
    "</s>",
    "<unk>",
)


def validate_instruction(instruction: object, reserved: Sequence[str] = RESERVED_TOKENS) -> str:
    """The instruction, stripped, or `InvalidInputError` saying why it is refused.

    Refused: not a string, empty, over `MAX_INSTRUCTION_CHARS`, or containing one of the
    `reserved` token strings (``[SEG]``, ``<image>``, ``<im_start>``, ``</s>``, ...), which
    would otherwise act as control tokens. Needs no model.
    """
    if not isinstance(instruction, str):
        raise InvalidInputError(f"instruction must be a string, got {type(instruction).__name__}")
    text = instruction.strip()
    if not text:
        raise InvalidInputError("instruction is empty")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise InvalidInputError(
            f"instruction is too long: {len(text)} characters, at most {MAX_INSTRUCTION_CHARS}"
        )
    for token in reserved:
        if token in text:
            raise InvalidInputError(
                f"instruction contains {token!r}, a control token of the model; it is refused "
                "rather than passed on (rephrase without it)"
            )
    return text


@dataclass(frozen=True)
class EncodedImage:
    """Both image encoders' outputs for one image, made by `SegmentationEngine.encode`.

    Attributes:
        image_tokens: float [1, P, H] projected CLIP tokens (model dtype and device).
        sam_embedding: float [1, 256, h, w] SAM image embedding.
        input_size: (h, w) of the resized image inside SAM's padded square.
        original_size: (H, W) of the caller's image; masks come back at this size.
        timings: clip_ms, sam_encoder_ms (and llm_prefix_ms) when encoded with
            ``timed=True``, else empty.
        prefix: the LLM's KV cache of the prompt prefix all instructions share (BOS, system
            line, image tokens), when the engine reuses it; None otherwise.
    """

    image_tokens: torch.Tensor
    sam_embedding: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]
    timings: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    prefix: PromptPrefix | None = None


ImageInput = Union[np.ndarray, EncodedImage]


@dataclass
class SegmentationResult:
    """One instruction's answer.

    Attributes:
        instruction: the instruction as segmented (stripped).
        mask: bool [H, W], the union of all `[SEG]` masks, at the image's resolution.
        masks: one bool [H, W] mask per `[SEG]` in the answer (empty list: none).
        answer: the answer text (fast mode: the fixed answer).
        timings: milliseconds per stage when asked for with ``timed=True``, else empty.
        prompts: float [k, 256] `[SEG]` prompt embeddings (model device) that made the
            masks; `SegmentationEngine.follow` reuses them on later frames.
    """

    instruction: str
    mask: np.ndarray
    masks: list[np.ndarray]
    answer: str
    timings: dict[str, float] = field(default_factory=dict)
    prompts: torch.Tensor | None = field(default=None, repr=False)

    @property
    def coverage(self) -> float:
        """Fraction of the image's pixels inside the mask (0..1)."""
        return float(self.mask.mean()) if self.mask.size else 0.0
