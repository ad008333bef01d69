"""What each new frame costs before any instruction: image views, encoders, shared prefix."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from .acceleration import CompiledStage, check_compile, maybe_compiled, resolve_image_views
from .modeling.lisa import MineLisaModel
from .prefix import PromptPrefix, build_prefix, prefix_forward
from .tokenization import LisaTokenizer
from .transforms import SamView, clip_view, sam_view


class FrameEncoder:
    """The CLIP image tokens, the SAM image embedding and the prompt prefix of one frame.

    Args:
        model, tokenizer: the loaded model.
        image_views: ``exact``, ``device`` or ``auto`` (`acceleration.resolve_image_views`).
        compile: True compiles the SAM image encoder and the prefix forward pass
            (`acceleration.CompiledStage`).

    Raises:
        InvalidInputError: an unknown image_views or compile.
    """

    def __init__(
        self,
        model: MineLisaModel,
        tokenizer: LisaTokenizer,
        image_views: str = "auto",
        compile: bool = False,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        device = model.device
        self.image_views = resolve_image_views(image_views, device)
        enabled = check_compile(compile)
        self._sam = maybe_compiled(model.encode_sam, "the SAM image encoder", device, enabled)
        self._prefix = maybe_compiled(
            partial(prefix_forward, model), "the LLM prompt prefix", device, enabled
        )

    @property
    def compiled(self) -> dict[str, bool]:
        """Per compilable stage, whether it runs compiled (False: compile off, or it fell
        back to eager; `CompiledStage.fallback_reason` says why)."""
        stages = {"sam_encoder": self._sam, "llm_prefix": self._prefix}
        return {k: isinstance(v, CompiledStage) and v.compiled for k, v in stages.items()}

    @property
    def _exact(self) -> bool:
        return self.image_views == "exact"

    def clip_tokens(self, image: np.ndarray) -> torch.Tensor:
        """[1, 256, H] image tokens (CLIP + projector) of a checked uint8 RGB image."""
        size = int(self.model.config.vision["image_size"])
        pixels = clip_view(image, size, self.model.device, self._exact)
        return self.model.encode_clip(pixels.unsqueeze(0).to(self.model.dtype))

    def sam_embedding(self, image: np.ndarray) -> tuple[torch.Tensor, SamView]:
        """SAM's image embedding [1, C, 64, 64] and the view it was computed from."""
        view = sam_view(image, self.model.config.sam.image_size, self.model.device, self._exact)
        return self._sam(view.pixels.unsqueeze(0).to(self.model.dtype)), view

    def prefix(self, image_tokens: torch.Tensor) -> PromptPrefix:
        """The prompt prefix all instructions about the image share, run once."""
        return build_prefix(self.model, self.tokenizer, image_tokens, self._prefix)
