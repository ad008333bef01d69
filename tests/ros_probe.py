"""ROS 2 client side of the node tests; runs in a subprocess with ros_helpers.ros_env().

    python ros_probe.py '{"scenario": "main", "out_dir": "...", ...}'

Publishes camera frames, calls the service, records the node's topics, and
writes report.json (+ arrays.npz with the masks) for the pytest process to check.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from minelisa.msg import SegmentationResult
from minelisa.srv import SegmentByInstruction
from rcl_interfaces.msg import Parameter as ParameterMsg
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from minelisa_ros.image_conversion import fill_image, to_byte_array

sys.path.insert(0, str(Path(__file__).parent))
from ros_helpers import frame_pixels  # noqa: E402

STAMP_BASE = 1000  # frame i has stamp.sec = STAMP_BASE + i


def _wait(future, timeout: float):
    event = threading.Event()
    future.add_done_callback(lambda _: event.set())
    if not event.wait(timeout):
        raise TimeoutError(f"no answer within {timeout} s")
    return future.result()


class Probe:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.node_name = spec.get("node", "/minelisa")
        self.camera = spec["camera"]
        self.node = rclpy.create_node("minelisa_probe")
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self.spinner.start()
        self.client = self.node.create_client(
            SegmentByInstruction, f"{self.node_name}/segment_by_instruction"
        )
        self.arrays: dict[str, np.ndarray] = {}
        self.report: dict = {"calls": {}}
        self.published: list[tuple[float, int]] = []  # (time, frame index)
        self.topics: dict[str, list] = {"diagnostics": []}
        self._stream_stop = threading.Event()
        self._stream: threading.Thread | None = None
        if not self.client.wait_for_service(timeout_sec=spec.get("service_timeout", 60.0)):
            raise TimeoutError("service did not appear")

    # -- recording ----------------------------------------------------------------
    def record_topics(self, standing_slugs: list[str] = ()) -> None:
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        topics = [
            ("mask", Image, "mask"),
            ("overlay", Image, "overlay"),
            ("result", SegmentationResult, "result"),
            ("mask_compressed", CompressedImage, "mask/compressed"),
        ]
        for slug in standing_slugs:
            for kind in ("mask", "overlay"):
                topics.append((f"standing/{slug}/{kind}", Image, f"standing/{slug}/{kind}"))
        for name, msg_type, topic in topics:
            self.topics.setdefault(name, [])
            self.node.create_subscription(
                msg_type, f"{self.node_name}/{topic}", self._recorder(name), qos
            )
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)

    def _recorder(self, name: str):
        def record(msg) -> None:
            entry = {
                "t": time.monotonic(),
                "key": f"{name.replace('/', '__')}_{len(self.topics[name])}",
            }
            if name == "mask_compressed":
                entry.update(
                    stamp=[msg.header.stamp.sec, msg.header.stamp.nanosec],
                    frame_id=msg.header.frame_id,
                    format=msg.format,
                )
                data = np.frombuffer(msg.data, np.uint8)
                self.arrays[entry["key"]] = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
                self.topics[name].append(entry)
                return
            image = msg.mask if name == "result" else msg
            pixels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.step)
            entry.update(
                stamp=[image.header.stamp.sec, image.header.stamp.nanosec],
                frame_id=image.header.frame_id,
                encoding=image.encoding,
                size=[image.height, image.width],
                step=image.step,
                values=[]
                if image.encoding == "rgb8"
                else sorted(int(v) for v in np.unique(pixels)),
            )
            if name == "result":
                entry.update(
                    instruction=msg.instruction,
                    source=msg.source,
                    answer=msg.answer,
                    header_stamp=[msg.header.stamp.sec, msg.header.stamp.nanosec],
                )
            if True:  # masks and overlays are small: keep every one
                channels = 3 if image.encoding == "rgb8" else 1
                shape = (image.height, image.width, channels)[: 2 if channels == 1 else 3]
                self.arrays[entry["key"]] = (
                    pixels[:, : image.width * channels].reshape(shape).copy()
                )
            self.topics[name].append(entry)

        return record

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == f"{self.node_name}: segmentation":
                self.topics["diagnostics"].append(
                    {
                        "t": time.monotonic(),
                        "level": int.from_bytes(status.level, "little")
                        if isinstance(status.level, bytes)
                        else int(status.level),
                        "message": status.message,
                        "values": {kv.key: kv.value for kv in status.values},
                    }
                )

    # -- camera -------------------------------------------------------------------
    def start_stream(
        self,
        compressed: bool = False,
        rate: float = 30.0,
        reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE,
    ) -> None:
        if compressed:
            qos = QoSProfile(depth=1, reliability=reliability)
            pub = self.node.create_publisher(CompressedImage, self.camera + "/compressed", qos)
        else:
            pub = self.node.create_publisher(Image, self.camera, qos_profile_sensor_data)
        self._stream_stop.clear()

        def run() -> None:
            index, next_t = 0, time.monotonic()
            while not self._stream_stop.is_set():
                pixels = frame_pixels(index)
                if compressed:
                    msg = CompressedImage(format="png")
                    msg.data = to_byte_array(cv2.imencode(".png", pixels[..., ::-1])[1])
                else:
                    msg = fill_image(Image(), pixels, "rgb8")
                msg.header.stamp.sec = STAMP_BASE + index
                msg.header.frame_id = "camera_optical"
                pub.publish(msg)
                self.published.append((time.monotonic(), index))
                index += 1
                # Behind schedule (a loaded machine) the stream slows down rather than
                # bursting: the node keeps only the latest frame, as from a real camera.
                next_t = max(next_t + 1.0 / rate, time.monotonic())
                time.sleep(max(0.0, next_t - time.monotonic()))

        self._stream = threading.Thread(target=run, daemon=True)
        self._stream.start()

    def stop_stream(self) -> None:
        self._stream_stop.set()
        if self._stream is not None:
            self._stream.join()

    # -- calls --------------------------------------------------------------------
    def request(
        self,
        instruction: str,
        image: Image | None = None,
        compressed: CompressedImage | None = None,
    ):
        req = SegmentByInstruction.Request(instruction=instruction)
        if image is not None:
            req.image = image
        if compressed is not None:
            req.compressed_image = compressed
        return req

    def summary(self, name: str, res, started: float, finished: float | None = None) -> dict:
        mask = res.mask
        out = {
            "success": res.success,
            "message": res.message,
            "answer": res.answer,
            "coverage": res.coverage,
            "inference_ms": res.inference_ms,
            "total_ms": res.total_ms,
            "started": started,
            "finished": finished or time.monotonic(),
            "mask": {
                "size": [mask.height, mask.width],
                "encoding": mask.encoding,
                "step": mask.step,
                "frame_id": mask.header.frame_id,
                "stamp": [mask.header.stamp.sec, mask.header.stamp.nanosec],
            },
        }
        if hasattr(res, "has_depth"):
            out["depth"] = {
                "has_depth": res.has_depth,
                "distance_m": res.distance_m,
                "distance_p10_m": res.distance_p10_m,
                "centroid": [res.centroid.x, res.centroid.y, res.centroid.z],
                "extent": [res.extent.x, res.extent.y, res.extent.z],
                "valid_fraction": res.depth_valid_fraction,
            }
        if res.success:
            self.arrays[name] = (
                np.frombuffer(mask.data, np.uint8).reshape(mask.height, mask.width).copy()
            )
        return out

    def call(self, name: str, request, timeout: float = 90.0) -> dict:
        started = time.monotonic()
        res = _wait(self.client.call_async(request), timeout)
        self.report["calls"][name] = self.summary(name, res, started)
        return self.report["calls"][name]

    def call_many(self, prefix: str, requests: list, timeout: float = 90.0, meanwhile=None) -> None:
        """Send all requests at once; `meanwhile()` runs while they are answered."""
        started = time.monotonic()
        futures = [self.client.call_async(r) for r in requests]
        finished: dict[int, float] = {}
        for n, future in enumerate(futures):
            future.add_done_callback(lambda _, n=n: finished.setdefault(n, time.monotonic()))
        if meanwhile is not None:
            meanwhile()
        for n, future in enumerate(futures):
            res = _wait(future, timeout)
            self.report["calls"][f"{prefix}{n}"] = self.summary(
                f"{prefix}{n}", res, started, finished.get(n)
            )

    def set_parameters(self, **values) -> None:
        client = AsyncParameterClient(self.node, self.node_name)
        if not client.wait_for_services(timeout_sec=10.0):
            raise TimeoutError("parameter services did not appear")
        results = _wait(
            client.set_parameters([Parameter(k, value=v) for k, v in values.items()]), 10.0
        )
        failed = [r.reason for r in results.results if not r.successful]
        if failed:
            raise RuntimeError(f"set_parameters failed: {failed}")

    def get_parameters(self, names: list[str]) -> list[dict]:
        """What a get_parameters request answers: one entry per name, or none at all."""
        client = AsyncParameterClient(self.node, self.node_name)
        if not client.wait_for_services(timeout_sec=10.0):
            raise TimeoutError("parameter services did not appear")
        values = _wait(client.get_parameters(names), 10.0).values
        out = []
        for name, value in zip(names, values):
            param = Parameter.from_parameter_msg(ParameterMsg(name=name, value=value))
            plain = list(param.value) if isinstance(param.value, (list, tuple)) else param.value
            out.append({"name": name, "type": param.type_.name, "value": plain})
        return out

    def set_typed(self, name: str, type_name: str, value) -> dict:
        """Set one parameter with an explicit type, as ros2cli sends it; the node's answer."""
        client = AsyncParameterClient(self.node, self.node_name)
        client.wait_for_services(timeout_sec=10.0)
        param = Parameter(name, Parameter.Type[type_name], value)
        result = _wait(client.set_parameters([param]), 10.0).results[0]
        return {"successful": result.successful, "reason": result.reason}

    def transition(self, transition_id: int) -> bool:
        client = self.node.create_client(ChangeState, f"{self.node_name}/change_state")
        client.wait_for_service(timeout_sec=10.0)
        req = ChangeState.Request()
        req.transition.id = transition_id
        return bool(_wait(client.call_async(req), 60.0).success)

    def finish(self) -> None:
        out = Path(self.spec["out_dir"])
        self.report["topics"] = self.topics
        self.report["published"] = self.published
        np.savez(out / "arrays.npz", **self.arrays)
        (out / "report.json").write_text(json.dumps(self.report))
        # Stop spinning before the node goes: destroying it under a live spin
        # thread can crash the interpreter at exit.
        self.executor.shutdown(timeout_sec=10.0)
        self.spinner.join(timeout=10.0)
        self.node.destroy_node()


