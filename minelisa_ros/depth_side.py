"""The node's depth side over its lifecycle: depth subscriptions, proximity alerts."""

from __future__ import annotations

from typing import Any

from minelisa_training.depth import DepthStats

from .alerts import ProximityAlerts
from .depth_input import DepthFrame, DepthFrames, request_depth, subscribe
from .parameters import DepthSettings
from .publishing import Outputs
from .spatial import no_depth_note
from .standing import StandingRunner


class DepthSide:
    """What configure, activate, deactivate and cleanup do for depth and proximity."""

    def __init__(self, node: Any, standing: StandingRunner, outputs: Outputs) -> None:
        self._node, self._standing, self._outputs = node, standing, outputs
        self.frames = DepthFrames()
        self.alerts: ProximityAlerts | None = None
        self.settings: DepthSettings | None = None
        self._subs: list[Any] = []

    def source(self) -> DepthFrames | None:
        """The topics' depth frames with use_depth, else None."""
        return self.frames if self.settings is not None and self.settings.use_depth else None

    def for_request(self, request: Any, header: Any, size: tuple[int, int]):
        """The depth for a service request and a note ("" or why there is none);
        `RequestError` for bad depth or intrinsics."""
        frames, tolerance = self.source(), self.settings.sync_tolerance
        depth = request_depth(request, frames, header, size, tolerance)
        if frames is not None and depth is None:
            return None, no_depth_note(tolerance)
        return depth, ""

    def stats(self, depth: DepthFrame | None, mask: Any) -> DepthStats | None:
        return None if depth is None else depth.stats(mask, self.settings.erode_px)

    def configure(self, settings: DepthSettings) -> None:
        self.settings = self._standing.settings = settings
        self._outputs.voxel_m = settings.voxel_m
        if settings.proximity_rules:
            self.alerts = ProximityAlerts(settings.proximity_rules)
            self.alerts.create(self._node)
        self._standing.alerts = self.alerts

    def activate(self, qos: Any, group: Any) -> None:
        if self.settings.use_depth:
            self.frames.clear()
            self._subs = subscribe(self._node, qos, group, self.frames)
            self._standing.depth_frames = self.frames

    def deactivate(self) -> None:
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs, self._standing.depth_frames = [], None
        if self.alerts is not None:
            self.alerts.reset()

    def release(self) -> None:
        if self.alerts is not None:
            self.alerts.destroy(self._node)
        self.alerts = self._standing.alerts = None

    def levels(self) -> dict[str, int]:
        return {} if self.alerts is None else self.alerts.levels()
