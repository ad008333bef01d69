"""Readers of one image's files. A missing, truncated or inconsistent file raises
``SampleLoadError`` naming it; callers skip that image and record it in a ``SkipLog``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import SampleLoadError
from .classes import ClassMap


def open_image(path: Path) -> Image.Image:
    """The decoded file (any mode); ``SampleLoadError`` when missing or unreadable."""
    if not path.is_file():
        raise SampleLoadError(path, "file is missing")
    try:
        img = Image.open(path)
        img.load()  # decodes fully: a truncated JPEG or PNG fails here, not later
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise SampleLoadError(path, f"unreadable ({exc})") from exc
    return img


def load_image(path: str | Path) -> np.ndarray:
    """RGB uint8 [H, W, 3] (writable); raises ``SampleLoadError`` naming the file."""
    img = open_image(Path(path))
    return np.array(img.convert("RGB"))


def load_label(path: str | Path) -> np.ndarray:
    """Label map, uint8 [H, W] of class ids. Palette PNGs give their indices (as
    Labelme writes them); colour images are refused: they are visualisations."""
    path = Path(path)
    img = open_image(path)
    if img.mode in ("L", "P"):
        return np.array(img, dtype=np.uint8)
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        arr = np.asarray(img)
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise SampleLoadError(
                path, f"label values outside 0..255 ({int(arr.min())}..{int(arr.max())})"
            )
        return arr.astype(np.uint8)
    raise SampleLoadError(
        path, f"mode {img.mode} is not a label map of class ids (L or P expected)"
    )


def load_depth(path: str | Path) -> np.ndarray:
    """Depth in millimetres, uint16 [H, W], 0 = invalid."""
    path = Path(path)
    img = open_image(path)
    arr = np.asarray(img)
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.int32, np.uint8):
        raise SampleLoadError(path, f"depth must be a one-channel 16-bit PNG (mode {img.mode})")
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
        raise SampleLoadError(
            path, f"depth values outside 0..65535 ({int(arr.min())}..{int(arr.max())})"
        )
    return arr.astype(np.uint16)


def class_presence(label: np.ndarray, class_map: ClassMap) -> np.ndarray:
    """Bool [num_classes]: which label values occur (background included)."""
    counts = np.bincount(label.ravel(), minlength=256)
    return counts[: class_map.num_classes] > 0


def ignore_mask(label: np.ndarray, class_map: ClassMap) -> np.ndarray:
    """Pixels left out of scoring: value 255 and values outside the class map."""
    return label >= class_map.num_classes
