"""The errors MineLISA raises on purpose, under one base class.

Every command's failure that a user can fix is one of these; the CLI prints
``minelisa <command>: <message>`` and exits with the class's ``exit_status``
(2: what was given cannot be used; 1: a run that started and could not finish).
Anything else is an internal error: the CLI shows its traceback only with
``--debug``. The ROS node answers a request that raised ``InvalidInputError``
with its message and without a traceback in the log.
"""

from __future__ import annotations

from pathlib import Path


class MineLisaError(Exception):
    """Base of every error MineLISA raises on purpose; the message says what to fix."""

    exit_status = 2


class InvalidInputError(MineLisaError, ValueError):
    """An image, instruction, request or command-line value that is refused, with the reason."""


class CheckpointError(MineLisaError, RuntimeError):
    """A model directory or weight file that cannot be loaded, with the reason."""


class DataError(MineLisaError, ValueError):
    """A dataset that cannot be used (missing folder, empty split, unreadable file)."""


class SampleLoadError(DataError):
    """One file of a dataset that cannot be read; callers skip it and record why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ConfigError(MineLisaError, ValueError):
    """A training recipe or override that is not valid (unknown key, bad value)."""


class TrainingError(MineLisaError, RuntimeError):
    """A training or export run that cannot start or cannot go on."""

    exit_status = 1


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "InvalidInputError",
    "MineLisaError",
    "SampleLoadError",
    "TrainingError",
]
