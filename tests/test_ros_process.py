"""The node's spin loop: a destroyed entity's dropped callback is not an error."""

from __future__ import annotations

import threading

import pytest
from rclpy.exceptions import InvalidHandle
from rclpy.impl.implementation_singleton import rclpy_implementation

from minelisa_ros.process import _spin

RCLError = rclpy_implementation.RCLError

pytestmark = pytest.mark.ros


class _Logger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def debug(self, text: str) -> None:
        self.lines.append(("debug", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))


class _Executor:
    """Raises each of `errors` from one spin_once, then sets `stop`."""

    def __init__(self, errors: list[Exception], stop: threading.Event) -> None:
        self.errors, self.stop = errors, stop

    def spin_once(self, timeout_sec: float) -> None:
        if not self.errors:
            self.stop.set()
            return
        raise self.errors.pop(0)


def test_a_destroyed_entity_or_canceled_timer_is_debug_and_a_failing_callback_an_error():
    stop, logger = threading.Event(), _Logger()
    destroyed = InvalidHandle("cannot use Destroyable because destruction was requested")
    canceled = RCLError("failed to call timer: timer is canceled, at /project/src/rcl/timer.c")
    bad = ValueError("bad callback")
    _spin(_Executor([destroyed, canceled, bad], stop), stop, logger)
    assert [level for level, _ in logger.lines] == ["debug", "debug", "error"]
    assert all("destroyed entity" in text for _, text in logger.lines[:2])
    assert logger.lines[2][1] == "callback failed: ValueError: bad callback"
