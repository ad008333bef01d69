"""Result topics: message builders, the publishers, and the thread that publishes.

Results are published on a thread of their own, so the topics (an overlay takes tens
of milliseconds at 1080p) never delay a service response.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from minelisa_training.depth import DepthStats, mask_points
from minelisa_training.engine import SegmentationResult
from minelisa_training.visualization import overlay_mask

from .depth_input import DepthFrame
from .image_conversion import fill_image, mask_to_mono8, to_byte_array
from .interfaces import ResultMsg
from .parameters import LiveSettings, standing_slugs
from .spatial import fill_depth_fields, markers_message, points_message

TOPIC_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class Publication:
    """One result on its way to the topics."""

    result: SegmentationResult
    rgb: np.ndarray  # the frame it was segmented on
    mask: Image  # mono8, the frame's header
    inference_ms: float
    source: str  # "service" or "standing"
    depth: DepthFrame | None = None  # the depth image paired with the frame
    stats: DepthStats | None = None  # where the object is (None: no depth)
    fresh: bool = True  # the language model ran on this frame
    prompt_age_s: float = 0.0
    slot: int = 0  # marker ids 2*slot, 2*slot+1 (the standing instruction's index + 1)


def mask_message(result: SegmentationResult, header: Header) -> Image:
    """The result's mask as a mono8 (0/255) Image with the frame's header."""
    return fill_image(Image(), mask_to_mono8(result.mask), "mono8", header)


def overlay_message(rgb: np.ndarray, mask: np.ndarray, alpha: float, header: Header) -> Image:
    """The mask blended onto the frame, rgb8."""
    return fill_image(Image(), overlay_mask(rgb, mask, alpha), "rgb8", header)


def compressed_mask_message(mask: np.ndarray, header: Header) -> CompressedImage:
    """The mask as a PNG CompressedImage (image_transport's `compressed` format naming)."""
    ok, png = cv2.imencode(".png", mask_to_mono8(mask))
    if not ok:
        raise RuntimeError("PNG encoding of the mask failed")
    msg = CompressedImage(header=header, format="mono8; png compressed")
    msg.data = to_byte_array(png)
    return msg


def result_message(item: Publication) -> ResultMsg:
    result = item.result
    msg = ResultMsg(
        header=item.mask.header,
        instruction=result.instruction,
        answer=result.answer,
        mask=item.mask,
        coverage=float(result.coverage),
        inference_ms=float(item.inference_ms),
        source=item.source,
        prompt_fresh=item.fresh,
        prompt_age_s=float(item.prompt_age_s),
    )
    return fill_depth_fields(msg, item.stats)


class TopicWorker:
    """Publishes on its own thread; keeps at most `depth` results waiting and drops the
    oldest beyond that (these topics are for viewing)."""

    def __init__(self, publish: Callable[[Publication], None], logger: Any, depth: int = 4) -> None:
        self._publish, self._logger = publish, logger
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._dropped = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="minelisa-topics", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def submit(self, item: Publication) -> None:
        self._put(item)

    def _put(self, item: Publication | None) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    with self._lock:
                        self._dropped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._publish(item)
            except Exception as exc:  # a publisher destroyed mid-way must not kill the thread
                self._logger.warning(f"publishing a result failed: {exc}")

    def stop(self) -> None:
        """Publish what is queued, then end the thread."""
        self._put(None)
        self._thread.join(timeout=5.0)


@dataclass
class _ImagePublishers:
    mask: Any
    overlay: Any
    compressed: Any = None  # ~/mask/compressed (service results only)


class Outputs:
    """The result publishers (lifecycle publishers: they publish only while active).

    Service results go to ~/mask, ~/mask/compressed and ~/overlay; each standing
    instruction's to ~/standing/<slug>/mask and ~/standing/<slug>/overlay; all to ~/result.
    """

    def __init__(self, node: Any, live: Callable[[], LiveSettings]) -> None:
        self._node, self._live = node, live
        self._lock = threading.Lock()  # publishers change while the worker publishes
        self._service: _ImagePublishers | None = None
        self._result = self._points = self._markers = None
        self.voxel_m: float | None = None  # ~/points voxel size (None: every pixel)
        self._standing: dict[str, tuple[str, _ImagePublishers]] = {}  # text -> (slug, pubs)

    def _pub(self, msg_type: Any, topic: str) -> Any:
        return self._node.create_lifecycle_publisher(msg_type, topic, TOPIC_QOS)

    def create(self) -> None:
        with self._lock:
            self._service = _ImagePublishers(
                self._pub(Image, "~/mask"),
                self._pub(Image, "~/overlay"),
                self._pub(CompressedImage, "~/mask/compressed"),
            )
            self._result = self._pub(ResultMsg, "~/result")
            self._points = self._pub(PointCloud2, "~/points")
            self._markers = self._pub(MarkerArray, "~/markers")

    def set_standing(self, instructions: Sequence[str], active: bool) -> dict[str, str]:
        """Publishers for exactly these standing instructions; returns text -> slug."""
        wanted = dict(zip(instructions, standing_slugs(instructions)))
        with self._lock:
            for text, (slug, pubs) in list(self._standing.items()):
                if self._result is None or wanted.get(text) != slug:
                    self._destroy(pubs)
                    del self._standing[text]
            if self._result is None:  # not configured
                return wanted
            for text, slug in wanted.items():
                if text not in self._standing:
                    pubs = _ImagePublishers(
                        self._pub(Image, f"~/standing/{slug}/mask"),
                        self._pub(Image, f"~/standing/{slug}/overlay"),
                    )
                    if active:  # created after activation: enable them as activation did
                        pubs.mask.on_activate(None)
                        pubs.overlay.on_activate(None)
                    self._standing[text] = (slug, pubs)
        return wanted

    def _destroy(self, pubs: _ImagePublishers) -> None:
        for pub in (pubs.mask, pubs.overlay, pubs.compressed):
            if pub is not None:
                self._node.destroy_lifecycle_publisher(pub)

    def destroy(self) -> None:
        with self._lock:
            for _, pubs in self._standing.values():
                self._destroy(pubs)
            self._standing.clear()
            if self._service is not None:
                self._destroy(self._service)
            for pub in (self._result, self._points, self._markers):
                if pub is not None:
                    self._node.destroy_lifecycle_publisher(pub)
            self._service = self._result = self._points = self._markers = None

    def publish(self, item: Publication) -> None:
        """One result on its image topics and ~/result (on the worker thread)."""
        live = self._live()
        with self._lock:
            if self._result is None:  # cleaned up meanwhile
                return
            if item.source == "service":
                images = self._service
            else:
                images = self._standing.get(item.result.instruction, (None, None))[1]
            if images is not None:  # None: a standing instruction removed meanwhile
                _publish_images(images, item, live)
            if self._result.get_subscription_count() > 0:
                self._result.publish(result_message(item))
            self._publish_spatial(item)

    def _publish_spatial(self, item: Publication) -> None:
        """~/points and ~/markers, each only while subscribed (under the lock)."""
        if item.depth is not None and self._points.get_subscription_count() > 0:
            depth = item.depth
            points = mask_points(item.result.mask, depth.depth, depth.intrinsics, self.voxel_m)
            self._points.publish(points_message(points, depth.header))
        if item.stats is not None and self._markers.get_subscription_count() > 0:
            header = item.depth.header if item.depth is not None else item.mask.header
            instruction = item.result.instruction
            self._markers.publish(markers_message(instruction, item.slot, item.stats, header))


def _publish_images(pubs: _ImagePublishers, item: Publication, live: LiveSettings) -> None:
    pubs.mask.publish(item.mask)
    if pubs.compressed is not None and pubs.compressed.get_subscription_count() > 0:
        pubs.compressed.publish(compressed_mask_message(item.result.mask, item.mask.header))
    if live.publish_overlay and pubs.overlay.get_subscription_count() > 0:
        header = item.mask.header
        pubs.overlay.publish(
            overlay_message(item.rgb, item.result.mask, live.overlay_alpha, header)
        )
