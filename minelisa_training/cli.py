"""The `minelisa` command line: one subcommand per module, imported only when chosen."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

# name -> (module, one-line help). Modules define add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "segment": ("minelisa_training.commands.segment", "segment one image with one instruction"),
    "synth": ("minelisa_training.commands.synth", "write a synthetic dataset in the raw MUSeg layout"),
    "museg": ("minelisa_training.commands.museg", "inspect a MUSeg folder (museg check DIR)"),
    "eval": ("minelisa_training.commands.eval", "evaluate a model on MUSeg (gIoU/cIoU)"),
    "score": ("minelisa_training.commands.score", "score masks produced by any system on MUSeg"),
    "train": ("minelisa_training.commands.train", "LoRA fine-tuning with DeepSpeed ZeRO-2"),
    "export": ("minelisa_training.commands.export", "merge LoRA and write the serving bundle"),
    "demo": ("minelisa_training.commands.demo", "end-to-end demo on synthetic data (the main job)"),
    "bag": ("minelisa_ros.bag", "segment the images of a rosbag2 into a new bag (no ROS needed)"),
}


def _set_offline() -> None:
    # Weights never come from a hub: a missing local path must fail, not download.
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minelisa",
        description="MineLISA: instruction-guided segmentation for underground mines.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "typical use:\n"
            "  minelisa demo                                   # everything, on synthetic data, CPU\n"
            "  minelisa museg check /data/MUSeg                # is the dataset usable?\n"
            "  minelisa train --config museg_lisa7b --out runs/museg model.path=... data.root=...\n"
            "  minelisa export --run runs/museg --out bundles/minelisa-museg\n"
            "  minelisa eval --model bundles/minelisa-museg --data /data/MUSeg --out report.json\n"
            "  minelisa segment --model bundles/minelisa-museg --image f.jpg --instruction 'the cable' --out m.png\n"
            "\nNothing is downloaded: every model path is a local directory.\n"
            "Run 'minelisa COMMAND --help' for the options of one command."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _set_offline()
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
