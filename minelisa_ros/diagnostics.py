"""What the node counts and reports on /diagnostics.

Everything here is updated from several executor threads at once (the service's
callback group is reentrant), so every counter sits behind a lock.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class RateMeter:
    """Events per second over a sliding window, and how many there were in all."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=1024)
        self._count = 0
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            self._count += 1

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def rate(self, now: float) -> float:
        with self._lock:
            recent = [t for t in self._times if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


@dataclass(frozen=True)
class RequestStats:
    """A consistent snapshot of `RequestCounters`."""

    ok: int
    failed: int
    busy: int
    standing: int
    last_latency_ms: float | None
    median_latency_ms: float | None


class RequestCounters:
    """Service outcomes, standing results and service latencies (thread-safe)."""

    def __init__(self, latency_window: int = 50) -> None:
        self._lock = threading.Lock()
        self._ok = self._failed = self._busy = self._standing = 0
        self._latencies: deque[float] = deque(maxlen=latency_window)

    def succeeded(self, latency_ms: float) -> None:
        with self._lock:
            self._ok += 1
            self._latencies.append(latency_ms)

    def failed(self, busy: bool = False) -> None:
        with self._lock:
            self._failed += 1
            self._busy += int(busy)

    def standing_results(self, count: int) -> None:
        with self._lock:
            self._standing += count

    def snapshot(self) -> RequestStats:
        with self._lock:
            latencies = list(self._latencies)
            return RequestStats(
                self._ok,
                self._failed,
                self._busy,
                self._standing,
                latencies[-1] if latencies else None,
                statistics.median(latencies) if latencies else None,
            )


@dataclass(frozen=True)
class NodeReport:
    """Everything one /diagnostics status says."""

    name: str
    lifecycle_state: str
    model_state: str
    model_message: str
    model_path: str
    device: str
    dtype: str
    image_topic: str
    frames_received: int
    frame_rate_hz: float
    frame_age_s: float | None  # None: no frame yet
    no_frame_warning_period: float
    in_flight: int
    topic_results_dropped: int
    requests: RequestStats
    proximity: dict[str, int] = field(default_factory=dict)  # instruction -> AlertLevel


def _ms(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f}"


def _proximity_level(report: NodeReport) -> tuple[bytes, str] | None:
    """WARN (ERROR) while a proximity rule's object is within (half) its threshold."""
    raised = {text: level for text, level in report.proximity.items() if level > 0}
    if not raised:
        return None
    worst = max(raised.values())
    names = ", ".join(
        f"{text!r} ({'ERROR' if lvl >= 2 else 'WARN'})" for text, lvl in raised.items()
    )
    status = DiagnosticStatus.ERROR if worst >= 2 else DiagnosticStatus.WARN
    return status, f"proximity: {names} within the alert distance"


def _level(report: NodeReport) -> tuple[bytes, str]:
    if report.model_state == "error":
        return DiagnosticStatus.ERROR, f"model failed to load: {report.model_message}"
    if report.lifecycle_state != "active":
        return DiagnosticStatus.WARN, f"not active ({report.lifecycle_state})"
    age = report.frame_age_s
    if age is None or age > report.no_frame_warning_period:
        return DiagnosticStatus.WARN, "no camera frames"
    proximity = _proximity_level(report)
    if proximity is not None:
        return proximity
    return DiagnosticStatus.OK, f"active, camera at {report.frame_rate_hz:.1f} Hz"


def build_status(report: NodeReport) -> DiagnosticStatus:
    """The node's DiagnosticStatus: level, message and key/values."""
    level, message = _level(report)
    stats = report.requests
    values = {
        "lifecycle_state": report.lifecycle_state,
        "model_state": report.model_state,
        "model_path": report.model_path,
        "device": report.device,
        "dtype": report.dtype,
        "image_topic": report.image_topic,
        "frames_received": str(report.frames_received),
        "frame_rate_hz": f"{report.frame_rate_hz:.2f}",
        "last_frame_age_s": "none" if report.frame_age_s is None else f"{report.frame_age_s:.3f}",
        "requests_ok": str(stats.ok),
        "requests_failed": str(stats.failed),
        "requests_refused_busy": str(stats.busy),
        "requests_in_flight": str(report.in_flight),
        "standing_results": str(stats.standing),
        "topic_results_dropped": str(report.topic_results_dropped),
        "last_service_latency_ms": _ms(stats.last_latency_ms),
        "median_service_latency_ms": _ms(stats.median_latency_ms),
    }
    for text, alert in report.proximity.items():
        values[f"proximity_level[{text}]"] = str(int(alert))
    return DiagnosticStatus(
        level=level,
        name=f"{report.name}: segmentation",
        message=message,
        hardware_id=report.device,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
