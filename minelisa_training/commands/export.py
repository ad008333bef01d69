"""`minelisa export`: merge a run's LoRA into the base model and write the serving bundle."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "The bundle (minelisa.json, model.safetensors, tokenizer, model_card.json) loads with "
        "`minelisa segment/eval --model BUNDLE` and in the ROS node; it needs no --vision-tower."
    )
    parser.add_argument(
        "--run", required=True, help="a run folder written by `minelisa train --out`"
    )
    parser.add_argument(
        "--out", required=True, help="bundle folder to write (replaced only once complete)"
    )
    parser.add_argument(
        "--which",
        choices=("best", "last"),
        default="best",
        help="best: the weights with the best validation gIoU (default); last: the newest checkpoint",
    )
    parser.add_argument(
        "--dtype",
        choices=("auto", "fp32", "fp16", "bf16"),
        default="auto",
        help="weight dtype of the bundle (default auto: the run's training precision, fp16 for "
        "the paper's recipe; the base model loads straight into it)",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import MineLisaError
    from ..training.export import export_run

    try:
        path = export_run(args.run, args.out, which=args.which, dtype=args.dtype)
    except (MineLisaError, FileNotFoundError) as exc:
        print(f"minelisa export: {exc}", file=sys.stderr)
        return getattr(exc, "exit_status", 2)
    print(f"wrote {path}")
    return 0
