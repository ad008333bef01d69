"""`minelisa bag`: segment the camera images of a rosbag2 into a new bag, without ROS.

Reads a rosbag2 directory (sqlite3 or MCAP storage) with `rosbags`, runs the
engine on every image of one topic (sensor_msgs/Image or CompressedImage), and
writes a new bag holding the original messages plus a mono8 mask topic and an
rgb8 overlay topic. Each mask/overlay carries the source image's header and
its bag timestamp, so `ros2 bag play` shows them in step with the camera.
With --depth-topic and --camera-info-topic it also writes what the node publishes
with use_depth: a result (distance, centroid, extent), a point cloud and markers
(`bag_depth`). The new bag is written under a temporary name beside --out and renamed
when complete: an interrupted run leaves no half-written bag at --out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minelisa_training.errors import InvalidInputError
from minelisa_training.model_options import add_model_arguments

from . import bag_depth

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
IMAGE_TYPE = "sensor_msgs/msg/Image"
STORAGES = ("sqlite3", "mcap")
EPILOG = (
    "example:\n"
    "  minelisa bag --in drive_2024_05 --topic /camera/image_raw \\\n"
    "      --instruction 'segment the exposed cable' --model bundle/ \\\n"
    "      --out drive_2024_05_cable\n"
    "  ros2 bag play drive_2024_05_cable   # rviz: /minelisa/mask, /minelisa/overlay\n"
    "\n"
    "with an RGB-D camera (depth registered to the colour image):\n"
    "  minelisa bag --in drive_2024_05 --topic /camera/color/image_raw \\\n"
    "      --depth-topic /camera/aligned_depth_to_color/image_raw \\\n"
    "      --camera-info-topic /camera/color/camera_info \\\n"
    "      --instruction 'segment the person' --model bundle/ --out drive_2024_05_person\n"
    "  # adds /minelisa/result (distance_m, centroid, extent), /minelisa/points and\n"
    "  # /minelisa/markers ('person 3.2 m'), as the node with use_depth"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `minelisa bag` (the model options are the shared ones)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split("\n", 1)[1].strip()
    parser.epilog = EPILOG
    parser.add_argument(
        "--in",
        dest="input",
        required=True,
        type=Path,
        help="rosbag2 directory (the folder holding metadata.yaml), sqlite3 or MCAP",
    )
    parser.add_argument(
        "--topic", required=True, help="image topic to segment (Image or CompressedImage)"
    )
    parser.add_argument(
        "--instruction", required=True, help="what to segment, e.g. 'segment the person'"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="new bag directory (must not exist)"
    )
    parser.add_argument(
        "--mask-topic", default="/minelisa/mask", help="output mask topic (mono8 0/255)"
    )
    parser.add_argument(
        "--overlay-topic",
        default="/minelisa/overlay",
        help="output overlay topic (rgb8); '' to skip overlays",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="overlay opacity 0..1 (default 0.5)"
    )
    parser.add_argument(
        "--every", type=int, default=1, help="segment every N-th image (default 1: all)"
    )
    parser.add_argument(
        "--storage",
        choices=STORAGES,
        default=None,
        help="storage of the new bag (default: that of the input)",
    )
    parser.add_argument(
        "--only-results",
        action="store_true",
        help="write only the mask/overlay topics, not a copy of the input",
    )
    bag_depth.add_arguments(parser)
    add_model_arguments(parser)


def _check(args: argparse.Namespace) -> None:
    problem = None
    if not (args.input / "metadata.yaml").is_file():
        problem = f"--in {args.input}: not a rosbag2 directory (no metadata.yaml)"
    elif args.out.exists():
        problem = f"--out {args.out} already exists; choose a new directory"
    elif not args.instruction.strip():
        problem = "--instruction is empty"
    elif args.every < 1:
        problem = f"--every must be >= 1, got {args.every}"
    elif not 0.0 <= args.alpha <= 1.0:
        problem = f"--alpha must be within 0..1, got {args.alpha}"
    elif args.topic in (args.mask_topic, args.overlay_topic):
        problem = "the output topics must differ from --topic"
    else:
        problem = bag_depth.check(args)
    if problem:
        raise InvalidInputError(problem)


def _input_storage(bag: Path) -> str:
    import yaml

    try:
        meta = yaml.safe_load((bag / "metadata.yaml").read_text())
        info = meta["rosbag2_bagfile_information"]
        return str(info.get("storage_identifier") or "sqlite3")
    except (yaml.YAMLError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"--in {bag}: metadata.yaml is not rosbag2 metadata ({type(exc).__name__}: {exc})"
        ) from None


@contextmanager
def _readable(bag: Path) -> Iterator[None]:
    """Turn the readers' errors on a corrupt bag into one clear `InvalidInputError`."""
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError

    try:
        yield
    except (AnyReaderError, ReaderError, sqlite3.DatabaseError, KeyError, EOFError) as exc:
        raise InvalidInputError(
            f"--in {bag}: cannot read the bag (corrupt or incomplete?): {exc}"
        ) from None


