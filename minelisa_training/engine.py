"""SegmentationEngine: RGB image + instruction -> binary mask at the original resolution.

Shaped like SAM's predictor: `encode` runs the two image encoders once and
returns an immutable `EncodedImage`; `segment` / `segment_batch` answer any
number of instructions about it (batched through the LLM and the mask decoder).
Passing the RGB array instead encodes it in the same call. `set_image` /
`predict` are the predictor-style sugar over the same core. The CLI,
evaluation, training validation and the ROS node all use this class; it has no
ROS imports.

Answer modes:
* ``fast``: the answer containing `[SEG]` is given, one LLM forward pass, no
  generation (segmentation is all a robot asks for).
* ``chat``: greedy generation with a KV cache, capped at ``max_new_tokens``;
  every generated `[SEG]` yields a mask, none yields an empty mask and an
  answer text that says so.

Timings are opt-in (``timed=True``): only then does a CUDA device get
synchronised around each stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from .acceleration import check_compile, resolve_image_views
from .answering import chat_answers, fast_seg_embeddings, prompt_ids
from .checkpoint import LoadReport, load_model
from .errors import InvalidInputError
from .frame_encoder import FrameEncoder
from .model_options import MODES, ModelOptions
from .modeling.lisa import MineLisaModel
from .prompts import DEFAULT_ANSWER
from .quantization import quantize_language_model
from .results import (
    RESERVED_TOKENS,
    EncodedImage,
    ImageInput,
    SegmentationResult,
    validate_instruction,
)
from .runtime import Stopwatch, resolve_device, resolve_dtype_name
from .tokenization import LisaTokenizer
from .transforms import check_rgb_image


class SegmentationEngine:
    """Instruction-guided segmentation with a loaded MineLISA model.

    Args:
        model: a `MineLisaModel` (put in eval mode here).
        tokenizer: the model's `LisaTokenizer`.
        mode: default answer mode, ``fast`` or ``chat``.
        max_new_tokens: chat-mode cap on generated tokens.
        answer: fast-mode answer; must contain ``[SEG]``.
        report: the `LoadReport` of the checkpoint the model came from, if any.
        prefix_reuse: run the prompt prefix all instructions share (system line, image
            tokens: ~290 of ~305 positions) once per image in `encode`, and only each
            instruction's suffix per call. Same token ids and, up to float rounding,
            the same states as the whole prompt; False runs every prompt whole.
        image_views, compile: the GPU path's switches (`frame_encoder.FrameEncoder`).

    Raises:
        InvalidInputError: an unknown mode, image_views or compile; an answer without [SEG].
    """

    def __init__(
        self,
        model: MineLisaModel,
        tokenizer: LisaTokenizer,
        mode: str = "fast",
        max_new_tokens: int = 64,
        answer: str = DEFAULT_ANSWER,
        report: LoadReport | None = None,
        prefix_reuse: bool = True,
        image_views: str = "auto",
        compile: bool = False,
    ) -> None:
        if mode not in MODES:
            raise InvalidInputError(f"unknown answer mode {mode!r}: choose 'fast' or 'chat'")
        if "[SEG]" not in answer:
            raise InvalidInputError(f"the fast-mode answer must contain [SEG], got {answer!r}")
        if max_new_tokens < 1:
            raise InvalidInputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.mode = mode
        self.max_new_tokens = max_new_tokens
        self.answer = answer
        self.report = report
        self.prefix_reuse = prefix_reuse
        self.image: EncodedImage | None = None  # what `set_image` encoded last
        self.encoder = FrameEncoder(self.model, tokenizer, image_views, compile)
        reserved = {*RESERVED_TOKENS, *tokenizer.added_tokens, *tokenizer.special_tokens}
        self._reserved = sorted(reserved, key=len, reverse=True)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        vision_tower: str | Path | None = None,
        sam_checkpoint: str | Path | None = None,
        device: str | torch.device = "auto",
        dtype: str | None = None,
        mode: str = "fast",
        max_new_tokens: int = 64,
        quantize: str = "none",
        image_views: str = "auto",
        compile: bool = False,
    ) -> SegmentationEngine:
        """Load a bundle, a LISA release or a base LLaVA + SAM checkpoint from local files.

        Args:
            path: model directory (see `checkpoint.load_model`).
            vision_tower: local CLIP directory (LISA releases name a hub id instead).
            sam_checkpoint: SAM ``.pth`` for a base LLaVA directory.
            device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
            dtype: ``fp32``, ``fp16``, ``bf16``; None/``auto``: fp16 on CUDA, fp32 on CPU.
            mode: default answer mode.
            max_new_tokens: chat-mode generation cap.
            quantize: LLM decoder-layer linears in ``none``, ``int8``, ``int4`` (`quantization`).
            image_views, compile: the GPU path's switches (`acceleration`).

        Raises:
            CheckpointError: the files cannot be loaded (the message names what is missing).
            InvalidInputError: a bad option (the message says which); no CUDA or bitsandbytes.
        """
        torch_device = resolve_device(device)
        resolve_image_views(image_views, torch_device)  # refused before a long load
        check_compile(compile)
        loaded = load_model(
            path,
            vision_tower=vision_tower or None,
            sam_checkpoint=sam_checkpoint or None,
            device=torch_device,
            dtype=resolve_dtype_name(dtype, torch_device),
        )
        return cls(
            quantize_language_model(loaded.model, quantize),
            loaded.tokenizer,
            mode=mode,
            max_new_tokens=max_new_tokens,
            report=loaded.report,
            image_views=image_views,
            compile=compile,
        )

    @classmethod
    def from_options(cls, options: ModelOptions) -> SegmentationEngine:
        """`from_pretrained` with the shared model options (CLI flags, node parameters)."""
        return cls.from_pretrained(**dataclasses.asdict(options))  # same names

    @property
    def device(self) -> torch.device:
        """The model's device."""
        return self.model.device

    # -- input checks ----------------------------------------------------------------------
    def check_instruction(self, instruction: object) -> str:
        """`validate_instruction` with this model's reserved token strings."""
        return validate_instruction(instruction, self._reserved)

    def _check_batch(self, instructions: Sequence[str]) -> list[str]:
        if isinstance(instructions, str):
            raise InvalidInputError("segment_batch takes a list of instructions, got one string")
        items = [self.check_instruction(text) for text in instructions]
        if not items:
            raise InvalidInputError("no instruction given")
        return items

    def _check_mode(self, mode: str | None) -> str:
        mode = mode or self.mode
        if mode not in MODES:
            raise InvalidInputError(f"unknown answer mode {mode!r}: choose 'fast' or 'chat'")
        return mode

    # -- image --------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(
        self, image: np.ndarray, *, timed: bool = False, with_prefix: bool | None = None
    ) -> EncodedImage:
        """Run the CLIP and SAM image encoders (and the shared prompt prefix) once.

        Args:
            image: uint8 RGB array of shape (H, W, 3).
            timed: record clip_ms, sam_encoder_ms, llm_prefix_ms (synchronises a CUDA device).
            with_prefix: run the LLM prompt prefix now (default: the engine's prefix_reuse);
                `follow` needs none, `add_prefix` adds it later.

        Returns:
            An immutable `EncodedImage` for any number of later `segment` calls.

        Raises:
            InvalidInputError: not a uint8 (H, W, 3) array, empty, or an extreme aspect ratio.
        """
        image = check_rgb_image(image)
        watch = Stopwatch(self.device, timed)
        with watch.stage("clip_ms"):
            tokens = self.encoder.clip_tokens(image)
        with watch.stage("sam_encoder_ms"):
            embedding, view = self.encoder.sam_embedding(image)
        prefix = None
        if self.prefix_reuse if with_prefix is None else with_prefix:
            with watch.stage("llm_prefix_ms"):
                prefix = self.encoder.prefix(tokens)
        timings = MappingProxyType(dict(watch.timings))
        size = (view.input_size, view.original_size)
        return EncodedImage(tokens, embedding, *size, timings=timings, prefix=prefix)

    @torch.inference_mode()
    def add_prefix(self, encoded: EncodedImage) -> EncodedImage:
        """`encoded` with its shared prompt prefix run (itself when it has one already)."""
        if encoded.prefix is not None:
            return encoded
        prefix = self.encoder.prefix(encoded.image_tokens)
        return dataclasses.replace(encoded, prefix=prefix)

    def set_image(self, image: np.ndarray, *, timed: bool = False) -> EncodedImage:
        """Encode `image` and keep it for `predict` (predictor-style sugar over `encode`)."""
        self.image = self.encode(image, timed=timed)
        return self.image

    def _encoded(self, image: ImageInput, timed: bool) -> EncodedImage:
        return image if isinstance(image, EncodedImage) else self.encode(image, timed=timed)

    # -- segmentation ---------------------------------------------------------------------------
    def segment(
        self,
        image: ImageInput,
        instruction: str,
        *,
        mode: str | None = None,
        threshold: float = 0.0,
        timed: bool = False,
    ) -> SegmentationResult:
        """The mask of what one instruction names.

        Args:
            image: uint8 RGB (H, W, 3) array, or an `EncodedImage` from `encode`.
            instruction: what to segment, in plain words.
            mode: ``fast`` or ``chat`` (default: the engine's).
            threshold: mask = logits > threshold (0: the model's decision boundary).
            timed: fill `SegmentationResult.timings` (synchronises a CUDA device).

        Returns:
            A `SegmentationResult` with bool masks at the image's (H, W).

        Raises:
            InvalidInputError: a refused image, instruction or mode (see `check_instruction`).
        """
        text = self.check_instruction(instruction)
        return self.segment_batch(image, [text], mode=mode, threshold=threshold, timed=timed)[0]

    @torch.inference_mode()
    def segment_batch(
        self,
        image: ImageInput,
        instructions: Sequence[str],
        *,
        mode: str | None = None,
        threshold: float = 0.0,
        timed: bool = False,
    ) -> list[SegmentationResult]:
        """`segment` for several instructions about one image, in their order.

        The image is encoded once; in fast mode the instructions are batched through the
        LLM and the mask decoder. Arguments, raises: as `segment`; an empty list is refused.
        """
        items = self._check_batch(instructions)
        mode = self._check_mode(mode)
        watch = Stopwatch(self.device, timed)
        encoded = self._encoded(image, timed)
        answers, seg, logits = self._run(encoded, items, mode, watch)
        with watch.stage("mask_to_host_ms"):
            masks = [(x > threshold).cpu().numpy() for x in logits]
        return self._results(encoded, items, answers, seg, masks, watch, image is not encoded)

    @torch.inference_mode()
    def follow(
        self,
        image: ImageInput,
        previous: Sequence[SegmentationResult],
        *,
        threshold: float = 0.0,
        timed: bool = False,
    ) -> list[SegmentationResult]:
        """Masks on a new image from earlier results' `[SEG]` prompts, without the LLM.

        A camera's next frames mostly show the same scene: the LLM's answer (its `[SEG]`
        prompt embedding) is reused and only SAM's image encoder and mask decoder run.
        The caller decides when to refresh with `segment_batch` (see `following.Follower`).

        Args:
            image: uint8 RGB (H, W, 3) array, or an `EncodedImage` (no prefix needed).
            previous: results from `segment`/`segment_batch` (their `prompts`).
            threshold, timed: as `segment`.

        Raises:
            InvalidInputError: a refused image, or a result without prompts.
        """
        if any(r.prompts is None for r in previous) or not previous:
            raise InvalidInputError(
                "follow needs results from segment/segment_batch (with prompts)"
            )
        watch = Stopwatch(self.device, timed)
        encoded = (
            image
            if isinstance(image, EncodedImage)
            else self.encode(image, timed=timed, with_prefix=False)
        )
        seg = [r.prompts for r in previous]
        with watch.stage("decoder_ms"):
            logits = self._decode(encoded, seg)
        with watch.stage("mask_to_host_ms"):
            masks = [(x > threshold).cpu().numpy() for x in logits]
        items, answers = [r.instruction for r in previous], [r.answer for r in previous]
        return self._results(encoded, items, answers, seg, masks, watch, image is not encoded)

    @torch.inference_mode()
    def mask_logits(
        self, image: ImageInput, instructions: Sequence[str], *, mode: str | None = None
    ) -> list[torch.Tensor]:
        """Mask logits at the original size, for evaluation and confidence maps.

        Returns:
            One float tensor [k, H, W] per instruction on the model's device, k = the
            number of `[SEG]` in its answer (0 in chat mode when none was generated).
            ``logits > 0`` is the mask `segment` returns.
        """
        items = self._check_batch(instructions)
        mode = self._check_mode(mode)
        watch = Stopwatch(self.device, False)
        return self._run(self._encoded(image, False), items, mode, watch)[2]

    def predict(
        self, instructions: str | Sequence[str], mode: str | None = None, *, timed: bool = False
    ) -> list[SegmentationResult]:
        """Predictor-style sugar: `segment_batch` on the image given to `set_image`.

        Raises:
            RuntimeError: `set_image` was not called first.
        """
        if self.image is None:
            raise RuntimeError("no image set: call set_image(image) before predict()")
        items = [instructions] if isinstance(instructions, str) else instructions
        return self.segment_batch(self.image, items, mode=mode, timed=timed)

    # -- core -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _run(
        self, encoded: EncodedImage, items: list[str], mode: str, watch: Stopwatch
    ) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor]]:
        """(answers, [k, 256] prompts, [k, H, W] mask logits) per checked instruction."""
        model, tokenizer, cap = self.model, self.tokenizer, self.max_new_tokens
        with watch.stage("llm_ms"):
            if mode == "fast":
                seqs = [prompt_ids(model, tokenizer, t, self.answer, cap) for t in items]
                seg = fast_seg_embeddings(model, tokenizer, encoded, seqs)
                answers = [self.answer] * len(items)
            else:
                prompts = [prompt_ids(model, tokenizer, t, None, cap) for t in items]
                answers, seg = chat_answers(model, tokenizer, encoded, prompts, cap)
        with watch.stage("decoder_ms"):
            logits = self._decode(encoded, seg)
        return answers, seg, logits

    def _decode(self, encoded: EncodedImage, seg: list[torch.Tensor]) -> list[torch.Tensor]:
        counts = [e.shape[0] for e in seg]
        flat = torch.cat(seg) if sum(counts) else seg[0]
        logits = self.model.decode_masks(
            encoded.sam_embedding, flat, encoded.input_size, encoded.original_size
        )
        return list(torch.split(logits.float(), counts))

    def _results(
        self,
        encoded: EncodedImage,
        items: list[str],
        answers: list[str],
        prompts: list[torch.Tensor],
        masks: list[np.ndarray],
        watch: Stopwatch,
        encoded_here: bool,
    ) -> list[SegmentationResult]:
        timings = dict(encoded.timings) if encoded_here else {}
        timings.update(watch.timings)
        if timings:
            timings["total_ms"] = sum(timings.values())
        out = []
        for text, answer, seg, per_seg in zip(items, answers, prompts, masks):
            union = per_seg.any(axis=0) if len(per_seg) else np.zeros(encoded.original_size, bool)
            result = SegmentationResult(text, union, list(per_seg), answer, dict(timings), seg)
            out.append(result)
        return out
