"""minelisa_ros.image_conversion checked against rosbags-image, an independent implementation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rosbags.image import compressed_image_to_cvimage, image_to_cvimage
from rosbags.typesys import Stores, get_typestore

from minelisa_ros.image_conversion import (
    MAX_IMAGE_SIDE,
    ImageConversionError,
    compressed_to_rgb,
    fill_image,
    image_to_rgb,
    is_empty_image,
    mask_to_mono8,
)

TYPES = get_typestore(Stores.ROS2_JAZZY)
Image = TYPES.types["sensor_msgs/msg/Image"]
CompressedImage = TYPES.types["sensor_msgs/msg/CompressedImage"]
Header = TYPES.types["std_msgs/msg/Header"]
Time = TYPES.types["builtin_interfaces/msg/Time"]

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 1}


def make_image(
    encoding: str, pixels: np.ndarray, *, pad: int = 0, big_endian: bool = False
) -> Image:
    """A rosbags Image holding `pixels` (rows padded by `pad` bytes)."""
    if big_endian:
        pixels = pixels.astype(">u2")
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1).view(np.uint8)
    if pad:
        rows = np.concatenate([rows, np.full((height, pad), 7, np.uint8)], axis=1)
    return Image(
        header=Header(stamp=Time(sec=1, nanosec=2), frame_id="cam"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=rows.shape[1],
        data=np.ascontiguousarray(rows).reshape(-1),
    )


def random_pixels(encoding: str, seed: int = 0, size: tuple[int, int] = (37, 53)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = size + ((CHANNELS[encoding],) if CHANNELS[encoding] > 1 else ())
    if encoding == "mono16":
        return rng.integers(0, 65536, size=shape, dtype=np.uint16)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_8bit_encodings_match_rosbags_image(encoding):
    msg = make_image(encoding, random_pixels(encoding))
    ours = image_to_rgb(msg)
    assert ours.dtype == np.uint8 and ours.shape == (37, 53, 3) and ours.flags.c_contiguous
    np.testing.assert_array_equal(ours, image_to_cvimage(msg, "rgb8"))


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_matches_rosbags_image_within_rounding(big_endian):
    pixels = random_pixels("mono16", seed=1)
    msg = make_image("mono16", pixels, big_endian=big_endian)
    ours = image_to_rgb(msg).astype(int)
    theirs = image_to_cvimage(msg, "rgb8").astype(int)  # truncates where we round
    assert np.abs(ours - theirs).max() <= 1
    np.testing.assert_array_equal(ours[..., 0], np.rint(pixels * (255 / 65535)).astype(int))


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "mono8", "mono16"])
def test_padded_rows_are_cut(encoding):
    pixels = random_pixels(encoding, seed=2)
    padded = make_image(encoding, pixels, pad=5)
    np.testing.assert_array_equal(image_to_rgb(padded), image_to_rgb(make_image(encoding, pixels)))


@pytest.mark.parametrize(
    "ext,fmt", [(".jpg", "jpeg"), (".png", "png"), (".png", "bgr8; png compressed bgr8")]
)
def test_compressed_matches_rosbags_image(ext, fmt):
    bgr = random_pixels("bgr8", seed=3, size=(40, 60))
    ok, encoded = cv2.imencode(ext, bgr)
    assert ok
    msg = CompressedImage(
        header=Header(stamp=Time(sec=0, nanosec=0), frame_id=""),
        format=fmt,
        data=encoded.reshape(-1),
    )
    ours = compressed_to_rgb(msg)
    np.testing.assert_array_equal(ours, compressed_image_to_cvimage(msg, "rgb8"))
    if ext == ".png":  # lossless: the exact pixels, channel order swapped
        np.testing.assert_array_equal(ours, bgr[..., ::-1])


def _with(msg: Image, **fields) -> Image:
    values = {
        name: getattr(msg, name)
        for name in ("header", "height", "width", "encoding", "is_bigendian", "step", "data")
    }
    values.update(fields)
    return Image(**values)


GOOD = make_image("rgb8", random_pixels("rgb8", size=(4, 6)))


@pytest.mark.parametrize(
    "fields,expected",
    [
        ({"encoding": "yuv422"}, "unsupported image encoding 'yuv422'"),
        ({"encoding": "32FC1"}, "unsupported image encoding '32FC1'"),
        ({"width": 0}, "zero size (0x4"),
        ({"height": 0, "data": np.zeros(0, np.uint8)}, "zero size (6x0"),
        ({"width": MAX_IMAGE_SIDE + 1, "step": 3 * (MAX_IMAGE_SIDE + 1)}, "exceeds the limit"),
        ({"height": 10**6}, "exceeds the limit"),
        ({"step": 17}, "step 17 is smaller than width x bytes per pixel = 6 x 3"),
        (
            {"data": np.zeros(71, np.uint8)},
            "data length 71 does not match step x height = 18 x 4 = 72",
        ),
        ({"step": 19}, "data length 72 does not match step x height = 19 x 4 = 76"),
    ],
)
def test_bad_images_get_specific_errors(fields, expected):
    with pytest.raises(ImageConversionError) as info:
        image_to_rgb(_with(GOOD, **fields))
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "fmt,data,expected",
    [
        ("jpeg", b"\xff\xd8 not a jpeg", "could not decode the compressed image (13 bytes"),
        ("png", b"", "compressed image has no data"),
        ("16UC1; compressedDepth png", b"\x89PNG", "unsupported compressed image format"),
        ("h264", b"\x00\x00\x01", "unsupported compressed image format 'h264'"),
    ],
)
def test_bad_compressed_images_get_specific_errors(fmt, data, expected):
    msg = CompressedImage(
        header=Header(stamp=Time(sec=0, nanosec=0), frame_id=""),
        format=fmt,
        data=np.frombuffer(data, np.uint8),
    )
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb(msg)
    assert expected in str(info.value)


def test_empty_image_means_not_given():
    assert is_empty_image(
        Image(
            header=GOOD.header,
            height=0,
            width=0,
            encoding="",
            is_bigendian=0,
            step=0,
            data=np.zeros(0, np.uint8),
        )
    )
    assert not is_empty_image(GOOD)
    assert not is_empty_image(
        _with(GOOD, width=0, height=0)
    )  # data without size is an error, not "empty"


def test_rclpy_image_round_trip_and_mono8_mask():
    from sensor_msgs.msg import Image as RosImage
    from std_msgs.msg import Header as RosHeader

    rgb = random_pixels("rgb8", seed=4, size=(9, 11))
    header = RosHeader(frame_id="camera_optical")
    header.stamp.sec = 5
    msg = fill_image(RosImage(), rgb, "rgb8", header)
    assert (msg.height, msg.width, msg.step, len(msg.data)) == (9, 11, 33, 9 * 33)
    assert msg.header.frame_id == "camera_optical" and msg.header.stamp.sec == 5
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)

    mask = rgb[..., 0] > 128
    mono = mask_to_mono8(mask)
    assert mono.dtype == np.uint8 and set(np.unique(mono)) <= {0, 255}
    mask_msg = fill_image(RosImage(), mono, "mono8")
    assert mask_msg.step == 11
    np.testing.assert_array_equal(
        np.frombuffer(mask_msg.data, np.uint8).reshape(9, 11) == 255, mask
    )
