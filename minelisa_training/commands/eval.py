"""`minelisa eval`: run a model over MUSeg samples and report gIoU / cIoU."""
from __future__ import annotations

import argparse

from .data_args import add_data_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Evaluate a model with the paper's protocol: one sample per (image, class present), the "
        "instruction 'Please segment the {class_name} in this image.', batch 1, gIoU = mean per-sample "
        "IoU, cIoU = sum(I)/sum(U), no-target rule. Each image is encoded once for all its instructions. "
        "Writes a JSON report, the predicted masks (<image id>__<class id>.png, which 'minelisa score' "
        "re-scores to the same numbers) and optional overlays."
    )
    parser.epilog = ("example: minelisa eval --model bundle/ --data /data/MUSeg --split val --out val.json "
                     "--overlays overlays/")
    parser.add_argument("--model", required=True, metavar="DIR", help="exported bundle or LISA checkpoint folder")
    parser.add_argument("--vision-tower", default=None, metavar="DIR",
                        help="local CLIP ViT-L/14 folder (LISA checkpoints name a hub id instead)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--dtype", default=None, choices=("fp32", "fp16", "bf16"),
                        help="inference precision (default: fp16 on GPU as the paper, fp32 on CPU)")
    parser.add_argument("--out", required=True, metavar="FILE", help="report JSON to write")
    parser.add_argument("--masks", default=None, metavar="DIR",
                        help="where to write predicted masks (default: next to --out, <out stem>_masks/)")
    parser.add_argument("--overlays", default=None, metavar="DIR", help="write one overlay JPEG per sample here")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..checkpoint import CheckpointError
    from ..engine import SegmentationEngine
    from ..evaluation import evaluate, format_table, write_report
    from .data_args import load_samples

    dtype = args.dtype or ("fp32" if args.device == "cpu" else "fp16")
    try:
        samples, class_map, split, skipped = load_samples(args)
        engine = SegmentationEngine.from_pretrained(args.model, vision_tower=args.vision_tower, device=args.device,
                                                    dtype=dtype)
    except (FileNotFoundError, ValueError, CheckpointError) as exc:
        print(f"minelisa eval: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    masks = Path(args.masks) if args.masks else out.with_name(out.stem + "_masks")
    report = evaluate(engine, samples, class_map, masks_dir=masks, overlays_dir=args.overlays, skipped=skipped)
    report.update(split=split, data=str(args.data), class_map=class_map.source,
                  model={"path": str(args.model), "device": args.device, "dtype": dtype})
    write_report(report, out)
    print(format_table(report))
    print(f"report: {out}\nmasks: {masks}")
    return 0
