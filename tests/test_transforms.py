"""The SAM and CLIP views, and the way masks come back to the original pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPImageProcessorPil

from minelisa_training.config import SamConfig
from minelisa_training.modeling.sam import build_sam
from minelisa_training.transforms import (
    CLIP_STD,
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    clip_view,
    mask_to_sam_frame,
    resized_shape,
    sam_view,
)

SIZES = [(932, 1082), (480, 640), (1080, 1920), (333, 200), (1024, 1024)]


def _blobs(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(4):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(h // 10, h // 4), rng.integers(w // 10, w // 4)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    mask[h // 2 : h // 2 + 6, :] = True  # a thin cable across the frame
    return mask


def test_sam_view_resizes_normalises_and_pads():
    img = np.full((932, 1082, 3), 200, dtype=np.uint8)
    view = sam_view(img)
    assert view.input_size == (882, 1024) and view.original_size == (932, 1082)
    assert view.pixels.shape == (3, 1024, 1024)
    expected = (200 - np.array(SAM_PIXEL_MEAN)) / np.array(SAM_PIXEL_STD)
    assert torch.allclose(
        view.pixels[:, 10, 10], torch.tensor(expected, dtype=torch.float32), atol=1e-5
    )
    assert torch.count_nonzero(view.pixels[:, 882:, :]) == 0  # bottom padding


@pytest.mark.parametrize("h,w", SIZES)
def test_clip_view_matches_transformers_clip_processor(h, w):
    rng = np.random.default_rng(h * w)
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    ours = clip_view(img)
    ref = CLIPImageProcessorPil(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )(images=img, return_tensors="pt")["pixel_values"][0]
    assert ours.shape == ref.shape == (3, 224, 224)
    assert torch.allclose(ours, ref.float(), atol=1e-4)


def _camera_like(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth shading with a patch of sensor-noise texture: what a camera sees."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 0.2) % 256, (yy * 0.3) % 256, ((xx + yy) * 0.1) % 256], -1)
    img = img.astype(np.uint8)
    rng = np.random.default_rng(seed)
    img[h // 4 : h // 2, w // 4 : w // 2] = rng.integers(
        0, 256, (h // 2 - h // 4, w // 2 - w // 4, 3)
    )
    return img


@pytest.mark.parametrize("h,w", SIZES)
def test_device_views_are_within_the_measured_tolerance_of_the_exact_ones(h, w):
    """exact=False (torch resizes where the tensors live) against PIL, in 0-255 levels."""
    img = _camera_like(h, w, seed=h)
    exact, fast = sam_view(img), sam_view(img, exact=False)
    assert fast.input_size == exact.input_size and fast.pixels.shape == exact.pixels.shape
    std = torch.tensor(SAM_PIXEL_STD).view(3, 1, 1)
    levels = ((fast.pixels - exact.pixels) * std).abs()
    assert float(levels.mean()) < 0.1
    assert float(levels.max()) <= 1.0 + 1e-3  # bilinear: rounding only
    clip_levels = clip_view(img, exact=False) - clip_view(img)
    clip_levels = (clip_levels * torch.tensor(CLIP_STD).view(3, 1, 1) * 255).abs()
    assert float(clip_levels.mean()) < 0.1
    # Bicubic overshoots at sharp edges; PIL clips its first pass to uint8, torch does not.
    assert float((clip_levels > 1.0 + 1e-3).float().mean()) < 0.002
    assert float(clip_levels.max()) <= 32.0


@pytest.fixture(scope="module")
def sam():
    return build_sam(
        SamConfig(
            encoder_embed_dim=16,
            encoder_depth=1,
            encoder_num_heads=1,
            encoder_global_attn_indexes=(0,),
            decoder_depth=1,
            decoder_mlp_dim=32,
        )
    )


@pytest.mark.parametrize("h,w", SIZES)
def test_mask_back_projection(sam, h, w):
    mask = _blobs(h, w, seed=h + w)
    framed = torch.from_numpy(mask_to_sam_frame(mask))[None, None]
    nh, nw = resized_shape(h, w, 1024)
    assert (
        torch.count_nonzero(framed[..., nh:, :]) == 0 and torch.count_nonzero(framed[..., nw:]) == 0
    )
    logits = (framed - 0.5) * 20
    # Straight back from the 1024 frame: the same pixels up to the resampling of edges.
    full = sam.postprocess_masks(F.interpolate(logits, (1024, 1024)), (nh, nw), (h, w))[0, 0] > 0
    # Through the decoder's 256x256 low-resolution output, as at inference.
    low = F.interpolate(logits, (256, 256), mode="area")
    back = sam.postprocess_masks(low, (nh, nw), (h, w))[0, 0] > 0
    m = torch.from_numpy(mask)
    for out, floor in ((full, 0.995), (back, 0.95)):
        assert out.shape == (h, w)
        iou = (out & m).sum() / (out | m).sum()
        assert iou >= floor, (h, w, float(iou))
