"""The one record of a file a run skipped, and the log that collects them."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import SampleLoadError

log = logging.getLogger("minelisa_training")


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be used, and why."""

    path: str
    reason: str

    @classmethod
    def from_error(cls, exc: SampleLoadError) -> SkippedFile:
        """The record of a `SampleLoadError`."""
        return cls(exc.path, exc.reason)

    def as_dict(self) -> dict[str, str]:
        """``{"path": ..., "reason": ...}`` for reports and checkpoints."""
        return asdict(self)


class SkipLog:
    """Files skipped during a run: each is logged once as a warning and counted."""

    def __init__(self, entries: list[SkippedFile] | None = None) -> None:
        self.entries: list[SkippedFile] = list(entries or [])

    def add(self, path: str | Path, reason: str) -> None:
        """Record (and warn about) one skipped file."""
        log.warning("skipping %s: %s", path, reason)
        self.entries.append(SkippedFile(str(path), reason))

    def add_error(self, exc: SampleLoadError) -> None:
        """Record the file a `SampleLoadError` names."""
        self.add(exc.path, exc.reason)

    def extend(self, records: list[SkippedFile]) -> None:
        """Record files another part of the run already warned about."""
        self.entries.extend(records)

    def __len__(self) -> int:
        return len(self.entries)

    def as_dict(self) -> dict:
        """``{"count": N, "files": [{"path", "reason"}, ...]}`` for reports."""
        return {"count": len(self.entries), "files": [e.as_dict() for e in self.entries]}
