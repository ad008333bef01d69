"""The prompt prefix every instruction about one image shares, run through the LLM once.

A prompt is ``BOS, system line, "USER:", <im_start>, 256 image tokens, <im_end>,
instruction, "ASSISTANT:", answer``: about 290 of about 305 positions come before
the instruction and are the same for every instruction about the same image. They
are tokenised as their own chunk (the prompt is split on ``<image>`` and each piece
is tokenised alone, as LISA's weights expect), so cutting there keeps the token ids
exactly those of the whole prompt. `PromptPrefix` holds that chunk's KV cache; each
instruction then runs only its own suffix over it. Causal attention makes the
result the same computation as the whole prompt in one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from transformers import DynamicCache

from .modeling.lisa import MineLisaModel
from .prompts import IMAGE_TOKEN_INDEX, build_prompt, tokenize_with_image
from .tokenization import LisaTokenizer


@dataclass(frozen=True)
class PromptPrefix:
    """The shared prefix of one image's prompts: its ids, KV cache and last state.

    Attributes:
        ids: token ids before the image placeholder (BOS, system line, ``USER:``, ...).
        keys_values: per LLM layer, (keys, values) of shape [1, kv_heads, length, head_dim].
        last_hidden: [1, H] post-norm state of the last prefix position (it predicts the
            first suffix token).
        length: positions in the cache: ``len(ids)`` plus the image tokens.
    """

    ids: tuple[int, ...]
    keys_values: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    last_hidden: torch.Tensor
    length: int

    def cache(self, batch: int) -> DynamicCache:
        """A fresh cache holding the prefix for `batch` prompts; updating it never
        changes this prefix (new positions are concatenated into new tensors)."""
        return DynamicCache(
            ddp_cache_data=[
                (k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                for k, v in self.keys_values
            ]
        )

    def split(self, ids: list[int]) -> list[int] | None:
        """The suffix of a whole prompt's ids after this prefix and the image placeholder,
        or None when the prompt does not start with this prefix."""
        n = len(self.ids)
        if len(ids) <= n or tuple(ids[:n]) != self.ids or ids[n] != IMAGE_TOKEN_INDEX:
            return None
        return ids[n + 1 :]


def prefix_ids(tokenizer: LisaTokenizer, use_im_start_end: bool) -> tuple[int, ...]:
    """The ids of the prompt's first chunk, the same whatever the instruction."""
    ids = tokenize_with_image(tokenizer, build_prompt("x", None, use_im_start_end))
    return tuple(ids[: ids.index(IMAGE_TOKEN_INDEX)])


def prefix_forward(
    model: MineLisaModel, inputs: torch.Tensor
) -> tuple[tuple[tuple[torch.Tensor, torch.Tensor], ...], torch.Tensor]:
    """The LLM over the prefix embeddings [1, L, H]: per layer (keys, values), and the
    last position's post-norm state [1, H]. Fixed shapes per model: what is compiled."""
    cache = DynamicCache()
    out = model.language_model.model(inputs_embeds=inputs, cache=cache, use_cache=True)
    keys_values = tuple((layer.keys, layer.values) for layer in cache.layers)
    return keys_values, out.last_hidden_state[:, -1]


def build_prefix(
    model: MineLisaModel,
    tokenizer: LisaTokenizer,
    image_tokens: torch.Tensor,
    forward: Callable[[torch.Tensor], Any] | None = None,
) -> PromptPrefix:
    """Run the shared prefix (text before the image, then the image tokens) once;
    `forward` is `prefix_forward` bound to `model`, or a compiled version of it."""
    ids = prefix_ids(tokenizer, model.config.mm_use_im_start_end)
    embed = model.language_model.get_input_embeddings()
    text = embed(torch.tensor([ids], device=image_tokens.device))
    inputs = torch.cat([text, image_tokens.to(text.dtype)], dim=1)
    keys_values, last_hidden = (forward or partial(prefix_forward, model))(inputs)
    return PromptPrefix(ids, keys_values, last_hidden, inputs.shape[1])


def run_suffixes(
    model: MineLisaModel, prefix: PromptPrefix, suffixes: list[list[int]], pad_id: int
) -> torch.Tensor:
    """Post-norm states [N, 1 + S, H] of the suffixes (right-padded to S) run over the prefix.

    Index 0 is the prefix's last state, so index ``j`` is the state that predicts suffix
    token ``j``: the `[SEG]` at suffix position ``j`` takes state ``j``.
    """
    device = prefix.last_hidden.device
    n, length = len(suffixes), max(len(s) for s in suffixes)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    mask = torch.zeros((n, prefix.length + length), dtype=torch.long)
    mask[:, : prefix.length] = 1
    for i, s in enumerate(suffixes):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, prefix.length : prefix.length + len(s)] = 1
    embeds = model.language_model.get_input_embeddings()(ids.to(device))
    padded = bool((mask == 0).any())
    out = model.language_model.model(
        inputs_embeds=embeds,
        attention_mask=mask.to(device) if padded else None,
        cache=prefix.cache(n),
        use_cache=True,  # the prefix cache is read; nothing is kept afterwards
    )
    first = prefix.last_hidden.expand(n, -1).unsqueeze(1)
    return torch.cat([first, out.last_hidden_state], dim=1)
