"""SegmentationEngine: RGB image + instruction -> binary mask at the original resolution.

Shaped like SAM's predictor: `set_image` runs the two image encoders once,
then `predict` answers any number of instructions about that image (batched
through the LLM and the mask decoder). The CLI, evaluation and the ROS node
all use this class; it has no ROS imports.

Answer modes:
* ``fast``: the answer containing `[SEG]` is given, one LLM forward pass, no
  generation (segmentation is all a robot asks for).
* ``chat``: greedy generation with a KV cache, capped at ``max_new_tokens``;
  every generated `[SEG]` yields a mask, none yields an empty mask and an
  answer text that says so.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from transformers import DynamicCache

from .checkpoint import LoadReport, load_model, resolve_dtype
from .modeling.lisa import MineLisaModel
from .prompts import DEFAULT_ANSWER, build_prompt, tokenize_with_image
from .tokenization import LisaTokenizer
from .transforms import InvalidInputError, check_rgb_image, clip_view, sam_view

MODES = ("fast", "chat")
MAX_INSTRUCTION_CHARS = 1000


@dataclass
class SegmentationResult:
    instruction: str
    mask: np.ndarray  # bool [H, W]: union of all [SEG] masks
    masks: list[np.ndarray]  # one bool mask per [SEG]
    answer: str
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds

    @property
    def coverage(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0


@dataclass
class _EncodedImage:
    image_tokens: torch.Tensor  # [1, P, H]
    sam_embedding: torch.Tensor  # [1, 256, 64, 64]
    input_size: tuple[int, int]
    original_size: tuple[int, int]
    timings: dict[str, float]


class SegmentationEngine:
    def __init__(
        self,
        model: MineLisaModel,
        tokenizer: LisaTokenizer,
        mode: str = "fast",
        max_new_tokens: int = 64,
        answer: str = DEFAULT_ANSWER,
        report: LoadReport | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown answer mode {mode!r}: choose 'fast' or 'chat'")
        if "[SEG]" not in answer:
            raise ValueError(f"the fast-mode answer must contain [SEG], got {answer!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.mode = mode
        self.max_new_tokens = max_new_tokens
        self.answer = answer
        self.report = report
        self._image: _EncodedImage | None = None

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        vision_tower: str | Path | None = None,
        device: str = "cpu",
        dtype: str = "fp32",
        mode: str = "fast",
        max_new_tokens: int = 64,
    ) -> "SegmentationEngine":
        loaded = load_model(path, vision_tower=vision_tower, device=device, dtype=resolve_dtype(dtype))
        return cls(loaded.model, loaded.tokenizer, mode=mode, max_new_tokens=max_new_tokens, report=loaded.report)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @contextmanager
    def _timed(self, timings: dict[str, float], name: str) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - start) * 1000.0

    # -- image ----------------------------------------------------------------
    @torch.inference_mode()
    def set_image(self, image: np.ndarray) -> None:
        """Validate and encode one RGB uint8 image (H, W, 3); later `predict` calls reuse it."""
        image = check_rgb_image(image)
        timings: dict[str, float] = {}
        dtype = self.model.dtype
        with self._timed(timings, "clip_ms"):
            clip = clip_view(image, size=int(self.model.config.vision["image_size"]), device=self.device)
            tokens = self.model.encode_clip(clip.unsqueeze(0).to(dtype))
        with self._timed(timings, "sam_encoder_ms"):
            view = sam_view(image, size=self.model.config.sam.image_size, device=self.device)
            embedding = self.model.encode_sam(view.pixels.unsqueeze(0).to(dtype))
        self._image = _EncodedImage(tokens, embedding, view.input_size, view.original_size, timings)

    # -- instructions -----------------------------------------------------------
    def _check_instructions(self, instructions: str | Sequence[str]) -> list[str]:
        items = [instructions] if isinstance(instructions, str) else list(instructions)
        if not items:
            raise InvalidInputError("no instruction given")
        cleaned = []
        for text in items:
            if not isinstance(text, str):
                raise InvalidInputError(f"instruction must be a string, got {type(text).__name__}")
            text = text.strip()
            if not text:
                raise InvalidInputError("instruction is empty")
            if len(text) > MAX_INSTRUCTION_CHARS:
                raise InvalidInputError(
                    f"instruction is too long: {len(text)} characters, at most {MAX_INSTRUCTION_CHARS}"
                )
            cleaned.append(text)
        return cleaned

    def _prompt_ids(self, instruction: str, answer: str | None) -> list[int]:
        ids = tokenize_with_image(
            self.tokenizer, build_prompt(instruction, answer, self.model.config.mm_use_im_start_end)
        )
        limit = int(self.model.config.llm.get("max_position_embeddings", 2048))
        total = len(ids) - 1 + self.model.config.num_image_tokens
        if answer is None:
            total += self.max_new_tokens
        if total > limit:
            raise InvalidInputError(
                f"instruction is too long: the prompt needs {total} positions, the model has {limit}"
            )
        return ids

    @torch.inference_mode()
    def predict(self, instructions: str | Sequence[str], mode: str | None = None) -> list[SegmentationResult]:
        """Masks for instructions about the image given to `set_image`."""
        if self._image is None:
            raise InvalidInputError("no image set: call set_image(image) first")
        items = self._check_instructions(instructions)
        mode = mode or self.mode
        if mode not in MODES:
            raise InvalidInputError(f"unknown answer mode {mode!r}: choose 'fast' or 'chat'")
        if mode == "fast":
            return self._predict_fast(items)
        return [self._predict_chat(text) for text in items]

    def segment(
        self, image: np.ndarray, instructions: str | Sequence[str], mode: str | None = None
    ) -> list[SegmentationResult]:
        """Encode `image`, then answer every instruction about it."""
        items = self._check_instructions(instructions)  # refuse bad text before encoding the image
        self.set_image(image)
        return self.predict(items, mode=mode)

    def _results(
        self, items: list[str], answers: list[str], seg: list[torch.Tensor], timings: dict[str, float]
    ) -> list[SegmentationResult]:
        img = self._image
        counts = [e.shape[0] for e in seg]
        with self._timed(timings, "decoder_ms"):
            flat = torch.cat(seg) if sum(counts) else seg[0]
            logits = self.model.decode_masks(img.sam_embedding, flat, img.input_size, img.original_size)
            masks = (logits > 0).cpu().numpy()
        timings.update(img.timings)
        timings["total_ms"] = sum(v for k, v in timings.items() if k != "total_ms")
        out, start = [], 0
        for text, answer, k in zip(items, answers, counts):
            per_seg = list(masks[start : start + k])
            start += k
            union = np.logical_or.reduce(per_seg) if per_seg else np.zeros(img.original_size, dtype=bool)
            out.append(SegmentationResult(text, union, per_seg, answer, dict(timings)))
        return out

    def _predict_fast(self, items: list[str]) -> list[SegmentationResult]:
        img = self._image
        timings: dict[str, float] = {}
        with self._timed(timings, "llm_ms"):
            seqs = [self._prompt_ids(text, self.answer) for text in items]
            length = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), length), self.tokenizer.pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), length), dtype=torch.long)
            for n, s in enumerate(seqs):
                ids[n, : len(s)] = torch.tensor(s)
                mask[n, : len(s)] = 1
            image_tokens = img.image_tokens.expand(len(seqs), -1, -1)
            inputs = self.model.embed_inputs(ids.to(self.device), mask.to(self.device), image_tokens)
            hidden, _ = self.model.run_language_model(inputs, with_logits=False)
            seg = self.model.seg_embeddings(hidden, inputs.seg_positions)
        return self._results(items, [self.answer] * len(items), seg, timings)

    def _predict_chat(self, instruction: str) -> SegmentationResult:
        img = self._image
        model = self.model
        lm = model.language_model
        timings: dict[str, float] = {}
        with self._timed(timings, "llm_ms"):
            ids = torch.tensor([self._prompt_ids(instruction, None)], device=self.device)
            inputs = model.embed_inputs(ids, torch.ones_like(ids), img.image_tokens)
            cache = DynamicCache()
            out = lm.model(inputs_embeds=inputs.inputs_embeds, cache=cache, use_cache=True)
            state = out.last_hidden_state[:, -1]
            generated: list[int] = []
            seg_states: list[torch.Tensor] = []
            for _ in range(self.max_new_tokens):
                token = int(lm.lm_head(state).argmax(-1))
                generated.append(token)
                if token == model.seg_token_id:
                    seg_states.append(state[0])  # the state that predicts [SEG], as LISA
                if token == self.tokenizer.eos_id:
                    break
                step = lm.get_input_embeddings()(torch.tensor([[token]], device=self.device))
                out = lm.model(inputs_embeds=step, cache=cache, use_cache=True)
                state = out.last_hidden_state[:, -1]
            hidden = torch.stack(seg_states)[None] if seg_states else state.new_zeros((1, 0, state.shape[-1]))
            seg = model.seg_embeddings(hidden, [list(range(len(seg_states)))])
        answer = self.tokenizer.decode(generated)
        if not seg_states:
            answer = (answer + " " if answer else "") + "(no [SEG] token was generated: the mask is empty)"
        return self._results([instruction], [answer], seg, timings)[0]
