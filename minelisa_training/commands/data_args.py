"""Options shared by the commands that read MUSeg samples (eval, score).

They are the fields of ``museg.SplitOptions``, which training reads from a recipe's
``data`` section: the same values give the same samples (see ``museg.build``).
"""

from __future__ import annotations

import argparse


def add_data_arguments(parser: argparse.ArgumentParser, default_split: str = "val") -> None:
    """The data options: folder, split, class map, negatives and subsets."""
    g = parser.add_argument_group("data (raw MUSeg layout, e.g. from 'minelisa synth')")
    _add_split_arguments(g, default_split)
    _add_sample_arguments(g)


def _add_split_arguments(g: argparse._ArgumentGroup, default_split: str) -> None:
    g.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="MUSeg root: the folder with 01-Mine ... 06-Mine and Experiment/ (or its parent)",
    )
    g.add_argument(
        "--split",
        default=default_split,
        choices=("train", "val", "all"),
        help=f"which part of the split to use (default: {default_split})",
    )
    g.add_argument(
        "--split-scheme",
        default="official",
        choices=("official", "groups", "mines"),
        help="official: Experiment/DatasetSplit.zip or train.txt/val.txt; groups: capture-group "
        "disjoint split with --val-fraction and --split-seed (the paper used 2,247/571, i.e. "
        "--val-fraction 0.2026); mines: train on some mines, validate on --val-mines "
        "(recipe key: data.split)",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of images in val for --split-scheme groups",
    )
    g.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of the capture-group split, the negatives and --limit-samples",
    )
    g.add_argument(
        "--group-fields",
        type=int,
        default=3,
        metavar="K",
        help="how many leading fields of an id (01-01-01-0014-...) name its capture group "
        "(default 3)",
    )
    g.add_argument(
        "--val-mines",
        default="",
        metavar="LIST",
        help="held-out mines for --split-scheme mines, comma separated (e.g. 03,06)",
    )


def _add_sample_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--classes",
        default="A",
        metavar="A|B|FILE",
        help="class map: A (MUSeg documentation, default), B (MineLISA code) or a file with one "
        "class per line; 'minelisa museg check' tells which one the data follows",
    )
    g.add_argument(
        "--negatives",
        type=float,
        default=0.0,
        metavar="F",
        help="add round(F x positives) samples of classes absent from their image (empty "
        "target), to measure the no-target rule (default 0: the paper's protocol; recipe key: "
        "data.negative_fraction)",
    )
    g.add_argument(
        "--limit-images",
        "--limit",
        dest="limit_images",
        type=int,
        default=None,
        metavar="N",
        help="use only the first N images of the split, in split order, before they are "
        "expanded into samples (recipe keys: data.max_train_images / data.max_val_images)",
    )
    g.add_argument(
        "--limit-samples",
        type=int,
        default=None,
        metavar="N",
        help="then keep a --split-seed random subset of N of the expanded samples, in sample "
        "order (recipe keys: data.max_train_samples / data.max_val_samples)",
    )


def split_options(args: argparse.Namespace):
    """The ``museg.SplitOptions`` the options above describe."""
    from .. import museg
    from ..errors import InvalidInputError

    for flag, value in (
        ("--limit-images", args.limit_images),
        ("--limit-samples", args.limit_samples),
    ):
        if value is not None and value < 1:
            raise InvalidInputError(f"{flag} must be >= 1, got {value}")
    return museg.SplitOptions(
        scheme=args.split_scheme,
        val_fraction=args.val_fraction,
        split_seed=args.split_seed,
        group_fields=args.group_fields,
        val_mines=tuple(m.strip() for m in args.val_mines.split(",") if m.strip()),
        classes=args.classes,
        negative_fraction=args.negatives,
        limit_images=args.limit_images,
        limit_samples=args.limit_samples,
    )


def load_samples(args: argparse.Namespace, progress: bool = True):
    """(samples, class_map, split description, SkipLog) from the options above."""
    from .. import museg

    built = museg.build_samples(args.data, args.split, split_options(args), progress=progress)
    return built.samples, built.class_map, built.describe(), built.skipped