def bad_image_requests(probe: Probe) -> dict[str, SegmentByInstruction.Request]:
    good = fill_image(Image(), frame_pixels(0), "rgb8")

    def image(**fields) -> Image:
        msg = fill_image(Image(), frame_pixels(0), "rgb8")
        for key, value in fields.items():
            setattr(
                msg, key, to_byte_array(np.asarray(value, np.uint8)) if key == "data" else value
            )
        return msg

    garbage = CompressedImage(format="jpeg")
    garbage.data = to_byte_array(np.frombuffer(b"\xff\xd8 certainly not a jpeg", np.uint8))
    return {
        "empty_instruction": probe.request("   ", good),
        "long_instruction": probe.request("segment the cable " * 60, good),
        "unsupported_encoding": probe.request("segment the cable", image(encoding="yuv422")),
        "bad_length": probe.request("segment the cable", image(data=np.zeros(100, np.uint8))),
        "zero_size": probe.request(
            "segment the cable", image(width=0, step=0, data=np.zeros(0, np.uint8))
        ),
        "absurd_size": probe.request("segment the cable", image(width=200000, step=600000)),
        "undecodable_compressed": probe.request("segment the cable", compressed=garbage),
        # Valid by every ROS-side check, but the model pipeline cannot resize a 1 x 3000 strip.
        "model_error": probe.request(
            "segment the cable", fill_image(Image(), np.zeros((1, 3000, 3), np.uint8), "rgb8")
        ),
    }


