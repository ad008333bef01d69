"""Training throughput: samples/s through the real trainer step (DeepSpeed ZeRO-2, paper recipe).

CPU: the tiny preset (SAM at 1024 px, as shipped) and the demo's tiny model (SAM at
256 px / 8-px patches), batch 1, a 1082x932 image (MUSeg size: the loss is computed
at the original resolution), with and without cached encoder outputs.
GPU (only where CUDA is available): LISA-7B sizes with random weights, FP16, ZeRO-2,
gradient checkpointing, batch 1: samples/s and peak GPU memory (target: fits 24 GB).

    python benchmarks/bench_train.py [--steps 10] [--skip-gpu]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from minelisa_training.config import tiny_config
from minelisa_training.testing import build_model, lisa_7b_random, write_tiny_tokenizer
from minelisa_training.training.config import load_config
from minelisa_training.training.data import EmbeddingCache, Example, ExampleEncoder, collate
from minelisa_training.training.demo import demo_model_config
from minelisa_training.training.distributed import build_deepspeed_config, prepare_single_process_env
from minelisa_training.training.losses import SegmentationLoss
from minelisa_training.training.trainable import parameter_counts, prepare_for_training


def example(height: int = 932, width: int = 1082) -> Example:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), dtype=bool)
    mask[300:600, 200:800] = True
    image[mask] = (200, 170, 40)
    return Example("bench", image, "Please segment the container in this image.", mask, class_id=6)


def measure(model, tokenizer, recipe_name: str, device: str, steps: int, cache: bool, overrides=()) -> dict:
    import deepspeed

    recipe = load_config(recipe_name, list(overrides))
    prepare_for_training(model, sorted(tokenizer.added_tokens.values()), recipe.trainable, recipe.lora)
    if device == "cuda" and recipe.runtime.gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable = sum(t for t, _ in parameter_counts(model).values())
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=build_deepspeed_config(recipe, device, total_steps=steps + 10),
    )
    encoder = ExampleEncoder(tokenizer, model.config.mm_use_im_start_end, model.config.sam.image_size)
    encoded = encoder(example())
    loss_fn = SegmentationLoss()
    store = EmbeddingCache(cache_sam=cache, cache_clip=cache)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        batch = collate([encoded], tokenizer.pad_id).to(engine.device)
        if store.enabled:
            store.fill(engine.module, batch)
        out = engine(batch.inputs)
        terms = loss_fn(out.ce_loss, out.mask_logits, batch.gt_masks)
        engine.backward(terms.total)
        engine.step()

    for _ in range(2):  # warm-up (and cache fill)
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return {"samples_per_s": steps / elapsed, "ms_per_step": 1000 * elapsed / steps, "trainable": trainable, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--skip-gpu", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = write_tiny_tokenizer(Path(tmp) / "tok")
        prepare_single_process_env("cpu")
        cases = [
            ("tiny preset (SAM 1024 px)", tiny_config, False),
            ("tiny preset (SAM 1024 px), cached encoders", tiny_config, True),
            ("demo model (SAM 256 px / patch 8)", demo_model_config, False),
            ("demo model (SAM 256 px / patch 8), cached encoders", demo_model_config, True),
        ]
        for name, make_config, cache in cases:
            model = build_model(make_config(len(tokenizer)), tokenizer, seed=0).train()
            r = measure(model, tokenizer, "tiny_cpu", "cpu", args.steps, cache)
            rows.append((name, f"CPU x{torch.get_num_threads()}", "fp32", r))
        if torch.cuda.is_available() and not args.skip_gpu:
            model = lisa_7b_random(tokenizer).to("cuda").train()
            r = measure(model, tokenizer, "museg_lisa7b", "cuda", args.steps, cache=False)
            rows.append(("LISA-7B sizes, random weights", torch.cuda.get_device_name(), "fp16 ZeRO-2 + ckpt", r))
        else:
            print("no CUDA device: the LISA-7B GPU measurement (fp16, ZeRO-2, gradient checkpointing) is skipped")
    print(f"\n{'model':52s} {'device':12s} {'precision':20s} {'samples/s':>9s} {'ms/step':>8s} {'trainable':>12s} {'peak GiB':>8s}")
    for name, device, precision, r in rows:
        print(f"{name:52s} {device:12s} {precision:20s} {r['samples_per_s']:9.2f} {r['ms_per_step']:8.0f} "
              f"{r['trainable']:12,d} {r['peak_gib']:8.2f}")


if __name__ == "__main__":
    main()
