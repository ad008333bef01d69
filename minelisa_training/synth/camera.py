"""The synthetic camera: pinhole intrinsics and the metric scale of the roadway it sees.

The camera is an assumption, not MUSeg's calibration (the release ships none): an
Azure Kinect colour camera at 1920x1080 has a focal length of about 913 px, which a
crop to MUSeg's 1082 px width keeps; other widths scale it (``fx = fy = 0.844 *
width``). The principal point is the image centre, ``((W - 1) / 2, (H - 1) / 2)`` in
pixel-centre coordinates. ``write_dataset`` writes these intrinsics to
``ROOT/Experiment/intrinsics.json`` (``museg.read_intrinsics`` reads them back).

Geometry: the roadway's near cross-section fills the image border at ``NEAR_M``
metres, so it is ``width * NEAR_M / fx`` = 4.1 m wide (and ``height * NEAR_M / fy``
high: 3.6 m at 1082x932); every cross-section deeper in is the image rectangle
shrunk by ``scale(t)`` about the vanishing point, at depth ``NEAR_M / scale(t)``.
That is a pinhole view of a straight roadway, so an object whose image is ``w``
pixels wide at depth ``z`` is ``w * z / fx`` metres wide.
"""

from __future__ import annotations

from ..depth import Intrinsics

FOCAL_PER_WIDTH = 913.0 / 1082.0  # fx / image width
NEAR_M = 3.5  # depth of the roadway cross-section that fills the image border
MAX_RANGE_M = 15.0  # the sensor returns no depth beyond this
PERSON_HEIGHT_M = 1.75  # nominal; each person is 0.85-1.1 times this


def synth_intrinsics(width: int, height: int) -> Intrinsics:
    """The synthetic camera's intrinsics for a ``width`` x ``height`` image."""
    focal = FOCAL_PER_WIDTH * width
    return Intrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)


def intrinsics_json(width: int, height: int) -> dict:
    """What ``write_dataset`` stores in ``Experiment/intrinsics.json``."""
    return {
        "camera": "MineLISA synthetic pinhole camera (Azure Kinect-like, no distortion)",
        "depth": "Depth/<id>.png: uint16 millimetres along the optical axis, 0 = invalid",
        **synth_intrinsics(width, height).as_dict(),
    }
