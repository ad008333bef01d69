"""The learning-rate schedule: linear warm-up, then linear decay to ``optim.min_lr``.

The shape of DeepSpeed's ``WarmupDecayLR`` as LISA and MineLISA configure it
(``train_ds.py``: linear warm-up over 100 steps, linear decay to ``warmup_min_lr`` = 0
at the last step), with two differences: the decay ends at ``min_lr`` while the
warm-up starts at ``lr / (warmup + 1)`` (DeepSpeed ties both to one value, and a
warm-up from 0 makes the first optimizer steps no-ops), and the first step already
uses that first increment (DeepSpeed repeats its start value for two steps).

DeepSpeed steps it once per optimizer step and keeps it in its checkpoints
(``state_dict``), so a resumed run continues the curve.
"""

from __future__ import annotations

from typing import Any

import torch


class WarmupLinearDecay:
    """``lr_at(t)``: the learning rate of the optimizer step after ``t`` steps.

    ``t < w``: ``lr * (t + 1) / (w + 1)`` (linear warm-up); ``w <= t``: linear from ``lr``
    at ``t = w`` to ``min_lr`` at ``t = total``, where ``w`` is ``warmup`` capped at
    ``total - 1`` (a warm-up never outlasts the run).
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, lr: float, min_lr: float, warmup: int, total: int
    ) -> None:
        if not 0 <= min_lr <= lr:
            raise ValueError(f"min_lr must be in [0, lr={lr}], got {min_lr}")
        if warmup < 0 or total < 1:
            raise ValueError(f"warmup must be >= 0 and total >= 1, got {warmup} and {total}")
        self.optimizer = optimizer
        self.lr, self.min_lr, self.total = lr, min_lr, total
        self.warmup = min(warmup, total - 1)
        self.steps = 0  # optimizer steps taken
        self._apply()

    def lr_at(self, t: int) -> float:
        if t < self.warmup:
            return self.lr * (t + 1) / (self.warmup + 1)
        decay = max(0.0, (self.total - t) / (self.total - self.warmup))
        return self.min_lr + (self.lr - self.min_lr) * min(1.0, decay)

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.steps)

    def step(self, *_args: Any, **_kwargs: Any) -> None:
        """After an optimizer step: set the next step's learning rate."""
        self.steps += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The learning rate the next optimizer step will use (torch's convention)."""
        return [self.lr_at(self.steps)]

    def last_step_lr(self) -> float:
        """The learning rate the most recent optimizer step used."""
        return self.lr_at(max(self.steps - 1, 0))

    def state_dict(self) -> dict[str, int]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.steps = int(state["steps"])
        self._apply()
