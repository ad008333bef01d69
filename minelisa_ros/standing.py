"""Standing instructions: every new camera frame segmented for them, at standing_rate.

A tick segments the latest frame once (frames are told apart by sequence number), skips
while a service call holds the model (the caller has priority) and never waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from minelisa_training.errors import InvalidInputError

from .camera import LatestFrame, frame_image
from .diagnostics import RequestCounters
from .gate import Gate
from .model_errors import describe_model_error
from .parameters import LiveSettings
from .publishing import Publication, mask_message


class StandingRunner:
    """What the standing-instruction timer does on each tick."""

    def __init__(
        self,
        frames: LatestFrame,
        gate: Gate,
        submit: Callable[[Publication], None],
        counters: RequestCounters,
        logger: Any,
    ) -> None:
        self._frames, self._gate, self._submit = frames, gate, submit
        self._counters, self._logger = counters, logger
        self._done = 0  # sequence number of the last frame segmented

    def tick(self, live: LiveSettings, topic: str, reliability: str) -> None:
        """Segment the latest frame for `live.standing` if it is new, fresh and the model free."""
        frame = self._frames.get()
        if frame is None or frame.seq <= self._done or not live.standing:
            return
        if live.max_frame_age > 0 and time.monotonic() - frame.received > live.max_frame_age:
            return
        if self._gate.busy:
            return  # a service call is running: it has priority
        try:
            rgb, header = frame_image(frame, topic, live.max_frame_age, reliability)
            done = self._gate.try_segment_batch(rgb, live.standing)
        except Exception as exc:
            known = isinstance(exc, InvalidInputError)
            message = str(exc) if known else describe_model_error(exc)
            self._logger.warning(f"standing instructions: {message}", throttle_duration_sec=10.0)
            return
        if done is None:
            return
        self._done = frame.seq
        results, inference_ms = done
        for result in results:
            mask = mask_message(result, header)
            self._submit(Publication(result, rgb, mask, inference_ms, "standing"))
        self._counters.standing_results(len(results))
