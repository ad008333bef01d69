"""Where a segmented object is and how far: depth-aware outputs, no ROS needed.

A mask tells a robot *what*; with an aligned depth image and the camera's pinhole
intrinsics it also tells *where*, in metres, in the camera's ROS optical frame
(x right, y down, z forward)::

    from minelisa_training.depth import Intrinsics, mask_depth_stats, mask_points

    intr = Intrinsics.from_k(camera_info.k, camera_info.width, camera_info.height)
    stats = mask_depth_stats(result.mask, depth_image, intr)   # DepthStats
    stats.distance_m, stats.distance_p10_m, stats.centroid, stats.extent
    cloud = mask_points(result.mask, depth_image, intr, voxel_m=0.05)   # (N, 3) float32

Depth images are uint16 millimetres (0 = invalid; MUSeg, Azure Kinect, RealSense) or
float metres (0, NaN, inf = invalid). The intrinsics belong to the depth image as
given; for a depth image registered to the colour image they are the colour camera's.

Modules: ``intrinsics`` (``Intrinsics``), ``frame`` (input checks, rescaling,
bounding-box crop), ``stats`` (``DepthStats``, ``mask_depth_stats``), ``cloud``
(``mask_points``, ``voxel_downsample``) and ``accuracy`` (``DepthErrorAccumulator``
for ``minelisa eval --depth``). The proximity alert rule is ``minelisa_training.proximity``.
"""

from __future__ import annotations

from .accuracy import DepthErrorAccumulator, format_depth_table, load_aligned_depth
from .cloud import mask_points, voxel_downsample
from .frame import MM_TO_M, valid_depth
from .intrinsics import Intrinsics
from .stats import DepthStats, mask_depth_stats, quantiles

__all__ = [
    "MM_TO_M",
    "DepthErrorAccumulator",
    "DepthStats",
    "Intrinsics",
    "format_depth_table",
    "load_aligned_depth",
    "mask_depth_stats",
    "mask_points",
    "quantiles",
    "valid_depth",
    "voxel_downsample",
]
