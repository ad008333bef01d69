"""Conversation and instruction templates (LLaVA `llava_v1`, as LISA uses them)."""

from __future__ import annotations

import torch

from .tokenization import LisaTokenizer

SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
IMAGE_TOKEN = "<image>"
IM_START_TOKEN = "<im_start>"
IM_END_TOKEN = "<im_end>"
SEG_TOKEN = "[SEG]"
EOS_TEXT = "</s>"
IMAGE_TOKEN_INDEX = -200  # placeholder id that the image tokens replace (LLaVA convention)
IGNORE_INDEX = -100

# The MineLISA paper's answer (its instruction templates live in museg.py).
DEFAULT_ANSWER = "[SEG]."


def build_prompt(instruction: str, answer: str | None = None, use_im_start_end: bool = True) -> str:
    image = f"{IM_START_TOKEN}{IMAGE_TOKEN}{IM_END_TOKEN}" if use_im_start_end else IMAGE_TOKEN
    text = f"{SYSTEM} USER: {image}\n{instruction} ASSISTANT:"
    if answer is not None:
        text += f" {answer}{EOS_TEXT}"
    return text


def tokenize_with_image(tokenizer: LisaTokenizer, prompt: str) -> list[int]:
    """Token ids with IMAGE_TOKEN_INDEX where `<image>` was: each piece is tokenised
    on its own and only the first keeps its BOS (LLaVA's `tokenizer_image_token`)."""
    chunks = prompt.split(IMAGE_TOKEN)
    ids: list[int] = []
    for i, chunk in enumerate(chunks):
        if i > 0:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(tokenizer.encode(chunk, add_bos=(i == 0)))
    return ids


def encode_conversation(
    tokenizer: LisaTokenizer, instruction: str, answer: str, use_im_start_end: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) for training: labels keep only the answer and `</s>`."""
    full = tokenize_with_image(tokenizer, build_prompt(instruction, answer, use_im_start_end))
    prefix = tokenize_with_image(tokenizer, build_prompt(instruction, None, use_im_start_end))
    # The answer may share a sentencepiece chunk with "ASSISTANT:"; supervise from
    # the first token where the two tokenisations differ.
    n = 0
    while n < len(prefix) and n < len(full) and prefix[n] == full[n]:
        n += 1
    labels = [IGNORE_INDEX] * n + full[n:]
    return torch.tensor(full, dtype=torch.long), torch.tensor(labels, dtype=torch.long)
