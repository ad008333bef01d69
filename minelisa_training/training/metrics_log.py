"""Training metrics as JSON lines (always) and TensorBoard scalars (when installed)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .. import runtime
from ..fileio import atomic_write


class MetricsLog:
    """Appends one JSON object per record to ``metrics.jsonl``; mirrors numbers to TensorBoard.

    On resume, records newer than the restored step are dropped (those steps are
    trained again, and a log with two different losses for one step would mislead),
    and so is a validation of the restored step itself when the checkpoint was written
    before it (``keep_validation=False``): it runs again. The file is replaced
    atomically, so a kill during the resume leaves the old log whole.
    """

    def __init__(
        self,
        run_dir: str | Path,
        resume_step: int | None = None,
        tensorboard: bool = True,
        keep_validation: bool = True,
    ) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.enabled = runtime.is_main_process()
        if self.enabled and resume_step is not None and self.path.is_file():
            self._truncate_after(resume_step, keep_validation)
        elif self.enabled and resume_step is None:
            atomic_write(self.path, "")
        self._tb = None
        if self.enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def _truncate_after(self, step: int, keep_validation: bool) -> None:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            at = int(record.get("step", 0))
            if at < step or (at == step and (keep_validation or record.get("kind") != "val")):
                kept.append(line)
        atomic_write(self.path, "".join(line + "\n" for line in kept))

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **values}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return [r for r in records if kind is None or r.get("kind") == kind]
