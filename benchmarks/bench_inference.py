"""Inference speed of SegmentationEngine, with each switch on and off.

Presets (random weights, input 1082x932 as MUSeg):
- ``tiny``: the test model (CPU fp32; GPU bf16 where CUDA exists);
- ``llm-1b``: the tiny vision towers with a ~1B-parameter Llama (hidden 2048, 16 layers,
  the real 32,004-row vocabulary), so the LLM dominates the time as it does at 7B: this
  shows the shared-prefix reuse on a CPU;
- ``lisa-7b``: LISA-7B sizes in bf16, only where CUDA exists.

For each: per-stage p50/p90 of one instruction on a new frame (fresh encode), one and
eight instructions with prefix reuse on and off (and their ratio), the following-mode
frame rate (`engine.follow`: SAM encoder + mask decoder, the LLM's prompt reused) against
the full model's, and peak memory. A second table turns the GPU path's switches on and off
(`image_views` exact/device, `compile` off/on; see minelisa_training/acceleration.py): the
encode stages, one instruction on a new frame, following, and the first call's seconds
(compiling, for compile on). Speed targets live here, not in tests.

    python benchmarks/bench_inference.py [--repeats 5] [--presets tiny,llm-1b,lisa-7b]
        [--no-compile] [--out t.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

from minelisa_training.config import tiny_config
from minelisa_training.engine import SegmentationEngine
from minelisa_training.testing import build_model, lisa_7b_random, write_tiny_tokenizer

INSTRUCTIONS = [
    "segment the exposed cable",
    "where is the person near the conveyor?",
    "the door",
    "the rail area",
    "segment the anchoring equipment",
    "the rescue equipment",
    "the metal fixture on the roof",
    "the tube",
]
STAGES = ("clip_ms", "sam_encoder_ms", "llm_prefix_ms", "llm_ms", "decoder_ms", "total_ms")
SWITCHES = (("exact", False), ("device", False), ("exact", True), ("device", True))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def timed_ms(fn, repeats: int, device: str) -> list[float]:
    out = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out.append((time.perf_counter() - start) * 1000)
    return out


def build(name: str, device: str, dtype: torch.dtype):
    tok = write_tiny_tokenizer(tempfile.mkdtemp(prefix="bench-tok-"))
    if name == "tiny":
        return build_model(tiny_config(len(tok)), tok, device=device, dtype=dtype), tok
    if name == "llm-1b":
        config = tiny_config(32004)
        config.llm.update(
            hidden_size=2048,
            intermediate_size=5504,
            num_hidden_layers=16,
            num_attention_heads=16,
            num_key_value_heads=16,
        )
        return build_model(dataclasses.replace(config), tok, device=device, dtype=dtype), tok
    return lisa_7b_random(tok, device=device, dtype=dtype), tok


def switch_row(model, tok, views: str, compiled: bool, image, repeats: int) -> dict:
    """One engine with the given switches: first call, encode stages, one instruction, follow."""
    device = str(model.device)
    engine = SegmentationEngine(model, tok, image_views=views, compile=compiled)
    start = time.perf_counter()
    engine.segment(image, INSTRUCTIONS[0])  # compiles, with compile on
    first_s = time.perf_counter() - start
    engine.segment(image, INSTRUCTIONS[0])
    stages: dict[str, list[float]] = {s: [] for s in STAGES[:3]}
    for _ in range(repeats):
        timings = engine.encode(image, timed=True).timings
        for s in stages:
            stages[s].append(timings[s])
    one = timed_ms(lambda: engine.segment(image, INSTRUCTIONS[0]), repeats, device)
    previous = engine.segment_batch(image, INSTRUCTIONS[:1])
    follow = timed_ms(lambda: engine.follow(image, previous), repeats, device)
    done = engine.encoder.compiled
    return {
        "views": engine.encoder.image_views,
        "compile": "on"
        if compiled and all(done.values())
        else (f"on ({done})" if compiled else "off"),
        "first_s": first_s,
        **{f"{s}_p50": pct(v, 50) for s, v in stages.items()},
        "one_p50": statistics.median(one),
        "follow_hz": 1000.0 / statistics.median(follow),
    }


def run_preset(name: str, device: str, dtype: torch.dtype, repeats: int, compile_too: bool) -> dict:
    model, tok = build(name, device, dtype)
    reuse, whole = (
        SegmentationEngine(model, tok),
        SegmentationEngine(model, tok, prefix_reuse=False),
    )
    image = np.random.default_rng(0).integers(0, 255, size=(932, 1082, 3), dtype=np.uint8)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    reuse.segment_batch(image, INSTRUCTIONS)  # warm-up (allocator, kernels)
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for _ in range(repeats):
        r = reuse.segment(image, INSTRUCTIONS[0], timed=True)
        for s in STAGES:
            stages[s].append(r.timings.get(s, 0.0))
    row = {
        "preset": name,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
    }
    row.update({f"{s}_p50": pct(v, 50) for s, v in stages.items()})
    row.update({f"{s}_p90": pct(v, 90) for s, v in stages.items()})
    for label, engine in (("reuse", reuse), ("whole", whole)):
        one = timed_ms(lambda e=engine: e.segment(image, INSTRUCTIONS[0]), repeats, device)
        eight = timed_ms(lambda e=engine: e.segment_batch(image, INSTRUCTIONS), repeats, device)
        row[f"{label}_one_p50"], row[f"{label}_one_p90"] = statistics.median(one), pct(one, 90)
        row[f"{label}_eight_p50"] = statistics.median(eight)
        row[f"{label}_ratio"] = statistics.median(eight) / statistics.median(one)
    previous = reuse.segment_batch(image, INSTRUCTIONS[:1])
    follow = timed_ms(lambda: reuse.follow(image, previous), repeats, device)
    row["follow_hz"] = 1000.0 / statistics.median(follow)
    row["full_hz"] = 1000.0 / row["reuse_one_p50"]
    if device.startswith("cuda"):
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    else:  # ru_maxrss: KiB on Linux, the whole process so far
        row["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    chosen = [sw for sw in SWITCHES if compile_too or not sw[1]]
    row["switches"] = [switch_row(model, tok, *sw, image, repeats) for sw in chosen]
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| preset | device | dtype | params (M) | clip | sam enc | llm prefix | llm | decoder "
        "| 1 instr p50/p90 (ms) | 8 instr p50 | 8/1 | 1 / 8 instr, no reuse | 8/1 no reuse "
        "| follow Hz / full Hz | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['device']} | {r['dtype']} | {r['params_M']:.0f} "
            f"| {r['clip_ms_p50']:.1f} | {r['sam_encoder_ms_p50']:.1f} "
            f"| {r['llm_prefix_ms_p50']:.1f} | {r['llm_ms_p50']:.1f} | {r['decoder_ms_p50']:.1f} "
            f"| {r['reuse_one_p50']:.0f} / {r['reuse_one_p90']:.0f} | {r['reuse_eight_p50']:.0f} "
            f"| {r['reuse_ratio']:.2f} | {r['whole_one_p50']:.0f} / {r['whole_eight_p50']:.0f} "
            f"| {r['whole_ratio']:.2f} | {r['follow_hz']:.1f} / {r['full_hz']:.1f} "
            f"| {r['peak_gib']:.1f} |"
        )
    return "\n".join(lines)


def switches_table(rows: list[dict]) -> str:
    lines = [
        "| preset | device | image views | compile | first call (s) | clip | sam enc "
        "| llm prefix | 1 instr p50 (ms) | follow Hz |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for w in r["switches"]:
            lines.append(
                f"| {r['preset']} | {r['device']} | {w['views']} | {w['compile']} "
                f"| {w['first_s']:.1f} | {w['clip_ms_p50']:.1f} | {w['sam_encoder_ms_p50']:.1f} "
                f"| {w['llm_prefix_ms_p50']:.1f} | {w['one_p50']:.0f} | {w['follow_hz']:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets", default="tiny,llm-1b,lisa-7b")
    parser.add_argument(
        "--no-compile", action="store_true", help="skip the compile=on rows (minutes to compile)"
    )
    parser.add_argument("--out", help="also write the tables to this file")
    args = parser.parse_args()
    runs = []
    for preset in args.presets.split(","):
        if preset not in ("tiny", "llm-1b", "lisa-7b"):
            parser.error(f"unknown preset {preset!r} (tiny, llm-1b, lisa-7b)")
        if preset != "lisa-7b":
            runs.append((preset, "cpu", torch.float32))
        if torch.cuda.is_available():
            runs.append((preset, "cuda", torch.bfloat16))
        elif preset == "lisa-7b":
            print(
                "lisa-7b: skipped, no CUDA device on this machine (it needs ~16 GB of GPU memory)"
            )
    rows, failed = [], []
    for name, device, dtype in runs:
        try:
            rows.append(run_preset(name, device, dtype, args.repeats, not args.no_compile))
        except Exception:  # one failed preset still leaves the others' rows
            traceback.print_exc()
            failed.append(f"{name} on {device}")
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    text = table(rows) + "\n\n" + switches_table(rows)
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
