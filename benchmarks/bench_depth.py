"""Depth statistics and masked point cloud speed on a 1920x1080 frame (issue 14).

Target: ``mask_depth_stats`` plus ``mask_points`` under 5 ms for one 1920x1080 mask
on the project's 2-core CPU. Rows: mask coverage 1%, 10%, 50% (an ellipse, so the
bounding-box crop is realistic), depth as uint16 millimetres or float32 metres (a
tilted wall 2-6 m away, 1% sensor noise, 3% invalid pixels: 0, or NaN/inf for
float), point cloud without voxels, with the node's default 2 cm voxels and with 5 cm. Median milliseconds
over ``--repeats`` calls after 3 warm-ups, the library's default threading; the last
column is the median process CPU time of stats + cloud (all threads), which a machine
busy with other work inflates less than the wall-clock columns.

Run: python benchmarks/bench_depth.py [--repeats 50] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import cv2
import numpy as np

from minelisa_training.depth import Intrinsics, mask_depth_stats, mask_points

VOXELS_M = (None, 0.02, 0.05)  # every pixel; the node's points_voxel_m default; coarser


def make_depth(width: int, height: int, dtype: str, seed: int = 0) -> np.ndarray:
    """A wall tilted away to the right, 2 m at the left edge to 6 m at the right."""
    rng = np.random.default_rng(seed)
    z = np.linspace(2.0, 6.0, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    z *= 1.0 + 0.01 * rng.standard_normal(z.shape, dtype=np.float32)
    invalid = rng.random(z.shape) < 0.03
    if dtype == "uint16":
        out = np.rint(z * 1000).astype(np.uint16)
        out[invalid] = 0
        return out
    z[invalid] = np.where(rng.random(int(invalid.sum())) < 0.5, np.nan, np.inf)
    return z


def make_mask(width: int, height: int, coverage: float) -> np.ndarray:
    """A filled ellipse with the frame's aspect ratio covering ``coverage`` of it."""
    mask = np.zeros((height, width), np.uint8)
    scale = np.sqrt(coverage * 4 / np.pi)  # ellipse area = pi/4 * (scale*w) * (scale*h)
    axes = (int(scale * width / 2), int(scale * height / 2))
    cv2.ellipse(mask, (width // 2, height // 2), axes, 0, 0, 360, 1, -1)
    return mask.astype(bool)


def median_ms(fn, repeats: int, clock=time.perf_counter) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return 1000.0 * float(np.median(times))


def time_row(mask, depth, intr, voxel, repeats: int) -> tuple[int, float, float, float, float]:
    """(points returned, stats ms, cloud ms, stats + cloud ms, their CPU ms) for one case."""

    def stats():
        mask_depth_stats(mask, depth, intr)

    def cloud():
        mask_points(mask, depth, intr, voxel_m=voxel)

    def both():
        stats()
        cloud()

    n = len(mask_points(mask, depth, intr, voxel_m=voxel))
    cpu = median_ms(both, repeats, time.process_time)  # all threads; robust to a busy machine
    return n, median_ms(stats, repeats), median_ms(cloud, repeats), median_ms(both, repeats), cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    intr = Intrinsics(0.48 * width, 0.48 * width, (width - 1) / 2, (height - 1) / 2)
    print(
        f"{width}x{height}, {platform.processor() or platform.machine()}, "
        f"cv2 threads {cv2.getNumThreads()}, median of {args.repeats}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    head = f"{'coverage':>8s} {'depth':>7s} {'voxel':>6s} {'points':>8s} "
    head += f"{'stats ms':>9s} {'cloud ms':>9s} {'both ms':>8s} {'both cpu ms':>11s}"
    print(head)
    print("-" * len(head))
    for coverage in (0.01, 0.10, 0.50):
        mask = make_mask(width, height, coverage)
        for dtype in ("uint16", "float32"):
            depth = make_depth(width, height, dtype)
            for voxel in VOXELS_M:
                n, stats, cloud, both, cpu = time_row(mask, depth, intr, voxel, args.repeats)
                label = "-" if voxel is None else f"{voxel:.2f}"
                print(
                    f"{coverage:8.0%} {dtype:>7s} {label:>6s} {n:8d} "
                    f"{stats:9.2f} {cloud:9.2f} {both:8.2f} {cpu:11.2f}"
                )


if __name__ == "__main__":
    main()
