"""Training recipes: the shipped paper recipe, strict keys, dotted overrides, the DeepSpeed config."""

from __future__ import annotations

import pytest

from minelisa_training.training.config import ConfigError, load_config, shipped_configs
from minelisa_training.training.distributed import build_deepspeed_config


def test_shipped_recipes_load() -> None:
    assert {"museg_lisa7b", "tiny_cpu"} <= set(shipped_configs())
    for name in shipped_configs():
        load_config(name)


def test_paper_recipe_values() -> None:
    c = load_config("museg_lisa7b")
    assert (c.lora.r, c.lora.alpha, c.lora.dropout, c.lora.target_modules) == (
        8,
        16,
        0.05,
        ["q_proj", "v_proj"],
    )
    assert (c.loss.ce, c.loss.dice, c.loss.bce) == (0.5, 1.5, 1.0)
    assert (c.optim.lr, c.optim.betas, c.optim.grad_clip) == (3e-5, [0.9, 0.95], 1.0)
    assert (c.runtime.precision, c.runtime.zero_stage, c.runtime.gradient_checkpointing) == (
        "fp16",
        2,
        True,
    )
    assert c.train.batch_size == 1 and c.train.epochs == 20
    t = c.trainable
    assert t.lora and t.mask_decoder and t.text_hidden_fcs and t.new_token_rows
    assert not (t.language_model or t.mm_projector or t.sam_image_encoder or t.sam_prompt_encoder)


def test_tiny_recipe_keeps_the_paper_shape() -> None:
    paper, tiny = load_config("museg_lisa7b"), load_config("tiny_cpu")
    assert tiny.lora == paper.lora and tiny.loss == paper.loss and tiny.trainable == paper.trainable
    assert tiny.optim.betas == paper.optim.betas and tiny.optim.grad_clip == paper.optim.grad_clip
    assert tiny.runtime.zero_stage == 2


def test_unknown_key_is_named(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: 1.0e-4\n  beta: [0.9, 0.99]\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key optim\.beta \(did you mean optim\.betas\?\)"
    ):
        load_config(str(bad))
    with pytest.raises(ConfigError, match=r"unknown config key lora\.rank"):
        load_config("tiny_cpu", ["lora.rank=4"])
    with pytest.raises(ConfigError, match=r"unknown config key trainer"):
        load_config("tiny_cpu", ["trainer.epochs=3"])


def test_overrides_are_typed() -> None:
    c = load_config(
        "tiny_cpu",
        [
            "optim.lr=1e-4",
            "train.max_steps=7",
            "data.root=/x/MUSeg",
            "lora.target_modules=[q_proj]",
            "data.val_mines=[01, 02]",
            "runtime.progress=false",
            "train.max_steps=null",
        ],
    )
    assert c.optim.lr == 1e-4 and isinstance(c.optim.lr, float)
    assert c.train.max_steps is None  # the later override wins
    assert c.data.root == "/x/MUSeg" and c.lora.target_modules == ["q_proj"]
    assert c.data.val_mines == [
        "1",
        "2",
    ]  # YAML reads 01 as a number; museg accepts "1" for mine 01
    assert c.runtime.progress is False


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=many", r"train\.epochs must be int"),
        ("runtime.precision=fp8", r"runtime\.precision must be fp16, bf16 or fp32"),
        ("optim.betas=[0.9]", r"optim\.betas needs two values"),
        ("lora", r"must look like section\.key=value"),
        ("optim=3", r"optim must be a mapping"),
    ],
)
def test_bad_values_are_explained(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("tiny_cpu", [override])


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="neither a file nor a shipped recipe"):
        load_config("no_such_recipe")


def test_deepspeed_config_cpu_and_gpu() -> None:
    paper = load_config("museg_lisa7b")
    cpu = build_deepspeed_config(paper, "cpu", total_steps=1000)
    assert cpu["zero_optimization"]["stage"] == 2
    assert cpu["fp16"]["enabled"] is False and cpu["bf16"]["enabled"] is False  # fp16 needs a GPU
    assert cpu["optimizer"]["type"] == "AdamW" and cpu["optimizer"]["params"]["torch_adam"] is True
    assert cpu["optimizer"]["params"]["betas"] == [0.9, 0.95] and cpu["gradient_clipping"] == 1.0
    assert (
        cpu["scheduler"]["params"]["warmup_num_steps"] == 100
        and cpu["scheduler"]["params"]["total_num_steps"] == 1000
    )
    gpu = build_deepspeed_config(paper, "cuda", total_steps=1000)
    assert gpu["fp16"]["enabled"] is True and gpu["zero_optimization"]["overlap_comm"] is True
    assert gpu["train_micro_batch_size_per_gpu"] == 1
    short = build_deepspeed_config(paper, "cpu", total_steps=20)
    assert short["scheduler"]["params"]["warmup_num_steps"] == 19  # warm-up never outlasts the run
    # The first step already learns (DeepSpeed's warm-up would start at lr 0 otherwise).
    assert 0 < short["scheduler"]["params"]["warmup_min_lr"] < paper.optim.lr
