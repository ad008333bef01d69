"""The fine-tuning loop: DeepSpeed ZeRO-2, per-epoch validation, best-by-gIoU, resumable.

One code path for a laptop CPU (gloo, fp32) and GPUs (fp16, ZeRO-2, gradient
checkpointing); under the ``deepspeed`` launcher each rank trains on its share of
every epoch and rank 0 validates and writes files.

`Trainer` is split along its seams: `setup` (run folder, data, model, DeepSpeed,
resume), `train_step` (one micro-batch, see `step.TrainStep`), `validate`, `save`,
`end_epoch`, and `run`, which strings them together.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import runtime
from ..errors import ConfigError, TrainingError
from ..fileio import atomic_write
from .checkpointing import CheckpointManager
from .config import TrainConfig
from .data import ExampleEncoder, TrainBatch
from .dataset import Augment, SampleDataset, load_split_samples
from .distributed import describe_device, effective_precision
from .interrupts import StopRequest
from .metrics_log import MetricsLog
from .multiprocess import check_world, join_processes, means_over_ranks
from .run_folder import (
    CONFIG_FILE,
    SUMMARY_FILE,
    find_resume_point,
    interruption_message,
    prepare_new_run,
    read_summary,
    save_run_config,
)
from .schedule import (
    LossWindow,
    RunPlan,
    TrainState,
    accumulation_window,
    collate_or_skip,
    epoch_batches,
)
from .step import TrainStep, build_engine, embedding_cache_for, loss_for
from .trainable import format_parameter_counts, prepare_for_training

__all__ = [
    "CONFIG_FILE",
    "SUMMARY_FILE",
    "RunPlan",
    "TrainState",
    "Trainer",
    "TrainingError",
    "epoch_batches",
    "save_run_config",
]


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
        self.augment = augment if config.data.augment else None
        self.echo = echo if runtime.is_main_process() else (lambda _msg: None)
        self.checkpoints = CheckpointManager(self.run_dir, keep=config.runtime.keep_checkpoints)
        self.state = TrainState(world=runtime.world_size())
        self.stop = StopRequest()
        self._saved_key: tuple | None = None
        self.samples_done = 0

    # -- set-up ------------------------------------------------------------------
    def check_run_dir(self) -> None:
        """A new run needs a free folder (or one whose run never saved); a resume a checkpoint."""
        if self.resume:
            check_world(find_resume_point(self.run_dir, self.checkpoints).path, self.run_dir)
        else:
            prepare_new_run(self.run_dir, self.checkpoints, self.echo)
        runtime.barrier()  # no rank sees the folder before another's start-over is done

    def load_model(self):
        from ..checkpoint import CheckpointError, load_model

        if not self.config.model.path:
            raise ConfigError(
                "model.path is not set (a LISA-format directory or an exported bundle)"
            )
        try:
            # Straight into the training precision on the training device: a 7B model
            # never gets a full-precision copy on the host (DeepSpeed's mixed precision
            # keeps fp32 master copies of the trainable tensors only).
            device = runtime.resolve_device(self.config.runtime.device)
            return load_model(
                self.config.model.path,
                vision_tower=self.config.model.vision_tower,
                device=device,
                dtype=effective_precision(self.config, device.type),
            )
        except (CheckpointError, FileNotFoundError, ValueError) as exc:
            raise CheckpointError(
                f"model.path {self.config.model.path} does not load: {exc}"
            ) from exc

    def _seed(self) -> None:
        seed = self.config.train.seed
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        cfg = self.config
        model = prepare_for_training(
            model, sorted(self.tokenizer.added_tokens.values()), cfg.trainable, cfg.lora
        )
        if cfg.runtime.gradient_checkpointing and self.device.type == "cuda":
            model.language_model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        self.echo("trainable parameters by group:\n" + format_parameter_counts(model))
        return model

    def setup(self) -> None:
        """Checks the run folder, loads data and model, starts DeepSpeed and restores a resumed run."""
        cfg = self.config
        cfg.validate()  # a recipe built in code gets the checks load_config makes
        join_processes()  # under a launcher: the process group, before the run folder
        self.check_run_dir()
        self.device = runtime.resolve_device(cfg.runtime.device)
        self.echo(describe_device(cfg, self.device))  # before the long model load
        # Data problems are reported before the (possibly long) model load.
        self.splits = load_split_samples(
            cfg.data, progress=cfg.runtime.progress and runtime.is_main_process()
        )
        loaded = self.load_model()
        self.echo(loaded.report.summary())
        self._seed()
        self.tokenizer = loaded.tokenizer
        model = self._prepare_model(loaded.model)
        if runtime.is_main_process() and not self.resume:
            save_run_config(cfg, self.run_dir)
        encoder = ExampleEncoder(self.tokenizer, model.config)
        self.train_set = SampleDataset(
            self.splits.train, self.splits.class_map, encoder, self.augment, seed=cfg.train.seed
        )
        self.plan = RunPlan.for_config(cfg, len(self.train_set))
        self.echo(
            f"data: {len(self.splits.train)} train / {len(self.splits.val)} val samples ({self.splits.description}); "
            f"{self.plan.steps_per_epoch} steps per epoch, {self.plan.total_steps} steps in all; device {self.device.type}, "
            f"precision {effective_precision(cfg, self.device.type)}, ZeRO stage {cfg.runtime.zero_stage}"
        )
        self.engine, self.scheduler = build_engine(model, cfg, self.device, self.plan.total_steps)
        self._restore()
        self.log = MetricsLog(
            self.run_dir,
            resume_step=self.state.step if self.resume else None,
            keep_validation=self.state.validated_step == self.state.step,
        )
        self.step_fn = TrainStep(
            self.engine, loss_for(cfg), embedding_cache_for(cfg, self.augment is not None)
        )

    def _restore(self) -> None:
        if not self.resume:
            return
        found = find_resume_point(self.run_dir, self.checkpoints)
        if found.note:
            self.echo(found.note)
        self.state = TrainState(**self.checkpoints.load(self.engine, found.path))
        self.state.world = runtime.world_size()  # check_world let it through
        self._saved_key = self._state_key()
        s = self.state
        self.echo(
            f"resumed from {found.path} at step {s.step} (epoch {s.epoch}, batch {s.batch_in_epoch})"
        )

    # -- training ----------------------------------------------------------------
    def train_step(
        self, batch: TrainBatch | None, window: int = 1, boundary: bool = True
    ) -> dict[str, float]:
        """One micro-batch: forward, loss, backward; the optimizer steps when ``boundary``.

        ``window`` is the number of micro-batches the optimizer step averages (see
        `step.TrainStep`). Returns the loss terms as floats.
        """
        return self.step_fn(batch, window=window, boundary=boundary)

    def _loader(self, batches: list[list[int]]):
        return torch.utils.data.DataLoader(
            self.train_set,
            batch_sampler=batches[self.state.batch_in_epoch :],
            collate_fn=partial(collate_or_skip, pad_id=self.tokenizer.pad_id),
            num_workers=self.config.data.num_workers,
        )

    def train_epoch(self) -> int:
        """Trains until the end of the epoch or of the run; returns the epoch's micro-batch count."""
        cfg, state, plan = self.config, self.state, self.plan
        self.train_set.set_epoch(state.epoch)
        batches = epoch_batches(
            len(self.train_set),
            cfg.train.batch_size,
            cfg.train.seed,
            state.epoch,
            plan.rank,
            plan.world,
        )
        window = LossWindow()
        bar = self._progress(plan.total_steps, state.step, state.epoch)
        self.engine.train()
        accumulation = cfg.train.gradient_accumulation_steps
        for batch, skipped in self._loader(batches):
            state.skipped.extend({"path": s.path, "reason": s.reason} for s in skipped)
            size, boundary = accumulation_window(state.batch_in_epoch, len(batches), accumulation)
            state.batch_in_epoch += 1
            losses = self.train_step(batch, window=size, boundary=boundary)
            if batch is not None:
                window.add(losses, len(batch.gt_masks))
                self.samples_done += len(batch.gt_masks)
            if not boundary:
                continue
            state.step += 1
            bar.update(1)
            self._after_optimizer_step(window, bar)
            if state.step >= plan.total_steps:
                break
        bar.close()
        return len(batches)

    def _after_optimizer_step(self, window: LossWindow, bar) -> None:
        """Logging, periodic checkpoints and a requested stop, after each optimizer step."""
        cfg, state = self.config, self.state
        if state.step % cfg.runtime.log_every == 0 or state.step == self.plan.total_steps:
            means, speed = means_over_ranks(window), window.speed(self.plan.world)
            lr = self.scheduler.last_step_lr()  # the learning rate this step used
            self.log.write(
                "train",
                state.step,
                {"epoch": state.epoch, **means, "lr": lr, "samples_per_s": speed},
            )
            bar.set_postfix(loss=f"{means.get('total', float('nan')):.4f}", speed=f"{speed:.2f}/s")
            window.reset()
        if state.step % cfg.runtime.save_every_steps == 0:
            self.save()
        if self.stop.requested is not None:
            self.save()
            raise KeyboardInterrupt

    def finished(self) -> bool:
        return (
            self.state.step >= self.plan.total_steps or self.state.epoch >= self.config.train.epochs
        )

    def end_epoch(self, n_batches: int) -> None:
        """Closes an epoch (or the run): validation when due, then a checkpoint."""
        state = self.state
        epoch_done = state.batch_in_epoch >= n_batches
        if epoch_done:
            state.epoch += 1
            state.batch_in_epoch = 0
        due = epoch_done and state.epoch % self.config.runtime.validate_every_epochs == 0
        if due or self.finished():
            self.validate()
        self.save()

    def finish(self) -> None:
        """The end of the run: a validation of the last step and its checkpoint (no-ops
        unless a resumed run restarts from a checkpoint written before them)."""
        if self.state.validated_step != self.state.step:
            self.validate()
        self.save()

    def _state_key(self) -> tuple:
        s = self.state  # the same on every rank
        return (s.step, s.epoch, s.batch_in_epoch, s.validated_step)

    def save(self) -> Path | None:
        """A checkpoint of the current state (every rank calls this); None when the
        current state is the one saved last (a stop request right after a periodic save)."""
        if self._state_key() == self._saved_key:
            return None
        path = self.checkpoints.save(self.engine, self.state.as_dict())
        self._saved_key = self._state_key()
        return path

    # -- validation --------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, Any] | None:
        """gIoU / cIoU on the val split through the serving engine (mask logits > 0), sharded
        over the ranks by `evaluation.evaluate`; rank 0 gets the metrics, the others None."""
        self.state.validated_step = self.state.step
        from ..engine import SegmentationEngine
        from ..evaluation import evaluate

        model, state = self.engine.module, self.state
        report = evaluate(
            SegmentationEngine(model, self.tokenizer),
            self.splits.val,
            self.splits.class_map,
            progress=self.config.runtime.progress,
        )
        model.train()
        if report is None:  # ranks != 0
            return None
        metrics = {"giou": report["giou"], "ciou": report["ciou"], "n_samples": report["n_samples"]}
        self.log.write("val", state.step, {"epoch": state.epoch, **metrics})
        self.echo(
            f"validation at step {state.step}: gIoU {metrics['giou']:.4f}  cIoU {metrics['ciou']:.4f}  "
            f"({metrics['n_samples']} samples)"
        )
        state.last_validation = {"step": state.step, **metrics}
        if state.best_giou is None or metrics["giou"] > state.best_giou:
            state.best_giou = metrics["giou"]
            self.checkpoints.save_best(model, {"step": state.step, "epoch": state.epoch, **metrics})
        return metrics

    # -- the run -----------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Set-up, then epochs until ``train.epochs`` or ``train.max_steps``; returns the summary.

        ``--resume`` of a finished run returns its summary and changes nothing.
        """
        finished = read_summary(self.run_dir) if self.resume else None
        if finished is not None:
            self.echo(
                f"the run in {self.run_dir} is finished ({finished.get('steps')} steps, "
                f"{SUMMARY_FILE}): nothing to resume; export it with: minelisa export --run {self.run_dir}"
            )
            return finished
        if not hasattr(self, "engine"):
            self.setup()
        started = time.perf_counter()
        try:
            with self.stop:
                while not self.finished():
                    n_batches = self.train_epoch()
                    self.end_epoch(n_batches)
                self.finish()
        except KeyboardInterrupt:
            self.echo(interruption_message(self.run_dir, self.state.step, self.checkpoints))
            raise
        finally:
            self.log.close()
        return self.write_summary(time.perf_counter() - started)

    def write_summary(self, elapsed: float) -> dict[str, Any]:
        state = self.state
        skips = runtime.gather_to_main(len(state.skipped))  # each rank met its own share
        summary = {
            "steps": state.step,
            "epochs_completed": state.epoch,
            "train_samples": len(self.splits.train),
            "val_samples": len(self.splits.val),
            "best_giou": state.best_giou,
            "last_validation": state.last_validation,
            "skipped_files": sum(skips) if skips else len(state.skipped),
            "elapsed_s": round(elapsed, 1),
            "samples_per_s": round(self.samples_done * self.plan.world / max(elapsed, 1e-9), 3),
            "device": self.device.type,
        }
        if runtime.is_main_process():
            atomic_write(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        return summary

    def _progress(self, total: int, initial: int, epoch: int):
        from tqdm import tqdm

        return tqdm(
            total=total,
            initial=initial,
            desc=f"train epoch {epoch + 1}",
            unit="step",
            disable=not (self.config.runtime.progress and runtime.is_main_process()),
            dynamic_ncols=True,
        )
