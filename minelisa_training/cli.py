"""The `minelisa` command line: one subcommand per module, imported only when chosen.

Errors: a `MineLisaError` (what the user gave cannot be used, or a run could not
go on) prints ``minelisa <command>: <message>`` and exits with its status (2 or
1); anything else is an internal error, shown with its traceback only under
``--debug``. Launchers (deepspeed, torchrun) may put ``--local_rank=N`` anywhere.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from .errors import MineLisaError

# name -> (module, one-line help). Modules define add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "segment": ("minelisa_training.commands.segment", "segment one image with one instruction"),
    "synth": (
        "minelisa_training.commands.synth",
        "write a synthetic dataset in the raw MUSeg layout",
    ),
    "museg": ("minelisa_training.commands.museg", "inspect a MUSeg folder (museg check DIR)"),
    "eval": ("minelisa_training.commands.eval", "evaluate a model on MUSeg (gIoU/cIoU)"),
    "score": ("minelisa_training.commands.score", "score masks produced by any system on MUSeg"),
    "train": ("minelisa_training.commands.train", "LoRA fine-tuning with DeepSpeed ZeRO-2"),
    "export": ("minelisa_training.commands.export", "merge LoRA and write the serving bundle"),
    "demo": ("minelisa_training.commands.demo", "end-to-end demo on synthetic data (the main job)"),
    "bag": ("minelisa_ros.bag", "segment the images of a rosbag2 into a new bag (no ROS needed)"),
}
EPILOG = """typical use:
  minelisa demo                                   # everything, on synthetic data, CPU
  minelisa museg check /data/MUSeg                # is the dataset usable?
  minelisa train --config museg_lisa7b --out runs/museg model.path=... data.root=...
  minelisa export --run runs/museg --out bundles/minelisa-museg
  minelisa eval --model bundles/minelisa-museg --data /data/MUSeg --out report.json
  minelisa segment --model bundles/minelisa-museg --image f.jpg --instruction 'the cable' \\
      --out m.png

Nothing is downloaded: every model path is a local directory.
Errors print 'minelisa COMMAND: message' (exit 2: bad input; 1: a run failed);
--debug shows the traceback of an internal error.
Run 'minelisa COMMAND --help' for the options of one command."""
REPORT_HINT = "rerun with --debug for the traceback, and report it with the command you ran"


def _set_offline() -> None:
    # Weights never come from a hub: a missing local path must fail, not download.
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen command's module is imported for its options."""
    parser = argparse.ArgumentParser(
        prog="minelisa",
        description="MineLISA: instruction-guided segmentation for underground mines.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def split_launcher_args(argv: list[str]) -> tuple[list[str], bool]:
    """(argv without --local_rank/--debug, debug). ``--local_rank`` sets LOCAL_RANK."""
    out, debug, i = [], False, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--debug":
            debug = True
        elif arg.startswith(("--local_rank=", "--local-rank=")):
            os.environ.setdefault("LOCAL_RANK", arg.split("=", 1)[1])
        elif arg in ("--local_rank", "--local-rank") and i + 1 < len(argv):
            os.environ.setdefault("LOCAL_RANK", argv[i + 1])
            i += 1
        else:
            out.append(arg)
        i += 1
    return out, debug


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    argv, debug = split_launcher_args(list(sys.argv[1:] if argv is None else argv))
    _set_offline()
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except MineLisaError as exc:
        print(f"minelisa {args.command}: {exc}", file=sys.stderr)
        return exc.exit_status
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            f"minelisa {args.command}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr
        )
        if not debug:
            print(f"minelisa {args.command}: {REPORT_HINT}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
