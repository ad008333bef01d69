"""Checked inputs of the depth functions: one mask, one depth image, intrinsics of that size.

Everything after the checks works on the mask's bounding box (plus a margin for the
erosion), so a small object in a large frame costs little.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InvalidInputError
from .intrinsics import Intrinsics

MM_TO_M = 0.001  # uint16 depth images hold millimetres


def check_mask(mask: np.ndarray) -> np.ndarray:
    """The mask as bool [H, W]; integer masks count non-zero pixels as inside."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or 0 in mask.shape:
        raise InvalidInputError(f"mask must be a non-empty (H, W) array, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask
    if np.issubdtype(mask.dtype, np.integer):
        return mask != 0
    raise InvalidInputError(f"mask must be bool (or integer), got {mask.dtype}")


def check_depth(depth: np.ndarray) -> np.ndarray:
    """The depth image as (H, W) uint16 millimetres or floating-point metres."""
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or 0 in depth.shape:
        raise InvalidInputError(f"depth must be a non-empty (H, W) image, got shape {depth.shape}")
    if not depth.dtype.isnative:  # e.g. a big-endian ROS image viewed without conversion
        depth = depth.astype(depth.dtype.newbyteorder("="))
    if depth.dtype != np.uint16 and not np.issubdtype(depth.dtype, np.floating):
        raise InvalidInputError(
            f"depth must be uint16 millimetres or float metres, got {depth.dtype}"
        )
    return depth


def match_size(
    shape: tuple[int, int], depth: np.ndarray, intrinsics: Intrinsics, allow_rescale: bool
) -> tuple[np.ndarray, Intrinsics]:
    """The depth image and its intrinsics at the mask's size ``shape`` (H, W).

    ``intrinsics`` belong to the depth image as given. A depth image of another size
    is refused, or, with ``allow_rescale``, resized nearest-neighbour (no depth is
    invented between surfaces) when only the scale differs; the intrinsics are scaled
    with it.
    """
    if not isinstance(intrinsics, Intrinsics):
        raise InvalidInputError(
            f"intrinsics must be an Intrinsics, got {type(intrinsics).__name__}"
        )
    dh, dw = depth.shape
    if intrinsics.width is not None and (intrinsics.width, intrinsics.height) != (dw, dh):
        raise InvalidInputError(
            f"intrinsics are for a {intrinsics.width}x{intrinsics.height} image but the depth "
            f"image is {dw}x{dh} (width x height)"
        )
    mh, mw = shape
    if (dh, dw) == (mh, mw):
        return depth, intrinsics
    sizes = f"depth image is {dw}x{dh} but the mask is {mw}x{mh} (width x height)"
    if not allow_rescale:
        raise InvalidInputError(
            f"{sizes}; pass allow_rescale=True to resize the depth image when only the scale "
            "differs"
        )
    sx, sy = mw / dw, mh / dh
    if abs(dh * sx - mh) > 1.0:
        raise InvalidInputError(f"{sizes}: the aspect ratios differ, so it cannot be rescaled")
    resized = cv2.resize(depth, (mw, mh), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized, intrinsics.scaled(sx, sy)


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """Bool map of usable depth: non-zero uint16; positive and finite floats (NaN is not)."""
    if depth.dtype == np.uint16:
        return depth != 0
    return (depth > 0) & (depth < np.inf)


@dataclass
class Frame:
    """The mask's bounding box (grown by ``pad``) cut out of mask and depth image."""

    mask: np.ndarray  # bool [h, w]
    depth: np.ndarray  # uint16 mm or float m [h, w]
    valid: np.ndarray  # bool [h, w]
    x_rays: np.ndarray  # float32 [w]: (u - cx) / fx of the crop's columns
    y_rays: np.ndarray  # float32 [h]: (v - cy) / fy of the crop's rows
    n_mask: int  # pixels in the mask
    intrinsics: Intrinsics  # of the mask's image (scaled when the depth image was resized)

    def select(self, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Raw depth values and x, y, z in metres (float32) of the pixels ``sel`` picks,
        in row-major pixel order."""
        raw = self.depth[sel]
        z = raw.astype(np.float32)
        if raw.dtype == np.uint16:
            z *= np.float32(MM_TO_M)
        # Each pixel's ray without per-pixel coordinate arrays: boolean indexing of the
        # broadcast column table, and the row table repeated by the row's count (pixels
        # come in row-major order), which is faster than indexing a broadcast again.
        x = np.broadcast_to(self.x_rays, sel.shape)[sel]
        x *= z
        y = np.repeat(self.y_rays, np.count_nonzero(sel, axis=1))
        y *= z
        return raw, x, y, z


def prepare(
    mask: np.ndarray,
    depth: np.ndarray,
    intrinsics: Intrinsics,
    allow_rescale: bool,
    pad: int = 0,
) -> Frame:
    """Check the inputs and cut out the mask's bounding box grown by ``pad`` pixels."""
    mask = check_mask(mask)
    depth, intrinsics = match_size(mask.shape, check_depth(depth), intrinsics, allow_rescale)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        empty = np.zeros((0, 0), bool)
        none = np.zeros(0, np.float32)
        return Frame(empty, depth[:0, :0], empty, none, none, 0, intrinsics)
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    r0, r1 = max(int(rows[0]) - pad, 0), min(int(rows[-1]) + 1 + pad, height)
    c0, c1 = max(int(cols[0]) - pad, 0), min(int(cols[-1]) + 1 + pad, width)
    crop_mask, crop_depth = mask[r0:r1, c0:c1], depth[r0:r1, c0:c1]
    x_rays = ((np.arange(c0, c1) - intrinsics.cx) / intrinsics.fx).astype(np.float32)
    y_rays = ((np.arange(r0, r1) - intrinsics.cy) / intrinsics.fy).astype(np.float32)
    n_mask = int(np.count_nonzero(crop_mask))
    valid = valid_depth(crop_depth)
    return Frame(crop_mask, crop_depth, valid, x_rays, y_rays, n_mask, intrinsics)
