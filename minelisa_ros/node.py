"""The MineLISA ROS 2 node: a SegmentByInstruction service and mask topics.

A thin layer over `minelisa_training.engine.SegmentationEngine`:

* subscribes to `image` (or `<image>/compressed`), keeping only the latest frame;
* `~/segment_by_instruction` segments that frame (or an inline one) and
  answers with a mono8 mask carrying the frame's header;
* publishes service results on `~/mask` (mono8 0/255), `~/mask/compressed` (PNG)
  and `~/overlay` (rgb8); segments every new frame for standing instructions at a
  fixed rate, each on `~/standing/<slug>/mask` and `.../overlay`; every result also
  on `~/result` (minelisa/msg/SegmentationResult);
* with `use_depth`, pairs each frame with the nearest `depth` image (and `camera_info`):
  results say how far the object is, `~/points` and `~/markers` show where, and
  `proximity_alerts` on standing instructions publish `~/alert`;
* publishes `/diagnostics` (frame rate, latency, model state, proximity levels).

The service exists in every lifecycle state and says why it cannot segment yet.

It is a lifecycle node: configure loads the model, activate starts the camera
subscription, deactivate stops it, cleanup frees the model. With `autostart`
(default) it configures and activates itself.

This module is the lifecycle and the wiring; the parts live beside it:
`parameters` (declaration, validated settings), `gate` (admission and the model
lock), `camera` (latest frame, decoding), `publishing` (result topics on a worker
thread), `standing` (the standing-instruction tick), `diagnostics` (counters and
the /diagnostics status), `process` (signals, executor, orderly shutdown).

Threads: the camera subscription, the service, the standing-instruction timer
and the monitoring timers each have their own callback group on a
multi-threaded executor, so frames keep arriving while a slow model call runs.
The model runs one request at a time; requests waiting for it are bounded by
`max_queued_requests`, beyond which a call is refused at once as "busy".

Run:
    ros2 run minelisa minelisa_node --ros-args -p model_path:=/models/minelisa \\
        -r image:=/camera/image_raw
    python -m minelisa_ros.node --ros-args -p model_path:=/models/minelisa \\
        -r image:=/camera/image_raw
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from minelisa_training.errors import InvalidInputError

from . import parameters
from .camera import LatestFrame, NoFrameWarning, frame_image, inline_image, no_frame_hint
from .depth_side import DepthSide
from .diagnostics import NodeReport, RequestCounters, build_status
from .gate import BusyError, Gate, RequestError, not_serving_reason
from .image_conversion import ImageConversionError
from .interfaces import SegmentByInstruction
from .model_errors import describe_model_error, free_accelerator_memory
from .parameters import LiveSettings, NodeSettings
from .publishing import Outputs, Publication, TopicWorker, mask_message
from .spatial import fill_depth_fields
from .standing import StandingRunner

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
SERVICE = "~/segment_by_instruction"


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


class MineLisaNode(LifecycleNode):
    def __init__(self, node_name: str = "minelisa", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        parameters.declare(self)
        self._settings: NodeSettings | None = None  # read on configure
        self._live = LiveSettings.read(self._param)
        self._gate = Gate()
        self._frames = LatestFrame()
        self._counters = RequestCounters()
        self._no_frame = NoFrameWarning()
        self._model_state, self._model_message = "unloaded", ""
        self._active = False

        # One group per concern: a slow service call must never hold back frames.
        self._camera_group = MutuallyExclusiveCallbackGroup()
        self._service_group = ReentrantCallbackGroup()  # admission runs while a call waits
        self._standing_group = MutuallyExclusiveCallbackGroup()
        self._monitor_group = MutuallyExclusiveCallbackGroup()

        self._camera_sub = None
        self._stopping = False
        self._loaded_on: tuple[str, str] | None = None  # (device, dtype) of the loaded model
        self._standing_timer = self._watchdog_timer = None
        self._outputs = Outputs(self, lambda: self._live)
        self._topics = TopicWorker(self._outputs.publish, self.get_logger())
        self._standing = StandingRunner(
            self._frames, self._gate, self._topics.submit, self._counters, self.get_logger()
        )
        self._depth = DepthSide(self, self._standing, self._outputs)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(
            self._param("diagnostics_period"),
            self._publish_diagnostics,
            callback_group=self._monitor_group,
        )
        # The service exists in every state and says why it cannot segment yet.
        self._service = self.create_service(
            SegmentByInstruction, SERVICE, self._on_segment, callback_group=self._service_group
        )
        self.add_pre_set_parameters_callback(parameters.coerce_standing)
        self.add_post_set_parameters_callback(self._on_parameters_set)

    def begin_shutdown(self) -> None:
        """Refuse new requests and stop the timers; running calls go on to answer."""
        self._stopping = True
        self._gate.close()  # calls queued for the model are refused; the running one answers
        self.get_logger().info(
            f"shutting down: {self._gate.in_flight} service call(s) in flight, letting them answer"
        )
        for timer in (self._standing_timer, self._watchdog_timer):
            if timer is not None:
                timer.cancel()

    def wait_idle(self, timeout: float) -> bool:
        """Wait for the admitted service calls to finish; False after `timeout` seconds."""
        return self._gate.wait_idle(timeout)

    def destroy_node(self) -> None:
        self._topics.stop()  # publishes what is queued while the publishers still exist
        super().destroy_node()

    # -- parameters -------------------------------------------------------------------
    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _on_parameters_set(self, changed: list[Parameter]) -> None:
        if not any(p.name in parameters.LIVE_PARAMETERS for p in changed):
            return
        self._live = LiveSettings.read(self._param)
        if any(p.name == parameters.STANDING for p in changed):
            self._outputs.set_standing(self._live.standing, self._active)
        if self._active and any(p.name.startswith("standing_") for p in changed):
            self._start_standing_timer()

    def _image_topic(self) -> str:
        base = self.resolve_topic_name("image")
        return base + "/compressed" if self._param("use_compressed") else base

    # -- lifecycle ----------------------------------------------------------------------
    @_logged_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._settings = NodeSettings.read(self._param)
            self._load_engine(self._settings)
        except Exception as exc:  # a missing file, bad dtype, CUDA absent, ...
            self._model_state, self._model_message = "error", str(exc)
            self.get_logger().error(f"could not load the model: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._outputs.create()
        self._outputs.set_standing(self._live.standing, active=False)
        self._depth.configure(self._settings.depth)
        return super().on_configure(state)

    @_logged_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings = self._settings
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1,
            reliability=RELIABILITY[settings.qos_reliability],
        )
        msg_type = CompressedImage if settings.use_compressed else Image
        self._frames.clear()
        self._camera_sub = self.create_subscription(
            msg_type, self._image_topic(), self._frames.put, qos, callback_group=self._camera_group
        )
        self._depth.activate(qos, self._camera_group)
        self._watchdog_timer = self.create_timer(
            settings.no_frame_warning_period,
            self._warn_if_no_frames,
            callback_group=self._monitor_group,
        )
        self._active = True
        self._start_standing_timer()
        self.get_logger().info(
            f"active: segmenting {self._image_topic()} ({settings.qos_reliability}); "
            f"service {self.resolve_service_name(SERVICE)}"
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
        self._depth.deactivate()
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

    def _load_engine(self, settings: NodeSettings) -> None:
        from minelisa_training.engine import SegmentationEngine

        options = settings.model
        self._model_state = "loading"
        start = time.perf_counter()
        engine = SegmentationEngine.from_options(options)
        self._gate.set_engine(engine)
        self._model_state, self._model_message = "loaded", ""
        self._loaded_on = (str(engine.device), str(engine.model.dtype).replace("torch.", ""))
        self.get_logger().info(
            f"model {options.path} loaded on {engine.device} ({self._loaded_on[1]}, image views "
            f"{engine.encoder.image_views}, compile {'on' if options.compile else 'off'}; asked "
            f"for {options.device}/{options.dtype}) in {time.perf_counter() - start:.1f} s"
        )

    def _release(self) -> None:
        self._outputs.destroy()
        self._depth.release()
        self._gate.set_engine(None)  # after a running call has finished
        self._model_state, self._loaded_on = "unloaded", None
        free_accelerator_memory()

    # -- camera -----------------------------------------------------------------------------
    def _warn_if_no_frames(self) -> None:
        period = self._settings.no_frame_warning_period
        frame = self._frames.get()
        if frame is not None and time.monotonic() - frame.received < period:
            return
        topic = self._image_topic()
        hint = no_frame_hint(
            self.get_publishers_info_by_topic(topic), self._settings.qos_reliability
        )
        if self._no_frame.due(hint):  # an unchanged warning once a minute, not every period
            self.get_logger().warning(f"no frame received on {topic} for {period:.0f} s: {hint}")

    def _latest_image(self):
        return frame_image(
            self._frames.get(),
            self._image_topic(),
            self._live.max_frame_age,
            self._settings.qos_reliability,
        )

    # -- service ------------------------------------------------------------------------------
    def _on_segment(
        self, request: SegmentByInstruction.Request, response: SegmentByInstruction.Response
    ) -> SegmentByInstruction.Response:
        start = time.perf_counter()
        response.success = False
        refusal = self._not_serving()
        if refusal is not None:
            response.message = refusal
            return response
        busy = False
        try:
            self._answer(request, response)
        except BusyError as exc:
            response.message, busy = str(exc), True
        except (RequestError, ImageConversionError) as exc:
            response.message = str(exc)
        except InvalidInputError as exc:  # the engine refused the text or image: no traceback
            response.message = describe_model_error(exc)
        except Exception as exc:
            response.message = describe_model_error(exc)
            self.get_logger().error(f"{response.message}\n{traceback.format_exc()}")
            if "out of memory" in response.message:
                free_accelerator_memory()
        response.total_ms = (time.perf_counter() - start) * 1000.0
        if response.success:
            self._counters.succeeded(response.total_ms)
        else:
            self._counters.failed(busy=busy)
            self.get_logger().warning(f"refused {request.instruction[:80]!r}: {response.message}")
        return response

    def _answer(
        self, request: SegmentByInstruction.Request, response: SegmentByInstruction.Response
    ) -> None:
        # Bad text is refused before admission and the model lock: no wait, no queue slot.
        instruction = self._gate.check_instruction(request.instruction)
        with self._gate.admit(self._settings.max_queued_requests):
            # Decoded before taking the model lock: a waiting request costs no model time.
            rgb, header = inline_image(request) or self._latest_image()
            depth, response.message = self._depth.for_request(request, header, rgb.shape[:2])
            result, inference_ms = self._gate.segment(rgb, instruction)
        stats = self._depth.stats(depth, result.mask)
        mask = mask_message(result, header)
        self._topics.submit(Publication(result, rgb, mask, inference_ms, "service", depth, stats))
        fill_depth_fields(response, stats)
        response.success = True
        response.mask = mask
        response.answer = result.answer
        response.coverage = float(result.coverage)
        response.inference_ms = inference_ms

    # -- standing instructions -----------------------------------------------------------------
    def _start_standing_timer(self) -> None:
        if self._standing_timer is not None:
            self.destroy_timer(self._standing_timer)
            self._standing_timer = None
        live = self._live
        if live.standing_rate > 0 and live.standing:
            self._standing_timer = self.create_timer(
                1.0 / live.standing_rate, self._on_standing, callback_group=self._standing_group
            )

    def _on_standing(self) -> None:
        self._standing.tick(self._live, self._image_topic(), self._settings.qos_reliability)

    # -- diagnostics ----------------------------------------------------------------------------
    def _not_serving(self) -> str | None:
        """Why the service cannot segment in this state (None: it can)."""
        if self._stopping:
            return "node is shutting down"
        if self._active:
            return None
        return not_serving_reason(
            self.get_fully_qualified_name(), self._gate.loaded, self._model_state,
            self._model_message,
        )  # fmt: skip

    def _state_label(self) -> str:
        return "active" if self._active else ("inactive" if self._gate.loaded else "unconfigured")

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        frame = self._frames.get()
        settings = self._settings
        # The resolved device and dtype once loaded; the parameters (e.g. "auto") before.
        loaded_on = self._loaded_on or (self._param("device"), self._param("dtype"))
        report = NodeReport(
            name=self.get_fully_qualified_name(),
            lifecycle_state=self._state_label(),
            model_state=self._model_state,
            model_message=self._model_message,
            model_path=self._param("model_path"),
            device=loaded_on[0],
            dtype=loaded_on[1],
            image_topic=self._image_topic(),
            frames_received=self._frames.meter.count,
            frame_rate_hz=self._frames.meter.rate(now),
            frame_age_s=None if frame is None else now - frame.received,
            no_frame_warning_period=self._param("no_frame_warning_period")
            if settings is None
            else settings.no_frame_warning_period,
            in_flight=self._gate.in_flight,
            topic_results_dropped=self._topics.dropped,
            requests=self._counters.snapshot(),
            proximity=self._depth.levels(),
        )
        array = DiagnosticArray(status=[build_status(report)])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)


def main(argv: Sequence[str] | None = None) -> int:
    """`ros2 run minelisa minelisa_node` / `python -m minelisa_ros.node`: the exit status."""
    from .process import run

    return run(MineLisaNode, argv)


if __name__ == "__main__":
    sys.exit(main())
