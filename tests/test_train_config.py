"""Training recipes: the shipped paper recipe, strict keys, dotted overrides, the DeepSpeed config."""

from __future__ import annotations

import pytest
import torch

from minelisa_training.training.config import (
    ConfigError,
    TrainConfig,
    load_config,
    resolve_config_path,
    shipped_configs,
)
from minelisa_training.training.config_rules import RULES
from minelisa_training.training.distributed import build_deepspeed_config, lr_scheduler_for
from minelisa_training.training.lr_schedule import WarmupLinearDecay


def test_shipped_recipes_load() -> None:
    assert {"museg_lisa7b", "museg_lisa7b_aug", "tiny_cpu"} <= set(shipped_configs())
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
    assert (c.optim.weight_decay, c.optim.warmup_steps, c.optim.min_lr) == (0.0, 100, 0.0)
    assert (c.runtime.precision, c.runtime.zero_stage, c.runtime.gradient_checkpointing) == (
        "fp16",
        2,
        True,
    )
    assert c.train.batch_size == 1 and c.train.epochs == 20
    assert c.train.gradient_accumulation_steps == 1 and c.runtime.validate_every_epochs == 1
    # No augmentation in the paper; with none, caching the frozen encoders' outputs
    # gives the same numbers.
    assert c.data.augment is False and c.runtime.cache_image_embeddings is True
    t = c.trainable
    assert t.lora and t.mask_decoder and t.text_hidden_fcs and t.new_token_rows
    assert not (t.language_model or t.mm_projector or t.sam_image_encoder or t.sam_prompt_encoder)


def test_paper_recipe_names_a_source_for_every_value() -> None:
    text = resolve_config_path("museg_lisa7b").read_text(encoding="utf-8")
    sources = ("[paper", "[train_ds.py", "[MUSeg", "[not in the paper")
    comment = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment += stripped  # a comment block above a key counts for it
            continue
        key, _, value = stripped.partition(":")
        value = value.split("#")[0].strip()
        if value:  # a key with a value (not a section header)
            said = line.partition("#")[2] + comment
            assert any(s in said for s in sources), f"no source for {key}: {line!r}"
        comment = ""


def test_augmented_variant_differs_only_in_augmentation() -> None:
    paper, aug = load_config("museg_lisa7b").to_dict(), load_config("museg_lisa7b_aug").to_dict()
    assert aug["data"].pop("augment") is True and paper["data"].pop("augment") is False
    assert aug["runtime"].pop("cache_image_embeddings") is False
    paper["runtime"].pop("cache_image_embeddings")
    assert aug == paper


