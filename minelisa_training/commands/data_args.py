"""Options shared by the commands that read MUSeg samples (eval, score, train)."""
from __future__ import annotations

import argparse


def add_data_arguments(parser: argparse.ArgumentParser, default_split: str = "val") -> None:
    g = parser.add_argument_group("data (raw MUSeg layout, e.g. from 'minelisa synth')")
    g.add_argument("--data", required=True, metavar="DIR",
                   help="MUSeg root: the folder with 01-Mine ... 06-Mine and Experiment/ (or its parent)")
    g.add_argument("--split", default=default_split, choices=("train", "val", "all"),
                   help=f"which part of the split to use (default: {default_split})")
    g.add_argument("--split-scheme", default="official", choices=("official", "groups", "mines"),
                   help="official: Experiment/DatasetSplit.zip or train.txt/val.txt; groups: capture-group "
                        "disjoint split with --val-fraction and --split-seed (the paper used 2,247/571, i.e. "
                        "--val-fraction 0.2026); mines: train on some mines, validate on --val-mines")
    g.add_argument("--val-fraction", type=float, default=0.2, help="share of images in val for --split-scheme groups")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the capture-group split")
    g.add_argument("--group-fields", type=int, default=3, metavar="K",
                   help="how many leading fields of an id (01-01-01-0014-...) name its capture group (default 3)")
    g.add_argument("--val-mines", default="", metavar="LIST",
                   help="held-out mines for --split-scheme mines, comma separated (e.g. 03,06)")
    g.add_argument("--classes", default="A", metavar="A|B|FILE",
                   help="class map: A (MUSeg documentation, default), B (MineLISA code) or a file with one "
                        "class per line; 'minelisa museg check' tells which one the data follows")
    g.add_argument("--negatives", type=float, default=0.0, metavar="F",
                   help="add round(F x positives) samples of classes absent from their image (empty target), "
                        "to measure the no-target rule (default 0: the paper's protocol)")
    g.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N images of the split")


def load_samples(args: argparse.Namespace, progress: bool = True):
    """(samples, class_map, split description, SkipLog) from the options above."""
    from .. import museg

    class_map = museg.load_class_map(args.classes)
    spec = museg.SplitSpec(
        scheme=args.split_scheme, val_fraction=args.val_fraction, seed=args.split_seed,
        val_mines=tuple(m.strip() for m in args.val_mines.split(",") if m.strip()), group_fields=args.group_fields,
    )
    records = museg.read_split(args.data, args.split, spec)
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        records = records[: args.limit]
    if not records:
        raise ValueError(f"the {args.split} split of {args.data} ({spec.describe()}) has no images")
    skipped = museg.SkipLog()
    samples = museg.expand_samples(records, class_map, negative_fraction=args.negatives, seed=args.split_seed,
                                   skipped=skipped, progress=progress)
    split = {"name": args.split, "scheme": spec.describe(), "n_images": len(records)}
    return samples, class_map, split, skipped
