"""The ROS node's own overhead next to a direct engine call, and its memory over a stream.

    .venv/bin/python benchmarks/bench_node.py [--calls 5] [--seconds 60]

Builds the package's interfaces with the ROS 2 wheels (as the tests do),
writes a tiny random-weight bundle, re-runs itself with the ROS environment,
then measures at 640x480, 1082x932 and 1920x1080:

* the direct `engine.segment()` call (no ROS);
* the node's per-request work beside the model, in process: frame conversion,
  mask message, overlay (the overlay is published on a worker thread, off the
  service path);
* service calls on a running node (inline image, and the latest camera frame
  of a 30 Hz stream): `total_ms - inference_ms` as the node reports it (the
  node's overhead) and the client's round trip minus `inference_ms`
  (adds DDS transfer of the request image and the response mask);
* the node's resident memory while it receives 1920x1080 at 30 Hz and segments
  a standing instruction continuously for --seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from ros_helpers import NodeProcess, build_interfaces, ros_env  # noqa: E402

SIZES = ((480, 640), (932, 1082), (1080, 1920))
INSTRUCTION = "segment the exposed cable"
CHILD = "MINELISA_BENCH_CHILD"


def median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def in_thread(fn):
    """Run fn on a fresh thread, as the node's executor threads run the engine.

    On this 2-core box under load, torch called from a non-main thread ran about
    3x faster than from the main thread (OpenMP oversubscription), so the direct
    call is timed the same way to compare like with like.
    """
    out: list = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    worker.join()
    return out[0]


def frame(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=size + (3,), dtype=np.uint8)


def depth_case(size: tuple[int, int]):
    """A typical object (an ellipse over 10% of the frame) on a tilted wall 2-6 m away
    (uint16 mm, 1% noise, 3% invalid), with intrinsics of a ~90 degree camera."""
    from bench_depth import make_depth, make_mask

    from minelisa_training.depth import Intrinsics

    h, w = size
    intr = Intrinsics(0.48 * w, 0.48 * w, (w - 1) / 2, (h - 1) / 2, w, h)
    return make_mask(w, h, 0.10), make_depth(w, h, "uint16"), intr


def depth_outputs(mask, depth, intr) -> None:
    """What the node does per result with use_depth and ~/points subscribed: the
    statistics (distance, centroid, extent) and the cloud message at its defaults."""
    from std_msgs.msg import Header

    from minelisa_ros.spatial import points_message
    from minelisa_training.depth import mask_depth_stats, mask_points

    mask_depth_stats(mask, depth, intr, erode_px=3)
    points_message(mask_points(mask, depth, intr, voxel_m=0.02), Header())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def bench(args: argparse.Namespace, setup: dict) -> dict:
    import rclpy
    from minelisa.srv import SegmentByInstruction
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from minelisa_ros.image_conversion import fill_image, image_to_rgb, mask_to_mono8
    from minelisa_ros.parameters import standing_slugs
    from minelisa_training.engine import SegmentationEngine
    from minelisa_training.visualization import overlay_mask

    report: dict = {"sizes": {}, "memory": []}
    engine = SegmentationEngine.from_pretrained(setup["bundle"])
    for size in SIZES:
        rgb = frame(size)
        row = report["sizes"].setdefault(f"{size[1]}x{size[0]}", {})
        mask = engine.segment(rgb, INSTRUCTION).mask
        rgb_msg = fill_image(Image(), rgb, "rgb8")
        bgr_msg = fill_image(Image(), np.ascontiguousarray(rgb[..., ::-1]), "bgr8")
        row["convert_rgb8_ms"] = median_ms(lambda m=rgb_msg: image_to_rgb(m), 20)
        row["convert_bgr8_ms"] = median_ms(lambda m=bgr_msg: image_to_rgb(m), 20)
        row["mask_msg_ms"] = median_ms(
            lambda m=mask: fill_image(Image(), mask_to_mono8(m), "mono8"), 20
        )
        row["overlay_msg_ms"] = median_ms(
            lambda p=rgb, m=mask: fill_image(Image(), overlay_mask(p, m), "rgb8"), 10
        )
        case = depth_case(size)
        row["depth_ms"] = median_ms(lambda c=case: depth_outputs(*c), 10)

    rclpy.init()
    client_node = rclpy.create_node("minelisa_bench")
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(client_node)
    threading.Thread(target=executor.spin, daemon=True).start()
    env = os.environ.copy()
    node = NodeProcess(
        env,
        Path(setup["work"]) / "node.log",
        [
            "-p",
            f"model_path:={setup['bundle']}",
            "-r",
            "image:=/bench/image",
            "-p",
            "max_frame_age:=10.0",
        ],
    )
    try:
        node.wait_for("active:", timeout=300)
        client = client_node.create_client(SegmentByInstruction, "/minelisa/segment_by_instruction")
        assert client.wait_for_service(timeout_sec=60)
        # Subscribers make the node publish (overlays included); standing results have topics
        # of their own, named after the instruction.
        slug = standing_slugs([INSTRUCTION])[0]
        received = {
            "mask": 0,
            "overlay": 0,
            f"standing/{slug}/mask": 0,
            f"standing/{slug}/overlay": 0,
        }
        for name in received:
            client_node.create_subscription(
                Image,
                f"/minelisa/{name}",
                lambda _, n=name: received.__setitem__(n, received[n] + 1),
                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE),
            )
        camera = client_node.create_publisher(Image, "/bench/image", qos_profile_sensor_data)

        def call(request) -> tuple[float, float, float]:
            start = time.perf_counter()
            response = client.call(request, timeout_sec=300)
            rtt = (time.perf_counter() - start) * 1000.0
            assert response is not None and response.success, getattr(
                response, "message", "timeout"
            )
            return rtt, response.total_ms, response.inference_ms

        def stream(size: tuple[int, int], stop: threading.Event) -> None:
            msg = fill_image(Image(), frame(size, seed=1), "rgb8")
            next_t = time.monotonic()
            while not stop.is_set():
                msg.header.stamp = client_node.get_clock().now().to_msg()
                camera.publish(msg)
                next_t += 1.0 / args.rate
                time.sleep(max(0.0, next_t - time.monotonic()))

        for size in SIZES:
            row = report["sizes"][f"{size[1]}x{size[0]}"]
            # Direct calls right before the node's, so both see the same machine load.
            rgb = frame(size)
            row["engine_ms"] = in_thread(
                lambda p=rgb: median_ms(lambda: engine.segment(p, INSTRUCTION), args.calls)
            )
            inline = SegmentByInstruction.Request(
                instruction=INSTRUCTION, image=fill_image(Image(), frame(size), "rgb8")
            )
            for mode, request in (
                ("inline", inline),
                ("latest", SegmentByInstruction.Request(instruction=INSTRUCTION)),
            ):
                stop = threading.Event()
                streamer = threading.Thread(target=stream, args=(size, stop), daemon=True)
                if mode == "latest":
                    streamer.start()
                    time.sleep(1.0)
                call(request)  # warm-up
                samples = [call(request) for _ in range(args.calls)]
                stop.set()
                if streamer.is_alive():
                    streamer.join()
                row[f"{mode}_node_overhead_ms"] = statistics.median(t - i for _, t, i in samples)
                row[f"{mode}_client_overhead_ms"] = statistics.median(r - i for r, _, i in samples)
                row[f"{mode}_round_trip_ms"] = statistics.median(r for r, _, _ in samples)
                row[f"{mode}_inference_ms"] = statistics.median(i for _, _, i in samples)
        report["topic_messages"] = dict(received)
        engine = None  # free its memory before the memory run

        # Memory: 1080p at 30 Hz in, a standing instruction segmented back to back.
        params = AsyncParameterClient(client_node, "/minelisa")
        params.wait_for_services(timeout_sec=10)
        params.set_parameters(
            [
                Parameter("standing_instructions", value=[INSTRUCTION]),
                Parameter("standing_rate", value=30.0),
            ]
        )
        stop = threading.Event()
        streamer = threading.Thread(target=stream, args=(SIZES[-1], stop), daemon=True)
        streamer.start()
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            time.sleep(1.0)
            report["memory"].append((round(time.monotonic() - start, 1), rss_mb(node.proc.pid)))
        stop.set()
        streamer.join()
        report["topic_messages_total"] = dict(received)
    finally:
        node.stop()
        executor.shutdown()
        rclpy.try_shutdown()
    return report


def print_report(report: dict, seconds: int) -> None:
    print("\nPer request, median ms (tiny random-weight model on this machine's CPU):\n")
    print(
        "| size | engine.segment direct | node inference_ms | client round trip | convert rgb8 "
        "| convert bgr8 | mask msg | overlay msg* | depth stats + cloud** | node overhead inline "
        "| node overhead latest | client RTT - inference inline | latest |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size, r in report["sizes"].items():
        print(
            f"| {size} | {r['engine_ms']:.0f} | {r['inline_inference_ms']:.0f} | {r['inline_round_trip_ms']:.0f} "
            f"| {r['convert_rgb8_ms']:.2f} | {r['convert_bgr8_ms']:.2f} "
            f"| {r['mask_msg_ms']:.2f} | {r['overlay_msg_ms']:.1f} | {r['depth_ms']:.2f} "
            f"| {r['inline_node_overhead_ms']:.2f} "
            f"| {r['latest_node_overhead_ms']:.2f} | {r['inline_client_overhead_ms']:.1f} "
            f"| {r['latest_client_overhead_ms']:.1f} |"
        )
    print("\n* published on the node's topic worker thread, not on the service path")
    print(
        "** with use_depth: distance/centroid/extent of a mask over 10% of the frame plus "
        "its ~/points message at 2 cm voxels (the defaults); the cloud only while subscribed"
    )
    memory = report["memory"]
    if memory:
        print(
            f"\nNode RSS (MB) while it receives 1920x1080 at 30 Hz and segments continuously, "
            f"per 10 s window over {seconds} s:\n"
        )
        print("| window s | min | mean | max |")
        print("|---|---|---|---|")
        for start in range(0, seconds, 10):
            window = [m for t, m in memory if start < t <= start + 10]
            if window:
                print(
                    f"| {start}-{start + 10} | {min(window):.0f} | {statistics.mean(window):.0f} | {max(window):.0f} |"
                )
    print(f"topic messages received by the client: {report.get('topic_messages_total')}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls", type=int, default=5, help="timed calls per size and mode (median)"
    )
    parser.add_argument("--seconds", type=int, default=60, help="length of the memory run")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args()
    if CHILD not in os.environ:
        work = Path(tempfile.mkdtemp(prefix="minelisa_bench_"))
        print(f"building interfaces and a tiny bundle in {work} ...", flush=True)
        prefix = build_interfaces(work)
        from minelisa_training.testing import write_tiny_bundle

        bundle = write_tiny_bundle(work / "bundle", seed=0)
        env = ros_env(prefix, domain_id=10 + os.getpid() % 90)
        env[CHILD] = json.dumps({"work": str(work), "bundle": str(bundle)})
        os.execve(
            sys.executable, [sys.executable, *sys.argv], env
        )  # LD_LIBRARY_PATH must be set at start
    report = bench(args, json.loads(os.environ[CHILD]))
    print_report(report, args.seconds)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