@contextmanager
def _atomic_bag_dir(out: Path) -> Iterator[Path]:
    """A bag path inside a temporary folder beside `out`, renamed to `out` on success.

    The bag inside keeps the final name, so its storage file is named as rosbags
    names it for `out` (e.g. `<out>/<out name>.db3`).
    """
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging / out.name
        os.rename(staging / out.name, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass
class _Tally:
    done: int = 0
    total: int = 0
    model_ms: float = 0.0
    skipped: Counter = field(default_factory=Counter)
    depth: bag_depth.DepthTally | None = None  # with --depth-topic


def _source(reader: Any, args: argparse.Namespace) -> list[Any]:
    sources = [c for c in reader.connections if c.topic == args.topic]
    if not sources:
        images = sorted({c.topic for c in reader.connections if c.msgtype in IMAGE_TYPES})
        raise InvalidInputError(
            f"topic {args.topic} is not in {args.input}; image topics there: "
            f"{', '.join(images) or 'none'}"
        )
    if sources[0].msgtype not in IMAGE_TYPES:
        raise InvalidInputError(f"{args.topic} holds {sources[0].msgtype}, not an image type")
    return sources


def run(args: argparse.Namespace) -> int:
    """Segment the bag's images; 0 when at least one image (or none at all) was segmented."""
    _check(args)
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from minelisa_training.engine import SegmentationEngine
    from minelisa_training.model_options import ModelOptions

    options = ModelOptions.from_args(args)
    storage = args.storage or _input_storage(args.input)
    typestore = get_typestore(Stores.ROS2_JAZZY)
    with _readable(args.input), ExitStack() as stack:
        reader = stack.enter_context(AnyReader([args.input], default_typestore=typestore))
        sources = _source(reader, args)
        # Depth topics are checked and indexed before the model loads: a wrong name fails fast.
        depth = bag_depth.open_source(reader, args, typestore, stack)
        engine = SegmentationEngine.from_options(options)
        with _atomic_bag_dir(args.out) as staging:
            tally = _write(
                reader, sources, _Outputs(engine, typestore, args, depth), staging, storage
            )
    mean = f", {tally.model_ms / tally.done:.0f} ms per image" if tally.done else ""
    with_depth = f"; {tally.depth.summary(args.depth_topic)}" if tally.depth else ""
    print(
        f"segmented {tally.done} image(s) of {args.topic}{mean}{with_depth}; "
        f"wrote {args.out} ({storage})"
    )
    for reason, count in tally.skipped.items():
        print(f"skipped {count} image(s): {reason}", file=sys.stderr)
    for line in tally.depth.problems() if tally.depth else []:
        print(line, file=sys.stderr)
    return 0 if tally.done or not tally.total else 1


class _Outputs:
    """The model and what each segmented image adds to the new bag: mask, overlay and,
    with a depth source, the depth outputs."""

    def __init__(self, engine: Any, typestore: Any, args: argparse.Namespace, depth: Any) -> None:
        self.engine, self.args, self._store, self._depth_source = engine, args, typestore, depth
        self._writer: Any = None
        self._connections: list[Any] = []
        self.depth: bag_depth.DepthOutputs | None = None

    def open(self, writer: Any) -> None:
        """Add the output connections to `writer` (after the copies of the input's)."""
        self._writer, args = writer, self.args
        topics = [args.mask_topic] + ([args.overlay_topic] if args.overlay_topic else [])
        self._connections = [
            writer.add_connection(topic, IMAGE_TYPE, typestore=self._store) for topic in topics
        ]
        if self._depth_source is not None:
            self.depth = bag_depth.DepthOutputs(self._depth_source, writer, self._store, args)

    def write(self, timestamp: int, msg: Any, msgtype: str, tally: _Tally) -> None:
        """Segment one image message and write its outputs at its bag time `timestamp`."""
        from minelisa_training.visualization import overlay_mask

        from .image_conversion import mask_to_mono8

        segmented = _segment(msg, msgtype, self.engine, self.args, tally)
        if segmented is None:
            return
        rgb, result, inference_ms = segmented
        mask = _image(self._store, msg.header, mask_to_mono8(result.mask), "mono8")
        images = [mask]
        if self.args.overlay_topic:
            overlay = overlay_mask(rgb, result.mask, self.args.alpha)
            images.append(_image(self._store, msg.header, overlay, "rgb8"))
        for conn, image in zip(self._connections, images):
            self._writer.write(conn, timestamp, self._store.serialize_cdr(image, IMAGE_TYPE))
        if self.depth is not None:
            item = bag_depth.Segmented(result, msg.header, mask, inference_ms)
            self.depth.write(timestamp, item)


def _write(reader: Any, sources: list[Any], outputs: _Outputs, path: Path, storage: str) -> _Tally:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    args = outputs.args
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    tally = _Tally(total=sum(c.msgcount for c in sources))
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        copies = (
            {}
            if args.only_results
            else {
                conn.id: writer.add_connection(
                    conn.topic,
                    conn.msgtype,
                    msgdef=conn.msgdef.data,
                    rihs01=conn.digest,
                    serialization_format=conn.ext.serialization_format,
                    offered_qos_profiles=conn.ext.offered_qos_profiles,
                )
                for conn in reader.connections
            }
        )
        outputs.open(writer)
        tally.depth = outputs.depth.tally if outputs.depth is not None else None
        seen = 0
        connections = reader.connections if copies else sources
        with tqdm(total=tally.total, desc=f"segmenting {args.topic}", unit="img") as progress:
            for conn, timestamp, raw in reader.messages(connections=connections):
                if conn.id in copies:
                    writer.write(copies[conn.id], timestamp, raw)
                if conn.topic != args.topic:
                    continue
                progress.update(1)
                seen += 1
                if (seen - 1) % args.every == 0:
                    msg = reader.deserialize(raw, conn.msgtype)
                    outputs.write(timestamp, msg, conn.msgtype, tally)
    return tally


def _segment(
    msg: Any, msgtype: str, engine: Any, args: argparse.Namespace, tally: _Tally
) -> tuple[Any, Any, float] | None:
    """The RGB pixels, the engine's result and its milliseconds; None for a bad frame
    (counted)."""
    from .image_conversion import compressed_to_rgb, image_to_rgb

    convert = compressed_to_rgb if msgtype.endswith("CompressedImage") else image_to_rgb
    try:
        rgb = convert(msg)
        start = time.perf_counter()
        result = engine.segment(rgb, args.instruction)
    except InvalidInputError as exc:  # a bad frame (ImageConversionError and the engine's)
        tally.skipped[str(exc)] += 1
        return None
    inference_ms = (time.perf_counter() - start) * 1000.0
    tally.model_ms += inference_ms
    tally.done += 1
    return rgb, result, inference_ms


def _image(typestore: Any, header: Any, pixels: Any, encoding: str) -> Any:
    """A rosbags sensor_msgs/Image of `pixels` with the source image's header."""
    height, width = pixels.shape[:2]
    return typestore.types[IMAGE_TYPE](
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=pixels.strides[0],
        data=pixels.reshape(-1),
    )
