"""From (image, instruction, mask) examples to model batches.

Both image views come from ``transforms`` (the engine's own preprocessing) and the
token ids from ``prompts.encode_conversation``, so training sees exactly what
inference sees. Labels keep only the answer (``[SEG].`` and ``</s>``): the system
line, the user turn and the image tokens are ``-100`` and cost nothing in the CE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..config import MineLisaConfig
from ..modeling.lisa import ModelInputs
from ..museg import LoadedSample
from ..prompts import DEFAULT_ANSWER, IGNORE_INDEX, encode_conversation
from ..tokenization import LisaTokenizer
from ..transforms import clip_view, sam_view

# One instruction about one image, with its ground-truth mask at the original size:
# ``Example(key, image, instruction, mask, ignore=None, class_id=-1)``. It is the record
# ``museg.load_sample`` returns (``key`` = the image id, the embedding cache key that the
# examples of one image share; ``mask`` empty for a no-target sample; ``ignore`` the
# pixels left out of the loss), so a MUSeg sample reaches the encoder without a copy.
Example = LoadedSample


@dataclass
class EncodedExample:
    key: str
    input_ids: torch.Tensor
    labels: torch.Tensor
    clip_pixels: torch.Tensor
    sam_pixels: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]
    mask: torch.Tensor  # float [1, H, W]
    valid: torch.Tensor | None  # bool [1, H, W], None when every pixel counts
    class_id: int


@dataclass
class TrainBatch:
    inputs: ModelInputs
    gt_masks: list[torch.Tensor]  # per prompt [1, H, W]
    valid_masks: list[torch.Tensor | None]  # per prompt [1, H, W] or None
    keys: list[str]  # per image
    class_ids: list[int]

    def to(self, device: torch.device | str) -> TrainBatch:
        fields = {}
        for name in (
            "input_ids",
            "attention_mask",
            "image_index",
            "labels",
            "clip_pixels",
            "sam_pixels",
        ):
            value = getattr(self.inputs, name)
            fields[name] = value.to(device) if value is not None else None
        inputs = ModelInputs(
            input_sizes=self.inputs.input_sizes,
            original_sizes=self.inputs.original_sizes,
            image_tokens=self.inputs.image_tokens,
            sam_embeddings=self.inputs.sam_embeddings,
            **fields,
        )
        valid = [v.to(device) if v is not None else None for v in self.valid_masks]
        return TrainBatch(
            inputs, [m.to(device) for m in self.gt_masks], valid, self.keys, self.class_ids
        )


class ExampleEncoder:
    """Tokenises the conversation and builds both image views for one example."""

    def __init__(
        self, tokenizer: LisaTokenizer, config: MineLisaConfig, answer: str = DEFAULT_ANSWER
    ) -> None:
        self.tokenizer = tokenizer
        self.use_im_start_end = config.mm_use_im_start_end
        self.sam_size = config.sam.image_size
        self.clip_size = int(config.vision["image_size"])
        self.answer = answer

    def __call__(self, example: Example) -> EncodedExample:
        if example.mask.shape != example.image.shape[:2]:
            raise ValueError(
                f"{example.key}: mask {example.mask.shape} and image {example.image.shape[:2]} differ in size"
            )
        input_ids, labels = encode_conversation(
            self.tokenizer, example.instruction, self.answer, self.use_im_start_end
        )
        view = sam_view(example.image, self.sam_size)
        return EncodedExample(
            key=example.key,
            input_ids=input_ids,
            labels=labels,
            clip_pixels=clip_view(example.image, self.clip_size),
            sam_pixels=view.pixels,
            input_size=view.input_size,
            original_size=view.original_size,
            mask=torch.from_numpy(np.ascontiguousarray(example.mask, dtype=np.float32))[None],
            valid=None
            if example.ignore is None or not example.ignore.any()
            else torch.from_numpy(~example.ignore)[None],
            class_id=example.class_id,
        )


def pad_conversations(
    ids: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pads token ids and labels; returns (input_ids, labels, attention_mask)."""
    length = max(t.numel() for t in ids)
    n = len(ids)
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    out_labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((n, length), dtype=torch.long)
    for i, (t, lab) in enumerate(zip(ids, labels)):
        input_ids[i, : t.numel()] = t
        out_labels[i, : lab.numel()] = lab
        attention[i, : t.numel()] = 1
    return input_ids, out_labels, attention


def collate(examples: Sequence[EncodedExample], pad_id: int) -> TrainBatch:
    """Right-pads token ids; every example brings its own image (batch 1 in the paper)."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    n = len(examples)
    input_ids, labels, attention = pad_conversations(
        [e.input_ids for e in examples], [e.labels for e in examples], pad_id
    )
    inputs = ModelInputs(
        input_ids=input_ids,
        attention_mask=attention,
        image_index=torch.arange(n),
        input_sizes=[e.input_size for e in examples],
        original_sizes=[e.original_size for e in examples],
        clip_pixels=torch.stack([e.clip_pixels for e in examples]),
        sam_pixels=torch.stack([e.sam_pixels for e in examples]),
        labels=labels,
    )
    return TrainBatch(
        inputs,
        [e.mask for e in examples],
        [e.valid for e in examples],
        [e.key for e in examples],
        [e.class_id for e in examples],
    )


class EmbeddingCache:
    """SAM image embeddings and CLIP image tokens per image, for frozen encoders.

    Valid only while the encoders (and mm_projector) are frozen and the images are
    not augmented: then every epoch would compute the same tensors again. The tensors
    are kept in host memory (LISA-7B in fp16: 2 MiB SAM + 2 MiB CLIP per image, about
    9 GiB for MUSeg's 2,247 training images) and copied to the device when used, so a
    24 GB GPU holds none of them.
    """

    def __init__(self, cache_sam: bool, cache_clip: bool) -> None:
        self.cache_sam = cache_sam
        self.cache_clip = cache_clip
        self._sam: dict[str, torch.Tensor] = {}
        self._clip: dict[str, torch.Tensor] = {}

    @property
    def enabled(self) -> bool:
        return self.cache_sam or self.cache_clip

    @torch.no_grad()
    def fill(self, model: torch.nn.Module, batch: TrainBatch) -> TrainBatch:
        """Replaces pixels by cached (or freshly computed) encoder outputs."""
        inputs = batch.inputs
        if self.cache_sam:
            pixels, inputs.sam_pixels = inputs.sam_pixels, None
            inputs.sam_embeddings = self._lookup(self._sam, batch.keys, pixels, model.encode_sam)
        if self.cache_clip:
            pixels, inputs.clip_pixels = inputs.clip_pixels, None
            inputs.image_tokens = self._lookup(self._clip, batch.keys, pixels, model.encode_clip)
        return batch

    @staticmethod
    def _lookup(store: dict[str, torch.Tensor], keys, pixels: torch.Tensor, encode) -> torch.Tensor:
        out = []
        for i, key in enumerate(keys):
            if key not in store:
                store[key] = encode(pixels[i : i + 1]).detach().to("cpu")
            out.append(store[key].to(pixels.device))
        return torch.cat(out)
