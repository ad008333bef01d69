"""The loss terms against values worked out by hand (paper eq. 4: squared Dice denominator)."""

from __future__ import annotations

import math

import pytest
import torch

from minelisa_training.training.losses import (
    LossWeights,
    SegmentationLoss,
    dice_loss,
    sigmoid_bce_loss,
)

LN3 = math.log(3.0)


def _example() -> tuple[torch.Tensor, torch.Tensor]:
    # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25, sigmoid(0) = 0.5
    logits = torch.tensor([[[LN3, -LN3], [0.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    return logits, target


def test_dice_uses_squared_denominator() -> None:
    logits, target = _example()
    # sum(p g) = 0.75 + 0.5 = 1.25; sum(p^2) = 0.5625 + 0.0625 + 0.25 + 0.25 = 1.125; sum(g^2) = 2
    # eps = 1: 1 - (2.5 + 1) / (1.125 + 2 + 1) = 1 - 3.5 / 4.125 = 5/33
    assert dice_loss(logits, target, eps=1.0).item() == pytest.approx(5 / 33, abs=1e-6)
    # A linear denominator (sum p = 2) would give 1 - 3.5/5 = 0.3: the test tells them apart.
    assert dice_loss(logits, target, eps=1.0).item() != pytest.approx(0.3, abs=1e-3)


def test_dice_no_target_rule() -> None:
    empty = torch.zeros(1, 4, 4)
    confident_empty = torch.full((1, 4, 4), -30.0)
    assert dice_loss(confident_empty, empty).item() == pytest.approx(0.0, abs=1e-6)
    # All-foreground prediction on an empty target: 1 - 1/(16 + 1) = 16/17
    assert dice_loss(torch.full((1, 4, 4), 30.0), empty).item() == pytest.approx(16 / 17, abs=1e-6)


def test_bce_is_per_pixel_mean() -> None:
    logits, target = _example()
    # pixels: -ln .75, -ln .75, -ln .5, -ln .5 -> mean = (ln(4/3) + ln 2) / 2 = ln(8/3) / 2
    assert sigmoid_bce_loss(logits, target).item() == pytest.approx(math.log(8 / 3) / 2, abs=1e-6)
    # The mean does not depend on image size: tiling the example 3x3 gives the same value.
    tiled_logits, tiled_target = logits.repeat(1, 3, 3), target.repeat(1, 3, 3)
    assert sigmoid_bce_loss(tiled_logits, tiled_target).item() == pytest.approx(
        math.log(8 / 3) / 2, abs=1e-6
    )


def test_combined_loss_weights_and_mask_averaging() -> None:
    logits, target = _example()
    zeros = torch.zeros(3, 2, 2)  # p = 0.5 everywhere
    zeros_target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]).repeat(3, 1, 1)
    # For each of those three masks: dice = 1 - (1 + 1)/(1 + 1 + 1) = 1/3; bce = ln 2
    ce = torch.tensor(2.0)
    terms = SegmentationLoss(LossWeights(ce=0.5, dice=1.5, bce=1.0), dice_eps=1.0)(
        ce, [logits, zeros], [target, zeros_target]
    )
    # Averaged over the 4 masks, not over the 2 images.
    dice = (5 / 33 + 3 * (1 / 3)) / 4
    bce = (math.log(8 / 3) / 2 + 3 * math.log(2)) / 4
    assert terms.dice.item() == pytest.approx(dice, abs=1e-6)
    assert terms.bce.item() == pytest.approx(bce, abs=1e-6)
    assert terms.ce.item() == pytest.approx(2.0)
    assert terms.total.item() == pytest.approx(0.5 * 2.0 + 1.5 * dice + 1.0 * bce, abs=1e-6)

    other = SegmentationLoss(LossWeights(ce=0.25, dice=1.75, bce=1.0), dice_eps=1.0)(
        ce, [logits, zeros], [target, zeros_target]
    )
    assert other.total.item() == pytest.approx(0.25 * 2.0 + 1.75 * dice + 1.0 * bce, abs=1e-6)


def test_loss_gradients_flow_to_logits() -> None:
    logits, target = _example()
    logits.requires_grad_(True)
    SegmentationLoss()(torch.tensor(0.0), [logits], [target]).total.backward()
    assert logits.grad is not None and torch.all(logits.grad[target.bool()] < 0)


def test_loss_rejects_mismatched_masks() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        SegmentationLoss()(torch.tensor(0.0), [torch.zeros(1, 2, 2)], [torch.zeros(1, 3, 3)])
    with pytest.raises(ValueError, match="ground-truth sets"):
        SegmentationLoss()(torch.tensor(0.0), [torch.zeros(1, 2, 2)], [])


def test_ignored_pixels_do_not_count() -> None:
    logits, target = _example()
    # Append a column of confidently wrong pixels and mark them ignored (MUSeg label 255).
    wrong = torch.cat([logits, torch.full((1, 2, 1), 30.0)], dim=2)
    wrong_target = torch.cat([target, torch.zeros(1, 2, 1)], dim=2)
    valid = torch.ones_like(wrong_target, dtype=torch.bool)
    valid[..., 2] = False
    assert dice_loss(wrong, wrong_target, 1.0, valid).item() == pytest.approx(5 / 33, abs=1e-6)
    assert sigmoid_bce_loss(wrong, wrong_target, valid).item() == pytest.approx(
        math.log(8 / 3) / 2, abs=1e-6
    )
    assert (
        sigmoid_bce_loss(wrong, wrong_target).item() > 1.0
    )  # without the ignore mask they dominate
