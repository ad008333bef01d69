"""Chat mode: greedy answers for one or many instructions about one image.

With a `PromptPrefix` every instruction's suffix is left-padded to one length
and generated as a batch over the shared prefix cache; per-row position ids keep
each row's positions exactly those of its own prompt (RoPE sees the same
distances as in a one-prompt run), and the attention mask hides the padding.
Without a prefix each prompt runs whole, one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from .modeling.lisa import MineLisaModel
from .prefix import PromptPrefix


@dataclass
class Generated:
    """One prompt's generated token ids and the states that predicted each `[SEG]`."""

    tokens: list[int] = field(default_factory=list)
    seg_states: list[torch.Tensor] = field(default_factory=list)
    done: bool = False


def _greedy(
    model: MineLisaModel,
    state: torch.Tensor,
    step: callable,
    eos_id: int,
    max_new_tokens: int,
) -> list[Generated]:
    """Greedy decoding from states [N, H]; `step(tokens [N, 1], t)` returns the next states."""
    lm = model.language_model
    out = [Generated() for _ in range(state.shape[0])]
    for t in range(max_new_tokens):
        tokens = lm.lm_head(state).argmax(-1)
        for i, token in enumerate(tokens.tolist()):
            row = out[i]
            if row.done:
                continue
            row.tokens.append(token)
            if token == model.seg_token_id:
                row.seg_states.append(state[i])  # the state that predicts [SEG], as LISA
            row.done = token == eos_id
        if all(row.done for row in out) or t == max_new_tokens - 1:
            break
        state = step(tokens[:, None], t)
    return out


def generate_batch(
    model: MineLisaModel,
    prefix: PromptPrefix,
    suffixes: list[list[int]],
    pad_id: int,
    eos_id: int,
    max_new_tokens: int,
) -> list[Generated]:
    """Greedy answers for prompt suffixes run over `prefix`, as one batch."""
    device = prefix.last_hidden.device
    n, width = len(suffixes), max(len(s) for s in suffixes)
    lengths = torch.tensor([len(s) for s in suffixes])
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.ones((n, prefix.length + width), dtype=torch.long)
    for i, s in enumerate(suffixes):
        ids[i, width - len(s) :] = torch.tensor(s)
        mask[i, prefix.length : prefix.length + width - len(s)] = 0
    # Row i's first real token sits at column width - len_i but is position prefix.length.
    columns = torch.arange(width)[None, :] - (width - lengths)[:, None]
    positions = (prefix.length + columns).clamp(min=prefix.length)
    cache, lm = prefix.cache(n), model.language_model.model
    mask, ids = mask.to(device), ids.to(device)
    out = lm(input_ids=ids, attention_mask=mask, position_ids=positions.to(device), cache=cache)
    next_position = (prefix.length + lengths).to(device)

    def step(tokens: torch.Tensor, t: int) -> torch.Tensor:
        nonlocal mask
        mask = torch.cat([mask, mask.new_ones((n, 1))], dim=1)
        pos = (next_position + t)[:, None]
        result = lm(input_ids=tokens, attention_mask=mask, position_ids=pos, cache=cache)
        return result.last_hidden_state[:, -1]

    return _greedy(model, out.last_hidden_state[:, -1], step, eos_id, max_new_tokens)


def generate_whole(
    model: MineLisaModel,
    prompt_ids: list[int],
    image_tokens: torch.Tensor,
    eos_id: int,
    max_new_tokens: int,
) -> Generated:
    """Greedy answer for one whole prompt (image placeholder expanded), no prefix reuse."""
    device = image_tokens.device
    ids = torch.tensor([prompt_ids], device=device)
    inputs = model.embed_inputs(ids, torch.ones_like(ids), image_tokens)
    cache, lm = DynamicCache(), model.language_model.model
    out = lm(inputs_embeds=inputs.inputs_embeds, cache=cache, use_cache=True)

    def step(tokens: torch.Tensor, _t: int) -> torch.Tensor:
        return lm(input_ids=tokens, cache=cache, use_cache=True).last_hidden_state[:, -1]

    return _greedy(model, out.last_hidden_state[:, -1], step, eos_id, max_new_tokens)[0]
