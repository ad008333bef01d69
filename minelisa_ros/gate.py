"""Admission and the model lock: one model call at a time, a bounded queue before it.

Callers decode their images first and take the lock only for the engine call, so a
request that waits costs no model time and a slow decode never holds the model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import numpy as np

from minelisa_training.engine import SegmentationEngine, SegmentationResult
from minelisa_training.errors import InvalidInputError

T = TypeVar("T")


class RequestError(InvalidInputError):
    """A request the node refuses; the message goes back to the caller."""


class BusyError(RequestError):
    """More requests are waiting for the model than the node allows."""


def not_serving_reason(node: str, loaded: bool, model_state: str, model_message: str) -> str:
    """What the service answers outside the active state: why, and what to do."""
    if loaded:
        return (
            "node is not active (lifecycle state: inactive): activate it "
            f"(ros2 lifecycle set {node} activate)"
        )
    if model_state == "loading":
        return "node is not configured yet: the model is loading"
    if model_state == "error":
        return f"node is not configured: the model failed to load: {model_message}"
    return (
        "node is not configured (lifecycle state: unconfigured): configure it "
        f"(ros2 lifecycle set {node} configure)"
    )


class Gate:
    """Holds the engine; admits a bounded number of requests; serialises model calls."""

    def __init__(self) -> None:
        self._model_lock = threading.Lock()  # one model, one inference at a time
        self._admission = threading.Condition()
        self._in_flight = 0
        self._engine: SegmentationEngine | None = None
        self._closing = False

    # -- the engine -------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def set_engine(self, engine: SegmentationEngine | None) -> None:
        """Install (or, with None, drop) the engine once a running call has finished."""
        with self._model_lock:
            self._engine = engine

    @property
    def busy(self) -> bool:
        """A model call is running."""
        return self._model_lock.locked()

    def _require_engine(self) -> SegmentationEngine:
        engine = self._engine
        if engine is None:
            raise RequestError("the model is not loaded")
        return engine

    def check_instruction(self, instruction: str) -> str:
        """The instruction as the engine will take it, or `InvalidInputError` (no model call)."""
        return self._require_engine().check_instruction(instruction)

    # -- admission --------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        with self._admission:
            return self._in_flight

    @contextmanager
    def admit(self, max_queued: int) -> Iterator[None]:
        """Count one request in; refuse it with `BusyError` when `max_queued` already wait."""
        limit = 1 + max_queued
        with self._admission:
            if self._in_flight >= limit:
                raise BusyError(
                    f"busy: {self._in_flight} requests in progress or queued "
                    f"(max_queued_requests={max_queued}); retry later"
                )
            self._in_flight += 1
        try:
            yield
        finally:
            with self._admission:
                self._in_flight -= 1
                self._admission.notify_all()

    def close(self) -> None:
        """From now on, requests waiting for the model are refused when their turn comes:
        on shutdown only the running call is waited for."""
        self._closing = True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no admitted request is left; False when `timeout` passed first."""
        with self._admission:
            return self._admission.wait_for(lambda: self._in_flight == 0, timeout)

    # -- model calls --------------------------------------------------------------------------
    def segment(self, rgb: np.ndarray, instruction: str) -> tuple[SegmentationResult, float]:
        """One instruction's result and the engine call's wall time in ms (waits for the lock).

        The wall time, not the engine's own timings, is reported as inference time, so
        that everything else a request takes is the node's overhead.
        """
        with self._model_lock:
            if self._closing:
                raise RequestError("node is shutting down")
            engine = self._require_engine()
            start = time.perf_counter()
            result = engine.segment(rgb, instruction)
            return result, (time.perf_counter() - start) * 1000.0

    def try_segment_batch(
        self, rgb: np.ndarray, instructions: Sequence[str]
    ) -> tuple[list[SegmentationResult], float] | None:
        """`segment_batch` if the model is free right now, else None (never waits)."""
        if self._closing or not self._model_lock.acquire(blocking=False):
            return None
        try:
            engine = self._require_engine()
            start = time.perf_counter()
            results = engine.segment_batch(rgb, list(instructions))
            return results, (time.perf_counter() - start) * 1000.0
        finally:
            self._model_lock.release()

    def try_with_engine(self, work: Callable[[SegmentationEngine], T]) -> tuple[T, float] | None:
        """`work(engine)` and its wall time in ms if the model is free now, else None."""
        if self._closing or not self._model_lock.acquire(blocking=False):
            return None
        try:
            engine = self._require_engine()
            start = time.perf_counter()
            done = work(engine)
            return done, (time.perf_counter() - start) * 1000.0
        finally:
            self._model_lock.release()
