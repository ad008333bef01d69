"""Depth-aware outputs (issue 14): distances, centroids, extents and point clouds of masks."""

import math

import numpy as np
import pytest

from minelisa_training.depth import (
    DepthStats,
    Intrinsics,
    cloud,
    mask_depth_stats,
    mask_points,
    quantiles,
    voxel_downsample,
)
from minelisa_training.errors import InvalidInputError

H, W = 480, 640
INTR = Intrinsics(600.0, 600.0, 319.5, 239.5, W, H)


def box_scene(z_box=3.0, z_wall=6.0, size=(0.8, 0.6), centre=(0.3, -0.2), intr=INTR):
    """A flat box facing the camera at ``z_box`` in front of a wall at ``z_wall``
    (float metres); returns (depth, mask of the box's pixels)."""
    height, width = intr.height, intr.width
    x = (np.arange(width) - intr.cx) * z_box / intr.fx
    y = (np.arange(height) - intr.cy) * z_box / intr.fy
    inside_x = np.abs(x - centre[0]) <= size[0] / 2
    inside_y = np.abs(y - centre[1]) <= size[1] / 2
    mask = inside_y[:, None] & inside_x[None, :]
    depth = np.where(mask, z_box, z_wall).astype(np.float32)
    return depth, mask


def to_mm(depth_m):
    return np.rint(np.nan_to_num(depth_m, nan=0.0, posinf=0.0) * 1000).astype(np.uint16)


@pytest.mark.parametrize("kind", ["uint16", "float32"])
def test_box_distance_centroid_extent(kind):
    depth, mask = box_scene()
    rng = np.random.default_rng(0)
    depth = depth * (1 + 0.003 * rng.standard_normal(depth.shape)).astype(np.float32)
    depth = to_mm(depth) if kind == "uint16" else depth
    s = mask_depth_stats(mask, depth, INTR)
    assert s.has_depth and not s.erosion_fallback and s.valid_fraction == 1.0
    assert s.distance_m == pytest.approx(3.0, rel=0.01)
    assert s.distance_p10_m < s.distance_m and s.distance_p10_m == pytest.approx(3.0, abs=0.02)
    np.testing.assert_allclose(s.centroid, (0.3, -0.2, 3.0), atol=0.01)
    np.testing.assert_allclose(s.extent[:2], (0.8, 0.6), atol=0.02)
    assert s.extent[2] < 0.1  # noise only: a flat box
    assert s.n_mask == mask.sum() and s.n_valid == mask.sum() and 0 < s.n_points < mask.sum()
    assert s.range_m == pytest.approx(math.hypot(0.3, -0.2, 3.0), abs=0.01)


def test_distance_is_the_median_of_the_eroded_mask():
    # A floor-like ramp: every row a different depth, so the quantiles are not trivial.
    depth = np.linspace(1.0, 9.0, H, dtype=np.float32)[:, None].repeat(W, axis=1)
    mask = np.zeros((H, W), bool)
    mask[100:300, 200:260] = True
    s = mask_depth_stats(mask, depth, INTR, erode_px=4)
    core = depth[104:296, 204:256]
    assert s.n_points == core.size
    assert s.distance_m == pytest.approx(float(np.median(core)), rel=1e-6)
    assert s.distance_p10_m == pytest.approx(float(np.percentile(core, 10)), rel=1e-6)


def test_erosion_keeps_edge_pixels_out():
    depth, mask = box_scene()
    # Mixed pixels along the box's outline: halfway to the wall, as real sensors give.
    ring = mask & ~np.pad(mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1], 1)
    depth[ring] = 4.5
    eroded = mask_depth_stats(mask, depth, INTR, erode_px=2)
    raw = mask_depth_stats(mask, depth, INTR, erode_px=0)
    assert eroded.extent[2] == pytest.approx(0.0, abs=1e-6)
    assert raw.extent[2] == pytest.approx(1.5, abs=1e-4)
    np.testing.assert_allclose(eroded.extent[:2], (0.8, 0.6), atol=0.02)


def test_thin_mask_falls_back_to_the_whole_mask():
    depth = np.full((H, W), 2.5, np.float32)
    mask = np.zeros((H, W), bool)
    mask[100:300, 320:322] = True  # a cable two pixels wide: erosion leaves nothing
    s = mask_depth_stats(mask, depth, INTR, erode_px=3)
    assert s.has_depth and s.erosion_fallback and s.n_points == mask.sum()
    assert s.distance_m == pytest.approx(2.5)
    assert s.extent[1] == pytest.approx(200 * 2.5 / 600, abs=1e-4)  # 200 rows at 2.5 m


