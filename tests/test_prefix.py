"""Shared-prefix reuse: the same token ids and [SEG] states as running each prompt whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers.cache_utils

from minelisa_training.engine import SegmentationEngine
from minelisa_training.prompts import IMAGE_TOKEN_INDEX, build_prompt, tokenize_with_image
from minelisa_training.testing import with_token_bias

INSTRUCTIONS = [
    "segment the exposed cable",
    "where is the person near the conveyor?",
    "Please segment the door in this image.",
]


def _capture_seg_states(model):
    """Inputs of the [SEG] head (the states that predict [SEG]), call by call."""
    seen: list[torch.Tensor] = []
    handle = model.text_hidden_fcs[0].register_forward_hook(
        lambda _m, inputs, _o: seen.append(inputs[0].detach().float().clone())
    )
    return seen, handle


def _states(engine, image, items, mode="fast"):
    seen, handle = _capture_seg_states(engine.model)
    try:
        results = engine.segment_batch(image, items, mode=mode)
    finally:
        handle.remove()
    return torch.cat(seen) if seen else torch.zeros(0), results


@pytest.fixture(scope="module")
def pair(tiny):
    model, tok = tiny
    return SegmentationEngine(model, tok), SegmentationEngine(model, tok, prefix_reuse=False)


def test_prefix_ids_are_those_of_the_whole_prompt(pair):
    reuse, _ = pair
    encoded = reuse.encode(np.zeros((32, 40, 3), np.uint8))
    for text in INSTRUCTIONS:
        whole = tokenize_with_image(reuse.tokenizer, build_prompt(text, "[SEG]."))
        suffix = encoded.prefix.split(whole)
        assert list(encoded.prefix.ids) + [IMAGE_TOKEN_INDEX] + suffix == whole
    n_image = reuse.model.config.num_image_tokens
    assert encoded.prefix.length == len(encoded.prefix.ids) + n_image


@pytest.mark.parametrize("items", [INSTRUCTIONS[:1], INSTRUCTIONS])
def test_fast_mode_states_and_masks_match_whole_prompts(pair, rgb_image, items):
    reuse, whole = pair
    got, a = _states(reuse, rgb_image, items)
    want, b = _states(whole, rgb_image, items)
    assert got.shape == want.shape == (len(items), reuse.model.config.hidden_size)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for x, y in zip(a, b):
        assert (x.mask != y.mask).sum() <= 10  # logits ~0 may round either way


def test_seg_not_last_and_twice(tiny, rgb_image):
    model, tok = tiny
    answer = "It is [SEG], left of [SEG] there."
    reuse = SegmentationEngine(model, tok, answer=answer)
    whole = SegmentationEngine(model, tok, answer=answer, prefix_reuse=False)
    got, results = _states(reuse, rgb_image, INSTRUCTIONS[:2])
    want, _ = _states(whole, rgb_image, INSTRUCTIONS[:2])
    assert got.shape[0] == 4 and len(results[0].masks) == 2
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_chat_mode_batched_over_the_prefix_matches_whole_prompts(tiny, rgb_image):
    model, tok = tiny
    # Find a bias at which the whole-prompt run generates several tokens before [SEG].
    for bias in np.linspace(0.0, 3.0, 31):
        chatty = with_token_bias(model, tok.token_to_id("[SEG]"), float(bias))
        whole = SegmentationEngine(chatty, tok, mode="chat", max_new_tokens=8, prefix_reuse=False)
        want, expected = _states(whole, rgb_image, INSTRUCTIONS, mode="chat")
        before = [tok.encode(r.answer.split("[SEG]")[0], add_bos=False) for r in expected]
        if all(r.masks for r in expected) and max(len(b) for b in before) >= 2:
            break
    else:
        pytest.fail("no bias gave an answer with tokens before [SEG]")
    reuse = SegmentationEngine(chatty, tok, mode="chat", max_new_tokens=8)
    got, results = _states(reuse, rgb_image, INSTRUCTIONS, mode="chat")
    assert [r.answer for r in results] == [r.answer for r in expected]
    assert want.shape[0] >= len(INSTRUCTIONS)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_no_kv_cache_is_built_where_none_is_read(pair, rgb_image, monkeypatch):
    reuse, whole = pair
    built = []
    original = transformers.cache_utils.DynamicCache.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.cache_utils.DynamicCache, "__init__", counting)
    whole.segment_batch(rgb_image, INSTRUCTIONS)
    assert built == []  # one forward pass per prompt batch, nothing cached
    encoded = reuse.encode(rgb_image)
    assert len(built) == 1  # the prefix, kept on the encoded image
    reuse.segment_batch(encoded, INSTRUCTIONS)
    assert len(built) == 2  # the prefix read once more by the batch of suffixes
