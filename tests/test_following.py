"""Following: prompts reused between LLM refreshes, refreshed on time, on change, on new text."""

from __future__ import annotations

import numpy as np
import pytest

from minelisa_training.engine import SegmentationEngine
from minelisa_training.errors import InvalidInputError
from minelisa_training.following import Follower, scene_change

INSTRUCTIONS = ["segment the exposed cable", "the person"]


@pytest.fixture(scope="module")
def engine(tiny):
    model, tok = tiny
    return SegmentationEngine(model, tok)


def _count_llm_calls(engine):
    calls = [0]
    handle = engine.model.language_model.model.register_forward_hook(
        lambda *_: calls.__setitem__(0, calls[0] + 1)
    )
    return calls, handle


def test_follow_on_the_same_image_gives_the_fresh_masks(engine, rgb_image):
    fresh = engine.segment_batch(rgb_image, INSTRUCTIONS)
    calls, handle = _count_llm_calls(engine)
    try:
        followed = engine.follow(rgb_image, fresh)
    finally:
        handle.remove()
    assert calls[0] == 0  # no LLM at all
    for a, b in zip(fresh, followed):
        assert np.array_equal(a.mask, b.mask) and a.instruction == b.instruction
    with pytest.raises(InvalidInputError, match="with prompts"):
        engine.follow(rgb_image, [])


def test_follower_refreshes_on_time_on_change_and_on_new_instructions(engine, rgb_image):
    follower = Follower(engine, refresh_period_s=1.0, change_threshold=0.05)
    calls, handle = _count_llm_calls(engine)
    try:
        first = follower.step(rgb_image, INSTRUCTIONS, now=0.0)
        assert all(r.fresh for r in first) and calls[0] > 0
        before = calls[0]
        second = follower.step(rgb_image, INSTRUCTIONS, now=0.4)
        assert calls[0] == before  # reused: the LLM did not run
        assert [r.fresh for r in second] == [False, False]
        assert second[0].prompt_age_s == pytest.approx(0.4) and second[0].scene_change < 1e-4
        assert np.array_equal(second[0].result.mask, first[0].result.mask)
        assert all(r.fresh for r in follower.step(rgb_image, INSTRUCTIONS, now=1.5))  # period
        assert all(r.fresh for r in follower.step(rgb_image, INSTRUCTIONS[:1], now=1.6))  # text
        other = np.ascontiguousarray(rgb_image[::-1, ::-1])
        assert all(r.fresh for r in follower.step(other, INSTRUCTIONS[:1], now=1.7))  # scene
    finally:
        handle.remove()


def test_scene_change_is_zero_for_the_same_image_and_grows_with_difference(engine, rgb_image):
    a = engine.encode(rgb_image, with_prefix=False)
    noisy = np.clip(rgb_image.astype(int) + 8, 0, 255).astype(np.uint8)
    other = np.ascontiguousarray(rgb_image[::-1, ::-1])
    near = scene_change(a, engine.encode(noisy, with_prefix=False))
    far = scene_change(a, engine.encode(other, with_prefix=False))
    assert scene_change(a, a) < 1e-6 and near < far
