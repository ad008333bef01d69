"""`minelisa synth`: write synthetic scenes in the raw MUSeg layout."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write dim underground-roadway scenes with all 15 MUSeg classes in the exact raw MUSeg "
        "layout (NN-Mine/Image, Depth, Label with _label/_color/_polygons files, "
        "Experiment/DatasetSplit.zip). Every other command reads the result like the real "
        "dataset. Same seed, same bytes. --sequences adds short camera sequences: a camera "
        "driving along a roadway (forward, swaying, turning a little) past a walking person "
        "and swinging cables, each sequence one capture group (id roadway field 02) whose "
        "frame field orders its frames, listed with their timestamps in "
        "Experiment/sequences.json (museg.read_sequences)."
    )
    parser.epilog = (
        "examples: minelisa synth --out data/synth --images 200 --seed 0 --size 541x466; "
        "minelisa synth --out data/seq --sequences 8 --frames 16 --size 432x372 "
        "(sequences only: 8 x 16 frames at 15 Hz)"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="new or empty folder to write into"
    )
    parser.add_argument(
        "--images",
        type=int,
        help="number of still images (default 60; 0 when --sequences is given)",
    )
    _add_sequence_arguments(parser)
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


def _add_sequence_arguments(parser: argparse.ArgumentParser) -> None:
    """--sequences, --frames, --fps."""
    parser.add_argument(
        "--sequences",
        type=int,
        default=0,
        metavar="N",
        help="also write N camera sequences (default 0: still images only)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=16,
        metavar="F",
        help="frames per sequence (default 16, at least 2)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=15.0,
        help="the sequences' frame rate, frames a second (default 15)",
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
        images = args.images if args.images is not None else (0 if args.sequences else 60)
        cfg = SynthConfig(
            images=images,
            seed=args.seed,
            width=width,
            height=height,
            mines=args.mines,
            class_order=args.class_order,
            val_fraction=args.val_fraction,
            sequences=args.sequences,
            frames=args.frames,
            fps=args.fps,
        )
    except ValueError as exc:
        print(f"minelisa synth: {exc}", file=sys.stderr)
        return 2
    summary = write_dataset(out, cfg)
    order = summary["class_order"]
    print(f"wrote {summary['images']} images ({width}x{height}, class order {order}) to {out}")
    print("per mine: " + ", ".join(f"{m}: {n}" for m, n in summary["per_mine"].items()))
    if cfg.sequences:
        print(
            f"{cfg.sequences} sequence(s) of {cfg.frames} frames at {cfg.fps:g} Hz, "
            "listed in Experiment/sequences.json"
        )
    n_train, n_val = len(summary["split"]["train"]), len(summary["split"]["val"])
    print(
        f"official split: {n_train} train / {n_val} val; "
        f"{len(summary['all_background'])} all-background image(s)"
    )
    return 0
