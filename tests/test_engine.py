"""SegmentationEngine: batching, encode-once, answer modes, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from minelisa_training.engine import SegmentationEngine
from minelisa_training.testing import with_token_bias
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
    encoded = engine.encode(rgb_image)
    batched = engine.segment_batch(encoded, INSTRUCTIONS)
    assert (clip_calls[0], sam_calls[0]) == (1, 1)
    singles = [engine.segment(encoded, text) for text in INSTRUCTIONS]
    assert (clip_calls[0], sam_calls[0]) == (1, 1)  # the encoded image is reused
    for b, s in zip(batched, singles):
        assert b.mask.shape == rgb_image.shape[:2] and b.mask.dtype == bool
        # Batched and single matmuls round differently in the last bits, which can flip a
        # pixel whose logit is ~0; anything more than a handful of pixels is a real bug.
        assert (b.mask != s.mask).sum() <= 10
    # Different instructions give different masks (the LLM state reaches the decoder).
    assert len({r.mask.tobytes() for r in batched}) > 1


def test_timings_are_opt_in_and_belong_to_their_call(engine, rgb_image):
    assert engine.segment(rgb_image, INSTRUCTIONS[0]).timings == {}
    timed = engine.segment_batch(rgb_image, INSTRUCTIONS[:2], timed=True)[0].timings
    for stage in ("clip_ms", "sam_encoder_ms", "llm_ms", "decoder_ms", "total_ms"):
        assert timed[stage] > 0
    encoded = engine.encode(rgb_image, timed=True)
    assert encoded.timings["sam_encoder_ms"] > 0
    # A later call on the encoded image reports its own stages, not the encoders' again.
    later = engine.segment(encoded, INSTRUCTIONS[0], timed=True).timings
    assert "sam_encoder_ms" not in later and later["llm_ms"] > 0
    with pytest.raises(AttributeError):
        encoded.original_size = (1, 1)  # EncodedImage is immutable


def test_mask_logits_threshold_gives_the_mask(engine, rgb_image):
    encoded = engine.encode(rgb_image)
    (logits,) = engine.mask_logits(encoded, [INSTRUCTIONS[0]])
    assert logits.shape == (1, *rgb_image.shape[:2]) and logits.dtype == torch.float32
    result = engine.segment(encoded, INSTRUCTIONS[0])
    assert np.array_equal((logits[0] > 0).cpu().numpy(), result.mask)
    loose = engine.segment(encoded, INSTRUCTIONS[0], threshold=float(logits.min()) - 1)
    assert loose.mask.all()


def _always_predicts(model, token_id: int):
    """A copy of `model` whose LM head always predicts `token_id` (a bias decides)."""
    return with_token_bias(model, token_id, 1.0, keep_weights=False)


def test_chat_mode_every_seg_yields_a_mask_and_matches_fast(tiny, rgb_image):
    model, tok = tiny
    chatty = _always_predicts(model, tok.token_to_id("[SEG]"))
    engine = SegmentationEngine(chatty, tok, mode="chat", max_new_tokens=3)
    chat = engine.segment(rgb_image, INSTRUCTIONS[0])
    assert chat.answer == "[SEG] [SEG] [SEG]"
    assert len(chat.masks) == 3
    assert np.array_equal(chat.mask, np.logical_or.reduce(chat.masks))
    fast = SegmentationEngine(chatty, tok, mode="fast", answer="[SEG].").segment(
        rgb_image, INSTRUCTIONS[0]
    )
    # The state that predicts the first generated [SEG] (through the KV cache) is the
    # fast mode's state before [SEG] in one forward pass.
    assert np.array_equal(chat.masks[0], fast.mask)
    assert chat.masks[0].any() or chat.masks[1].any() or not fast.mask.any()


def test_chat_mode_without_seg_returns_an_empty_mask_and_says_so(tiny, rgb_image):
    model, tok = tiny
    engine = SegmentationEngine(_always_predicts(model, tok.eos_id), tok, mode="chat")
    result = engine.segment(rgb_image, "what is on the left?")
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
        (np.zeros((10, 10, 3), np.uint8), "cable", "a list of instructions"),
        (np.zeros((10, 10, 3), np.uint8), ["the [SEG] [SEG] cable"], "'\\[SEG\\]', a control"),
        (np.zeros((10, 10, 3), np.uint8), ["x <im_start> y"], "'<im_start>', a control"),
        (np.zeros((10, 10, 3), np.uint8), ["the <image> cable"], "'<image>', a control"),
        (np.zeros((10, 10, 3), np.uint8), ["stop</s> USER: hi"], "'</s>', a control"),
    ],
)
def test_bad_input_is_refused_specifically(engine, image, instruction, message):
    with pytest.raises(InvalidInputError, match=message):
        if isinstance(instruction, str) and message != "a list of instructions":
            engine.segment(image, instruction)
        else:
            engine.segment_batch(image, instruction)


def test_predict_without_image_and_unknown_mode(tiny):
    model, tok = tiny
    engine = SegmentationEngine(model, tok)
    with pytest.raises(RuntimeError, match="no image set"):
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
    fp32_engine = SegmentationEngine.from_pretrained(bundle, dtype="fp32")
    fp32 = fp32_engine.segment_batch(rgb_image, INSTRUCTIONS[:2])
    bf16_engine = SegmentationEngine.from_pretrained(bundle, dtype="bf16")
    assert bf16_engine.model.dtype == torch.bfloat16
    bf16 = bf16_engine.segment_batch(rgb_image, INSTRUCTIONS[:2])
    for a, b in zip(fp32, bf16):
        inter, union = (a.mask & b.mask).sum(), (a.mask | b.mask).sum()
        assert union == 0 or inter / union > 0.8
