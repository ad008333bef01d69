"""`minelisa train`: LoRA fine-tuning with DeepSpeed ZeRO-2 (the MineLISA paper's recipe)."""

from __future__ import annotations

import argparse

EPILOG = """\
recipes shipped with the package (pass the name or a YAML file):
  museg_lisa7b      the paper: LISA-7B, LoRA r=8 alpha=16 dropout 0.05 on the LLM's q_proj/v_proj,
                    0.5 CE + 1.5 Dice + 1.0 BCE, AdamW (0.9, 0.95) lr 3e-5 (100 warm-up steps,
                    linear decay to optim.min_lr=0), clip 1.0, fp16, ZeRO-2, batch 1, 20 epochs
  museg_lisa7b_aug  the same plus mine-style photometric augmentation (not in the paper)
  tiny_cpu          the same recipe for the tiny model on a CPU (used by `minelisa demo`)

train.gradient_accumulation_steps=N: one optimizer step per N micro-batches of
train.batch_size (the mean of their gradients); an epoch's last, shorter group is
stepped too. Logs, checkpoints and train.max_steps count optimizer steps.

examples:
  minelisa train --config museg_lisa7b --out runs/museg \\
      model.path=/models/LISA-7B-v1 model.vision_tower=/models/clip-vit-large-patch14 data.root=/data/MUSeg
  minelisa train --resume --out runs/museg            # continue after a crash or Ctrl-C
  torchrun --nproc_per_node 4 -m minelisa_training.cli train --config museg_lisa7b --out runs/museg ...
  deepspeed --num_gpus 4 $(which minelisa) train --config museg_lisa7b --out runs/museg ...
  deepspeed --hostfile hosts.txt $(which minelisa) train ...   # several nodes, same command

Several processes: every process gets ceil(samples / processes) samples of each epoch
(the last shares padded with the epoch's first samples) and makes the same number of
steps; the logged loss is the mean over processes; process 0 writes the files. --resume
needs the number of processes the run was saved with (another number is refused).

Ctrl-C (or SIGTERM) finishes the current step and writes a checkpoint; a second one
stops at once. A run killed at any moment resumes with --resume from the checkpoint
checkpoints/latest names, or from the newest complete one if that one is damaged
(it says so). A run stopped before its first checkpoint was complete is started over
by the same command (without --resume); --resume of a finished run changes nothing.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "--config",
        help="a shipped recipe name (museg_lisa7b, museg_lisa7b_aug, tiny_cpu) or a YAML file",
    )
    parser.add_argument(
        "--out", required=True, help="run folder: checkpoints, metrics.jsonl, best/, summary.json"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    parser.add_argument(
        "--no-augment",
        action="store_true",
        help="train on the images as they are (same as data.augment=false)",
    )
    parser.add_argument(
        "--local_rank", type=int, default=None, help=argparse.SUPPRESS
    )  # set by the deepspeed launcher
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="section.key=value",
        help="change any recipe value, e.g. optim.lr=1e-4 train.epochs=2 data.root=/data/MUSeg",
    )


def _load_recipe(args: argparse.Namespace):
    """The recipe of a new run (--config + overrides) or of the run being resumed."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..training.config import load_config
    from ..training.trainer import CONFIG_FILE

    run_dir = Path(args.out)
    overrides = list(args.overrides) + (["data.augment=false"] if args.no_augment else [])
    if args.resume:
        if args.config:
            raise ConfigError(
                "--resume reads the recipe saved in the run folder; do not pass --config"
            )
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"--resume: {run_dir} has no {CONFIG_FILE} (not a training run)")
        return load_config(str(run_dir / CONFIG_FILE), overrides)
    if not args.config:
        raise ConfigError("--config is required for a new run (e.g. --config tiny_cpu)")
    return load_config(args.config, overrides)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import MineLisaError
    from ..training.trainer import Trainer

    try:
        config = _load_recipe(args)
        augment = None
        if config.data.augment:
            from ..augment import mine_augment

            augment = mine_augment
        summary = Trainer(config, args.out, resume=args.resume, augment=augment).run()
    except MineLisaError as exc:
        print(f"minelisa train: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    best = summary["best_giou"]
    print(
        f"done: {summary['steps']} steps, best val gIoU {best:.4f}"
        if best is not None
        else f"done: {summary['steps']} steps"
    )
    print(f"export the serving bundle with: minelisa export --run {args.out} --out BUNDLE_DIR")
    return 0
