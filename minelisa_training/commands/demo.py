"""`minelisa demo`: synthetic MUSeg data -> evaluate -> fine-tune (paper recipe) -> export -> evaluate."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
The main job, end to end on a CPU in about 10 minutes (--quick: about a minute):

  1. writes a synthetic dataset in the raw MUSeg layout (minelisa synth)
  2. builds a tiny random-weight MineLISA and evaluates it on the val split
  3. base stage (a): instruction naming - the random LLM learns to answer an
     instruction with the name of the object it asks for, so the state that
     predicts [SEG] carries the class (LISA-7B brings this from LLaVA)
  4. base stage (b): the mask decoder and [SEG] head learn masks, the rest frozen
  5. LoRA stage: the paper's recipe (LoRA r=8 on q_proj/v_proj, mask decoder,
     [SEG] head; 0.5 CE + 1.5 Dice + 1.0 BCE; AdamW; DeepSpeed ZeRO-2)
  6. exports the merged serving bundle
  7. evaluates it, writes overlays, prints the before/after table and summary.json

Exit status 1 when the exported model does not beat the untrained one on gIoU.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = DESCRIPTION
    parser.add_argument(
        "--out", default="minelisa-demo", help="output folder (default: ./minelisa-demo)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a reduced run for CI (small data, few steps)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic data and the model (default 0)"
    )
    parser.add_argument(
        "--images", type=int, help="number of synthetic images (default: 120, --quick 24)"
    )
    parser.add_argument(
        "--naming-steps", type=int, help="optimizer steps of base stage (a), instruction naming"
    )
    parser.add_argument(
        "--base-steps", type=int, help="optimizer steps of base stage (b), mask decoder"
    )
    parser.add_argument("--lora-steps", type=int, help="optimizer steps of the LoRA stage")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out folder")


def _prepare(args: argparse.Namespace):
    """The plan with the command-line changes, and an empty --out folder."""
    import dataclasses
    import shutil
    from pathlib import Path

    from ..errors import InvalidInputError
    from ..training.demo import PLANS

    plan = PLANS["quick" if args.quick else "full"]
    options = (
        ("images", args.images),
        ("naming_steps", args.naming_steps),
        ("base_steps", args.base_steps),
        ("lora_steps", args.lora_steps),
    )
    changes = {k: v for k, v in options if v is not None}
    if any(v < 1 for v in changes.values()):
        raise InvalidInputError("--images and the --*-steps options must be >= 1")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not args.force:
            raise InvalidInputError(
                f"{out} exists and is not empty (pass --force to overwrite it, or another --out)"
            )
        shutil.rmtree(out)
    return dataclasses.replace(plan, **changes), out


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import MineLisaError
    from ..training.demo import run_demo

    try:
        plan, out = _prepare(args)
        summary = run_demo(out, plan, seed=args.seed)
    except MineLisaError as exc:
        print(f"minelisa demo: {exc}", file=sys.stderr)
        return exc.exit_status
    if summary["gain"]["giou"] <= 0:
        print(
            "minelisa demo: no gIoU gain on the validation split"
            + (" (expected with --quick)" if args.quick else ""),
            file=sys.stderr,
        )
        return 0 if args.quick else 1
    return 0
