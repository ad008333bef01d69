"""Tiny-config forward: shapes, image-token insertion, [SEG] hidden-state position."""

from __future__ import annotations

import torch

from minelisa_training.modeling.lisa import ModelInputs
from minelisa_training.prompts import (
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    build_prompt,
    encode_conversation,
    tokenize_with_image,
)
from minelisa_training.transforms import clip_view, sam_view


def _batch(tok, prompts):
    seqs = [tokenize_with_image(tok, p) for p in prompts]
    length = max(map(len, seqs))
    ids = torch.full((len(seqs), length), tok.pad_id)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for n, s in enumerate(seqs):
        ids[n, : len(s)] = torch.tensor(s)
        mask[n, : len(s)] = 1
    return seqs, ids, mask


def _lisa_seg_positions(ids: list[int], seg_id: int, n_image_tokens: int) -> list[int]:
    """LISA's own rule, written independently: a mask over input_ids[1:] == [SEG]
    (the position before [SEG]), shifted by the image tokens that replaced <image>."""
    positions = [i for i in range(len(ids) - 1) if ids[i + 1] == seg_id]
    p = ids.index(IMAGE_TOKEN_INDEX)
    return [i + n_image_tokens - 1 if i >= p else i for i in positions]


def test_image_tokens_replace_placeholder_and_seg_positions(tiny):
    model, tok = tiny
    seg = tok.token_to_id("[SEG]")
    prompts = [
        build_prompt("segment the cable", "[SEG]."),
        build_prompt(
            "where is the person?", "Sure, [SEG] is the person near the belt."
        ),  # [SEG] not last
        build_prompt("cable and door", "[SEG] and [SEG]."),
    ]
    seqs, ids, mask = _batch(tok, prompts)
    P = model.config.num_image_tokens
    image_tokens = torch.randn(len(prompts), P, model.config.hidden_size)
    out = model.embed_inputs(ids, mask, image_tokens)
    embed = model.language_model.get_input_embeddings()
    for n, s in enumerate(seqs):
        p = s.index(IMAGE_TOKEN_INDEX)
        assert int(out.attention_mask[n].sum()) == len(s) - 1 + P
        assert torch.equal(out.inputs_embeds[n, p : p + P], image_tokens[n])
        assert torch.equal(out.inputs_embeds[n, p + P], embed.weight[s[p + 1]])  # <im_end> follows
        assert torch.equal(
            out.inputs_embeds[n, p - 1], embed.weight[s[p - 1]]
        )  # <im_start> precedes
        assert out.seg_positions[n] == _lisa_seg_positions(s, seg, P)
        # The state at the position predicts the [SEG] token that follows it.
        for pos in out.seg_positions[n]:
            assert torch.equal(out.inputs_embeds[n, pos + 1], embed.weight[seg])
    assert [len(p) for p in out.seg_positions] == [1, 1, 2]
    assert out.seg_positions[1][0] < int(out.attention_mask[1].sum()) - 5  # well before the end


def test_forward_shapes_and_ce(tiny):
    model, tok = tiny
    rng = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 255, (932, 1082, 3), generator=rng, dtype=torch.uint8).numpy(),
        torch.randint(0, 255, (480, 640, 3), generator=rng, dtype=torch.uint8).numpy(),
    ]
    views = [sam_view(im) for im in images]
    pairs = [
        encode_conversation(tok, "Please segment the cable in this image.", "[SEG]."),
        encode_conversation(tok, "Please segment the door in this image.", "Sure, it is [SEG]."),
    ]
    length = max(len(i) for i, _ in pairs)
    ids = torch.full((2, length), tok.pad_id)
    labels = torch.full((2, length), IGNORE_INDEX)
    mask = torch.zeros((2, length), dtype=torch.long)
    for n, (i, lab) in enumerate(pairs):
        ids[n, : len(i)], labels[n, : len(i)], mask[n, : len(i)] = i, lab, 1
    batch = ModelInputs(
        input_ids=ids,
        attention_mask=mask,
        labels=labels,
        image_index=torch.tensor([0, 1]),
        input_sizes=[v.input_size for v in views],
        original_sizes=[v.original_size for v in views],
        clip_pixels=torch.stack([clip_view(im) for im in images]),
        sam_pixels=torch.stack([v.pixels for v in views]),
    )
    with torch.no_grad():
        out = model(batch)
    assert out.mask_logits[0].shape == (1, 932, 1082)
    assert out.mask_logits[1].shape == (1, 480, 640)
    assert [e.shape for e in out.seg_embeddings] == [(1, 256), (1, 256)]
    assert out.logits.shape[:2] == (2, length - 1 + model.config.num_image_tokens)
    assert out.logits.shape[2] == len(tok)
    # Random weights: CE is about log(vocab).
    assert abs(float(out.ce_loss) - torch.log(torch.tensor(float(len(tok))))) < 1.5
