"""Per-stage inference latency of SegmentationEngine.

CPU: the tiny preset (random weights). GPU (when CUDA is available): also the
LISA-7B sizes with random weights in bf16. Input 1082x932 (MUSeg). Prints a
table: per-stage p50/p90 for one instruction, peak GPU memory, and the ratio
time(8 instructions on one frame) / time(1 instruction).

    python benchmarks/bench_inference.py [--repeats 10] [--presets tiny,lisa-7b] [--out table.md]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

from minelisa_training.engine import SegmentationEngine
from minelisa_training.testing import build_model, lisa_7b_random, write_tiny_tokenizer
from minelisa_training.config import tiny_config

INSTRUCTIONS = [
    "segment the exposed cable", "where is the person near the conveyor?", "the door", "the rail area",
    "segment the anchoring equipment", "the rescue equipment", "the metal fixture on the roof", "the tube",
]
STAGES = ("clip_ms", "sam_encoder_ms", "llm_ms", "decoder_ms", "total_ms")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_preset(name: str, device: str, dtype: torch.dtype, repeats: int) -> dict:
    tok = write_tiny_tokenizer(tempfile.mkdtemp(prefix="bench-tok-"))
    if name == "tiny":
        model = build_model(tiny_config(len(tok)), tok, device=device, dtype=dtype)
    else:
        start = time.perf_counter()
        model = lisa_7b_random(tok, device=device, dtype=dtype)  # built on the GPU, never on the CPU
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        print(f"{name}: built on {device} in {dtype} in {time.perf_counter() - start:.1f} s", flush=True)
    engine = SegmentationEngine(model, tok)
    image = np.random.default_rng(0).integers(0, 255, size=(932, 1082, 3), dtype=np.uint8)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):  # warm-up (allocator, kernels)
        engine.segment(image, INSTRUCTIONS[0])
        engine.segment_batch(image, INSTRUCTIONS)
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    one, eight = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        r = engine.segment(image, INSTRUCTIONS[0], timed=True)
        one.append((time.perf_counter() - t) * 1000)
        for s in STAGES:
            stages[s].append(r.timings[s])
        t = time.perf_counter()
        engine.segment_batch(image, INSTRUCTIONS)
        eight.append((time.perf_counter() - t) * 1000)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return {
        "preset": name, "device": device, "dtype": str(dtype).replace("torch.", ""),
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        **{f"{s}_p50": pct(v, 50) for s, v in stages.items()},
        **{f"{s}_p90": pct(v, 90) for s, v in stages.items()},
        "one_p50": statistics.median(one), "one_p90": pct(one, 90), "eight_p50": statistics.median(eight),
        "ratio_8_to_1": statistics.median(eight) / statistics.median(one), "peak_gib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--presets", default="tiny,lisa-7b", help="comma list of tiny, lisa-7b")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    runs = []
    for preset in args.presets.split(","):
        if preset == "tiny":
            runs.append(("tiny", "cpu", torch.float32))
            if torch.cuda.is_available():
                runs.append(("tiny", "cuda", torch.bfloat16))
        elif preset == "lisa-7b":
            if not torch.cuda.is_available():
                print("lisa-7b: skipped, no CUDA device on this machine (it needs ~16 GB of GPU memory)")
                continue
            runs.append(("lisa-7b", "cuda", torch.bfloat16))
        else:
            parser.error(f"unknown preset {preset!r} (tiny, lisa-7b)")
    rows, failed = [], []
    for name, device, dtype in runs:
        try:
            rows.append(run_preset(name, device, dtype, args.repeats))
        except Exception:  # one failed preset still leaves the others' rows
            traceback.print_exc()
            failed.append(f"{name} on {device}")
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    lines = [
        "| preset | device | dtype | params (M) | clip p50 | sam enc p50 | llm p50 | decoder p50 | "
        "1 instr p50 / p90 (ms) | 8 instr p50 (ms) | ratio 8/1 | peak GPU (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['device']} | {r['dtype']} | {r['params_M']:.1f} | {r['clip_ms_p50']:.1f} | "
            f"{r['sam_encoder_ms_p50']:.1f} | {r['llm_ms_p50']:.1f} | {r['decoder_ms_p50']:.1f} | "
            f"{r['one_p50']:.1f} / {r['one_p90']:.1f} | {r['eight_p50']:.1f} | {r['ratio_8_to_1']:.2f} | "
            f"{r['peak_gib']:.1f} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
