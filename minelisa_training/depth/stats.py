"""How far a masked object is: distance, 3D centroid and size from an aligned depth image."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InvalidInputError
from .frame import MM_TO_M, prepare
from .intrinsics import Intrinsics

NAN3 = (math.nan, math.nan, math.nan)
DISTANCE_QUANTILES = (0.1, 0.5)  # distance_p10_m, distance_m


@dataclass(frozen=True)
class DepthStats:
    """Where a masked object is, in metres, in the camera's ROS optical frame
    (x right, y down, z forward). Unknown values are NaN.

    - ``distance_m``: median depth (z, along the optical axis, not the slant range; see
      ``range_m``) of the mask's core; ``distance_p10_m``: its 10th percentile, the
      near side of the object, the number to stop on.
    - ``centroid``: mean (x, y, z) of the core's points; ``extent``: their axis-aligned
      size (max - min per axis). The core is the mask eroded by ``erode_px`` pixels;
      the x and y sizes get back the ``2 * erode_px + 1`` pixels that erosion and
      pixel centres take off, back-projected at ``distance_m``, so a flat object facing
      the camera measures its own width (one cut by the image border: what is in view,
      plus up to ``erode_px`` pixels). The z size is the core's depth spread; like all
      min/max numbers it grows with sensor noise.
    - ``valid_fraction``: share of mask pixels with valid depth (NaN for an empty mask).
    - ``n_mask`` mask pixels, ``n_valid`` of them with depth, ``n_points`` in the core
      the numbers above come from.
    - ``erosion_fallback``: erosion left no pixel with depth (a thin or small mask), so
      the whole mask was used, edge pixels (mixed foreground/background depth) included.
    """

    has_depth: bool
    valid_fraction: float
    distance_m: float
    distance_p10_m: float
    centroid: tuple[float, float, float]
    extent: tuple[float, float, float]
    n_points: int
    n_mask: int
    n_valid: int
    erosion_fallback: bool = False

    @property
    def range_m(self) -> float:
        """Straight-line distance from the camera to the centroid (NaN without depth)."""
        return math.hypot(*self.centroid)

    def as_dict(self) -> dict:
        """JSON-ready dict; NaN becomes None."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "has_depth": self.has_depth,
            "valid_fraction": clean(self.valid_fraction),
            "distance_m": clean(self.distance_m),
            "distance_p10_m": clean(self.distance_p10_m),
            "range_m": clean(self.range_m),
            "centroid_m": [clean(v) for v in self.centroid],
            "extent_m": [clean(v) for v in self.extent],
            "n_points": self.n_points,
            "n_mask": self.n_mask,
            "n_valid": self.n_valid,
            "erosion_fallback": self.erosion_fallback,
        }


def no_depth(n_mask: int, n_valid: int = 0) -> DepthStats:
    """The result for a mask without any valid depth (or an empty mask)."""
    fraction = n_valid / n_mask if n_mask else math.nan
    return DepthStats(False, fraction, math.nan, math.nan, NAN3, NAN3, 0, n_mask, n_valid)


def mask_depth_stats(
    mask: np.ndarray,
    depth: np.ndarray,
    intrinsics: Intrinsics,
    erode_px: int = 3,
    allow_rescale: bool = False,
) -> DepthStats:
    """Distance, centroid and extent of the object ``mask`` covers.

    Args:
        mask: bool (H, W), the segmentation at the image's resolution.
        depth: depth image aligned (registered) to the mask's image: uint16 millimetres
            with 0 invalid, or float metres with 0, negative, NaN and inf invalid.
        intrinsics: pinhole intrinsics of ``depth`` as given (the aligned depth image's
            CameraInfo, which for a registered image is the colour camera's).
        erode_px: erode the mask by this many pixels (square window) before measuring,
            so that edge pixels, whose depth mixes object and background, do not count.
            The image border does not erode the mask. 0 turns erosion off.
        allow_rescale: a depth image of another size is refused with
            ``InvalidInputError``; with True it is resized nearest-neighbour to the
            mask's size when only the scale differs, and ``intrinsics`` scaled with it.

    All-invalid depth or an empty mask gives ``has_depth=False`` and NaN, not an error.
    """
    if isinstance(erode_px, bool) or not isinstance(erode_px, int | np.integer) or erode_px < 0:
        raise InvalidInputError(f"erode_px must be an integer >= 0, got {erode_px!r}")
    frame = prepare(mask, depth, intrinsics, allow_rescale, pad=int(erode_px))
    if frame.n_mask == 0:
        return no_depth(0)
    full = frame.mask & frame.valid
    n_valid = int(np.count_nonzero(full))
    if n_valid == 0:
        return no_depth(frame.n_mask)
    core, n_core, fallback = full, n_valid, False
    if erode_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * erode_px + 1,) * 2)
        eroded = cv2.erode(frame.mask.view(np.uint8), kernel).view(bool)
        eroded &= frame.valid
        n_eroded = int(np.count_nonzero(eroded))
        if n_eroded:
            core, n_core = eroded, n_eroded
        else:
            fallback = True
    raw, x, y, z = frame.select(core)
    scale = MM_TO_M if raw.dtype == np.uint16 else 1.0
    p10, median = (v * scale for v in quantiles(raw, *DISTANCE_QUANTILES))
    centroid = (float(x.mean()), float(y.mean()), float(z.mean()))
    # Put back what erosion and pixel centres take off each side, at the object's distance.
    grow = (0 if fallback else 2 * erode_px) + 1
    extent = (
        float(x.max()) - float(x.min()) + grow * median / frame.intrinsics.fx,
        float(y.max()) - float(y.min()) + grow * median / frame.intrinsics.fy,
        float(z.max()) - float(z.min()),
    )
    return DepthStats(
        True, n_valid / frame.n_mask, median, p10, centroid, extent, n_core, frame.n_mask,
        n_valid, fallback,
    )  # fmt: skip


def quantiles(values: np.ndarray, q_lo: float, q_hi: float) -> tuple[float, float]:
    """Quantiles ``q_lo <= q_hi`` of a 1-D array, interpolated linearly as ``np.percentile``
    does; partially sorts ``values`` in place.

    Two single-index partitions (the second on the lower part only) instead of a sort:
    numpy's one-index partition is vectorised, a multi-index one is several times slower.
    """
    n = values.size
    if n == 0:
        return math.nan, math.nan
    k_hi, f_hi = _position(q_hi, n)
    values.partition(k_hi)
    at_hi = float(values[k_hi])
    next_hi = float(values[k_hi + 1 :].min()) if f_hi > 0 else at_hi
    k_lo, f_lo = _position(q_lo, n)
    if k_lo == k_hi:
        at_lo, next_lo = at_hi, next_hi
    else:
        lower = values[:k_hi]  # everything at or below values[k_hi]
        lower.partition(k_lo)
        at_lo = float(lower[k_lo])
        next_lo = at_lo
        if f_lo > 0:
            next_lo = float(lower[k_lo + 1 :].min()) if k_lo + 1 < k_hi else at_hi
    return at_lo + f_lo * (next_lo - at_lo), at_hi + f_hi * (next_hi - at_hi)


def _position(q: float, n: int) -> tuple[int, float]:
    """Index and fraction of quantile ``q`` among ``n`` sorted values."""
    pos = q * (n - 1)
    k = min(int(math.floor(pos)), n - 1)
    return k, pos - k
