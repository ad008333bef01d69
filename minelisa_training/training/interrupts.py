"""Ctrl-C and SIGTERM during training: the first asks the trainer to stop after the
current optimizer step (and write a checkpoint); a second one stops at once."""

from __future__ import annotations

import signal
from typing import Any


class StopRequest:
    """Installs the handlers for the duration of a ``with`` block; ``requested`` holds the signal."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: Any) -> None:
        if self.requested is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> StopRequest:
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave the handlers alone
                pass
        return self

    def __exit__(self, *_exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