def test_invalid_depth_is_ignored():
    depth, mask = box_scene()
    rows, cols = np.nonzero(mask)
    bad = np.random.default_rng(1).choice(len(rows), size=len(rows) // 4, replace=False)
    for k, value in enumerate((0.0, np.nan, np.inf, -1.0)):
        pick = bad[k::4]
        depth[rows[pick], cols[pick]] = value
    s = mask_depth_stats(mask, depth, INTR)
    assert s.valid_fraction == pytest.approx(0.75, abs=0.001)
    assert s.distance_m == pytest.approx(3.0) and s.distance_p10_m == pytest.approx(3.0)
    s16 = mask_depth_stats(mask, to_mm(np.where(depth < 0, 0, depth)), INTR)
    assert s16.valid_fraction == pytest.approx(0.75, abs=0.001)
    assert s16.distance_m == pytest.approx(3.0)
    points = mask_points(mask, depth, INTR)
    assert len(points) == s.n_valid and np.isfinite(points).all()


def test_all_invalid_or_empty_gives_nan_not_an_error():
    _, mask = box_scene()
    for depth in (np.zeros((H, W), np.uint16), np.full((H, W), np.nan, np.float32)):
        s = mask_depth_stats(mask, depth, INTR)
        assert isinstance(s, DepthStats) and not s.has_depth
        assert s.valid_fraction == 0.0 and s.n_points == 0 and s.n_mask == mask.sum()
        assert math.isnan(s.distance_m) and math.isnan(s.distance_p10_m)
        assert all(math.isnan(v) for v in (*s.centroid, *s.extent, s.range_m))
        assert mask_points(mask, depth, INTR).shape == (0, 3)
    empty = mask_depth_stats(np.zeros((H, W), bool), np.ones((H, W), np.float32), INTR)
    assert not empty.has_depth and math.isnan(empty.valid_fraction) and empty.n_mask == 0
    d = empty.as_dict()
    assert d["distance_m"] is None and d["centroid_m"] == [None] * 3 and d["n_mask"] == 0


def test_mismatched_sizes_are_refused_with_both_sizes():
    depth, mask = box_scene()
    with pytest.raises(InvalidInputError, match=r"depth image is 320x240 but the mask is 640x480"):
        mask_depth_stats(mask, depth[::2, ::2], INTR.scaled(0.5, 0.5))
    with pytest.raises(InvalidInputError, match="aspect ratios differ"):
        mask_depth_stats(mask, depth[:, :400], Intrinsics(600, 600, 200, 240), allow_rescale=True)
    with pytest.raises(InvalidInputError, match="intrinsics are for a 640x480 image"):
        mask_depth_stats(mask[::2, ::2], depth[::2, ::2], INTR)
    with pytest.raises(InvalidInputError, match="uint16 millimetres or float metres"):
        mask_depth_stats(mask, depth.astype(np.int32), INTR)
    with pytest.raises(InvalidInputError, match="erode_px"):
        mask_depth_stats(mask, depth, INTR, erode_px=-1)


def test_rescale_when_allowed_scales_the_intrinsics():
    # The depth camera gives half the colour resolution; its own intrinsics are halved.
    depth, mask = box_scene()
    small = depth[::2, ::2]
    small_intr = INTR.scaled(0.5, 0.5)
    assert (small_intr.width, small_intr.height, small_intr.fx) == (320, 240, 300.0)
    assert small_intr.cx == pytest.approx(159.5) and small_intr.scaled(2, 2) == INTR
    full = mask_depth_stats(mask, depth, INTR)
    s = mask_depth_stats(mask, small, small_intr, allow_rescale=True)
    assert s.distance_m == pytest.approx(full.distance_m)
    np.testing.assert_allclose(s.centroid, full.centroid, atol=0.01)
    np.testing.assert_allclose(s.extent, full.extent, atol=0.02)
    pts = mask_points(mask, small, small_intr, allow_rescale=True)
    assert len(pts) == mask.sum()


def test_point_cloud_fields_and_order():
    depth, mask = box_scene()
    depth[mask] = np.linspace(2.9, 3.1, int(mask.sum()), dtype=np.float32)
    pts = mask_points(mask, to_mm(depth), INTR)
    assert pts.dtype == np.float32 and pts.shape == (mask.sum(), 3)
    rows, cols = np.nonzero(mask)  # row-major, as the points
    z = to_mm(depth)[rows, cols] / 1000.0
    np.testing.assert_allclose(pts[:, 2], z, rtol=1e-6)
    np.testing.assert_allclose(pts[:, 0], (cols - INTR.cx) * z / INTR.fx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pts[:, 1], (rows - INTR.cy) * z / INTR.fy, rtol=1e-5, atol=1e-6)


def _reference_voxels(points, voxel):
    cells = {}
    for p in points.astype(np.float64):
        key = tuple(np.floor(p.astype(np.float32) * np.float32(1 / voxel)).astype(int))
        cells.setdefault(key, []).append(p)
    order = sorted(cells, key=lambda k: (k[2], k[1], k[0]))
    return np.array([np.mean(cells[k], axis=0) for k in order], np.float32)


def test_voxel_downsampling_reduces_deterministically():
    rng = np.random.default_rng(2)
    depth = (2.0 + rng.random((H, W))).astype(np.float32)
    mask = np.zeros((H, W), bool)
    mask[200:260, 300:380] = True
    full = mask_points(mask, depth, INTR)
    down = mask_points(mask, depth, INTR, voxel_m=0.05)
    assert 0 < len(down) < len(full)
    np.testing.assert_array_equal(down, mask_points(mask, depth, INTR, voxel_m=0.05))
    np.testing.assert_array_equal(down, voxel_downsample(full, 0.05))
    shuffled = full[rng.permutation(len(full))]
    np.testing.assert_allclose(voxel_downsample(shuffled, 0.05), down, atol=1e-6)
    np.testing.assert_allclose(down, _reference_voxels(full, 0.05), atol=1e-5)
    assert len(voxel_downsample(np.abs(full), 1000.0)) == 1  # cubes start at the origin
    with pytest.raises(InvalidInputError, match="voxel_m"):
        mask_points(mask, depth, INTR, voxel_m=0)
    with pytest.raises(InvalidInputError, match="too small"):
        voxel_downsample(full, 1e-9)


def test_voxels_of_a_large_bounding_box_match_the_reference(monkeypatch):
    """Every way of finding the occupied voxels (sorting, counting) and each point's
    voxel (lookup table, binary search for a box of more than `LOOKUP_VOXELS` voxels)."""
    rng = np.random.default_rng(4)
    points = (rng.random((5000, 3)) * [8.0, 4.0, 10.0] - [4.0, 2.0, 0.0]).astype(np.float32)
    points[::7] = points[3]  # shared voxels, several points in one
    expected = _reference_voxels(points, 0.01)  # 800 x 400 x 1000 voxels in the box
    np.testing.assert_allclose(voxel_downsample(points, 0.01), expected, atol=1e-5)
    monkeypatch.setattr(cloud, "LOOKUP_VOXELS", 0)
    np.testing.assert_allclose(voxel_downsample(points, 0.01), expected, atol=1e-5)
    coarse = _reference_voxels(points, 0.1)  # 320,000 voxels: sorted, then counted
    np.testing.assert_allclose(voxel_downsample(points, 0.1), coarse, atol=1e-5)
    monkeypatch.setattr(cloud, "DENSE_VOXELS_PER_POINT", 10**6)
    np.testing.assert_allclose(voxel_downsample(points, 0.1), coarse, atol=1e-5)


def test_quantiles_match_numpy():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 9, 10, 11, 57, 1000):
        for values in (rng.integers(0, 40, n).astype(np.uint16), rng.random(n).astype(np.float32)):
            lo, hi = quantiles(values.copy(), 0.1, 0.5)
            assert lo == pytest.approx(np.percentile(values, 10), rel=1e-6)
            assert hi == pytest.approx(np.median(values), rel=1e-6)


