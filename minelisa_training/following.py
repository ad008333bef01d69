"""Standing instructions at camera rate: the LLM only now and then, SAM on every frame.

A robot's camera runs at 15-30 Hz; the LLM's answer to "segment the person" (its
`[SEG]` prompt embedding) changes little from one frame to the next. `Follower`
runs the full model on a frame, then for the following frames reuses each
instruction's prompt with the new frame's SAM embedding (`SegmentationEngine.follow`).
It refreshes the prompts through the LLM every `refresh_period_s` seconds, at once
when the instructions change, and at once when the scene changes: when the CLIP
image tokens of the new frame differ from those of the refresh frame by more than
`change_threshold` (mean cosine distance, 0 = same picture).

The defaults come from `benchmarks/bench_following.py` (benchmarks/RESULTS.md,
"Following: reused vs fresh prompts"): the demo's trained tiny model on 8 synthetic
3 s sequences at 15 Hz (`minelisa synth --sequences`, a camera driving along a
roadway past a walking person and swinging cables), on the project's 2-core CPU.

- `DEFAULT_REFRESH_S = 1.0`: masks from a 1 s old prompt agree with a fresh LLM run
  at mean IoU 0.991 (10th percentile 0.978), and at every age up to 3 s at >= 0.979,
  so mask agreement does not bound the period within 3 s for that model (whose
  prompt depends mostly on the instruction: a fresh prompt moves by < 1% of its norm
  over 3 s). 1 s is the shortest period in 0.5 s steps that keeps >= 90% of
  following's time saving at 15 Hz (one LLM run in 15 frames: 93%), and it caps how
  long a prompt can go stale when the change test misses a new scene.
- `DEFAULT_CHANGE_THRESHOLD = 0.10`: the smallest value that refreshes at most 5% of
  the frames reused within that period early (3.0%; changes within 1 s: mean 0.05,
  max 0.14). It catches 28% of frame pairs from different sequences: with the demo's
  random (untrained) CLIP tower, changes within a sequence (up to 0.17 over 3 s)
  and between sequences (min 0.019, median 0.072) overlap, so no value separates
  them and the period does most of the work. Re-run the benchmark with the real
  LISA/CLIP weights (`--model LISA_DIR --vision-tower CLIP_DIR`) before relying on
  either value there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .engine import SegmentationEngine
from .results import EncodedImage, SegmentationResult

# Measured with benchmarks/bench_following.py: see the module docstring.
DEFAULT_REFRESH_S = 1.0
DEFAULT_CHANGE_THRESHOLD = 0.10


def scene_change(a: EncodedImage, b: EncodedImage) -> float:
    """Mean cosine distance between two images' CLIP tokens (0: same; ~1: unrelated)."""
    x, y = a.image_tokens.float()[0], b.image_tokens.float()[0]
    return float(1.0 - torch.nn.functional.cosine_similarity(x, y, dim=-1).mean())


@dataclass(frozen=True)
class FollowedResult:
    """A standing instruction's result on one frame, and where its prompt came from.

    Attributes:
        result: the engine's result (mask at the frame's resolution).
        fresh: True when the LLM ran on this frame; False when the prompt was reused.
        prompt_age_s: seconds since the LLM produced the prompt (0 when fresh).
        scene_change: `scene_change` against the refresh frame (0 when fresh).
    """

    result: SegmentationResult
    fresh: bool
    prompt_age_s: float
    scene_change: float


class Follower:
    """Masks for a fixed list of instructions on a stream of frames (not thread-safe).

    Args:
        engine: the loaded engine.
        refresh_period_s: run the LLM again after this many seconds (0: every frame).
        change_threshold: run it again at once when `scene_change` reaches this.
    """

    def __init__(
        self,
        engine: SegmentationEngine,
        refresh_period_s: float = DEFAULT_REFRESH_S,
        change_threshold: float = DEFAULT_CHANGE_THRESHOLD,
    ) -> None:
        if refresh_period_s < 0 or not 0 <= change_threshold <= 2:
            raise ValueError("refresh_period_s must be >= 0 and change_threshold within 0..2")
        self.engine = engine
        self.refresh_period_s = refresh_period_s
        self.change_threshold = change_threshold
        self.reset()

    def reset(self) -> None:
        """Forget the prompts: the next frame runs the LLM."""
        self._results: list[SegmentationResult] = []
        self._reference: EncodedImage | None = None
        self._refreshed_at = -math.inf

    def step(
        self, image: np.ndarray, instructions: list[str], now: float | None = None
    ) -> list[FollowedResult]:
        """Results for `instructions` on `image` (a uint8 RGB frame), in their order.

        Args:
            now: the frame's time in seconds (default: time.monotonic()).
        """
        now = time.monotonic() if now is None else now
        encoded = self.engine.encode(image, with_prefix=False)
        change = math.inf
        if self._reference is not None:
            change = scene_change(encoded, self._reference)
        age = now - self._refreshed_at
        current = [r.instruction for r in self._results]
        if (
            current != [self.engine.check_instruction(t) for t in instructions]
            or age >= self.refresh_period_s
            or change >= self.change_threshold
        ):
            return self._refresh(encoded, instructions, now)
        results = self.engine.follow(encoded, self._results)
        return [FollowedResult(r, False, age, change) for r in results]

    def _refresh(
        self, encoded: EncodedImage, instructions: list[str], now: float
    ) -> list[FollowedResult]:
        if self.engine.prefix_reuse:
            encoded = self.engine.add_prefix(encoded)
        self._results = self.engine.segment_batch(encoded, instructions)
        self._reference, self._refreshed_at = encoded, now
        return [FollowedResult(r, True, 0.0, 0.0) for r in self._results]
