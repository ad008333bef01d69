"""Gradient accumulation (#10): the optimizer and the LR scheduler step once per group of
``gradient_accumulation_steps`` micro-batches (a short last group of an epoch included),
logs and checkpoints happen at those steps only, and batch 1 x accumulation 2 trains the
same weights as batch 2 x accumulation 1. Tiny model, fp32, DeepSpeed ZeRO-2 on CPU."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import tiny_demo_bundle

from minelisa_training.training.config import load_config
from minelisa_training.training.metrics_log import read_metrics
from minelisa_training.training.schedule import accumulation_window
from minelisa_training.training.trainer import Trainer

N_TRAIN = 7  # micro-batches of batch 1 per epoch: not a multiple of 2 or 10


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_demo_bundle(tmp_path_factory.mktemp("accumulation-model"))


pytestmark = pytest.mark.usefixtures("one_process")  # in-process DeepSpeed runs


def _trainer(run_dir, bundle, root, *overrides: str) -> Trainer:
    config = load_config(
        "tiny_cpu",
        [
            f"model.path={bundle}",
            f"data.root={root}",
            "runtime.progress=false",
            f"data.max_train_samples={N_TRAIN}",
            "data.max_val_samples=1",
            "runtime.log_every=1",
            "runtime.validate_every_epochs=100",  # once, at the end of the run
            *overrides,
        ],
    )
    return Trainer(config, run_dir, echo=lambda _msg: None)


def test_accumulation_window() -> None:
    windows = [accumulation_window(i, 7, 2) for i in range(7)]
    assert windows == [
        (2, False),
        (2, True),
        (2, False),
        (2, True),
        (2, False),
        (2, True),
        (1, True),
    ]
    assert [accumulation_window(i, 7, 10) for i in range(7)] == [(7, False)] * 6 + [(7, True)]
    assert all(accumulation_window(i, 5, 1) == (1, True) for i in range(5))


@pytest.mark.parametrize(
    "accumulation, boundaries",
    [
        (1, [1, 2, 3, 4, 5, 6, 7]),
        (2, [2, 4, 6, 7]),  # the last, short group of the epoch is stepped too
        (10, [7]),
    ],
)
def test_optimizer_and_scheduler_step_at_accumulation_boundaries(
    synth_data, tmp_path, bundle, accumulation, boundaries
) -> None:
    root, _ = synth_data
    trainer = _trainer(
        tmp_path / "run",
        bundle,
        root,
        "train.epochs=2",
        f"train.gradient_accumulation_steps={accumulation}",
        "runtime.save_every_steps=3",
    )
    trainer.setup()
    optimizer_at, scheduler_at, saved_at = [], [], []
    position = lambda: (trainer.state.epoch, trainer.state.batch_in_epoch)  # noqa: E731
    trainer.engine.basic_optimizer.register_step_post_hook(
        lambda *_args: optimizer_at.append(position())
    )
    scheduler_step = trainer.scheduler.step

    def counting_step(*args, **kwargs):
        scheduler_at.append(position())
        return scheduler_step(*args, **kwargs)

    trainer.scheduler.step = counting_step
    save = trainer.save
    trainer.save = lambda: (saved_at.append(position()), save())[1]

    summary = trainer.run()

    expected = [(epoch, b) for epoch in range(2) for b in boundaries]
    assert optimizer_at == expected  # once per group, at its last micro-batch
    assert scheduler_at == expected
    assert summary["steps"] == trainer.plan.total_steps == 2 * len(boundaries)
    assert trainer.samples_done == 2 * N_TRAIN  # every micro-batch trained, none dropped
    logged = [r["step"] for r in read_metrics(trainer.run_dir, "train")]
    assert logged == list(range(1, summary["steps"] + 1))
    # Checkpoints only at optimizer steps: after a group's last micro-batch or at an epoch end.
    assert saved_at and all(b in boundaries or b == 0 for _epoch, b in saved_at), saved_at
    latest = trainer.checkpoints.latest()
    state = json.loads((latest / "trainer_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (summary["steps"], 2, 0)


def _trainable(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {
        n: p.detach().clone()
        for n, p in trainer.engine.module.named_parameters()
        if p.requires_grad
    }


def test_batch_1_accumulation_2_equals_batch_2(synth_data, tmp_path, bundle) -> None:
    """The loss of a batch is the mean over its samples (Dice and BCE per mask; the CE a
    mean over answer tokens, and every answer is "[SEG]." + "</s>", the same count per
    sample), and each accumulated micro-batch's loss is divided by the group size: both
    give the mean gradient of the same samples, then the same clipping and AdamW update.
    (The epoch's shuffle does not depend on the batch size: both see the same pairs.)"""
    root, _ = synth_data
    common = [
        "train.epochs=1",
        "data.max_train_samples=4",
        "lora.dropout=0",
        "optim.warmup_steps=1",
    ]
    runs = {}
    for name, batch, accumulation in (("accumulated", 1, 2), ("batched", 2, 1)):
        trainer = _trainer(
            tmp_path / name,
            bundle,
            root,
            *common,
            f"train.batch_size={batch}",
            f"train.gradient_accumulation_steps={accumulation}",
        )
        trainer.setup()
        start = _trainable(trainer)
        assert trainer.run()["steps"] == 2
        runs[name] = (start, _trainable(trainer))
    (start_a, end_a), (start_b, end_b) = runs["accumulated"], runs["batched"]
    assert start_a.keys() == end_b.keys()
    for name in start_a:
        assert torch.equal(start_a[name], start_b[name]), name  # same initial weights
    # The logged loss of each step (the mean over its micro-batches) is the batch's loss.
    losses = {name: [r["total"] for r in read_metrics(tmp_path / name, "train")] for name in runs}
    assert losses["accumulated"] == pytest.approx(losses["batched"], rel=1e-5)
    update_a = torch.cat([(end_a[n] - start_a[n]).flatten() for n in sorted(start_a)])
    update_b = torch.cat([(end_b[n] - start_b[n]).flatten() for n in sorted(start_a)])
    difference = (update_a - update_b).abs()
    assert float(update_a.abs().max()) > 1e-3  # two AdamW steps at lr ~1e-3 moved the weights
    # Same updates up to rounding. Adam divides each gradient element by its own size, so
    # elements whose gradient is near zero (attention key biases: exactly zero; measured:
    # 150 of 2.2 M elements) turn float noise into differences of up to ~1e-5 (1% of lr).
    assert float(difference.norm() / update_a.norm()) < 1e-4
    assert float(difference.max()) < 2e-5
    assert int((difference > 1e-6).sum()) < 1e-4 * difference.numel()
