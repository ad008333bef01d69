"""Where one LISA-7B-size request spends its time on a GPU (random weights, bf16).

Splits each engine stage into its CPU preprocessing and its GPU work, times the
SAM ViT-H encoder with segment-anything's own attention against the fused
attention MineLISA builds (same weights, same run, so the ratio holds), and lists
the CUDA kernels that take the most time in one `segment` call. CUDA only.

    python benchmarks/profile_inference.py [--repeats 10] [--out profile.md]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segment_anything.modeling.image_encoder import Attention  # noqa: E402

from minelisa_training.engine import SegmentationEngine  # noqa: E402
from minelisa_training.testing import lisa_7b_random, write_tiny_tokenizer  # noqa: E402
from minelisa_training.transforms import clip_view, sam_view  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def reference_encoder(encoder: torch.nn.Module) -> torch.nn.Module:
    """A copy of the image encoder with segment-anything's unfused attention."""
    ref = copy.deepcopy(encoder)
    for block in ref.blocks:
        block.attn.__class__ = Attention  # same parameters, segment-anything's forward
    return ref


@torch.inference_mode()
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("profile_inference: needs a CUDA device", file=sys.stderr)
        return 2
    tok = write_tiny_tokenizer(tempfile.mkdtemp(prefix="profile-tok-"))
    model = lisa_7b_random(tok, device="cuda", dtype=torch.bfloat16)
    engine = SegmentationEngine(model, tok)
    image = np.random.default_rng(0).integers(0, 255, size=(932, 1082, 3), dtype=np.uint8)
    clip_size, sam_size = int(model.config.vision["image_size"]), model.config.sam.image_size
    clip_px = clip_view(image, clip_size)[None].to("cuda", torch.bfloat16)
    sam_px = sam_view(image, sam_size).pixels[None].to("cuda", torch.bfloat16)
    encoder = model.visual_model.image_encoder
    ref = reference_encoder(encoder)
    engine.set_image(image)
    instruction = "segment the exposed cable"

    rows = [
        ("clip_view, all on the CPU", median_ms(lambda: clip_view(image, clip_size), args.repeats)),
        (
            "clip_view, normalised on the GPU (engine)",
            median_ms(lambda: clip_view(image, clip_size, "cuda"), args.repeats),
        ),
        (
            "CLIP ViT-L/14 + projector (GPU)",
            median_ms(lambda: model.encode_clip(clip_px), args.repeats),
        ),
        ("sam_view, all on the CPU", median_ms(lambda: sam_view(image, sam_size), args.repeats)),
        (
            "sam_view, normalised on the GPU (engine)",
            median_ms(lambda: sam_view(image, sam_size, "cuda"), args.repeats),
        ),
        (
            "SAM ViT-H encoder, fused attention (GPU)",
            median_ms(lambda: encoder(sam_px), args.repeats),
        ),
        (
            "SAM ViT-H encoder, segment-anything attention (GPU)",
            median_ms(lambda: ref(sam_px), args.repeats),
        ),
        (
            "predict 1 instruction (LLM + decoder + mask to CPU)",
            median_ms(lambda: engine.predict(instruction), args.repeats),
        ),
        (
            "segment 1 instruction (everything)",
            median_ms(lambda: engine.segment(image, instruction), args.repeats),
        ),
    ]
    diff = (encoder(sam_px).float() - ref(sam_px).float()).abs().max().item()
    view_diff = max(
        (clip_view(image, clip_size, "cuda").cpu() - clip_view(image, clip_size))
        .abs()
        .max()
        .item(),
        (sam_view(image, sam_size, "cuda").pixels.cpu() - sam_view(image, sam_size).pixels)
        .abs()
        .max()
        .item(),
    )
    ref = None  # free the reference encoder before profiling
    lines = ["| part | median ms |", "|---|---|", *[f"| {name} | {ms:.1f} |" for name, ms in rows]]
    lines.append(
        f"\nfused vs segment-anything attention: max |diff| of the image embedding {diff:.3g} (bf16)"
    )
    lines.append(f"views normalised on the GPU vs on the CPU: max |diff| {view_diff:.3g}")

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        engine.segment(image, instruction)
        torch.cuda.synchronize()
    table = prof.key_averages().table(
        sort_by="self_cuda_time_total", row_limit=12, max_name_column_width=60
    )
    text = (
        "\n".join(lines)
        + "\n\nTop CUDA ops of one segment call (torch.profiler):\n\n```\n"
        + table
        + "\n```\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
