"""The MineLISA ROS 2 node: a SegmentByInstruction service and mask topics.

A thin layer over `minelisa_training.engine.SegmentationEngine`:

* subscribes to `image` (or `<image>/compressed`), keeping only the latest frame;
* `~/segment_by_instruction` segments that frame (or an inline one) and
  answers with a mono8 mask carrying the frame's header;
* publishes every result on `~/mask` (mono8 0/255), `~/overlay` (rgb8) and
  `~/result` (minelisa/msg/SegmentationResult), and can segment every frame for
  standing instructions at a fixed rate;
* publishes `/diagnostics` (frame rate, latency, model state).

It is a lifecycle node: configure loads the model, activate starts the camera
subscription, deactivate stops it, cleanup frees the model. With `autostart`
(default) it configures and activates itself.

Threads: the camera subscription, the service, the standing-instruction timer
and the monitoring timers each have their own callback group on a
multi-threaded executor, so frames keep arriving while a slow model call runs.
The model runs one request at a time (one lock); requests waiting for it are
bounded by `max_queued_requests`, beyond which a call is refused at once as
"busy" rather than left to time out.

Run:
    ros2 run minelisa minelisa_node --ros-args -p model_path:=/models/minelisa -r image:=/camera/image_raw
    python -m minelisa_ros.node --ros-args -p model_path:=/models/minelisa -r image:=/camera/image_raw
"""
from __future__ import annotations

import functools
import queue
import statistics
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from minelisa.msg import SegmentationResult as ResultMsg
from minelisa.srv import SegmentByInstruction
from minelisa_training.visualization import overlay_mask

from .image_conversion import (
    ImageConversionError,
    compressed_to_rgb,
    fill_image,
    image_to_rgb,
    is_empty_compressed,
    is_empty_image,
    mask_to_mono8,
)
from .model_errors import describe_model_error, free_accelerator_memory

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
DEVICE_PREFIXES = ("cpu", "cuda", "mps")


class RequestError(Exception):
    """A request the node refuses; the message goes back to the caller."""


@dataclass
class _Frame:
    msg: Image | CompressedImage
    received: float  # time.monotonic() at arrival


