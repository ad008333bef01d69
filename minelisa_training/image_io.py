"""Reading images the user gives and writing the masks we produce."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InvalidInputError
from .fileio import atomic_write

MAX_PIXELS = 16384 * 16384  # larger is refused before it is decoded


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3).

    16-bit images (PNG ``I;16``, ``I``) are scaled to 8 bits by their full range, not
    clipped. Raises `InvalidInputError` for a missing, unreadable or oversized file.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise InvalidInputError(
                    f"image {path} is {w}x{h}: more than {MAX_PIXELS:,} pixels is refused"
                )
            return _to_rgb8(img)
    except InvalidInputError:
        raise
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as exc:
        raise InvalidInputError(f"cannot read image {path}: {exc}") from exc


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(img, dtype=np.int64)
        top = 65535 if img.mode.startswith("I;16") or wide.max() > 255 else 255
        gray = np.clip(wide * 255 // top, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """An output file path that can be written; refused before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{what} {path} is a directory; give a file name such as mask.png")
    if path.suffix.lower() not in (".png", ""):
        raise InvalidInputError(f"{what} {path}: masks are written as PNG (lossless); use .png")
    return path


def png_bytes(array: np.ndarray) -> bytes:
    """PNG encoding of a uint8 array (mono or RGB)."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write `array` as a PNG atomically (a failed write leaves the old file)."""
    return atomic_write(path, png_bytes(array))
