"""SegmentationEngine: batching, encode-once, answer modes, bad input."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from minelisa_training.engine import SegmentationEngine
from minelisa_training.transforms import InvalidInputError

INSTRUCTIONS = [
    "segment the exposed cable",
    "where is the person near the conveyor?",
    "Please segment the door in this image.",
    "the rail area",
]


@pytest.fixture(scope="module")
def engine(tiny):
    model, tok = tiny
    return SegmentationEngine(model, tok)


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_many_instructions_match_one_at_a_time_and_encode_once(tiny, rgb_image):
    model, tok = tiny
    engine = SegmentationEngine(model, tok)
    clip_calls = _count_calls(model.vision_tower)
    sam_calls = _count_calls(model.visual_model.image_encoder)
    batched = engine.segment(rgb_image, INSTRUCTIONS)
    assert (clip_calls[0], sam_calls[0]) == (1, 1)
    singles = [engine.predict(text)[0] for text in INSTRUCTIONS]
    assert (clip_calls[0], sam_calls[0]) == (1, 1)  # predict reuses the encoded image
    for b, s in zip(batched, singles):
        assert b.mask.shape == rgb_image.shape[:2] and b.mask.dtype == bool
        # Batched and single matmuls round differently in the last bits, which can flip a
        # pixel whose logit is ~0; anything more than a handful of pixels is a real bug.
        assert (b.mask != s.mask).sum() <= 10
    # Different instructions give different masks (the LLM state reaches the decoder).
    assert len({r.mask.tobytes() for r in batched}) > 1
    timings = batched[0].timings
    for stage in ("clip_ms", "sam_encoder_ms", "llm_ms", "decoder_ms", "total_ms"):
        assert timings[stage] > 0


def _always_predicts(model, token_id: int):
    """A copy of `model` whose LM head always predicts `token_id` (a bias decides)."""
    model = copy.deepcopy(model)
    lm = model.language_model
    head = torch.nn.Linear(lm.lm_head.in_features, lm.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[token_id] = 1.0
    lm.lm_head = head
    return model


def test_chat_mode_every_seg_yields_a_mask_and_matches_fast(tiny, rgb_image):
    model, tok = tiny
    chatty = _always_predicts(model, tok.token_to_id("[SEG]"))
    engine = SegmentationEngine(chatty, tok, mode="chat", max_new_tokens=3)
    chat = engine.segment(rgb_image, INSTRUCTIONS[0])[0]
    assert chat.answer == "[SEG] [SEG] [SEG]"
    assert len(chat.masks) == 3
    assert np.array_equal(chat.mask, np.logical_or.reduce(chat.masks))
    fast = SegmentationEngine(chatty, tok, mode="fast", answer="[SEG].").segment(rgb_image, INSTRUCTIONS[0])[0]
    # The state that predicts the first generated [SEG] (through the KV cache) is the
    # fast mode's state before [SEG] in one forward pass.
    assert np.array_equal(chat.masks[0], fast.mask)
    assert chat.masks[0].any() or chat.masks[1].any() or not fast.mask.any()


def test_chat_mode_without_seg_returns_an_empty_mask_and_says_so(tiny, rgb_image):
    model, tok = tiny
    engine = SegmentationEngine(_always_predicts(model, tok.eos_id), tok, mode="chat")
    result = engine.segment(rgb_image, "what is on the left?")[0]
    assert result.masks == [] and not result.mask.any()
    assert result.mask.shape == rgb_image.shape[:2]
    assert "no [SEG]" in result.answer


def test_fast_mode_per_call_override(tiny, rgb_image):
    model, tok = tiny
    engine = SegmentationEngine(_always_predicts(model, tok.eos_id), tok, mode="chat")
    engine.set_image(rgb_image)
    assert engine.predict("the cable", mode="fast")[0].answer == "[SEG]."


@pytest.mark.parametrize(
    "image, instruction, message",
    [
        (np.zeros((10, 10, 3), np.float32), "cable", "dtype must be uint8"),
        (np.zeros((10, 10), np.uint8), "cable", "shape \\(H, W, 3\\)"),
        (np.zeros((10, 10, 4), np.uint8), "cable", "shape \\(H, W, 3\\)"),
        (np.zeros((0, 10, 3), np.uint8), "cable", "empty"),
        (np.zeros((1, 3000, 3), np.uint8), "cable", "aspect ratio above 20:1"),
        ([[0, 0, 0]], "cable", "numpy array"),
        (np.zeros((10, 10, 3), np.uint8), "", "instruction is empty"),
        (np.zeros((10, 10, 3), np.uint8), "   ", "instruction is empty"),
        (np.zeros((10, 10, 3), np.uint8), "x" * 1001, "too long: 1001 characters"),
        (np.zeros((10, 10, 3), np.uint8), "矿" * 400, "the prompt needs"),
        (np.zeros((10, 10, 3), np.uint8), [], "no instruction"),
        (np.zeros((10, 10, 3), np.uint8), [3], "must be a string"),
    ],
)
def test_bad_input_is_refused_specifically(engine, image, instruction, message):
    with pytest.raises(InvalidInputError, match=message):
        engine.segment(image, instruction)


def test_predict_without_image_and_unknown_mode(tiny):
    model, tok = tiny
    engine = SegmentationEngine(model, tok)
    with pytest.raises(InvalidInputError, match="no image set"):
        engine.predict("cable")
    engine.set_image(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="unknown answer mode"):
        engine.predict("cable", mode="poetry")
    with pytest.raises(ValueError, match="must contain \\[SEG\\]"):
        SegmentationEngine(model, tok, answer="Sure.")


def test_bf16_runs_and_stays_close_to_fp32(tiny, tmp_path, rgb_image):
    from minelisa_training.checkpoint import save_bundle

    model, tok = tiny
    bundle = save_bundle(model, tok, tmp_path / "b")
    fp32 = SegmentationEngine.from_pretrained(bundle, dtype="fp32").segment(rgb_image, INSTRUCTIONS[:2])
    bf16_engine = SegmentationEngine.from_pretrained(bundle, dtype="bf16")
    assert bf16_engine.model.dtype == torch.bfloat16
    bf16 = bf16_engine.segment(rgb_image, INSTRUCTIONS[:2])
    for a, b in zip(fp32, bf16):
        inter, union = (a.mask & b.mask).sum(), (a.mask | b.mask).sum()
        assert union == 0 or inter / union > 0.8
