"""Export: LoRA and new-token rows folded into plain weights give the same masks as the
unmerged model; the bundle loads in the serving engine and carries a model card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from train_helpers import tiny_demo_bundle, tiny_demo_model, training_batch

from minelisa_training.engine import SegmentationEngine
from minelisa_training.training.checkpointing import CheckpointManager
from minelisa_training.training.config import load_config
from minelisa_training.training.export import ExportError, export_run, load_trained_model
from minelisa_training.training.trainable import prepare_for_training
from minelisa_training.training.trainer import save_run_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run folder whose 'best' weights have non-zero LoRA, rows and a changed decoder."""
    tmp = tmp_path_factory.mktemp("export")
    base = tiny_demo_bundle(tmp / "base")
    run = tmp / "run"
    config = load_config("tiny_cpu", [f"model.path={base}"])
    save_run_config(config, run)
    model, tokenizer = tiny_demo_model(tmp / "m")  # same seed as the bundle: same weights
    prepare_for_training(
        model, sorted(tokenizer.added_tokens.values()), config.trainable, config.lora
    )
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                scale = 0.2 if "lora_B" in name or name.endswith(".rows") else 0.02
                p.add_(scale * torch.randn(p.shape, generator=gen))
    CheckpointManager(run).save_best(model, {"step": 7, "giou": 0.5, "ciou": 0.6})
    return run, base


def _mask_logits(model, tokenizer) -> torch.Tensor:
    batch = training_batch(model, tokenizer)
    batch.inputs.labels = None
    with torch.no_grad():
        return model(batch.inputs).mask_logits[0]


def test_merged_bundle_gives_the_masks_of_the_unmerged_model(trained_run, tmp_path) -> None:
    run, base = trained_run
    unmerged, tokenizer, _, info = load_trained_model(run)
    assert info["checkpoint"] == "best" and info["step"] == 7
    assert any("lora_A" in n for n, _ in unmerged.named_parameters())
    bundle = export_run(run, tmp_path / "bundle")
    merged = SegmentationEngine.from_pretrained(bundle)
    reference = SegmentationEngine.from_pretrained(base)

    logits_unmerged = _mask_logits(unmerged, tokenizer)
    logits_merged = _mask_logits(merged.model, merged.tokenizer)
    logits_base = _mask_logits(reference.model, reference.tokenizer)
    assert torch.allclose(logits_unmerged, logits_merged, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(
        logits_base, logits_merged, atol=1e-2
    )  # the trained weights do matter

    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, size=(150, 190, 3), dtype=np.uint8)
    instructions = [
        "Please segment the cable in this image.",
        "Please segment the person in this image.",
    ]
    a = SegmentationEngine(unmerged, tokenizer).segment_batch(image, instructions)
    b = merged.segment_batch(image, instructions)
    for ra, rb in zip(a, b):
        # Identical up to pixels whose logit sits within float rounding of the threshold.
        assert np.mean(ra.mask != rb.mask) < 1e-3


def test_bundle_layout_and_model_card(trained_run, tmp_path) -> None:
    run, base = trained_run
    bundle = export_run(run, tmp_path / "bundle", dtype="fp16")
    with safe_open(str(bundle / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        dtype = f.get_tensor("text_hidden_fcs.0.0.weight").dtype
    with safe_open(str(base / "model.safetensors"), "pt") as f:
        base_keys = set(f.keys())
    assert keys == base_keys  # plain model: no lora_*, no .rows, no .base_layer
    assert dtype == torch.float16
    card = json.loads((bundle / "model_card.json").read_text())
    assert (
        card["training_config"]["lora"]["r"] == 8 and card["training_config"]["loss"]["dice"] == 1.5
    )
    assert card["weights"]["giou"] == 0.5 and card["base_model"] == str(base)
    assert "LoRA merged" in card["method"]


def test_export_errors(tmp_path) -> None:
    with pytest.raises(ExportError, match="not a training run"):
        export_run(tmp_path, tmp_path / "out")
    run = tmp_path / "run"
    save_run_config(load_config("tiny_cpu", ["model.path=/nowhere"]), run)
    with pytest.raises(ExportError, match="no checkpoint yet"):
        export_run(run, tmp_path / "out", which="last")
