"""Instruction-naming pre-training: only the LLM learns, and the [SEG] state comes to carry the class."""

from __future__ import annotations

import pytest
import torch
from train_helpers import tiny_demo_model

from minelisa_training import museg
from minelisa_training.prompts import encode_conversation
from minelisa_training.training.config import load_config
from minelisa_training.training.dataset import load_split_samples
from minelisa_training.training.naming import pretrain_instruction_naming


@torch.no_grad()
def seg_prompts(model, tokenizer, instructions: list[str]) -> torch.Tensor:
    """The [SEG] prompt (text_hidden_fcs output) of each instruction on one blank image."""
    clip = torch.zeros((1, 3, 224, 224))
    image_tokens = model.encode_clip(clip)
    out = []
    for text in instructions:
        ids, labels = encode_conversation(
            tokenizer, text, "[SEG].", model.config.mm_use_im_start_end
        )
        inputs = model.embed_inputs(ids[None], torch.ones_like(ids)[None], image_tokens, None)
        hidden, _ = model.run_language_model(inputs, with_logits=False)
        out.append(model.seg_embeddings(hidden, inputs.seg_positions)[0][0])
    return torch.stack(out)


def class_spread(prompts: torch.Tensor) -> float:
    """How much the prompt changes between classes, relative to its size."""
    return float(prompts.std(0).norm() / prompts.mean(0).norm())


def test_naming_trains_the_llm_only_and_separates_classes(synth_data, tmp_path) -> None:
    root, _ = synth_data
    config = load_config("tiny_cpu", [f"data.root={root}", "data.split=official"])
    splits = load_split_samples(config.data, progress=False)
    model, tokenizer = tiny_demo_model(tmp_path, seed=3)
    names = [museg.instruction_name(n) for n in splits.class_map.names[1:]]
    instructions = [museg.PAPER_TEMPLATE.format(class_name=n) for n in names]
    before_spread = class_spread(seg_prompts(model, tokenizer, instructions))
    before = {k: v.clone() for k, v in model.state_dict().items()}

    losses = pretrain_instruction_naming(
        model,
        tokenizer,
        splits.train,
        steps=120,
        batch_size=8,
        lr=3e-3,
        log_every=20,
        echo=lambda _m: None,
    )

    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0], losses
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("language_model.") for k in changed), sorted(changed)[:5]
    assert "language_model.model.layers.0.self_attn.q_proj.weight" in changed
    assert all(
        p.requires_grad for p in model.parameters()
    )  # left as they were (build_model: all trainable)
    after_spread = class_spread(seg_prompts(model, tokenizer, instructions))
    assert after_spread > 10 * before_spread, (before_spread, after_spread)


def test_naming_rejects_empty_input(tmp_path) -> None:
    model, tokenizer = tiny_demo_model(tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        pretrain_instruction_naming(model, tokenizer, [], steps=5)