class _RateMeter:
    """Events per second over a sliding window (thread-safe enough: deque ops are atomic)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self.times: deque[float] = deque(maxlen=1024)
        self.count = 0

    def tick(self, now: float) -> None:
        self.times.append(now)
        self.count += 1

    def rate(self, now: float) -> float:
        recent = [t for t in list(self.times) if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


class _TopicWorker:
    """Publishes results on a thread of its own, so topics (the overlay takes tens of
    milliseconds at 1080p) never delay a service response. Keeps at most `depth`
    results waiting and drops the oldest beyond that: these topics are for viewing."""

    def __init__(self, publish: Callable[..., None], logger: Any, depth: int = 4) -> None:
        self._publish, self._logger = publish, logger
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="minelisa-topics", daemon=True)
        self._thread.start()

    def submit(self, *item: Any) -> None:
        self._put(item)

    def _put(self, item: tuple | None) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._publish(*item)
            except Exception as exc:  # a publisher destroyed mid-way must not kill the thread
                self._logger.warning(f"publishing a result failed: {exc}")

    def stop(self) -> None:
        self._put(None)
        self._thread.join(timeout=5.0)


def _logged_transition(method: Callable[[Any, LifecycleState], TransitionCallbackReturn]):
    """rclpy turns an exception in a transition into a silent ERROR: log it first."""

    @functools.wraps(method)
    def wrapper(self: Any, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return method(self, state)
        except Exception:
            self.get_logger().error(f"{method.__name__} failed:\n{traceback.format_exc()}")
            return TransitionCallbackReturn.ERROR

    return wrapper


def _descriptor(description: str, *, read_only: bool = False, float_range: tuple[float, float] | None = None,
                int_range: tuple[int, int] | None = None) -> ParameterDescriptor:
    d = ParameterDescriptor(description=description, read_only=read_only)
    if float_range is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]), to_value=float(float_range[1]))]
    if int_range is not None:
        d.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    return d


class MineLisaNode(LifecycleNode):
    def __init__(self, node_name: str = "minelisa", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._declare_parameters()
        self._engine = None
        self._model_state = "unloaded"
        self._model_message = ""
        self._active = False

        # One group per concern: a slow service call must never hold back frames.
        self._camera_group = MutuallyExclusiveCallbackGroup()
        self._service_group = ReentrantCallbackGroup()  # admission runs while a call waits
        self._standing_group = MutuallyExclusiveCallbackGroup()
        self._monitor_group = MutuallyExclusiveCallbackGroup()

        self._model_lock = threading.Lock()  # one model, one inference at a time
        self._admission_lock = threading.Lock()
        self._in_flight = 0
        self._frame: _Frame | None = None
        self._frames = _RateMeter()
        self._last_warning: tuple[str, float] = ("", 0.0)  # (hint, time) of the last no-frame warning
        self._standing_done: int | None = None  # id() of the last frame the standing timer segmented
        self._latencies: deque[float] = deque(maxlen=50)
        self._counts = {"ok": 0, "failed": 0, "busy": 0, "standing": 0}

        self._camera_sub = None
        self._service = None
        self._standing_timer = None
        self._watchdog_timer = None
        self._mask_pub = self._overlay_pub = self._result_pub = None

        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(
            self._param("diagnostics_period"), self._publish_diagnostics, callback_group=self._monitor_group
        )
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self._topics = _TopicWorker(self._publish, self.get_logger())

    def destroy_node(self) -> None:
        self._topics.stop()
        super().destroy_node()

    # -- parameters -------------------------------------------------------------
    def _declare_parameters(self) -> None:
        p = self.declare_parameter
        p("model_path", "", _descriptor(
            "Required. A MineLISA bundle (`minelisa export`) or a LISA checkpoint directory "
            "(xinlai/LISA-7B-v1 layout). Read on configure.", read_only=True))
        p("vision_tower_path", "", _descriptor(
            "Local CLIP ViT-L/14 directory for LISA checkpoints whose config names a hub id; "
            "empty: the bundle's own tower.", read_only=True))
        p("device", "cpu", _descriptor("Torch device: cpu, cuda, cuda:N.", read_only=True))
        p("dtype", "fp32", _descriptor("Model precision: fp32, fp16 or bf16 (fp16/bf16 on GPUs).", read_only=True))
        p("answer_mode", "fast", _descriptor(
            "fast: one forward pass with the answer '[SEG].' (segmentation only); "
            "chat: generate an answer text, each generated [SEG] gives a mask.", read_only=True))
        p("max_new_tokens", 64, _descriptor("Answer length cap in chat mode.", read_only=True, int_range=(1, 512)))
        p("qos_reliability", "best_effort", _descriptor(
            "Camera subscription reliability: best_effort (matches every publisher) or reliable. "
            "History is KEEP_LAST with depth 1: only the latest frame matters.", read_only=True))
        p("use_compressed", False, _descriptor(
            "Subscribe to <image>/compressed (JPEG/PNG, image_transport naming) instead of <image>.",
            read_only=True))
        p("max_frame_age", 1.0, _descriptor(
            "Refuse to segment a latest frame received more than this many seconds ago (0: no limit).",
            float_range=(0.0, 3600.0)))
        p("standing_instructions", Parameter.Type.STRING_ARRAY, _descriptor(
            "Instructions segmented on the latest frame at standing_rate and published on "
            "~/result, ~/mask and ~/overlay (empty: none)."))
        p("standing_rate", 1.0, _descriptor(
            "Rate in Hz of the standing instructions (0: off). A tick is skipped while the model is "
            "busy with a service call or when no new frame arrived.", float_range=(0.0, 30.0)))
        p("publish_overlay", True, _descriptor("Publish ~/overlay (rgb8, the mask blended on the frame) for rviz."))
        p("overlay_alpha", 0.5, _descriptor("Overlay opacity.", float_range=(0.0, 1.0)))
        p("max_queued_requests", 4, _descriptor(
            "Service calls allowed to wait while one runs; more are refused with a 'busy' message.",
            read_only=True, int_range=(0, 32)))
        p("no_frame_warning_period", 5.0, _descriptor(
            "Warn when no camera frame arrived for this many seconds (QoS mismatch is the usual cause).",
            read_only=True, float_range=(0.5, 600.0)))
        p("diagnostics_period", 1.0, _descriptor("Seconds between /diagnostics messages.", read_only=True,
                                                 float_range=(0.05, 60.0)))
        p("autostart", True, _descriptor("Configure and activate on start (no lifecycle manager needed).",
                                         read_only=True))

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        if self._active and any(p.name.startswith("standing_") for p in parameters):
            self._start_standing_timer()

    def _image_topic(self) -> str:
        base = self.resolve_topic_name("image")
        return base + "/compressed" if self._param("use_compressed") else base

    # -- lifecycle ----------------------------------------------------------------
    @_logged_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._load_engine()
        except Exception as exc:  # a missing file, bad dtype, CUDA absent, ...
            self._model_state, self._model_message = "error", str(exc)
            self.get_logger().error(f"could not load the model: {exc}")
            return TransitionCallbackReturn.FAILURE
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._mask_pub = self.create_lifecycle_publisher(Image, "~/mask", qos)
        self._overlay_pub = self.create_lifecycle_publisher(Image, "~/overlay", qos)
        self._result_pub = self.create_lifecycle_publisher(ResultMsg, "~/result", qos)
        self._service = self.create_service(
            SegmentByInstruction, "~/segment_by_instruction", self._on_segment, callback_group=self._service_group
        )
        return super().on_configure(state)

    @_logged_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        reliability = RELIABILITY[self._param("qos_reliability")]
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)
        msg_type = CompressedImage if self._param("use_compressed") else Image
        self._frame = None
        self._camera_sub = self.create_subscription(
            msg_type, self._image_topic(), self._on_frame, qos, callback_group=self._camera_group
        )
        self._watchdog_timer = self.create_timer(
            self._param("no_frame_warning_period"), self._warn_if_no_frames, callback_group=self._monitor_group
        )
        self._active = True
        self._start_standing_timer()
        self.get_logger().info(
            f"active: segmenting {self._image_topic()} ({self._param('qos_reliability')}); "
            f"service {self.resolve_service_name('~/segment_by_instruction')}"
        )
        return super().on_activate(state)

    @_logged_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        for timer in (self._standing_timer, self._watchdog_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._standing_timer = self._watchdog_timer = None
        if self._camera_sub is not None:
            self.destroy_subscription(self._camera_sub)
            self._camera_sub = None
        return super().on_deactivate(state)

    @_logged_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    @_logged_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._active:
            self.on_deactivate(state)
        self._release()
        return super().on_shutdown(state)

    def _load_engine(self) -> None:
        from minelisa_training.checkpoint import DTYPES
        from minelisa_training.engine import MODES, SegmentationEngine

        model_path = self._param("model_path")
        if not model_path:
            raise ValueError("parameter model_path is required (a MineLISA bundle or LISA checkpoint directory)")
        device, dtype, mode = self._param("device"), self._param("dtype"), self._param("answer_mode")
        if not device.startswith(DEVICE_PREFIXES):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if mode not in MODES:
            raise ValueError(f"answer_mode must be one of {', '.join(MODES)}, got {mode!r}")
        if self._param("qos_reliability") not in RELIABILITY:
            raise ValueError(f"qos_reliability must be best_effort or reliable, got {self._param('qos_reliability')!r}")
        self._model_state = "loading"
        start = time.perf_counter()
        self._engine = SegmentationEngine.from_pretrained(
            model_path,
            vision_tower=self._param("vision_tower_path") or None,
            device=device,
            dtype=dtype,
            mode=mode,
            max_new_tokens=self._param("max_new_tokens"),
        )
        self._model_state, self._model_message = "loaded", ""
        self.get_logger().info(f"model {model_path} loaded on {device} ({dtype}) in {time.perf_counter() - start:.1f} s")

    def _release(self) -> None:
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        for pub in (self._mask_pub, self._overlay_pub, self._result_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._mask_pub = self._overlay_pub = self._result_pub = None
        with self._model_lock:  # let a running call finish before the model goes
            self._engine = None
        self._model_state = "unloaded"
        free_accelerator_memory()

    # -- camera -------------------------------------------------------------------
    def _on_frame(self, msg: Image | CompressedImage) -> None:
        now = time.monotonic()
        self._frame = _Frame(msg, now)
        self._frames.tick(now)

    def _warn_if_no_frames(self) -> None:
        period = self._param("no_frame_warning_period")
        if self._frame is not None and time.monotonic() - self._frame.received < period:
            return
        topic = self._image_topic()
        publishers = self.get_publishers_info_by_topic(topic)
        ours = self._param("qos_reliability")
        if not publishers:
            hint = "no publisher on that topic: remap `image` (e.g. -r image:=/camera/image_raw)"
        else:
            theirs = sorted({p.qos_profile.reliability.name.lower() for p in publishers})
            hint = f"{len(publishers)} publisher(s) with reliability {', '.join(theirs)}"
            if ours == "reliable" and "best_effort" in theirs:
                hint += "; this node asks for reliable, which a best_effort publisher cannot serve: set qos_reliability:=best_effort"
        # Repeat an unchanged warning once a minute, not every period.
        now = time.monotonic()
        if self._last_warning[0] == hint and now - self._last_warning[1] < 60.0:
            return
        self._last_warning = (hint, now)
        self.get_logger().warning(f"no frame received on {topic} for {period:.0f} s: {hint}")

    # -- service ------------------------------------------------------------------
    def _on_segment(self, request: SegmentByInstruction.Request, response: SegmentByInstruction.Response):
        start = time.perf_counter()
        response.success = False
        if not self._active:
            response.message = f"node is not active (lifecycle state: {self._state_label()})"
            return response
        limit = 1 + self._param("max_queued_requests")
        with self._admission_lock:
            if self._in_flight >= limit:
                self._counts["busy"] += 1
                response.message = (
                    f"busy: {self._in_flight} requests in progress or queued (max_queued_requests="
                    f"{limit - 1}); retry later"
                )
                return response
            self._in_flight += 1
        try:
            with self._model_lock:
                rgb, header = self._request_frame(request)
                result, inference_ms = self._segment(rgb, request.instruction)
            mask_msg, coverage = self._mask_message(result, header)
            self._topics.submit(result, rgb, mask_msg, coverage, inference_ms, request.instruction, "service")
            response.success = True
            response.mask = mask_msg
            response.answer = result.answer
            response.coverage = coverage
            response.inference_ms = inference_ms
            self._counts["ok"] += 1
        except (RequestError, ImageConversionError) as exc:
            response.message = str(exc)
        except Exception as exc:
            response.message = describe_model_error(exc)
            self.get_logger().error(f"{response.message}\n{traceback.format_exc()}")
            if "out of memory" in response.message:
                free_accelerator_memory()
        finally:
            with self._admission_lock:
                self._in_flight -= 1
        if not response.success:
            self._counts["failed"] += 1
            self.get_logger().warning(f"refused {request.instruction[:80]!r}: {response.message}")
        response.total_ms = (time.perf_counter() - start) * 1000.0
        if response.success:
            self._latencies.append(response.total_ms)
        return response

    def _request_frame(self, request: SegmentByInstruction.Request) -> tuple[np.ndarray, Header]:
        if not is_empty_image(request.image):
            return image_to_rgb(request.image), request.image.header
        if not is_empty_compressed(request.compressed_image):
            return compressed_to_rgb(request.compressed_image), request.compressed_image.header
        return self._latest_frame()

    def _latest_frame(self, frame: _Frame | None = None) -> tuple[np.ndarray, Header]:
        frame = frame or self._frame
        if frame is None:
            raise RequestError(
                f"no frame received yet on {self._image_topic()}: is the camera publishing, and does "
                f"its QoS match qos_reliability={self._param('qos_reliability')}? (or send an image)"
            )
        age = time.monotonic() - frame.received
        max_age = self._param("max_frame_age")
        if max_age > 0 and age > max_age:
            raise RequestError(
                f"the latest frame on {self._image_topic()} is {age:.2f} s old, older than "
                f"max_frame_age={max_age:g} s: the camera stopped publishing?"
            )
        convert = compressed_to_rgb if isinstance(frame.msg, CompressedImage) else image_to_rgb
        try:
            return convert(frame.msg), frame.msg.header
        except ImageConversionError as exc:
            raise RequestError(f"latest frame on {self._image_topic()}: {exc}") from None

    def _segment(self, rgb: np.ndarray, instructions: str | Sequence[str]) -> tuple[Any, float]:
        """Engine results (one, or a list for a list) and the engine call's wall time in ms.

        The wall time, not the engine's own timings, is reported as inference time, so
        that everything else a request takes is the node's overhead.
        """
        if self._engine is None:
            raise RequestError("the model is not loaded")
        start = time.perf_counter()
        results = self._engine.segment(rgb, instructions)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        return (results[0] if isinstance(instructions, str) else results), elapsed_ms

    def _mask_message(self, result: Any, header: Header) -> tuple[Image, float]:
        """The result's mono8 mask message and its coverage (0..1)."""
        mono8 = mask_to_mono8(result.mask)
        coverage = cv2.countNonZero(mono8) / mono8.size if mono8.size else 0.0
        return fill_image(Image(), mono8, "mono8", header), coverage

    def _publish(self, result: Any, rgb: np.ndarray, mask_msg: Image, coverage: float, inference_ms: float,
                 instruction: str, source: str) -> None:
        """Publish one result on ~/mask, ~/overlay and ~/result (on the topic worker thread)."""
        mask_pub, overlay_pub, result_pub = self._mask_pub, self._overlay_pub, self._result_pub
        if mask_pub is None:  # cleaned up meanwhile
            return
        mask_pub.publish(mask_msg)
        if self._param("publish_overlay") and overlay_pub.get_subscription_count() > 0:
            overlay = overlay_mask(rgb, result.mask, self._param("overlay_alpha"))
            overlay_pub.publish(fill_image(Image(), overlay, "rgb8", mask_msg.header))
        if result_pub.get_subscription_count() > 0:
            result_pub.publish(ResultMsg(
                header=mask_msg.header, instruction=instruction, answer=result.answer, mask=mask_msg,
                coverage=float(coverage), inference_ms=float(inference_ms), source=source,
            ))

    # -- standing instructions --------------------------------------------------------
    def _start_standing_timer(self) -> None:
        if self._standing_timer is not None:
            self.destroy_timer(self._standing_timer)
            self._standing_timer = None
        rate = self._param("standing_rate")
        if rate > 0 and self._standing_instructions():
            self._standing_timer = self.create_timer(1.0 / rate, self._on_standing, callback_group=self._standing_group)

    def _standing_instructions(self) -> list[str]:
        # Declared without a default (an empty list has no type): unset reads as [].
        value = self.get_parameter_or("standing_instructions", Parameter("standing_instructions", value=[])).value
        return [text for text in (value or []) if text.strip()]

    def _on_standing(self) -> None:
        frame, instructions = self._frame, self._standing_instructions()
        if frame is None or id(frame) == self._standing_done or not instructions:
            return
        max_age = self._param("max_frame_age")
        if max_age > 0 and time.monotonic() - frame.received > max_age:
            return
        if not self._model_lock.acquire(blocking=False):
            return  # a service call is running: it has priority
        try:
            rgb, header = self._latest_frame(frame)
            results, inference_ms = self._segment(rgb, instructions)
        except Exception as exc:
            message = str(exc) if isinstance(exc, (RequestError, ImageConversionError)) else describe_model_error(exc)
            self.get_logger().warning(f"standing instructions: {message}", throttle_duration_sec=10.0)
            return
        finally:
            self._model_lock.release()
        self._standing_done = id(frame)
        for text, result in zip(instructions, results):
            mask_msg, coverage = self._mask_message(result, header)
            self._topics.submit(result, rgb, mask_msg, coverage, inference_ms, text, "standing")
        self._counts["standing"] += len(results)

    # -- diagnostics --------------------------------------------------------------------
    def _state_label(self) -> str:
        return "active" if self._active else ("inactive" if self._engine is not None else "unconfigured")

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        frame = self._frame
        age = now - frame.received if frame is not None else float("inf")
        rate = self._frames.rate(now)
        if self._model_state == "error":
            level, message = DiagnosticStatus.ERROR, f"model failed to load: {self._model_message}"
        elif not self._active:
            level, message = DiagnosticStatus.WARN, f"not active ({self._state_label()})"
        elif frame is None or age > self._param("no_frame_warning_period"):
            level, message = DiagnosticStatus.WARN, "no camera frames"
        else:
            level, message = DiagnosticStatus.OK, f"active, camera at {rate:.1f} Hz"
        latencies = list(self._latencies)
        values = {
            "lifecycle_state": self._state_label(),
            "model_state": self._model_state,
            "model_path": self._param("model_path"),
            "device": self._param("device"),
            "dtype": self._param("dtype"),
            "image_topic": self._image_topic(),
            "frames_received": str(self._frames.count),
            "frame_rate_hz": f"{rate:.2f}",
            "last_frame_age_s": f"{age:.3f}" if frame is not None else "none",
            "requests_ok": str(self._counts["ok"]),
            "requests_failed": str(self._counts["failed"]),
            "requests_refused_busy": str(self._counts["busy"]),
            "requests_in_flight": str(self._in_flight),
            "standing_results": str(self._counts["standing"]),
            "topic_results_dropped": str(self._topics.dropped),
            "last_service_latency_ms": f"{latencies[-1]:.1f}" if latencies else "none",
            "median_service_latency_ms": f"{statistics.median(latencies):.1f}" if latencies else "none",
        }
        status = DiagnosticStatus(
            level=level, name=f"{self.get_fully_qualified_name()}: segmentation",
            message=message, hardware_id=self._param("device"),
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)


def main(argv: Sequence[str] | None = None) -> int:
    rclpy.init(args=list(sys.argv if argv is None else argv))
    node = MineLisaNode()
    # Room for every admitted call to wait plus one to refuse the next, beside
    # the camera, standing, monitoring and lifecycle callbacks.
    executor = MultiThreadedExecutor(num_threads=node.get_parameter("max_queued_requests").value + 6)
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("configure failed (see the error above); exiting")
                return 1
            node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
