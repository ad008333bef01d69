"""`minelisa score`: score masks produced by any system with the eval protocol."""

from __future__ import annotations

import argparse

from .data_args import add_data_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Score masks from any system (e.g. the original LISA) on MUSeg with the same samples, "
        "metrics (gIoU, cIoU, per-class IoU, no-target rule) and report format as "
        "'minelisa eval'. "
        "Masks are PNG files (0/255) named <image id>__<class id>.png, one per expanded sample; "
        "a missing file counts as an empty mask and is listed in the report."
    )
    parser.epilog = (
        "example: minelisa score --pred lisa_masks/ --data /data/MUSeg --split val --out lisa.json"
    )
    parser.add_argument(
        "--pred", required=True, metavar="DIR", help="folder of <image id>__<class id>.png masks"
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="report JSON to write")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..evaluation import format_table, score_masks, write_report
    from .data_args import load_samples

    samples, class_map, split, skipped = load_samples(args)
    report = score_masks(args.pred, samples, class_map, skipped=skipped)
    missing = report["missing_predictions"]["count"]
    unreadable = report["unreadable_predictions"]
    n = report["n_samples"]
    if missing:
        print(f"minelisa score: {missing} of {n} predictions missing (scored as empty masks)")
    for entry in unreadable["files"][:5]:
        print(f"minelisa score: unreadable prediction {entry['path']}: {entry['reason']}")
    if unreadable["count"] > 5:
        print(f"minelisa score: ... {unreadable['count'] - 5} more unreadable (see the report)")
    if unreadable["count"] and missing + unreadable["count"] >= n:
        raise DataError(
            f"none of the {n} predictions in {args.pred} could be scored ({missing} missing, "
            f"{unreadable['count']} unreadable or of the wrong size); no report written"
        )
    report.update(split=split, data=str(args.data), class_map=class_map.source)
    write_report(report, args.out)
    print(format_table(report))
    print(f"report: {args.out}")
    return 0
