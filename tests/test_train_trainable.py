"""What trains: exactly LoRA (LLM q_proj/v_proj), the mask decoder, the [SEG] head and the
new-token rows; a real DeepSpeed ZeRO-2 step on CPU changes them and nothing else."""

from __future__ import annotations

import re

import torch
from train_helpers import tiny_demo_model, training_batch

from minelisa_training.training.config import load_config
from minelisa_training.training.lr_schedule import WarmupLinearDecay
from minelisa_training.training.step import TrainStep, build_engine, loss_for
from minelisa_training.training.trainable import (
    format_parameter_counts,
    parameter_counts,
    prepare_for_training,
)

RECIPE = load_config("tiny_cpu")


def _prepared(tmp_path):
    model, tokenizer = tiny_demo_model(tmp_path)
    plain_names = {n for n, _ in model.named_parameters()}
    prepare_for_training(
        model, sorted(tokenizer.added_tokens.values()), RECIPE.trainable, RECIPE.lora
    )
    return model.train(), tokenizer, plain_names


def test_exactly_the_intended_parameters_train(tmp_path) -> None:
    model, tokenizer, plain_names = _prepared(tmp_path)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    layers = model.config.llm["num_hidden_layers"]
    expected_lora = {
        f"language_model.model.layers.{i}.self_attn.{proj}.lora_{ab}.default.weight"
        for i in range(layers)
        for proj in ("q_proj", "v_proj")
        for ab in "AB"
    }
    expected = (
        expected_lora
        | {n for n in plain_names if n.startswith("visual_model.mask_decoder.")}
        | {n for n in plain_names if n.startswith("text_hidden_fcs.")}
        | {"language_model.model.embed_tokens.rows", "language_model.lm_head.rows"}
    )
    assert trainable == expected
    # The CLIP tower also has q_proj/v_proj: the LoRA regex must not touch them.
    assert not any("lora" in n for n, _ in model.vision_tower.named_parameters())
    # Paper: r = 8, A Gaussian, B zero.
    a = model.language_model.model.layers[0].self_attn.q_proj.lora_A["default"].weight
    b = model.language_model.model.layers[0].self_attn.q_proj.lora_B["default"].weight
    assert a.shape[0] == 8 and b.shape[1] == 8 and torch.count_nonzero(b) == 0 and a.std() > 0
    # Only the added tokens get trainable rows, and they start from the loaded values.
    rows = model.language_model.model.embed_tokens.rows
    assert rows.shape == (len(tokenizer.added_tokens), model.config.hidden_size)
    ids = sorted(tokenizer.added_tokens.values())
    assert torch.equal(rows.detach(), model.language_model.model.embed_tokens.base.weight[ids])
    counts = parameter_counts(model)
    assert counts["LoRA (q_proj, v_proj)"][0] == layers * 2 * 8 * 2 * model.config.hidden_size
    assert (
        counts["CLIP tower"][0] == 0
        and counts["SAM image encoder"][0] == 0
        and counts["language model"][0] == 0
    )
    table = format_parameter_counts(model)
    assert "SAM mask decoder" in table and "% trainable" in table


def test_base_stage_trains_the_whole_model_but_clip(tmp_path) -> None:
    model, tokenizer = tiny_demo_model(tmp_path)
    recipe = load_config(
        "tiny_cpu",
        [
            "trainable.lora=false",
            "trainable.language_model=true",
            "trainable.mm_projector=true",
            "trainable.sam_image_encoder=true",
        ],
    )
    prepare_for_training(
        model, sorted(tokenizer.added_tokens.values()), recipe.trainable, recipe.lora
    )
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(
        n.startswith(("vision_tower.", "visual_model.prompt_encoder.")) for n in frozen
    )
    assert not any("lora" in n or n.endswith(".rows") for n, _ in model.named_parameters())


