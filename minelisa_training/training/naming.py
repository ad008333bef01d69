"""Instruction-naming pre-training for a language model that starts from random weights.

LISA-7B starts from LLaVA, whose language model already reads an instruction and
knows which object it asks about; the hidden state that predicts ``[SEG]`` inherits
that, and the mask decoder learns to turn it into a mask. A random tiny LLM has
none of it: in the demo model the ``[SEG]`` prompt differs by 0.5% between the 15
class instructions, and segmentation training alone does not teach it to route the
class name to that position (the measurements are in benchmarks/RESULTS.md).

This stage stands in for LLaVA's visual instruction tuning, in miniature: given the
image tokens and a segmentation instruction, the LLM is trained (next-token
cross-entropy, the LLM's weights only) to answer with the name of the object
asked for. The position that predicts the answer's first token is the one whose
hidden state later predicts ``[SEG]``, so afterwards that state carries the class.
It uses the instructions and images of the training split only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import torch

from .. import museg
from ..modeling.lisa import MineLisaModel, answer_loss
from ..prompts import encode_conversation
from ..tokenization import LisaTokenizer
from ..transforms import clip_view
from .data import pad_conversations


@torch.no_grad()
def _image_tokens(model: MineLisaModel, samples: Sequence[museg.Sample]) -> dict[str, torch.Tensor]:
    """CLIP tokens after the projector, once per image (both stay frozen here)."""
    size = int(model.config.vision["image_size"])
    tokens: dict[str, torch.Tensor] = {}
    for s in samples:
        if s.image_id not in tokens:
            image = museg.load_image(s.record.image_path)
            pixels = clip_view(image, size, device=model.device)[None]
            tokens[s.image_id] = model.encode_clip(pixels)[0]
    return tokens


def _naming_loss(
    model: MineLisaModel,
    conversations: list[tuple[torch.Tensor, torch.Tensor]],
    images: torch.Tensor,
    pad_id: int,
) -> torch.Tensor:
    """The CE of the named answers of a batch of (input ids, labels) conversations."""
    ids, labels, attention = pad_conversations(
        [c[0] for c in conversations], [c[1] for c in conversations], pad_id
    )
    device = model.device
    inputs = model.embed_inputs(ids.to(device), attention.to(device), images, labels.to(device))
    _, logits = model.run_language_model(inputs, with_logits=True)
    return answer_loss(logits, inputs.labels)


def pretrain_instruction_naming(
    model: MineLisaModel,
    tokenizer: LisaTokenizer,
    samples: Sequence[museg.Sample],
    steps: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    log_every: int = 50,
    echo: Callable[[str], None] = print,
) -> list[float]:
    """Trains ``model.language_model`` in place; returns the loss every ``log_every`` steps.

    Only the LLM's parameters change (AdamW, betas (0.9, 0.95), clip 1.0); the vision
    tower, projector, SAM and the ``[SEG]`` head are left exactly as they were.
    """
    if not samples:
        raise ValueError("instruction-naming pre-training needs at least one training sample")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    tokens = _image_tokens(model, samples)
    conversations = [
        encode_conversation(
            tokenizer,
            s.instruction,
            museg.instruction_name(s.class_name),
            model.config.mm_use_im_start_end,
        )
        for s in samples
    ]
    params = list(model.language_model.parameters())
    was_trainable = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    rng = random.Random(seed)
    model.train()
    losses: list[float] = []
    window, started = [], time.perf_counter()
    try:
        for step in range(1, steps + 1):
            chosen = [rng.randrange(len(samples)) for _ in range(batch_size)]
            images = torch.stack([tokens[samples[i].image_id] for i in chosen])
            loss = _naming_loss(model, [conversations[i] for i in chosen], images, tokenizer.pad_id)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            window.append(loss.item())
            if step % log_every == 0 or step == steps:
                losses.append(sum(window) / len(window))
                rate = step * batch_size / (time.perf_counter() - started)
                echo(f"naming step {step}/{steps}: loss {losses[-1]:.4f} ({rate:.0f} samples/s)")
                window = []
    finally:
        for p, flag in zip(params, was_trainable):
            p.requires_grad_(flag)
        model.eval()
    return losses
