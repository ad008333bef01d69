"""The MineLISA training objective: ``w_ce * CE + w_dice * Dice + w_bce * BCE``.

The paper (eq. 4) uses a Dice loss with *squared* sums in the denominator and a
per-pixel mean binary cross-entropy; both are computed per predicted mask and
averaged over every mask in the batch (LISA's weighting), so an image with three
instructions counts three times. The token cross-entropy is computed by the
model itself from labels in which user and image tokens are ``-100``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def dice_loss(
    logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-mask Dice loss ``1 - (2 sum(p g) + eps) / (sum(p^2) + sum(g^2) + eps)``.

    ``logits`` and ``targets`` are ``[k, H, W]``; returns ``[k]``. ``eps`` keeps the
    loss defined for an empty target and makes an empty prediction on an empty target
    cost exactly 0 (the no-target rule of the metrics). Pixels where ``valid`` is
    False (MUSeg's ignore value) are left out.
    """
    p = logits.float().sigmoid().flatten(1)
    g = targets.float().flatten(1)
    if valid is not None:
        v = valid.float().flatten(1)
        p, g = p * v, g * v
    numerator = 2.0 * (p * g).sum(-1) + eps
    denominator = (p * p).sum(-1) + (g * g).sum(-1) + eps
    return 1.0 - numerator / denominator


def sigmoid_bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-mask binary cross-entropy, mean over the (valid) pixels. ``[k, H, W]`` -> ``[k]``."""
    loss = F.binary_cross_entropy_with_logits(
        logits.float(), targets.float(), reduction="none"
    ).flatten(1)
    if valid is None:
        return loss.mean(-1)
    v = valid.float().flatten(1)
    return (loss * v).sum(-1) / v.sum(-1).clamp(min=1.0)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three terms; the paper's best setting is (0.5, 1.5, 1.0)."""

    ce: float = 0.5
    dice: float = 1.5
    bce: float = 1.0


@dataclass
class LossTerms:
    """The weighted total (for backward) and each unweighted term (for logging)."""

    total: torch.Tensor
    ce: torch.Tensor
    dice: torch.Tensor
    bce: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {
            name: float(getattr(self, name).detach()) for name in ("total", "ce", "dice", "bce")
        }


class SegmentationLoss:
    """Combines the model's token CE with Dice and BCE over all masks of a batch."""

    def __init__(self, weights: LossWeights = LossWeights(), dice_eps: float = 1.0) -> None:
        self.weights = weights
        self.dice_eps = dice_eps

    def __call__(
        self,
        ce: torch.Tensor,
        mask_logits: Sequence[torch.Tensor],
        gt_masks: Sequence[torch.Tensor],
        valid_masks: Sequence[torch.Tensor | None] | None = None,
    ) -> LossTerms:
        if len(mask_logits) != len(gt_masks):
            raise ValueError(
                f"{len(mask_logits)} predicted mask sets but {len(gt_masks)} ground-truth sets"
            )
        valid_masks = valid_masks if valid_masks is not None else [None] * len(gt_masks)
        dice_terms, bce_terms = [], []
        for pred, gt, valid in zip(mask_logits, gt_masks, valid_masks):
            if pred.shape != gt.shape:
                raise ValueError(
                    f"mask logits {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape"
                )
            dice_terms.append(dice_loss(pred, gt, self.dice_eps, valid))
            bce_terms.append(sigmoid_bce_loss(pred, gt, valid))
        if not dice_terms:
            raise ValueError("a training batch needs at least one [SEG] mask")
        dice = torch.cat(dice_terms).mean()
        bce = torch.cat(bce_terms).mean()
        ce = ce.float()
        total = self.weights.ce * ce + self.weights.dice * dice + self.weights.bce * bce
        return LossTerms(total=total, ce=ce, dice=dice, bce=bce)