def scenario_no_frame(probe: Probe) -> None:
    probe.call("no_frame", probe.request("segment the cable"))


def scenario_main(probe: Probe) -> None:
    spec = probe.spec
    probe.record_topics(spec["standing_slugs"])
    probe.start_stream()
    time.sleep(1.5)  # discovery + a steady stream
    probe.call("latest", probe.request(spec["instruction"]))

    bgr = np.ascontiguousarray(frame_pixels(7)[:40, :56, ::-1])
    inline = fill_image(Image(), bgr, "bgr8")
    inline.header.frame_id, inline.header.stamp.sec = "inline_cam", 42
    probe.call("inline_bgr8", probe.request(spec["instruction"], inline))

    png = CompressedImage(format="png")
    png.data = to_byte_array(cv2.imencode(".png", bgr)[1])
    png.header.frame_id = "inline_png"
    probe.call("inline_png", probe.request(spec["instruction"], compressed=png))

    for name, req in bad_image_requests(probe).items():
        probe.call(f"bad_{name}", req)
    probe.call("good_after_bad", probe.request(spec["instruction"]))

    probe.call_many(
        "concurrent_", [probe.request(spec["instruction"]) for _ in range(spec["concurrent"])]
    )

    def empty_instruction_while_the_model_is_busy() -> None:
        time.sleep(0.15)  # both calls admitted (max_queued_requests=1), one running
        probe.call("check_first_bad", probe.request(""))

    probe.call_many(
        "check_first_",
        [probe.request(spec["instruction"]) for _ in range(2)],
        meanwhile=empty_instruction_while_the_model_is_busy,
    )

    probe.set_parameters(standing_instructions=spec["standing"], standing_rate=4.0)
    window_start = time.monotonic()
    time.sleep(spec["standing_seconds"])
    probe.set_parameters(standing_rate=0.0)
    probe.report["standing_window"] = [window_start, time.monotonic()]
    time.sleep(0.5)

    probe.report["deactivated"] = probe.transition(Transition.TRANSITION_DEACTIVATE)
    probe.call("while_inactive", probe.request(spec["instruction"]))
    probe.report["reactivated"] = probe.transition(Transition.TRANSITION_ACTIVATE)
    time.sleep(1.0)
    probe.call("after_reactivate", probe.request(spec["instruction"]))

    probe.stop_stream()
    time.sleep(spec["max_frame_age"] + 0.5)
    probe.call("too_old", probe.request(spec["instruction"]))


