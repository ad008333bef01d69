"""The two image views the model sees, and the way back to the original pixels.

SAM view: resize the longest side to 1024 with PIL bilinear (as SAM's
`ResizeLongestSide`), normalise with SAM's pixel statistics, zero-pad bottom and
right to a square. CLIP view: bicubic resize of the shortest side to 224, centre
crop, CLIP normalisation (as `CLIPImageProcessor`). Training and inference both
call these functions, so the two cannot drift apart.

``exact=False`` resizes on the tensors' device instead (torch's antialiased
bilinear/bicubic, PIL's filters, rounded to whole levels): on a GPU this takes the
resizes off the host. Measured against PIL (tests/test_transforms.py, camera-like
frames 200x333 to 1920x1080): the SAM view within 1 level of 255 everywhere; the
CLIP view within 1 level on >= 99.9% of pixels, up to 15 levels on the rest, where
bicubic overshoots at sharp edges and PIL clips its first pass to uint8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import InvalidInputError

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


MAX_ASPECT_RATIO = 20


def check_rgb_image(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidInputError(f"image dtype must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(
            f"image must be RGB with shape (H, W, 3), got shape {tuple(image.shape)}"
        )
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise InvalidInputError(f"image is empty: shape {tuple(image.shape)}")
    if max(h, w) > MAX_ASPECT_RATIO * min(h, w):
        raise InvalidInputError(
            f"image is {w}x{h}: an aspect ratio above {MAX_ASPECT_RATIO}:1 leaves nothing to see "
            "once the short side is scaled for the encoders"
        )
    return image


def resized_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """Shape after scaling the longest side to `long_side` (SAM's rounding)."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


@dataclass(frozen=True)
class SamView:
    pixels: torch.Tensor  # [3, S, S] float32, normalised and padded
    input_size: tuple[int, int]  # (h, w) of the resized image inside the padded square
    original_size: tuple[int, int]  # (H, W) of the caller's image


def _resized(
    image: np.ndarray,
    shape: tuple[int, int],
    bicubic: bool,
    exact: bool,
    device: torch.device | str | None,
) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, h, w] on `device`, values 0-255 whole levels.

    Only the uint8 pixels cross to the device (4x fewer bytes than float32).
    """
    nh, nw = shape
    if exact:
        pil_filter = Image.BICUBIC if bicubic else Image.BILINEAR
        resized = np.array(Image.fromarray(image).resize((nw, nh), pil_filter))  # writable
        return torch.from_numpy(resized).to(device).permute(2, 0, 1).float()
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float()
    mode = "bicubic" if bicubic else "bilinear"
    x = F.interpolate(x, size=(nh, nw), mode=mode, align_corners=False, antialias=True)
    return x[0].round_().clamp_(0.0, 255.0)


def _normalise(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], divisor: float
) -> torch.Tensor:
    """``(x / divisor - mean) / std`` per channel, in float32 where `x` is."""
    if divisor != 1.0:
        x = x / divisor
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(3, 1, 1)
    return (x - mean_t) / std_t


def sam_view(
    image: np.ndarray,
    size: int = 1024,
    device: torch.device | str | None = None,
    exact: bool = True,
) -> SamView:
    """SAM's input: longest side to `size` (bilinear), normalised, zero-padded square."""
    h, w = image.shape[:2]
    nh, nw = resized_shape(h, w, size)
    resized = _resized(image, (nh, nw), False, exact, device)
    x = _normalise(resized, SAM_PIXEL_MEAN, SAM_PIXEL_STD, 1.0)
    padded = torch.zeros(3, size, size, dtype=torch.float32, device=x.device)
    padded[:, :nh, :nw] = x
    return SamView(padded, (nh, nw), (h, w))


def clip_view(
    image: np.ndarray,
    size: int = 224,
    device: torch.device | str | None = None,
    exact: bool = True,
) -> torch.Tensor:
    """[3, size, size] float32; with `exact`, pixel-identical to `CLIPImageProcessor` with PIL."""
    h, w = image.shape[:2]
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size * long / short)
    nh, nw = (size, new_long) if h <= w else (new_long, size)
    resized = _resized(image, (nh, nw), True, exact, device)
    top, left = (nh - size) // 2, (nw - size) // 2
    return _normalise(resized[:, top : top + size, left : left + size], CLIP_MEAN, CLIP_STD, 255.0)


def mask_to_sam_frame(mask: np.ndarray, size: int = 1024) -> np.ndarray:
    """A mask in original coordinates placed where the SAM view puts its pixels
    (float in [0, 1], resized bilinearly, zero padding). Used for training targets
    at SAM resolution and to test the back-projection."""
    h, w = mask.shape
    nh, nw = resized_shape(h, w, size)
    resized = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((size, size), dtype=np.float32)
    out[:nh, :nw] = resized
    return out
