"""`minelisa eval`: run a model over MUSeg samples and report gIoU / cIoU."""

from __future__ import annotations

import argparse

from ..model_options import add_model_arguments
from .data_args import add_data_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Evaluate a model with the paper's protocol: one sample per (image, class present), the "
        "instruction 'Please segment the {class_name} in this image.', batch 1, gIoU = mean "
        "per-sample IoU, cIoU = sum(I)/sum(U), no-target rule. Each image is encoded once for all "
        "its instructions. Writes a JSON report, the predicted masks (<image id>__<class id>.png, "
        "which 'minelisa score' re-scores to the same numbers) and optional overlays."
    )
    parser.epilog = (
        "example: minelisa eval --model bundle/ --data /data/MUSeg --split val --out val.json "
        "--overlays overlays/"
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="report JSON to write")
    parser.add_argument(
        "--masks",
        default=None,
        metavar="DIR",
        help="where to write predicted masks (default: next to --out, <out stem>_masks/)",
    )
    parser.add_argument(
        "--overlays", default=None, metavar="DIR", help="write one overlay JPEG per sample here"
    )
    parser.add_argument(
        "--depth",
        action="store_true",
        help="also report, per class, the error in metres of the predicted mask's median depth "
        "against the ground truth's (Depth/<id>.png; 3D centroid errors too when "
        "Experiment/intrinsics.json exists)",
    )
    add_model_arguments(parser, chat=False)
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import museg, runtime
    from ..depth import format_depth_table
    from ..engine import SegmentationEngine
    from ..evaluation import evaluate, format_table, write_report
    from ..image_io import check_output_file
    from ..model_options import ModelOptions
    from .data_args import load_samples

    options = ModelOptions.from_args(args)
    out = Path(args.out)
    if out.is_dir():
        check_output_file(out)
    samples, class_map, split, skipped = load_samples(args, progress=runtime.is_main_process())
    runtime.init_distributed()  # under torchrun: each rank evaluates every N-th image
    engine = SegmentationEngine.from_options(options)
    masks = Path(args.masks) if args.masks else out.with_name(out.stem + "_masks")
    intrinsics = museg.read_intrinsics(args.data) if args.depth else None
    report = evaluate(
        engine,
        samples,
        class_map,
        masks_dir=masks,
        overlays_dir=args.overlays,
        skipped=skipped,
        depth=args.depth,
        intrinsics=intrinsics,
    )
    if report is None:  # another rank writes the report
        return 0
    model = {"path": options.path, "device": str(engine.device), "dtype": _dtype_name(engine)}
    report.update(split=split, data=str(args.data), class_map=class_map.source, model=model)
    write_report(report, out)
    print(format_table(report))
    if "depth" in report:
        print(format_depth_table(report["depth"]))
    print(f"report: {out}\nmasks: {masks}")
    return 0


def _dtype_name(engine) -> str:
    from ..runtime import DTYPES

    return next(k for k, v in DTYPES.items() if v == engine.model.dtype)