def scenario_compressed(probe: Probe) -> None:
    # A best_effort publisher cannot serve this node's reliable subscription.
    probe.start_stream(compressed=True, reliability=ReliabilityPolicy.BEST_EFFORT)
    time.sleep(probe.spec["warning_period"] + 1.0)
    probe.call("mismatch", probe.request(probe.spec["instruction"]))
    probe.stop_stream()
    probe.start_stream(compressed=True)
    time.sleep(1.5)
    for attempt in range(3):  # on a loaded machine a new publisher can take seconds to match
        message = probe.call("latest", probe.request(probe.spec["instruction"]))["message"]
        if "s old" not in message and "no frame received yet" not in message:
            break
        probe.report["latest_retries"] = attempt + 1
        time.sleep(1.0)
    probe.stop_stream()
    pub = probe.node.create_publisher(
        CompressedImage,
        probe.camera + "/compressed",
        QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE),
    )
    garbage = CompressedImage(format="jpeg")
    garbage.data = to_byte_array(np.frombuffer(b"\xff\xd8 truncated", np.uint8))
    for _ in range(10):  # until the node has it as its latest frame
        pub.publish(garbage)
        time.sleep(0.1)
    probe.call("undecodable_latest", probe.request(probe.spec["instruction"]))


def scenario_parameters(probe: Probe) -> None:
    names = probe.spec["names"]
    report = probe.report
    report["all"] = probe.get_parameters(names)
    # ros2cli sends "[]" as an empty bool array: it must clear the instructions.
    report["set_nonempty"] = probe.set_typed(
        "standing_instructions", "STRING_ARRAY", ["segment the person"]
    )
    report["after_set"] = probe.get_parameters(["standing_instructions"])
    report["clear"] = probe.set_typed("standing_instructions", "BOOL_ARRAY", [])
    report["after_clear"] = probe.get_parameters(["standing_instructions"])
    report["wrong_type"] = probe.set_typed("standing_instructions", "INTEGER_ARRAY", [3])


def scenario_states(probe: Probe) -> None:
    """A node started with autostart:=false and a model that cannot load."""
    probe.call("unconfigured", probe.request("segment the cable"), timeout=10.0)
    probe.report["configured"] = probe.transition(Transition.TRANSITION_CONFIGURE)
    probe.call("failed_configure", probe.request("segment the cable"), timeout=10.0)


def scenario_flood(probe: Probe) -> None:
    """Keep calls in flight until told to stop (the test interrupts the node meanwhile)."""
    spec = probe.spec
    probe.start_stream()
    time.sleep(1.0)
    pending: list = []
    answered = 0
    flooding = Path(spec["out_dir"]) / "flooding"
    flooding.write_text("calls in flight\n")
    end = time.monotonic() + spec["seconds"]
    while time.monotonic() < end:
        answered += sum(f.done() for f in pending)
        pending = [f for f in pending if not f.done()]
        while len(pending) < 2:  # 1 + max_queued_requests: none refused as busy
            pending.append(probe.client.call_async(probe.request(spec["instruction"])))
        time.sleep(0.02)
    probe.report["answered"] = answered


def scenario_stream(probe: Probe) -> None:
    """Camera frames at 30 Hz for a while (for the ros2 command-line tool tests)."""
    probe.start_stream()
    time.sleep(probe.spec["seconds"])


SCENARIOS = {
    "no_frame": scenario_no_frame,
    "main": scenario_main,
    "compressed": scenario_compressed,
    "parameters": scenario_parameters,
    "states": scenario_states,
    "flood": scenario_flood,
    "stream": scenario_stream,
    "depth": lambda probe: __import__("ros_depth_probe").scenario_depth(probe),
}


def main() -> int:
    spec = json.loads(sys.argv[1])
    rclpy.init()
    probe = Probe(spec)
    try:
        SCENARIOS[spec["scenario"]](probe)
    finally:
        probe.stop_stream()
        probe.finish()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
