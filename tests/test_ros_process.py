"""The node's spin loop: a destroyed entity's dropped callback is not an error."""

from __future__ import annotations

import threading

import pytest
from rclpy.exceptions import InvalidHandle

from minelisa_ros.process import _spin

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


def test_a_destroyed_entity_is_logged_at_debug_and_a_failing_callback_as_an_error():
    stop, logger = threading.Event(), _Logger()
    destroyed = InvalidHandle("cannot use Destroyable because destruction was requested")
    executor = _Executor([destroyed, ValueError("bad callback")], stop)
    _spin(executor, stop, logger)
    assert [level for level, _ in logger.lines] == ["debug", "error"]
    assert "destroyed entity" in logger.lines[0][1]
    assert logger.lines[1][1] == "callback failed: ValueError: bad callback"
