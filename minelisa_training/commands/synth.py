"""`minelisa synth`: write synthetic scenes in the raw MUSeg layout."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write dim underground-roadway scenes with all 15 MUSeg classes in the exact raw MUSeg "
        "layout (NN-Mine/Image, Depth, Label with _label/_color/_polygons files, "
        "Experiment/DatasetSplit.zip). Every other command reads the result like the real "
        "dataset. Same seed, same bytes."
    )
    parser.epilog = "example: minelisa synth --out data/synth --images 200 --seed 0 --size 541x466"
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="new or empty folder to write into"
    )
    parser.add_argument("--images", type=int, default=60, help="number of images (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--size",
        default="1082x932",
        metavar="WxH",
        help="image size, MUSeg's is 1082x932 (default); smaller is faster",
    )
    parser.add_argument(
        "--mines", type=int, default=6, help="number of NN-Mine folders (default 6)"
    )
    parser.add_argument(
        "--class-order",
        default="A",
        choices=("A", "B"),
        help="label ids of order A (MUSeg documentation, default) or B (MineLISA code)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.5,
        help="share of images in the official val split (capture-group disjoint; default 0.5)",
    )


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..synth import SynthConfig, parse_size, write_dataset

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(
            f"minelisa synth: {out} is not empty; choose a new folder "
            "(files from another run would mix in)",
            file=sys.stderr,
        )
        return 2
    try:
        width, height = parse_size(args.size)
        cfg = SynthConfig(
            images=args.images,
            seed=args.seed,
            width=width,
            height=height,
            mines=args.mines,
            class_order=args.class_order,
            val_fraction=args.val_fraction,
        )
    except ValueError as exc:
        print(f"minelisa synth: {exc}", file=sys.stderr)
        return 2
    summary = write_dataset(out, cfg)
    order = summary["class_order"]
    print(f"wrote {summary['images']} images ({width}x{height}, class order {order}) to {out}")
    print("per mine: " + ", ".join(f"{m}: {n}" for m, n in summary["per_mine"].items()))
    n_train, n_val = len(summary["split"]["train"]), len(summary["split"]["val"])
    print(
        f"official split: {n_train} train / {n_val} val; "
        f"{len(summary['all_background'])} all-background image(s)"
    )
    return 0
