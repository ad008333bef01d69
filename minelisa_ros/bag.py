"""`minelisa bag`: segment the camera images of a rosbag2 into a new bag, without ROS.

Reads a rosbag2 directory (sqlite3 or MCAP storage) with `rosbags`, runs the
engine on every image of one topic (sensor_msgs/Image or CompressedImage), and
writes a new bag holding the original messages plus a mono8 mask topic and an
rgb8 overlay topic. Each mask/overlay carries the source image's header and
its bag timestamp, so `ros2 bag play` shows them in step with the camera.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
STORAGES = ("sqlite3", "mcap")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split("\n", 1)[1].strip()
    parser.epilog = (
        "example:\n"
        "  minelisa bag --in drive_2024_05 --topic /camera/image_raw \\\n"
        "      --instruction 'segment the exposed cable' --model bundle/ --out drive_2024_05_cable\n"
        "  ros2 bag play drive_2024_05_cable   # rviz: /minelisa/mask, /minelisa/overlay"
    )
    parser.add_argument("--in", dest="input", required=True, type=Path,
                        help="rosbag2 directory (the folder holding metadata.yaml), sqlite3 or MCAP")
    parser.add_argument("--topic", required=True, help="image topic to segment (Image or CompressedImage)")
    parser.add_argument("--instruction", required=True, help="what to segment, e.g. 'segment the person'")
    parser.add_argument("--out", required=True, type=Path, help="new bag directory (must not exist)")
    parser.add_argument("--model", required=True, type=Path, help="MineLISA bundle or LISA checkpoint directory")
    parser.add_argument("--vision-tower", type=Path, default=None,
                        help="local CLIP ViT-L/14 directory (LISA checkpoints that name a hub id)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N (default: cpu)")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"), help="model precision")
    parser.add_argument("--mode", default="fast", choices=("fast", "chat"),
                        help="fast: mask only; chat: also generate an answer text (slower)")
    parser.add_argument("--mask-topic", default="/minelisa/mask", help="output mask topic (mono8 0/255)")
    parser.add_argument("--overlay-topic", default="/minelisa/overlay",
                        help="output overlay topic (rgb8); '' to skip overlays")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0..1 (default 0.5)")
    parser.add_argument("--every", type=int, default=1, help="segment every N-th image (default 1: all)")
    parser.add_argument("--storage", choices=STORAGES, default=None,
                        help="storage of the new bag (default: that of the input)")
    parser.add_argument("--only-results", action="store_true",
                        help="write only the mask/overlay topics, not a copy of the input")


def _input_storage(bag: Path) -> str:
    import yaml

    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return str(info.get("storage_identifier") or "sqlite3")


def _check(args: argparse.Namespace) -> str | None:
    if not (args.input / "metadata.yaml").is_file():
        return f"--in {args.input}: not a rosbag2 directory (no metadata.yaml)"
    if args.out.exists():
        return f"--out {args.out} already exists; choose a new directory"
    if not args.instruction.strip():
        return "--instruction is empty"
    if args.every < 1:
        return f"--every must be >= 1, got {args.every}"
    if not 0.0 <= args.alpha <= 1.0:
        return f"--alpha must be within 0..1, got {args.alpha}"
    if args.mask_topic == args.topic or args.overlay_topic == args.topic:
        return "the output topics must differ from --topic"
    return None


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"minelisa bag: error: {problem}", file=sys.stderr)
        return 2

    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from tqdm import tqdm

    from minelisa_training.checkpoint import CheckpointError
    from minelisa_training.engine import SegmentationEngine

    from .image_conversion import compressed_to_rgb, image_to_rgb, mask_to_mono8
    from minelisa_training.visualization import overlay_mask

    typestore = get_typestore(Stores.ROS2_JAZZY)
    image_type = "sensor_msgs/msg/Image"
    Image = typestore.types[image_type]

    with AnyReader([args.input], default_typestore=typestore) as reader:
        sources = [c for c in reader.connections if c.topic == args.topic]
        if not sources:
            images = sorted({c.topic for c in reader.connections if c.msgtype in IMAGE_TYPES})
            print(f"minelisa bag: error: topic {args.topic} is not in {args.input}; image topics there: "
                  f"{', '.join(images) or 'none'}", file=sys.stderr)
            return 2
        if sources[0].msgtype not in IMAGE_TYPES:
            print(f"minelisa bag: error: {args.topic} holds {sources[0].msgtype}, not an image type",
                  file=sys.stderr)
            return 2

        try:
            engine = SegmentationEngine.from_pretrained(
                args.model, vision_tower=args.vision_tower, device=args.device, dtype=args.dtype, mode=args.mode
            )
        except CheckpointError as exc:
            print(f"minelisa bag: error: {exc}", file=sys.stderr)
            return 2
        storage = args.storage or _input_storage(args.input)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        skipped: Counter[str] = Counter()
        done, model_ms = 0, 0.0
        with Writer(args.out, version=9, storage_plugin=plugin) as writer:
            copies = {}
            if not args.only_results:
                for conn in reader.connections:
                    copies[conn.id] = writer.add_connection(
                        conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest,
                        serialization_format=conn.ext.serialization_format,
                        offered_qos_profiles=conn.ext.offered_qos_profiles,
                    )
            mask_conn = writer.add_connection(args.mask_topic, image_type, typestore=typestore)
            overlay_conn = (
                writer.add_connection(args.overlay_topic, image_type, typestore=typestore)
                if args.overlay_topic else None
            )

            total = sum(c.msgcount for c in sources)
            seen = 0
            connections = reader.connections if copies else sources
            with tqdm(total=total, desc=f"segmenting {args.topic}", unit="img") as progress:
                for conn, timestamp, raw in reader.messages(connections=connections):
                    if conn.id in copies:
                        writer.write(copies[conn.id], timestamp, raw)
                    if conn.topic != args.topic:
                        continue
                    progress.update(1)
                    seen += 1
                    if (seen - 1) % args.every:
                        continue
                    msg = reader.deserialize(raw, conn.msgtype)
                    try:
                        convert = compressed_to_rgb if conn.msgtype.endswith("CompressedImage") else image_to_rgb
                        rgb = convert(msg)
                        result = engine.segment(rgb, args.instruction)[0]
                    except ValueError as exc:  # a bad frame (ImageConversionError, InvalidInputError)
                        skipped[str(exc)] += 1
                        continue
                    done += 1
                    model_ms += result.timings.get("total_ms", 0.0)
                    outputs = [(mask_conn, mask_to_mono8(result.mask), "mono8")]
                    if overlay_conn is not None:
                        outputs.append((overlay_conn, overlay_mask(rgb, result.mask, args.alpha), "rgb8"))
                    for out_conn, pixels, encoding in outputs:
                        height, width = pixels.shape[:2]
                        image = Image(
                            header=msg.header, height=height, width=width, encoding=encoding, is_bigendian=0,
                            step=pixels.strides[0], data=pixels.reshape(-1),
                        )
                        writer.write(out_conn, timestamp, typestore.serialize_cdr(image, image_type))

    mean = f", {model_ms / done:.0f} ms per image" if done else ""
    print(f"segmented {done} image(s) of {args.topic}{mean}; wrote {args.out} ({storage})")
    for reason, count in skipped.items():
        print(f"skipped {count} image(s): {reason}", file=sys.stderr)
    return 0 if done or not total else 1
