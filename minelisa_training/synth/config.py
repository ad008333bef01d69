"""What ``write_dataset`` writes: image count, sequences, seed, size, mines, class order, split."""

from __future__ import annotations

from dataclasses import dataclass

from .. import museg
from ..errors import InvalidInputError


def parse_size(text: str) -> tuple[int, int]:
    """'1082x932' -> (1082, 932) as (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise InvalidInputError(
            f"size must look like WIDTHxHEIGHT (e.g. 1082x932), got {text!r}"
        ) from exc
    if w < 32 or h < 32:
        raise InvalidInputError(f"size {w}x{h} is too small (at least 32x32)")
    return w, h


@dataclass(frozen=True)
class SynthConfig:
    """What ``write_dataset`` writes. ``class_order`` "A" or "B" picks the label ids.

    ``images`` still images in capture groups, plus ``sequences`` sequences of ``frames``
    frames each at ``fps`` frames a second (``sequence``); either may be 0, not both.
    """

    images: int = 60
    seed: int = 0
    width: int = 1082
    height: int = 932
    mines: int = 6
    class_order: str = "A"
    val_fraction: float = 0.5
    jpeg_quality: int = 92
    sequences: int = 0
    frames: int = 16
    fps: float = 15.0

    def __post_init__(self) -> None:
        if self.images < 0 or self.sequences < 0:
            raise InvalidInputError("images and sequences must be >= 0")
        if self.images + self.sequences < 1:
            raise InvalidInputError("images must be >= 1 (or sequences >= 1)")
        if self.sequences > 99 * self.mines:
            raise InvalidInputError(f"at most 99 sequences per mine ({99 * self.mines} in all)")
        if self.sequences and not 2 <= self.frames <= 9999:
            raise InvalidInputError(f"frames must be in 2..9999, got {self.frames}")
        if not 0.0 < self.fps <= 1000.0:
            raise InvalidInputError(f"fps must be in (0, 1000], got {self.fps}")
        if not 1 <= self.mines <= 99:
            raise InvalidInputError("mines must be in 1..99")
        if self.width < 32 or self.height < 32:
            raise InvalidInputError(
                f"size {self.width}x{self.height} is too small (at least 32x32)"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise InvalidInputError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.class_order.upper() not in ("A", "B"):
            raise InvalidInputError(f"class_order must be A or B, got {self.class_order!r}")

    @property
    def class_map(self) -> museg.ClassMap:
        return museg.load_class_map(self.class_order)