def test_zero2_step_on_cpu_changes_trainable_and_nothing_else(tmp_path, one_process) -> None:
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    model, tokenizer, _ = _prepared(tmp_path)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # The trainer's own engine and step (training.step), on the tiny_cpu recipe.
    engine, scheduler = build_engine(model, RECIPE, "cpu", total_steps=10)
    optimizer = engine.optimizer
    assert isinstance(optimizer, DeepSpeedZeroOptimizer) and engine.zero_optimization_stage() == 2
    assert isinstance(scheduler, WarmupLinearDecay)
    batch = training_batch(model, tokenizer)
    train_step = TrainStep(engine, loss_for(RECIPE))

    def step() -> float:
        return train_step(batch)["total"]

    first = step()
    after = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for name in before:
        if name not in trainable:
            assert torch.equal(before[name], after[name]), f"frozen {name} changed"
    changed = {n for n in trainable if not torch.equal(before[n], after[n])}
    must_change = [
        r"lora_B",
        r"^visual_model\.mask_decoder\.output_upscaling\.",
        r"^visual_model\.mask_decoder\.transformer\.",
        r"^text_hidden_fcs\.0\.0\.",
        r"^text_hidden_fcs\.0\.2\.",
        r"^language_model\.model\.embed_tokens\.rows$",
        r"^language_model\.lm_head\.rows$",
    ]
    for pattern in must_change:
        hits = [n for n in trainable if re.search(pattern, n)]
        assert hits and all(n in changed for n in hits), f"{pattern}: not all of {hits} changed"
    # With B = 0 the gradient of A is exactly zero: A moves from the second step on.
    assert not any("lora_A" in n for n in changed)
    for _ in range(3):
        last = step()
    moved = [
        n
        for n in trainable
        if "lora_A" in n and not torch.equal(before[n], model.get_parameter(n).detach())
    ]
    assert len(moved) == sum("lora_A" in n for n in trainable)
    assert last < first
    for name in before:
        if name not in trainable:
            assert torch.equal(before[name], model.get_parameter(name).detach())


def test_starting_from_a_lisa_checkpoint_keeps_its_mask_decoder_and_head(tmp_path) -> None:
    """LISA's own fine-tuning code re-initialises SAM and the [SEG] head (LISA #159, #188)."""
    from minelisa_training.testing import write_clip_dir, write_lisa_checkpoint
    from minelisa_training.training.trainer import Trainer

    source, tokenizer = tiny_demo_model(tmp_path / "src", seed=1)
    with torch.no_grad():  # "trained" values that no initialiser would produce
        for p in [
            *source.visual_model.mask_decoder.parameters(),
            *source.text_hidden_fcs.parameters(),
        ]:
            p.add_(0.5)
    lisa_dir = write_lisa_checkpoint(tmp_path / "LISA-tiny", source, tokenizer)
    clip_dir = write_clip_dir(tmp_path / "clip", source)
    recipe = load_config("tiny_cpu", [f"model.path={lisa_dir}", f"model.vision_tower={clip_dir}"])
    loaded = Trainer(recipe, tmp_path / "run").load_model()  # the trainer's own loading path
    assert loaded.report.format == "lisa" and not loaded.report.fresh
    model = prepare_for_training(
        loaded.model, sorted(loaded.tokenizer.added_tokens.values()), recipe.trainable, recipe.lora
    )
    reference, _ = tiny_demo_model(
        tmp_path / "fresh", seed=1
    )  # what a re-initialisation would give
    for prefix in ("visual_model.mask_decoder.", "text_hidden_fcs."):
        names = [n for n, _ in source.named_parameters() if n.startswith(prefix)]
        assert names
        for name in names:
            kept = model.get_parameter(name)
            assert kept.requires_grad, name
            assert torch.equal(kept.detach(), source.get_parameter(name).detach()), (
                f"{name} was not kept"
            )
            assert not torch.equal(kept.detach(), reference.get_parameter(name).detach())
