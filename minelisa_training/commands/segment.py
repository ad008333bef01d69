"""`minelisa segment`: one image, one instruction, one PNG mask."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Segment what an instruction names in one image and write the mask as a PNG (0 = background, "
        "255 = target) at the image's own resolution. MODEL is a bundle from 'minelisa export', a LISA "
        "release directory (then also pass --vision-tower), or a base LLaVA directory with --sam."
    )
    p.epilog = (
        "example: minelisa segment --model bundles/minelisa-museg --image frame.jpg "
        "--instruction 'segment the exposed cable' --out mask.png --overlay overlay.png"
    )
    p.add_argument("--model", required=True, metavar="DIR", help="bundle, LISA or LLaVA directory")
    p.add_argument("--vision-tower", metavar="DIR", help="local CLIP ViT-L/14 directory (LISA releases need it)")
    p.add_argument("--sam", metavar="FILE", help="SAM .pth, only for a base LLaVA directory")
    p.add_argument("--image", required=True, metavar="PATH", help="input image (JPEG, PNG, ...)")
    p.add_argument("--instruction", required=True, help="what to segment, in plain words")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the mask")
    p.add_argument("--overlay", metavar="PNG", help="also write the image with the mask tinted")
    p.add_argument("--mode", choices=("fast", "chat"), default="fast",
                   help="fast: one forward pass with the answer '[SEG].' (default); chat: generate an answer")
    p.add_argument("--max-new-tokens", type=int, default=64, help="chat mode: generation cap (default 64)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32", help="default fp32")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from ..checkpoint import CheckpointError, load_model
    from ..engine import SegmentationEngine
    from ..evaluation import write_mask
    from ..transforms import InvalidInputError
    from ..visualization import overlay_mask

    try:
        with Image.open(args.image) as img:
            image = np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        print(f"error: cannot read image {args.image}: {exc}", file=sys.stderr)
        return 2
    try:
        loaded = load_model(args.model, vision_tower=args.vision_tower, sam_checkpoint=args.sam,
                            device=args.device, dtype=args.dtype)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(loaded.report.summary())
    engine = SegmentationEngine(loaded.model, loaded.tokenizer, mode=args.mode, max_new_tokens=args.max_new_tokens)
    try:
        result = engine.segment(image, args.instruction)[0]
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_mask(args.out, result.mask)
    if args.overlay:
        Path(args.overlay).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(overlay_mask(image, result.mask)).save(args.overlay)
    print(f"answer: {result.answer}")
    print(f"mask: {args.out} ({result.mask.shape[1]}x{result.mask.shape[0]}, {100 * result.coverage:.1f}% of the image)")
    print("timings (ms): " + ", ".join(f"{k[:-3]} {v:.1f}" for k, v in result.timings.items()))
    return 0
