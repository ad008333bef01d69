"""Pinhole intrinsics of a depth image, as a ROS ``CameraInfo`` describes them (no ROS import).

Pixel convention (OpenCV's and ROS's): integer pixel indices ``(u, v)`` are pixel
centres, ``u`` counts columns to the right and ``v`` rows down. A pixel with depth
``z`` back-projects to the camera (ROS optical) frame, x right, y down, z forward::

    x = (u - cx) * z / fx        y = (v - cy) * z / fy

Lens distortion is not modelled: the depth image must be rectified (an aligned
Azure Kinect or RealSense depth image registered to a rectified colour image is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidInputError


@dataclass(frozen=True)
class Intrinsics:
    """Focal lengths and principal point in pixels of one image size.

    ``width``/``height`` (optional) name the image these numbers belong to; when set,
    the depth functions refuse a depth image of another size instead of silently
    using intrinsics of the wrong resolution.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        values = {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy}
        bad = [k for k, v in values.items() if not math.isfinite(float(v))]
        if bad:
            raise InvalidInputError(f"intrinsics {', '.join(bad)} must be finite, got {values}")
        if self.fx <= 0 or self.fy <= 0:
            raise InvalidInputError(
                f"intrinsics need positive focal lengths, got fx={self.fx}, fy={self.fy} "
                "(an all-zero K means the camera is not calibrated)"
            )
        if (self.width is None) != (self.height is None):
            raise InvalidInputError("intrinsics need both width and height, or neither")
        if self.width is not None and (self.width < 1 or self.height < 1):
            raise InvalidInputError(f"intrinsics image size {self.width}x{self.height} is empty")

    @classmethod
    def from_k(
        cls, k: Sequence[float], width: int | None = None, height: int | None = None
    ) -> Intrinsics:
        """From a row-major 3x3 camera matrix (``sensor_msgs/CameraInfo.k``, 9 floats).

        ``width``/``height`` are the CameraInfo's (0 counts as unknown). A matrix that
        is not ``[fx 0 cx; 0 fy cy; 0 0 1]`` (skew, wrong last row) is refused.
        """
        try:
            vals = [float(v) for v in k]
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"K must be 9 numbers, got {k!r}") from exc
        if len(vals) != 9:
            raise InvalidInputError(f"K must have 9 values (row-major 3x3), got {len(vals)}")
        if not any(vals):
            raise InvalidInputError("K is all zeros: the camera is not calibrated")
        if vals[1] != 0.0 or vals[3] != 0.0 or vals[6:] != [0.0, 0.0, 1.0]:
            raise InvalidInputError(
                f"K must look like [fx, 0, cx, 0, fy, cy, 0, 0, 1] (no skew), got {vals}"
            )
        size = (int(width), int(height)) if width and height else (None, None)
        return cls(vals[0], vals[4], vals[2], vals[5], *size)

    @property
    def k(self) -> list[float]:
        """The row-major 3x3 camera matrix, as ``CameraInfo.k``."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def scaled(self, sx: float, sy: float) -> Intrinsics:
        """The intrinsics of this image resized by ``sx`` (columns) and ``sy`` (rows).

        Pixel centres map as ``u' + 0.5 = sx * (u + 0.5)``, so ``cx' = sx * (cx + 0.5) - 0.5``
        (what a nearest-neighbour resize that samples pixel centres does).
        """
        size = (None, None)
        if self.width is not None:
            size = (round(self.width * sx), round(self.height * sy))
        return Intrinsics(
            self.fx * sx,
            self.fy * sy,
            sx * (self.cx + 0.5) - 0.5,
            sy * (self.cy + 0.5) - 0.5,
            *size,
        )

    def as_dict(self) -> dict:
        """``{"width", "height", "k"}``: the JSON form (CameraInfo's field names)."""
        return {"width": self.width, "height": self.height, "k": self.k}

    @classmethod
    def from_dict(cls, data: Mapping) -> Intrinsics:
        """From ``as_dict``'s form, or from ``fx``, ``fy``, ``cx``, ``cy`` keys."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"intrinsics must be a JSON object, got {type(data).__name__}")
        width, height = data.get("width"), data.get("height")
        if "k" in data:
            return cls.from_k(data["k"], width, height)
        missing = [key for key in ("fx", "fy", "cx", "cy") if key not in data]
        if missing:
            raise InvalidInputError(f"intrinsics need 'k' or fx, fy, cx, cy; missing {missing}")
        size = (int(width), int(height)) if width and height else (None, None)
        return cls(*(float(data[key]) for key in ("fx", "fy", "cx", "cy")), *size)
