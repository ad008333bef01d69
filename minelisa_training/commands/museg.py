"""`minelisa museg check DIR`: verify a MUSeg folder before training on it."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="museg_command", metavar="ACTION", required=True)
    p = sub.add_parser(
        "check",
        help="verify layout, files, label values, split and class order",
        description=(
            "Read every file of a MUSeg folder: layout, images per mine and split, "
            "missing/unreadable/mismatched files, label values out of range. Derives the label "
            "value -> class name map from the Labelme polygon files and says whether the data "
            "follows order A (MUSeg documentation), order B (MineLISA code) or neither. Files "
            "with errors are skipped by training and evaluation. Exit code: 0 usable, 1 unusable "
            "(or any error with --strict)."
        ),
        epilog="example: minelisa museg check /data/MUSeg --json check.json",
    )
    p.add_argument(
        "dir", metavar="DIR", help="MUSeg root (the folder with 01-Mine ... or its parent)"
    )
    p.add_argument(
        "--classes", default="A", metavar="A|B|FILE", help="class map the data is meant to follow"
    )
    p.add_argument(
        "--json", default=None, metavar="FILE", help="also write the full report as JSON"
    )
    p.add_argument(
        "--strict", action="store_true", help="exit 1 on any error, not only when unusable"
    )
    p.add_argument(
        "--max-items", type=int, default=50, help="errors/warnings printed per list (default 50)"
    )


def run(args: argparse.Namespace) -> int:
    import json

    from .. import museg
    from ..fileio import atomic_write

    class_map = museg.load_class_map(args.classes)
    report = museg.check(args.dir, class_map)
    print(report.format(max_items=args.max_items))
    if args.json:
        atomic_write(args.json, json.dumps(report.as_dict(), indent=2) + "\n")
    if not report.usable or (args.strict and report.errors):
        return 1
    return 0
