"""One training step, shared by the trainer and ``benchmarks/bench_train.py``.

`build_engine` wraps a prepared model in DeepSpeed (ZeRO-2, the recipe's optimizer
and schedule); `TrainStep` runs one micro-batch through it: forward, loss,
backward, optimizer step. The benchmark measures exactly this object, so its
numbers are those of the shipped training path.
"""

from __future__ import annotations

from typing import Any

import torch

from .config import TrainConfig
from .data import EmbeddingCache, TrainBatch
from .distributed import build_deepspeed_config, lr_scheduler_for, prepare_single_process_env
from .losses import LossWeights, SegmentationLoss


def build_engine(
    model: torch.nn.Module, config: TrainConfig, device: torch.device | str, total_steps: int
):
    """DeepSpeed engine and LR scheduler for a model already prepared for training."""
    device = torch.device(device)
    prepare_single_process_env(device.type)
    import deepspeed

    engine, _, _, scheduler = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=build_deepspeed_config(config, device.type),
        lr_scheduler=lr_scheduler_for(config, total_steps),
    )
    return engine, scheduler


def loss_for(config: TrainConfig) -> SegmentationLoss:
    """The recipe's objective: ``w_ce * CE + w_dice * Dice + w_bce * BCE``."""
    return SegmentationLoss(
        LossWeights(config.loss.ce, config.loss.dice, config.loss.bce), config.loss.dice_eps
    )


def embedding_cache_for(config: TrainConfig, augmenting: bool) -> EmbeddingCache:
    """Caches encoder outputs only where they cannot change: frozen encoders, no augmentation."""
    use = config.runtime.cache_image_embeddings and not augmenting
    return EmbeddingCache(
        cache_sam=use and not config.trainable.sam_image_encoder,
        cache_clip=use and not config.trainable.mm_projector,
    )


class TrainStep:
    """Forward, loss, backward and ``engine.step()`` for one micro-batch.

    Gradient accumulation is explicit: the caller says how many micro-batches the
    current optimizer step averages (``window``) and whether this one ends it
    (``boundary``). The loss is divided by ``window`` (not by DeepSpeed's configured
    accumulation count), so every optimizer step applies the mean gradient of its
    micro-batches, a short last window of an epoch included; the optimizer and the
    LR scheduler step exactly at ``boundary``.
    """

    def __init__(
        self, engine: Any, loss_fn: SegmentationLoss, cache: EmbeddingCache | None = None
    ) -> None:
        self.engine = engine
        self.loss_fn = loss_fn
        self.stand_in: TrainBatch | None = None  # the last good micro-batch (see _skipped_loss)
        self.cache = (
            cache if cache is not None else EmbeddingCache(cache_sam=False, cache_clip=False)
        )

    def __call__(
        self, batch: TrainBatch | None, window: int = 1, boundary: bool = True
    ) -> dict[str, float]:
        """Trains on ``batch``; returns the loss terms (total, ce, dice, bce) as floats.

        ``batch=None`` (every file of the micro-batch was unreadable) contributes a zero
        gradient to its window and returns ``{}``.
        """
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        engine = self.engine
        engine.set_gradient_accumulation_boundary(boundary)
        if batch is None:
            loss, floats = self._skipped_loss(), {}
        else:
            batch = batch.to(engine.device)
            terms = self._loss(batch)
            loss, floats = terms.total, terms.as_floats()
            self.stand_in = batch
        engine.backward(loss / window, scale_wrt_gas=False)
        engine.step()
        return floats

    def _loss(self, batch: TrainBatch, fill: bool = True):
        engine = self.engine
        if fill and self.cache.enabled:
            self.cache.fill(engine.module, batch)
        outputs = engine(batch.inputs)
        return self.loss_fn(outputs.ce_loss, outputs.mask_logits, batch.gt_masks, batch.valid_masks)

    def _skipped_loss(self) -> torch.Tensor:
        """0 for an all-skipped micro-batch. Under several processes it is the last good
        batch's loss times 0: the same graph as the other ranks' micro-batches, so ZeRO's
        gradient buckets match (a graph over other tensors makes gloo/NCCL sizes differ)."""
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed and getattr(self, "stand_in", None) is not None:
            return self._loss(self.stand_in, fill=False).total * 0.0  # filled already
        return self._zero_loss()

    def _zero_loss(self) -> torch.Tensor:
        """0, with a (zero) gradient for every trainable tensor, as ZeRO-2's hooks expect."""
        params = [p for p in self.engine.module.parameters() if p.requires_grad]
        return torch.stack([(p * 0).sum() for p in params]).sum()
