"""Proximity alerts on standing instructions: ~/alert when a level changes, levels for
/diagnostics. An aid to an operator, not a certified safety function."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from std_msgs.msg import Header

from minelisa_training.depth import DepthStats
from minelisa_training.proximity import AlertLevel, ProximityMonitor, ProximityRule

from .interfaces import ProximityAlert
from .publishing import TOPIC_QOS


class ProximityAlerts:
    """The `proximity_alerts` rules' monitor (guarded by a lock) and the ~/alert publisher."""

    def __init__(self, rules: Sequence[ProximityRule]) -> None:
        self._lock = threading.Lock()
        self._monitor = ProximityMonitor(rules)
        self._pub = None

    def create(self, node: Any) -> None:
        self._pub = node.create_lifecycle_publisher(ProximityAlert, "~/alert", TOPIC_QOS)

    def destroy(self, node: Any) -> None:
        if self._pub is not None:
            node.destroy_lifecycle_publisher(self._pub)
            self._pub = None

    def watches(self, instruction: str) -> bool:
        return instruction.strip() in self._monitor.rules

    def update(self, instruction: str, stats: DepthStats | None, header: Header) -> None:
        """One reading (the near side, distance_p10_m); publishes when the level changes."""
        if not self.watches(instruction):
            return
        distance = None
        if stats is not None and stats.has_depth and not math.isnan(stats.distance_p10_m):
            distance = float(stats.distance_p10_m)
        with self._lock:
            update = self._monitor.update(instruction, distance)
        if update.changed and self._pub is not None:
            self._pub.publish(
                ProximityAlert(
                    header=header,
                    instruction=update.instruction,
                    distance_m=float(update.distance_m),
                    threshold_m=float(update.threshold_m),
                    level=int(update.level),
                )
            )

    def reset(self) -> None:
        with self._lock:
            self._monitor.reset()

    def levels(self) -> dict[str, AlertLevel]:
        with self._lock:
            return self._monitor.levels()
