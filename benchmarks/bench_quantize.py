"""What --quantize int8/int4 buys and costs: LLM weight memory, CPU time, mask agreement.

1. LLM weight memory at LISA-7B sizes, without a GPU: ONE Llama decoder layer at
   LISA-7B sizes (hidden 4096, intermediate 11008, 32 heads) is built in bf16 and
   quantized; the bytes of its parameters, buffers and quantization state (int8 row
   scales, 4-bit block absmax and tables) times 32 layers, plus the bf16 embeddings
   and lm_head at vocab 32004 and the final norm. The rest of LISA-7B (CLIP, SAM,
   projector, [SEG] head) is counted in bf16 from the structure built on "meta".
2. Time per instruction on the CPU (fast mode) for a model whose LLM dominates:
   the tiny preset's CLIP and SAM with a random ~0.6 B-parameter Llama (hidden 2048,
   intermediate 5504, 12 layers, 16 heads), fp32 (the CPU default).
3. Mask agreement with the unquantized model: mean/min IoU of fast-mode masks of
   that model on synthetic val images, and gIoU/cIoU of a tiny bundle on the
   synthetic val split (`minelisa synth` layout) through `evaluation.evaluate`.

    python benchmarks/bench_quantize.py [--repeats 3] [--images 20] [--out table.md]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from minelisa_training import museg, synth
from minelisa_training.config import lisa_7b_config, tiny_config
from minelisa_training.engine import SegmentationEngine
from minelisa_training.evaluation import evaluate
from minelisa_training.quantization import quantize_language_model, quantize_linears, weight_bytes
from minelisa_training.testing import (
    build_model,
    lisa_7b_random,
    write_tiny_bundle,
    write_tiny_tokenizer,
)

MODES = ("none", "int8", "int4")
TARGET_GB = {"int8": 8.0, "int4": 5.0}
INSTRUCTIONS = [
    "segment the exposed cable",
    "where is the person near the conveyor?",
    "Please segment the door in this image.",
    "the rail area",
]
MID_LLM = {  # an LLM that dominates the tiny CLIP and SAM (~0.6 B parameters)
    "hidden_size": 2048,
    "intermediate_size": 5504,
    "num_hidden_layers": 12,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
}


# -- 1. memory at LISA-7B sizes ---------------------------------------------------------------
def lisa_layer_bytes(mode: str) -> int:
    """Bytes of one LISA-7B-size decoder layer in bf16, quantized by `mode`."""
    llm = lisa_7b_config().llm
    config = LlamaConfig(**{k: v for k, v in llm.items() if k != "vocab_size"})
    torch.manual_seed(0)
    layer = LlamaDecoderLayer(config, layer_idx=0).to(torch.bfloat16).eval()
    if mode != "none":
        quantize_linears(layer, mode, torch.bfloat16)
    size = weight_bytes(layer)
    del layer
    return size


def memory_rows() -> list[dict]:
    """LLM and whole-model weight bytes at LISA-7B sizes for each mode."""
    llm = lisa_7b_config().llm
    hidden, vocab, layers = llm["hidden_size"], llm["vocab_size"], llm["num_hidden_layers"]
    outer = (2 * vocab * hidden + hidden) * 2  # embeddings + lm_head + final norm, bf16
    tok = write_tiny_tokenizer(tempfile.mkdtemp(prefix="bench-q-tok-"))
    structure = lisa_7b_random(tok, device="meta", dtype=torch.bfloat16)
    rest_params = sum(
        p.numel()
        for name in ("vision_tower", "mm_projector", "visual_model", "text_hidden_fcs")
        for p in getattr(structure, name).parameters()
    )
    rows = []
    for mode in MODES:
        start = time.perf_counter()
        per_layer = lisa_layer_bytes(mode)
        llm_bytes = layers * per_layer + outer
        rows.append(
            {
                "mode": mode,
                "layer_mb": per_layer / 1e6,
                "llm_gb": llm_bytes / 1e9,
                "llm_gib": llm_bytes / 2**30,
                "model_gb": (llm_bytes + 2 * rest_params) / 1e9,
                "target": TARGET_GB.get(mode),
                "seconds": time.perf_counter() - start,
            }
        )
        print(f"memory {mode}: {rows[-1]['llm_gb']:.2f} GB LLM", flush=True)
    return rows


# -- 2. CPU time per instruction --------------------------------------------------------------
def mid_model(tok, seed: int = 0):
    """The tiny preset with a ~0.6 B-parameter LLM, random weights, fp32."""
    config = tiny_config(len(tok))
    config.llm.update(MID_LLM)
    return build_model(config, tok, seed=seed)


def time_mode(engine: SegmentationEngine, image: np.ndarray, repeats: int) -> dict:
    """Median ms: a new frame with one instruction (wall, stages, and the process's CPU
    time, which other loads on the machine disturb less), and the CPU time of one more
    instruction on that frame."""
    engine.segment(image, INSTRUCTIONS[0])  # warm-up (4-bit repacking on the CPU, allocator)
    runs: dict[str, list[float]] = {k: [] for k in ("frame", "cpu", "prefix", "suffix", "again")}
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        result = engine.segment(image, INSTRUCTIONS[0], timed=True)
        runs["frame"].append((time.perf_counter() - start) * 1000)
        runs["cpu"].append((time.process_time() - cpu) * 1000)
        runs["prefix"].append(result.timings.get("llm_prefix_ms", 0.0))
        runs["suffix"].append(result.timings["llm_ms"])
        encoded = engine.encode(image)
        cpu = time.process_time()
        engine.segment(encoded, INSTRUCTIONS[1])
        runs["again"].append((time.process_time() - cpu) * 1000)
    return {f"{k}_ms": statistics.median(v) for k, v in runs.items()}


# -- 3. mask agreement ------------------------------------------------------------------------
def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks; two empty masks agree (1.0)."""
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def val_images(root: Path, count: int) -> list[np.ndarray]:
    records = museg.read_split(root, "val")[:count]
    return [np.asarray(Image.open(r.image_path).convert("RGB")) for r in records]


