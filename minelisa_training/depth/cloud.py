"""The masked point cloud, optionally voxel-downsampled."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import InvalidInputError
from .frame import prepare
from .intrinsics import Intrinsics

# Occupied voxels are found by counting into a dense array while the cloud's bounding
# box holds few voxels per point (O(points + voxels)), else by sorting the points' keys.
# Each point's voxel is then looked up in a table of one entry per voxel of the box
# (uninitialised: only occupied entries are touched), or, for a box of more than
# LOOKUP_VOXELS voxels, found by binary search among the occupied ones.
DENSE_VOXELS_PER_POINT = 2
DENSE_VOXELS = 1 << 22
LOOKUP_VOXELS = 1 << 26


def mask_points(
    mask: np.ndarray,
    depth: np.ndarray,
    intrinsics: Intrinsics,
    voxel_m: float | None = None,
    allow_rescale: bool = False,
) -> np.ndarray:
    """The mask's pixels with valid depth as points (N, 3) float32, metres, camera frame.

    Columns are x (right), y (down), z (forward): the ROS optical frame. Without
    ``voxel_m`` the points are in row-major pixel order, one per pixel; with it, see
    ``voxel_downsample``. ``mask``, ``depth``, ``intrinsics`` and ``allow_rescale`` as
    for ``mask_depth_stats`` (the whole mask is used: no erosion).
    """
    if voxel_m is not None:
        _check_voxel(voxel_m)
    frame = prepare(mask, depth, intrinsics, allow_rescale)
    sel = frame.mask & frame.valid
    if frame.n_mask == 0 or not sel.any():
        return np.zeros((0, 3), np.float32)
    _, x, y, z = frame.select(sel)
    if voxel_m is not None:
        return _voxel_means(x, y, z, voxel_m)
    return cv2.merge([x, y, z])  # (N, 3): faster than numpy's column stacking


def voxel_downsample(points: np.ndarray, voxel_m: float) -> np.ndarray:
    """One point per occupied cube of side ``voxel_m``: the mean of its points.

    Cubes are aligned to multiples of ``voxel_m`` from the camera's origin, and the
    result is ordered by cube (z, then y, then x index), so the same points give the
    same array whatever their order's accidents; float32 (M, 3).
    """
    _check_voxel(voxel_m)
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InvalidInputError(f"points must be (N, 3), got shape {points.shape}")
    if len(points) == 0:
        return points.copy()
    # Contiguous columns: numpy's work on strided (N, 3) columns is several times slower.
    x, y, z = (np.ascontiguousarray(points[:, i]) for i in range(3))
    return _voxel_means(x, y, z, voxel_m)


def _check_voxel(voxel_m: float) -> None:
    if isinstance(voxel_m, bool) or not isinstance(voxel_m, int | float | np.integer | np.floating):
        raise InvalidInputError(f"voxel_m must be a number of metres, got {voxel_m!r}")
    if not (math.isfinite(voxel_m) and voxel_m > 0):
        raise InvalidInputError(f"voxel_m must be a positive number of metres, got {voxel_m}")


def _voxel_means(x: np.ndarray, y: np.ndarray, z: np.ndarray, voxel_m: float) -> np.ndarray:
    """``voxel_downsample`` of the points given as three contiguous columns."""
    scaled = [np.floor(c * np.float32(1.0 / voxel_m)) for c in (x, y, z)]
    lows = [float(f.min()) for f in scaled]
    dims = [int(f.max() - low) + 1 for f, low in zip(scaled, lows)]
    n_cells = dims[0] * dims[1] * dims[2]
    if n_cells >= 1 << 62:
        raise InvalidInputError(f"voxel_m={voxel_m} is too small for a cloud this large")
    # int32 cells and keys while they fit: half the memory traffic of int64.
    wide = np.int32 if n_cells < 1 << 31 else np.int64
    cells = [(f - np.float32(low)).astype(wide) for f, low in zip(scaled, lows)]
    key = cells[0] + dims[0] * (cells[1] + dims[1] * cells[2])
    inverse, counts = _compact(key, n_cells)
    inverse = inverse.astype(np.intp, copy=False)  # once, not inside each bincount
    sums = [np.bincount(inverse, weights=c, minlength=len(counts)) / counts for c in (x, y, z)]
    return cv2.merge([s.astype(np.float32) for s in sums])


def _compact(key: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """(index of each key among the distinct keys in ascending order, count of each).

    The sort is numpy's SIMD integer sort, about 10x faster than the argsort inside
    ``np.unique(return_inverse=True)``; counting wins when the box is dense (coarse
    voxels). Measured in benchmarks/RESULTS.md (depth).
    """
    if n_keys <= min(DENSE_VOXELS, DENSE_VOXELS_PER_POINT * len(key)):
        counts = np.bincount(key, minlength=n_keys)
        distinct = np.flatnonzero(counts)
        counts = counts[distinct]
    else:
        ordered = np.sort(key)
        first = np.empty(len(ordered), bool)
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        distinct = ordered[starts]
        counts = np.diff(starts, append=len(ordered))
    if n_keys > LOOKUP_VOXELS:
        return np.searchsorted(distinct, key), counts
    slot = np.empty(n_keys, np.int32)
    slot[distinct] = np.arange(len(distinct), dtype=np.int32)
    return slot[key], counts