def test_intrinsics_from_camera_info_k():
    k = [600.0, 0.0, 319.5, 0.0, 601.0, 239.5, 0.0, 0.0, 1.0]
    intr = Intrinsics.from_k(k, 640, 480)
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (
        600.0, 601.0, 319.5, 239.5, 640, 480,
    )  # fmt: skip
    assert intr.k == k and Intrinsics.from_dict(intr.as_dict()) == intr
    assert Intrinsics.from_k(k, 0, 0).width is None  # CameraInfo's 0 = unknown
    assert Intrinsics.from_dict({"fx": 1, "fy": 2, "cx": 3, "cy": 4}) == Intrinsics(1, 2, 3, 4)
    with pytest.raises(InvalidInputError, match="not calibrated"):
        Intrinsics.from_k([0.0] * 9)
    with pytest.raises(InvalidInputError, match="no skew"):
        Intrinsics.from_k([600.0, 0.5, 319.5, 0.0, 600.0, 239.5, 0.0, 0.0, 1.0])
    with pytest.raises(InvalidInputError, match="9 values"):
        Intrinsics.from_k([600.0, 600.0, 319.5, 239.5])
    with pytest.raises(InvalidInputError, match="finite"):
        Intrinsics(float("nan"), 600.0, 1.0, 1.0)


def test_big_endian_depth_is_read_as_numbers():
    depth, mask = box_scene()
    mm = to_mm(depth)
    s = mask_depth_stats(mask, mm.astype(">u2"), INTR)
    assert s.distance_m == mask_depth_stats(mask, mm, INTR).distance_m == pytest.approx(3.0)
