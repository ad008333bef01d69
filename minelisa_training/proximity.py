"""Proximity alerts: warn when a watched object comes closer than its threshold.

An aid for an operator or a planner, **not a certified safety function**: it sees only
what the model segments, in the camera's view, with the depth sensor's range and
dropouts. A missed detection is silence, not safety.

Rules pair an instruction with a distance in metres (``"segment the person=5.0"``).
For a rule with threshold ``T``, a distance ``d`` (``DepthStats.distance_p10_m`` is
the one to use: the near side of the object) gives

- ``error`` when ``d < T / 2``,
- ``warn`` when ``T / 2 <= d < T``,
- ``none`` otherwise.

``ProximityMonitor`` keeps the level of each rule and reports raise/clear transitions.
Raising is immediate. With ``hysteresis_m = h`` a level is only lowered once the
distance is ``h`` beyond that level's boundary (``error`` holds until ``d >= T/2 + h``,
``warn`` until ``d >= T + h``), so a reading jittering around a threshold does not
toggle the alert. A missing distance (no mask, no valid depth: None or NaN) keeps the
level for ``hold_missing`` consecutive readings, then clears it.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InvalidInputError


class AlertLevel(enum.IntEnum):
    """Alert levels, ordered: ``NONE < WARN < ERROR``; ``str()`` gives "none" etc."""

    NONE = 0
    WARN = 1
    ERROR = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ProximityRule:
    """Alert on ``instruction``'s object closer than ``threshold_m`` metres."""

    instruction: str
    threshold_m: float

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise InvalidInputError(
                f"proximity rule needs an instruction, got {self.instruction!r}"
            )
        t = self.threshold_m
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t) or t <= 0:
            raise InvalidInputError(
                f"proximity threshold for {self.instruction!r} must be a positive number of "
                f"metres, got {t!r}"
            )
        object.__setattr__(self, "threshold_m", float(t))  # numpy scalars become floats

    def level(self, distance_m: float, margin_m: float = 0.0) -> AlertLevel:
        """The level of ``distance_m`` with both boundaries moved out by ``margin_m``."""
        if distance_m < self.threshold_m / 2 + margin_m:
            return AlertLevel.ERROR
        if distance_m < self.threshold_m + margin_m:
            return AlertLevel.WARN
        return AlertLevel.NONE


def parse_rules(items: Iterable[str | tuple[str, float] | ProximityRule]) -> list[ProximityRule]:
    """Rules from ``"instruction=metres"`` strings (split at the last ``=``), ``(instruction,
    metres)`` pairs or rules. Instructions are stripped; a repeated one is refused."""
    if isinstance(items, str | bytes):
        raise InvalidInputError("proximity rules must be a list, not one string")
    rules: list[ProximityRule] = []
    for item in items:
        if isinstance(item, ProximityRule):
            rule = item
        elif isinstance(item, str):
            text, sep, value = item.rpartition("=")
            if not sep:
                raise InvalidInputError(
                    f"proximity rule {item!r} must look like 'segment the person=5.0'"
                )
            try:
                metres = float(value)
            except ValueError as exc:
                raise InvalidInputError(
                    f"proximity rule {item!r}: {value.strip()!r} is not a number of metres"
                ) from exc
            rule = ProximityRule(text.strip(), metres)
        elif isinstance(item, tuple | list) and len(item) == 2:
            instruction, metres = item
            rule = ProximityRule(str(instruction).strip(), metres)
        else:
            raise InvalidInputError(f"proximity rule {item!r} is not 'instruction=metres'")
        if any(r.instruction == rule.instruction for r in rules):
            raise InvalidInputError(f"proximity rule for {rule.instruction!r} is given twice")
        rules.append(rule)
    return rules


@dataclass(frozen=True)
class ProximityUpdate:
    """One reading's outcome: the level now and before, and the reading itself."""

    instruction: str
    level: AlertLevel
    previous: AlertLevel
    distance_m: float  # NaN when the reading was missing
    threshold_m: float

    @property
    def raised(self) -> bool:
        """The level went up (none -> warn, none -> error, warn -> error)."""
        return self.level > self.previous

    @property
    def cleared(self) -> bool:
        """The level went down."""
        return self.level < self.previous

    @property
    def changed(self) -> bool:
        """The level is not what it was."""
        return self.level != self.previous


class ProximityMonitor:
    """The alert level of each rule, updated one distance reading at a time.

    Plain Python, no ROS and no clock: call ``update`` with each new reading (e.g.
    ``stats.distance_p10_m`` after each frame) and publish the result when
    ``update.changed``; ``levels()`` gives every rule's current level. Not thread-safe:
    call it from one thread (or under the caller's lock).
    """

    def __init__(
        self,
        rules: Iterable[str | tuple[str, float] | ProximityRule],
        hysteresis_m: float = 0.0,
        hold_missing: int = 0,
    ) -> None:
        self.rules = {r.instruction: r for r in parse_rules(rules)}
        if not math.isfinite(hysteresis_m) or hysteresis_m < 0:
            raise InvalidInputError(f"hysteresis_m must be >= 0 metres, got {hysteresis_m}")
        if isinstance(hold_missing, bool) or not isinstance(hold_missing, int) or hold_missing < 0:
            raise InvalidInputError(f"hold_missing must be an integer >= 0, got {hold_missing!r}")
        self.hysteresis_m = float(hysteresis_m)
        self.hold_missing = hold_missing
        self._levels = dict.fromkeys(self.rules, AlertLevel.NONE)
        self._missing = dict.fromkeys(self.rules, 0)

    def update(self, instruction: str, distance_m: float | None) -> ProximityUpdate:
        """Take one reading for ``instruction``'s rule; None or NaN means no reading."""
        rule = self._rule(instruction)
        previous = self._levels[rule.instruction]
        if distance_m is None or math.isnan(distance_m):
            self._missing[rule.instruction] += 1
            held = self._missing[rule.instruction] <= self.hold_missing
            level = previous if held else AlertLevel.NONE
            distance_m = math.nan
        else:
            if distance_m < 0:
                raise InvalidInputError(f"distance must be >= 0 metres, got {distance_m}")
            self._missing[rule.instruction] = 0
            level = rule.level(distance_m)
            if level < previous:  # lowering waits until the reading is clear of the margin
                level = max(level, min(previous, rule.level(distance_m, self.hysteresis_m)))
        self._levels[rule.instruction] = level
        return ProximityUpdate(
            rule.instruction, level, previous, float(distance_m), rule.threshold_m
        )

    def level(self, instruction: str) -> AlertLevel:
        """The current level of ``instruction``'s rule."""
        return self._levels[self._rule(instruction).instruction]

    def levels(self) -> dict[str, AlertLevel]:
        """Every rule's current level, by instruction."""
        return dict(self._levels)

    def reset(self) -> None:
        """All levels back to ``none`` (e.g. when the camera stream restarts)."""
        self._levels = dict.fromkeys(self.rules, AlertLevel.NONE)
        self._missing = dict.fromkeys(self.rules, 0)

    def _rule(self, instruction: str) -> ProximityRule:
        rule = self.rules.get(instruction.strip() if isinstance(instruction, str) else instruction)
        if rule is None:
            raise InvalidInputError(
                f"no proximity rule for {instruction!r}; rules: {sorted(self.rules)}"
            )
        return rule
