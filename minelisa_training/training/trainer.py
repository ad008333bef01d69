"""The fine-tuning loop: DeepSpeed ZeRO-2, per-epoch validation, best-by-gIoU, resumable.

One code path for a laptop CPU (gloo, fp32) and GPUs (fp16, ZeRO-2, gradient
checkpointing); under the ``deepspeed`` launcher each rank trains on its share of
every epoch and rank 0 validates and writes files.
"""
from __future__ import annotations

import math
import os
import random
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import torch
import yaml

from .checkpointing import CheckpointManager
from .config import TrainConfig
from .data import EmbeddingCache, EncodedExample, ExampleEncoder, TrainBatch, collate
from .dataset import Augment, SampleDataset, Skipped, SplitSamples, load_split_samples
from .distributed import build_deepspeed_config, effective_precision, is_main_process, prepare_single_process_env, resolve_device
from .losses import LossWeights, SegmentationLoss
from .metrics_log import MetricsLog
from .trainable import format_parameter_counts, prepare_for_training

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"


class TrainingError(RuntimeError):
    """A run that cannot start (bad model path, existing run folder...) or cannot go on."""


@dataclass
class TrainState:
    """Everything besides DeepSpeed's own state that a resumed run needs."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # current epoch
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed
    best_giou: float | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def save_run_config(config: TrainConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def _collate_or_skip(items: Sequence[EncodedExample | Skipped], pad_id: int) -> tuple[TrainBatch | None, list[Skipped]]:
    skipped = [x for x in items if isinstance(x, Skipped)]
    good = [x for x in items if not isinstance(x, Skipped)]
    return (collate(good, pad_id) if good else None), skipped


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This rank's micro-batches of one epoch: a seeded shuffle, so a resumed run replays it."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
    mine = order[rank::world]
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        resume: bool = False,
        augment: Augment | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.augment = augment
        self.echo = echo if is_main_process() else (lambda _msg: None)
        self.checkpoints = CheckpointManager(self.run_dir, keep=config.runtime.keep_checkpoints)
        self._stop_signal: int | None = None

    # -- set-up ------------------------------------------------------------------
    def _check_run_dir(self) -> None:
        if self.resume:
            if self.checkpoints.latest() is None:
                raise TrainingError(f"--resume: {self.run_dir} has no checkpoint to resume from")
        elif (self.run_dir / "checkpoints").exists():
            raise TrainingError(
                f"{self.run_dir} already holds a run: pass --resume to continue it, or choose another --out"
            )

    def _load_model(self):
        from ..checkpoint import CheckpointError, load_model

        if not self.config.model.path:
            raise TrainingError("model.path is not set (a LISA-format directory or an exported bundle)")
        try:
            return load_model(self.config.model.path, vision_tower=self.config.model.vision_tower, device="cpu", dtype="fp32")
        except (CheckpointError, FileNotFoundError, ValueError) as exc:
            raise TrainingError(f"model.path {self.config.model.path} does not load: {exc}") from exc

    def _seed(self) -> None:
        seed = self.config.train.seed
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    # -- the run -----------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.config
        self._check_run_dir()
        device = resolve_device(cfg.runtime.device)
        # Data problems are reported before the (possibly long) model load.
        splits = load_split_samples(cfg.data, progress=cfg.runtime.progress and is_main_process())
        loaded = self._load_model()
        self.echo(loaded.report.summary())
        self._seed()
        tokenizer = loaded.tokenizer
        model = prepare_for_training(loaded.model, sorted(tokenizer.added_tokens.values()), cfg.trainable, cfg.lora)
        if cfg.runtime.gradient_checkpointing and device == "cuda":
            model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.echo("trainable parameters by group:\n" + format_parameter_counts(model))
        if is_main_process() and not self.resume:
            save_run_config(cfg, self.run_dir)

        encoder = ExampleEncoder(tokenizer, model.config)
        augment = self.augment if cfg.data.augment else None
        train_set = SampleDataset(splits.train, splits.class_map, encoder, augment, seed=cfg.train.seed)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        batches_per_epoch = math.ceil(math.ceil(len(train_set) / world) / cfg.train.batch_size)
        steps_per_epoch = math.ceil(batches_per_epoch / cfg.train.gradient_accumulation_steps)
        total_steps = cfg.train.epochs * steps_per_epoch
        if cfg.train.max_steps is not None:
            total_steps = min(total_steps, cfg.train.max_steps)
        self.echo(
            f"data: {len(splits.train)} train / {len(splits.val)} val samples ({splits.description}); "
            f"{steps_per_epoch} steps per epoch, {total_steps} steps in all; device {device}, "
            f"precision {effective_precision(cfg, device)}, ZeRO stage {cfg.runtime.zero_stage}"
        )

        prepare_single_process_env(device)
        import deepspeed

        ds_config = build_deepspeed_config(cfg, device, total_steps)
        engine, _, _, scheduler = deepspeed.initialize(
            model=model, model_parameters=[p for p in model.parameters() if p.requires_grad], config=ds_config
        )
        state = TrainState()
        if self.resume:
            path = self.checkpoints.latest()
            restored = self.checkpoints.load(engine, path)
            state = TrainState(**restored)
            self.echo(f"resumed from {path} at step {state.step} (epoch {state.epoch}, batch {state.batch_in_epoch})")
        log = MetricsLog(self.run_dir, resume_step=state.step if self.resume else None)
        cache = EmbeddingCache(
            cache_sam=cfg.runtime.cache_image_embeddings and augment is None and not cfg.trainable.sam_image_encoder,
            cache_clip=cfg.runtime.cache_image_embeddings and augment is None and not cfg.trainable.mm_projector,
        )
        loss_fn = SegmentationLoss(LossWeights(cfg.loss.ce, cfg.loss.dice, cfg.loss.bce), cfg.loss.dice_eps)
        pad_id = tokenizer.pad_id
        started = time.perf_counter()
        samples_done = 0
        last_val: dict[str, Any] | None = None
        self._install_signal_handlers()
        try:
            while state.epoch < cfg.train.epochs and state.step < total_steps:
                train_set.set_epoch(state.epoch)
                batches = epoch_batches(len(train_set), cfg.train.batch_size, cfg.train.seed, state.epoch, rank, world)
                loader = torch.utils.data.DataLoader(
                    train_set,
                    batch_sampler=batches[state.batch_in_epoch :],
                    collate_fn=partial(_collate_or_skip, pad_id=pad_id),
                    num_workers=cfg.data.num_workers,
                )
                sums: dict[str, float] = defaultdict(float)
                count = 0
                window_start, window_samples = time.perf_counter(), 0
                bar = self._progress(total_steps, state.step, state.epoch)
                engine.train()
                for batch, skipped in loader:
                    state.skipped.extend({"path": s.path, "reason": s.reason} for s in skipped)
                    state.batch_in_epoch += 1
                    if batch is None:
                        continue
                    batch = batch.to(engine.device)
                    if cache.enabled:
                        cache.fill(engine.module, batch)
                    outputs = engine(batch.inputs)
                    terms = loss_fn(outputs.ce_loss, outputs.mask_logits, batch.gt_masks, batch.valid_masks)
                    engine.backward(terms.total)
                    engine.step()
                    for k, v in terms.as_floats().items():
                        sums[k] += v
                    count += 1
                    samples_done += len(batch.gt_masks)
                    window_samples += len(batch.gt_masks)
                    if not engine.is_gradient_accumulation_boundary():
                        continue
                    state.step += 1
                    bar.update(1)
                    if state.step % cfg.runtime.log_every == 0 or state.step == total_steps:
                        speed = window_samples * world / max(time.perf_counter() - window_start, 1e-9)
                        means = {k: v / count for k, v in sums.items()}
                        lr = float(scheduler.get_last_lr()[0]) if scheduler is not None else cfg.optim.lr
                        log.write("train", state.step, {"epoch": state.epoch, **means, "lr": lr, "samples_per_s": speed})
                        bar.set_postfix(loss=f"{means['total']:.4f}", speed=f"{speed:.2f}/s")
                        sums.clear()
                        count = 0
                        window_start, window_samples = time.perf_counter(), 0
                    if state.step % cfg.runtime.save_every_steps == 0:
                        self.checkpoints.save(engine, state.as_dict())
                    if self._stop_signal is not None:
                        self.checkpoints.save(engine, state.as_dict())
                        raise KeyboardInterrupt
                    if state.step >= total_steps:
                        break
                bar.close()
                epoch_done = state.batch_in_epoch >= len(batches)
                if epoch_done:
                    state.epoch += 1
                    state.batch_in_epoch = 0
                finished = state.step >= total_steps or state.epoch >= cfg.train.epochs
                if (epoch_done and state.epoch % cfg.runtime.validate_every_epochs == 0) or finished:
                    last_val = self._validate(engine.module, tokenizer, splits, state, log)
                self.checkpoints.save(engine, state.as_dict())
        except KeyboardInterrupt:
            self.echo(f"interrupted at step {state.step}; continue with: minelisa train --resume --out {self.run_dir}")
            raise
        finally:
            self._restore_signal_handlers()
            log.close()
        elapsed = time.perf_counter() - started
        summary = {
            "steps": state.step,
            "epochs_completed": state.epoch,
            "train_samples": len(splits.train),
            "val_samples": len(splits.val),
            "best_giou": state.best_giou,
            "last_validation": last_val,
            "skipped_files": len(state.skipped),
            "elapsed_s": round(elapsed, 1),
            "samples_per_s": round(samples_done * world / max(elapsed, 1e-9), 3),
            "device": device,
        }
        if is_main_process():
            import json

            (self.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return summary

    # -- validation --------------------------------------------------------------
    @torch.no_grad()
    def _validate(self, model, tokenizer, splits: SplitSamples, state: TrainState, log: MetricsLog) -> dict[str, Any] | None:
        """gIoU / cIoU on the val split through the serving engine (mask logits > 0)."""
        if not is_main_process():
            self._barrier()
            return None
        from ..engine import SegmentationEngine
        from ..evaluation import evaluate

        engine = SegmentationEngine(model, tokenizer)
        report = evaluate(engine, splits.val, splits.class_map, progress=self.config.runtime.progress)
        model.train()
        metrics = {"giou": report["giou"], "ciou": report["ciou"], "n_samples": report["n_samples"]}
        log.write("val", state.step, {"epoch": state.epoch, **metrics})
        self.echo(f"validation at step {state.step}: gIoU {metrics['giou']:.4f}  cIoU {metrics['ciou']:.4f}  ({metrics['n_samples']} samples)")
        if state.best_giou is None or metrics["giou"] > state.best_giou:
            state.best_giou = metrics["giou"]
            self.checkpoints.save_best(model, {"step": state.step, "epoch": state.epoch, **metrics})
        self._barrier()
        return metrics

    @staticmethod
    def _barrier() -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()

    # -- progress and signals ----------------------------------------------------
    def _progress(self, total: int, initial: int, epoch: int):
        from tqdm import tqdm

        return tqdm(
            total=total, initial=initial, desc=f"train epoch {epoch + 1}", unit="step",
            disable=not (self.config.runtime.progress and is_main_process()), dynamic_ncols=True,
        )

    def _install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM: finish the current step, write a checkpoint, then stop."""
        self._previous = {}

        def handler(signum, _frame):
            if self._stop_signal is not None:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self._stop_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass

    def _restore_signal_handlers(self) -> None:
        for sig, previous in getattr(self, "_previous", {}).items():
            signal.signal(sig, previous)
