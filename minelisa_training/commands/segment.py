"""`minelisa segment`: one image, one instruction, one PNG mask."""

from __future__ import annotations

import argparse

from ..model_options import add_model_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Segment what an instruction names in one image and write the mask as a PNG (0 = "
        "background, 255 = target) at the image's own resolution. MODEL is a bundle from "
        "'minelisa export', a LISA release directory (then also pass --vision-tower), or a base "
        "LLaVA directory with --sam."
    )
    p.epilog = (
        "example: minelisa segment --model bundles/minelisa-museg --image frame.jpg "
        "--instruction 'segment the exposed cable' --out mask.png --overlay overlay.png"
    )
    p.add_argument("--image", required=True, metavar="PATH", help="input image (JPEG, PNG, ...)")
    p.add_argument("--instruction", required=True, help="what to segment, in plain words")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the mask")
    p.add_argument("--overlay", metavar="PNG", help="also write the image with the mask tinted")
    add_model_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..engine import SegmentationEngine, validate_instruction
    from ..image_io import check_output_file, read_rgb, write_png
    from ..model_options import ModelOptions
    from ..visualization import overlay_mask

    # Everything the user typed is checked before the (possibly minutes-long) model load.
    options = ModelOptions.from_args(args)
    instruction = validate_instruction(args.instruction)
    out = check_output_file(args.out)
    overlay_out = check_output_file(args.overlay, "--overlay") if args.overlay else None
    image = read_rgb(args.image)
    engine = SegmentationEngine.from_options(options)
    print(engine.report.summary())
    result = engine.segment(image, instruction, timed=True)
    write_png(out, (result.mask * 255).astype("uint8"))
    if overlay_out is not None:
        write_png(overlay_out, overlay_mask(image, result.mask))
    h, w = result.mask.shape
    print(f"answer: {result.answer}")
    print(f"mask: {out} ({w}x{h}, {100 * result.coverage:.1f}% of the image)")
    print("timings (ms): " + ", ".join(f"{k[:-3]} {v:.1f}" for k, v in result.timings.items()))
    return 0
