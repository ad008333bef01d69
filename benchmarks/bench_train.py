"""Training throughput: samples/s through the trainer's own step (`training.step.TrainStep`:
DeepSpeed ZeRO-2, the recipe's loss; the object `Trainer.train_step` runs).

CPU: the tiny preset (SAM at 1024 px, as shipped) and the demo's tiny model (SAM at
256 px / 8-px patches), batch 1, a 1082x932 image (MUSeg size: the loss is computed
at the original resolution), with and without cached encoder outputs.
GPU (only where CUDA is available): LISA-7B sizes with random weights, FP16, ZeRO-2,
gradient checkpointing, batch 1: samples/s and peak GPU memory (target: fits 24 GB).
The 7B model is built directly on the GPU in fp16 (never in fp32 on the CPU).

DeepSpeed picks its accelerator once per process, so `--device all` (the default)
runs the CPU rows here and the GPU row in a child process (`--device cuda`).

    python benchmarks/bench_train.py [--steps 10] [--device all|cpu|cuda] [--skip-gpu] [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
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
from minelisa_training.training.distributed import prepare_single_process_env
from minelisa_training.training.step import TrainStep, build_engine, loss_for
from minelisa_training.training.trainable import parameter_counts, prepare_for_training


def example(height: int = 932, width: int = 1082) -> Example:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), dtype=bool)
    mask[300:600, 200:800] = True
    image[mask] = (200, 170, 40)
    return Example("bench", image, "Please segment the container in this image.", mask, class_id=6)


def measure(
    model, tokenizer, recipe_name: str, device: str, steps: int, cache: bool, overrides=()
) -> dict:
    """samples/s of the trainer's own step (training.step.TrainStep) on one MUSeg-size example."""
    recipe = load_config(recipe_name, list(overrides))
    prepare_for_training(
        model, sorted(tokenizer.added_tokens.values()), recipe.trainable, recipe.lora
    )
    if device == "cuda" and recipe.runtime.gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    trainable = sum(t for t, _ in parameter_counts(model).values())
    engine, _ = build_engine(model, recipe, device, total_steps=steps + 10)
    train_step = TrainStep(
        engine, loss_for(recipe), EmbeddingCache(cache_sam=cache, cache_clip=cache)
    )
    encoded = ExampleEncoder(tokenizer, model.config)(example())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        train_step(collate([encoded], tokenizer.pad_id))

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
    return {
        "samples_per_s": steps / elapsed,
        "ms_per_step": 1000 * elapsed / steps,
        "trainable": trainable,
        "peak_gib": peak,
    }


HEADER = f"{'model':52s} {'device':24s} {'precision':20s} {'samples/s':>9s} {'ms/step':>8s} {'trainable':>12s} {'peak GiB':>8s}"


def format_row(name: str, device: str, precision: str, r: dict) -> str:
    return (
        f"{name:52s} {device:24s} {precision:20s} {r['samples_per_s']:9.2f} {r['ms_per_step']:8.0f} "
        f"{r['trainable']:12,d} {r['peak_gib']:8.2f}"
    )


def cpu_rows(tokenizer, steps: int) -> list:
    prepare_single_process_env("cpu")
    rows = []
    cases = [
        ("tiny preset (SAM 1024 px)", tiny_config, False),
        ("tiny preset (SAM 1024 px), cached encoders", tiny_config, True),
        ("demo model (SAM 256 px / patch 8)", demo_model_config, False),
        ("demo model (SAM 256 px / patch 8), cached encoders", demo_model_config, True),
    ]
    for name, make_config, cache in cases:
        model = build_model(make_config(len(tokenizer)), tokenizer, seed=0).train()
        r = measure(model, tokenizer, "tiny_cpu", "cpu", steps, cache)
        rows.append((name, f"CPU x{torch.get_num_threads()}", "fp32", r))
    return rows


def gpu_row(tokenizer, steps: int) -> tuple:
    """LISA-7B sizes, random weights, built on the GPU in fp16 (the recipe's precision)."""
    prepare_single_process_env("cuda")
    start = time.perf_counter()
    model = lisa_7b_random(tokenizer, device="cuda", dtype=torch.float16).train()
    torch.cuda.synchronize()
    print(
        f"LISA-7B sizes built on {torch.cuda.get_device_name()} in {time.perf_counter() - start:.1f} s "
        f"({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
        f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB)",
        flush=True,
    )
    r = measure(model, tokenizer, "museg_lisa7b", "cuda", steps, cache=False)
    return ("LISA-7B sizes, random weights", torch.cuda.get_device_name(), "fp16 ZeRO-2 + ckpt", r)


def gpu_rows_in_child(steps: int) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gpu.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--device",
            "cuda",
            "--steps",
            str(steps),
            "--json",
            str(out),
        ]
        if subprocess.run(cmd).returncode != 0 or not out.exists():
            print("the LISA-7B GPU measurement failed (see the output above)")
            return []
        return [tuple(row) for row in json.loads(out.read_text())]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--device",
        choices=("all", "cpu", "cuda"),
        default="all",
        help="all: the CPU rows, and the GPU row where CUDA is available (in a child process)",
    )
    parser.add_argument("--skip-gpu", action="store_true", help="same as --device cpu")
    parser.add_argument("--out", help="also write the table to this file")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # rows for a parent process
    args = parser.parse_args()
    device = "cpu" if args.skip_gpu else args.device
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = write_tiny_tokenizer(Path(tmp) / "tok")
        if device == "cuda":
            rows.append(gpu_row(tokenizer, args.steps))
        else:
            rows += cpu_rows(tokenizer, args.steps)
            if device == "all" and torch.cuda.is_available():
                rows += gpu_rows_in_child(args.steps)
            else:
                print(
                    "no CUDA device (or --device cpu): the LISA-7B GPU measurement "
                    "(fp16, ZeRO-2, gradient checkpointing) is skipped"
                )
    if args.json:
        Path(args.json).write_text(json.dumps(rows))
    table = "\n".join([HEADER, *(format_row(*row) for row in rows)])
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
