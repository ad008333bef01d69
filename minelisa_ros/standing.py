"""Standing instructions: every new camera frame segmented for them, at standing_rate.

A tick segments the latest frame once (frames are told apart by sequence number), skips
while a service call holds the model (the caller has priority) and never waits. It
follows the instructions (`minelisa_training.following.Follower`): the language model
runs every `llm_refresh_period` seconds or when the scene changes, and in between only
the mask decoder runs with the earlier prompt. With depth, each result says how far the
object is, and the proximity rules are updated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from std_msgs.msg import Header

from minelisa_training.engine import SegmentationEngine
from minelisa_training.errors import InvalidInputError
from minelisa_training.following import FollowedResult, Follower

from .alerts import ProximityAlerts
from .camera import LatestFrame, frame_image
from .depth_input import DepthFrame, DepthFrames, depth_frame
from .diagnostics import RequestCounters
from .gate import Gate
from .model_errors import describe_model_error
from .parameters import DepthSettings, LiveSettings
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
        self._follower: Follower | None = None
        self.settings: DepthSettings | None = None  # set on configure
        self.depth_frames: DepthFrames | None = None  # with use_depth
        self.alerts: ProximityAlerts | None = None  # with proximity rules

    def _follow(self, engine: SegmentationEngine, rgb: np.ndarray, texts) -> list[FollowedResult]:
        """Under the model lock: the follower of this engine (a new one after a reload)."""
        follower = self._follower
        if follower is None or follower.engine is not engine:
            settings = self.settings
            follower = Follower(engine, settings.refresh_period, settings.change_threshold)
            self._follower = follower
        return follower.step(rgb, list(texts))

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
            done = self._gate.try_with_engine(lambda e: self._follow(e, rgb, live.standing))
        except Exception as exc:
            known = isinstance(exc, InvalidInputError)
            message = str(exc) if known else describe_model_error(exc)
            self._logger.warning(f"standing instructions: {message}", throttle_duration_sec=10.0)
            return
        if done is None:
            return
        self._done = frame.seq
        followed, inference_ms = done
        depth = self._depth(header, rgb.shape[:2])
        for slot, item in enumerate(followed, start=1):
            self._publish(item, slot, rgb, header, depth, inference_ms)
        self._counters.standing_results(len(followed))

    def _publish(
        self,
        item: FollowedResult,
        slot: int,
        rgb: np.ndarray,
        header: Header,
        depth: DepthFrame | None,
        inference_ms: float,
    ) -> None:
        result = item.result
        stats = None
        if depth is not None:
            try:
                stats = depth.stats(result.mask, self.settings.erode_px)
            except InvalidInputError as exc:
                self._logger.warning(f"standing depth: {exc}", throttle_duration_sec=10.0)
        if self.alerts is not None:
            self.alerts.update(result.instruction, stats, header)
        mask = mask_message(result, header)
        self._submit(
            Publication(
                result,
                rgb,
                mask,
                inference_ms,
                "standing",
                depth,
                stats,
                item.fresh,
                item.prompt_age_s,
                slot,
            )  # fmt: skip
        )

    def _depth(self, header: Header, size: tuple[int, int]) -> DepthFrame | None:
        """The depth frame paired with the colour frame; None (and a warning) when bad."""
        if self.depth_frames is None:
            return None
        pair = self.depth_frames.nearest(header, self.settings.sync_tolerance)
        if pair is None:
            return None
        try:
            return depth_frame(pair[0], pair[1], size)
        except InvalidInputError as exc:
            self._logger.warning(f"standing depth: {exc}", throttle_duration_sec=10.0)
            return None
