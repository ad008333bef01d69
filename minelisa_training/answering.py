"""The LLM's part of an answer: prompt ids, and the [SEG] prompt embeddings of fast and chat mode.

Fast mode gives the answer (e.g. ``[SEG].``) and reads the states that predict each
``[SEG]`` in one forward pass; chat mode generates greedily. Both run only each
instruction's suffix over the image's `PromptPrefix` when it has one, else each
prompt whole.
"""

from __future__ import annotations

import torch

from .errors import InvalidInputError
from .generation import generate_batch, generate_whole
from .modeling.lisa import MineLisaModel
from .prefix import run_suffixes
from .prompts import build_prompt, tokenize_with_image
from .results import EncodedImage
from .tokenization import LisaTokenizer

NO_SEG_NOTE = "(no [SEG] token was generated: the mask is empty)"


def prompt_ids(
    model: MineLisaModel,
    tokenizer: LisaTokenizer,
    instruction: str,
    answer: str | None,
    max_new_tokens: int,
) -> list[int]:
    """Token ids of one prompt; refused when it would not fit the model's positions."""
    config = model.config
    ids = tokenize_with_image(
        tokenizer, build_prompt(instruction, answer, config.mm_use_im_start_end)
    )
    limit = int(config.llm.get("max_position_embeddings", 2048))
    total = len(ids) - 1 + config.num_image_tokens
    if answer is None:
        total += max_new_tokens
    if total > limit:
        raise InvalidInputError(
            f"instruction is too long: the prompt needs {total} positions, the model has {limit}"
        )
    return ids


def fast_seg_embeddings(
    model: MineLisaModel, tokenizer: LisaTokenizer, encoded: EncodedImage, seqs: list[list[int]]
) -> list[torch.Tensor]:
    """[k, 256] prompt embeddings per prompt (k = its [SEG] count), one forward pass."""
    prefix = encoded.prefix
    suffixes = [prefix.split(s) for s in seqs] if prefix is not None else []
    if prefix is not None and all(s is not None for s in suffixes):
        hidden = run_suffixes(model, prefix, suffixes, tokenizer.pad_id)
        positions = [[j for j, t in enumerate(s) if t == model.seg_token_id] for s in suffixes]
        return model.seg_embeddings(hidden, positions)
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for n, s in enumerate(seqs):
        ids[n, : len(s)] = torch.tensor(s)
        mask[n, : len(s)] = 1
    device = encoded.image_tokens.device
    image_tokens = encoded.image_tokens.expand(len(seqs), -1, -1)
    inputs = model.embed_inputs(ids.to(device), mask.to(device), image_tokens)
    hidden, _ = model.run_language_model(inputs, with_logits=False)
    return model.seg_embeddings(hidden, inputs.seg_positions)


def chat_answers(
    model: MineLisaModel,
    tokenizer: LisaTokenizer,
    encoded: EncodedImage,
    prompts: list[list[int]],
    max_new_tokens: int,
) -> tuple[list[str], list[torch.Tensor]]:
    """Greedy answers; (answer texts, [k, 256] prompt embeddings of each answer's [SEG]s)."""
    prefix = encoded.prefix
    suffixes = [prefix.split(p) for p in prompts] if prefix is not None else []
    eos = tokenizer.eos_id
    if prefix is not None and all(s is not None for s in suffixes):
        rows = generate_batch(model, prefix, suffixes, tokenizer.pad_id, eos, max_new_tokens)
    else:
        image = encoded.image_tokens
        rows = [generate_whole(model, p, image, eos, max_new_tokens) for p in prompts]
    answers, seg = [], []
    for row in rows:
        k = len(row.seg_states)
        hidden = torch.stack(row.seg_states)[None] if k else encoded.image_tokens[:, :0]
        seg.append(model.seg_embeddings(hidden, [list(range(k))])[0])
        answer = tokenizer.decode(row.tokens)
        if not k:
            answer = f"{answer} {NO_SEG_NOTE}" if answer else NO_SEG_NOTE
        answers.append(answer)
    return answers, seg