def mid_rows(tok, images: list[np.ndarray], frame: np.ndarray, repeats: int) -> list[dict]:
    """Per mode: LLM bytes, CPU times and mask IoU against `none`, for the mid model."""
    base = mid_model(tok)
    reference, rows = None, []
    for mode in MODES:
        model = quantize_language_model(copy.deepcopy(base), mode)
        engine = SegmentationEngine(model, tok)
        row = {"mode": mode, "llm_mb": weight_bytes(model.language_model) / 1e6}
        row.update(time_mode(engine, frame, repeats))
        masks = [[r.mask for r in engine.segment_batch(im, INSTRUCTIONS)] for im in images]
        if reference is None:
            reference = masks
        ious = [iou(a, b) for ref, got in zip(reference, masks) for a, b in zip(ref, got)]
        row.update(iou_mean=float(np.mean(ious)), iou_min=min(ious))
        rows.append(row)
        print(f"mid {mode}: {row}", flush=True)
        del engine, model
    return rows


def giou_rows(root: Path) -> list[dict]:
    """gIoU / cIoU of a tiny bundle on the synthetic val split, per mode."""
    bundle = write_tiny_bundle(Path(tempfile.mkdtemp(prefix="bench-q-bundle-")) / "tiny")
    samples = museg.build_samples(root, "val", progress=False).samples
    rows = []
    for mode in MODES:
        engine = SegmentationEngine.from_pretrained(bundle, device="cpu", quantize=mode)
        report = evaluate(engine, samples, progress=False)
        rows.append({"mode": mode, "giou": report["giou"], "ciou": report["ciou"],
                     "n": report["n_samples"]})  # fmt: skip
        print(f"giou {mode}: {rows[-1]}", flush=True)
    return rows


# -- report -----------------------------------------------------------------------------------
def _gb(value: float | None) -> str:
    return "-" if value is None else f"<= {value:.0f} GB"


def format_tables(memory: list[dict], mid: list[dict], giou: list[dict]) -> str:
    """The three result tables in Markdown."""
    lines = [
        "| quantize | one decoder layer (MB) | LLM weights GB (GiB) | target | "
        "whole LISA-7B weights (GB) |",
        "|---|---|---|---|---|",
    ]
    for r in memory:
        met = "" if r["target"] is None else (" met" if r["llm_gb"] <= r["target"] else " MISSED")
        lines.append(
            f"| {r['mode']} | {r['layer_mb']:.1f} | {r['llm_gb']:.2f} ({r['llm_gib']:.2f}) | "
            f"{_gb(r['target'])}{met} | {r['model_gb']:.2f} |"
        )
    lines += [
        "",
        "| quantize | LLM weights (MB) | new frame + 1 instruction, wall (ms) | same, CPU time "
        "(ms) | of which LLM prefix / suffix, wall (ms) | one more instruction, same frame, CPU "
        "time (ms) | "
        "mask IoU vs none, mean / min |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in mid:
        lines.append(
            f"| {r['mode']} | {r['llm_mb']:.0f} | {r['frame_ms']:.0f} | {r['cpu_ms']:.0f} | "
            f"{r['prefix_ms']:.0f} / "
            f"{r['suffix_ms']:.0f} | {r['again_ms']:.0f} | {r['iou_mean']:.4f} / "
            f"{r['iou_min']:.4f} |"
        )
    lines += [
        "",
        "| quantize | gIoU | cIoU | gIoU - gIoU(none) | samples |",
        "|---|---|---|---|---|",
    ]
    for r in giou:
        diff = r["giou"] - giou[0]["giou"]
        lines.append(
            f"| {r['mode']} | {r['giou']:.5f} | {r['ciou']:.5f} | {diff:+.5f} | {r['n']} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the three measurements and print (and optionally write) the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode")
    parser.add_argument("--images", type=int, default=20, help="synthetic dataset size")
    parser.add_argument("--iou-images", type=int, default=3, help="val images for the IoU")
    parser.add_argument("--out", help="also write the tables to this file")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    root = Path(tempfile.mkdtemp(prefix="bench-q-synth-")) / "MUSeg"
    synth.write_dataset(root, synth.SynthConfig(images=args.images, seed=0), progress=False)
    memory = memory_rows()
    tok = write_tiny_tokenizer(tempfile.mkdtemp(prefix="bench-q-tok-"))
    frame = np.random.default_rng(0).integers(0, 255, size=(932, 1082, 3), dtype=np.uint8)
    mid = mid_rows(tok, val_images(root, args.iou_images), frame, args.repeats)
    giou = giou_rows(root)
    table = format_tables(memory, mid, giou)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