def test_extends(tmp_path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("extends: tiny_cpu\noptim:\n  lr: 2.0e-4\n")
    c = load_config(str(child))
    assert c.optim.lr == 2e-4 and c.optim.betas == [0.9, 0.95] and c.runtime.device == "cpu"
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="extends"):
        load_config(str(loop))


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
        ("optim.betas=[0.9]", r"optim\.betas must be two values in \[0, 1\), got \[0\.9\]"),
        ("lora", r"must look like section\.key=value"),
        ("optim=3", r"optim must be a mapping"),
    ],
)
def test_bad_values_are_explained(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("tiny_cpu", [override])


@pytest.mark.parametrize(
    "override, allowed",
    [
        ("runtime.save_every_steps=0", "an integer >= 1"),  # was a ZeroDivisionError after loading
        ("runtime.log_every=0", "an integer >= 1"),  # likewise
        ("runtime.validate_every_epochs=0", "an integer >= 1"),
        ("runtime.keep_checkpoints=0", "an integer >= 1"),
        ("train.max_steps=0", "null or an integer >= 1"),
        ("train.max_steps=-3", "null or an integer >= 1"),
        ("train.epochs=0", "an integer >= 1"),
        ("train.batch_size=-1", "an integer >= 1"),
        ("train.gradient_accumulation_steps=0", "an integer >= 1"),
        ("train.seed=-5", "an integer in [0, 2**32)"),
        ("optim.warmup_steps=-10", "an integer >= 0"),  # was silently clamped
        ("optim.lr=0", "a number > 0"),
        ("optim.min_lr=1.0", "a number in [0, optim.lr]"),
        ("optim.min_lr=-1e-6", "a number in [0, optim.lr]"),
        ("optim.weight_decay=-0.1", "a number >= 0"),
        ("optim.grad_clip=-1", "a number >= 0 (0: no clipping)"),
        ("optim.betas=[0.9, 1.2]", "two values in [0, 1)"),
        ("lora.r=0", "an integer >= 1"),
        ("lora.alpha=0", "a number > 0"),
        ("lora.dropout=1.0", "a number in [0, 1)"),
        ("lora.target_modules=[]", "a non-empty list of module names"),
        ("loss.dice=-1", "a number >= 0"),
        ("loss.dice_eps=0", "a number > 0"),
        ("data.val_fraction=0", "a number in (0, 1)"),
        ("data.negative_fraction=1.5", "a number in [0, 1]"),
        ("data.group_fields=0", "an integer >= 1"),
        ("data.max_train_samples=0", "null or an integer >= 1"),
        ("data.max_val_images=-1", "null or an integer >= 1"),
        ("data.num_workers=-1", "an integer >= 0"),
        ("data.templates=[Segment the thing.]", "a non-empty list of texts with {class_name}"),
        ("runtime.device=tpu", "auto, cpu, cuda or cuda:N"),
        ("runtime.zero_stage=3", "0, 1 or 2"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_range(override: str, allowed: str) -> None:
    key = override.partition("=")[0]
    with pytest.raises(ConfigError) as info:
        load_config("tiny_cpu", [override])
    assert str(info.value).startswith(f"{key} must be {allowed}, got "), str(info.value)


def test_every_recipe_value_has_a_range_or_a_type_only() -> None:
    """A new recipe key gets a rule in config_rules.RULES, or joins this list of keys whose
    type alone says what is allowed."""
    typed_only = {
        "model.path", "model.vision_tower", "data.root", "data.classes", "data.val_mines",
        "data.split_seed", "data.augment", "runtime.gradient_checkpointing",
        "runtime.cache_image_embeddings", "runtime.progress",
    }  # fmt: skip
    keys = {f"{section}.{name}" for section, values in TrainConfig().to_dict().items()
            if section != "trainable" for name in values}  # fmt: skip
    assert keys - typed_only == set(RULES), (keys - typed_only) ^ set(RULES)


def test_nothing_to_train_is_refused() -> None:
    with pytest.raises(ConfigError, match="loss.ce, loss.dice and loss.bce are all 0"):
        load_config("tiny_cpu", ["loss.ce=0", "loss.dice=0", "loss.bce=0"])
    off = [f"trainable.{k}=false" for k in vars(load_config("tiny_cpu").trainable)]
    with pytest.raises(ConfigError, match="nothing is trainable"):
        load_config("tiny_cpu", off)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="neither a file nor a shipped recipe"):
        load_config("no_such_recipe")


def test_deepspeed_config_cpu_and_gpu() -> None:
    paper = load_config("museg_lisa7b")
    cpu = build_deepspeed_config(paper, "cpu")
    assert cpu["zero_optimization"]["stage"] == 2
    assert cpu["fp16"]["enabled"] is False and cpu["bf16"]["enabled"] is False  # fp16 needs a GPU
    assert cpu["optimizer"]["type"] == "AdamW" and cpu["optimizer"]["params"]["torch_adam"] is True
    assert cpu["optimizer"]["params"]["betas"] == [0.9, 0.95] and cpu["gradient_clipping"] == 1.0
    assert cpu["optimizer"]["params"]["weight_decay"] == 0.0
    assert "scheduler" not in cpu  # lr_schedule.WarmupLinearDecay, handed to deepspeed.initialize
    gpu = build_deepspeed_config(paper, "cuda")
    assert gpu["fp16"]["enabled"] is True and gpu["zero_optimization"]["overlap_comm"] is True
    assert gpu["train_micro_batch_size_per_gpu"] == 1


def _lrs(schedule: WarmupLinearDecay, optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    """The learning rate each of ``steps`` optimizer steps uses, as the optimizer sees it."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        schedule.step()
    return lrs


def test_lr_schedule_warms_up_then_decays_to_min_lr() -> None:
    recipe = load_config("museg_lisa7b", ["optim.min_lr=3e-6"])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = lr_scheduler_for(recipe, total_steps=1000)(optimizer)
    assert (schedule.lr, schedule.min_lr, schedule.warmup) == (3e-5, 3e-6, 100)
    lrs = _lrs(schedule, optimizer, 1000)
    assert lrs[0] == pytest.approx(3e-5 / 101)  # the first step already learns
    assert lrs[99] == pytest.approx(3e-5 * 100 / 101) and lrs[100] == pytest.approx(3e-5)
    steps = [b - a for a, b in zip(lrs[100:], lrs[101:])]  # linear decay: equal steps down
    assert all(d == pytest.approx(-(3e-5 - 3e-6) / 900) for d in steps)
    assert lrs[-1] == pytest.approx(3e-6 + (3e-5 - 3e-6) / 900)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(3e-6)  # the decay ends at min_lr
    assert min(lrs[100:]) > 3e-6 and schedule.last_step_lr() == pytest.approx(lrs[-1])
    # A resumed run continues the curve from the saved step count.
    again = WarmupLinearDecay(optimizer, lr=3e-5, min_lr=3e-6, warmup=100, total=1000)
    again.load_state_dict({"steps": 500})
    assert optimizer.param_groups[0]["lr"] == pytest.approx(lrs[500])
    # The warm-up never outlasts the run; min_lr above lr is refused.
    assert WarmupLinearDecay(optimizer, lr=1.0, min_lr=0.0, warmup=100, total=20).warmup == 19
    with pytest.raises(ValueError, match="min_lr"):
        WarmupLinearDecay(optimizer, lr=1.0, min_lr=2.0, warmup=1, total=10)
