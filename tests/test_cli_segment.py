"""`minelisa segment` end to end on a tiny bundle."""

from __future__ import annotations

import numpy as np
from PIL import Image

from minelisa_training.cli import main
from minelisa_training.engine import SegmentationEngine


def test_segment_writes_mask_and_overlay(tiny_bundle, tmp_path, rgb_image, capsys):
    Image.fromarray(rgb_image).save(tmp_path / "frame.jpg", quality=95)
    code = main(
        [
            "segment",
            "--model",
            str(tiny_bundle),
            "--image",
            str(tmp_path / "frame.jpg"),
            "--instruction",
            "segment the exposed cable",
            "--out",
            str(tmp_path / "m" / "mask.png"),
            "--overlay",
            str(tmp_path / "overlay.png"),
        ]
    )
    assert code == 0
    mask = np.asarray(Image.open(tmp_path / "m" / "mask.png"))
    assert mask.shape == rgb_image.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    # Same mask as the engine gives for the decoded JPEG.
    frame = np.asarray(Image.open(tmp_path / "frame.jpg").convert("RGB"))
    expected = (
        SegmentationEngine.from_pretrained(tiny_bundle)
        .segment(frame, "segment the exposed cable")
        .mask
    )
    assert np.array_equal(mask == 255, expected)
    overlay = np.asarray(Image.open(tmp_path / "overlay.png"))
    assert overlay.shape == rgb_image.shape
    out = capsys.readouterr().out
    assert "sam_encoder" in out and "llm" in out and "answer: [SEG]." in out


def test_segment_errors_are_specific(tiny_bundle, tmp_path, capsys):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "f.png")
    image = tmp_path / "f.png"
    assert _segment(tmp_path / "missing", tmp_path, image, instruction="x") == 2
    assert "model path does not exist" in capsys.readouterr().err
    assert _segment(tiny_bundle, tmp_path, tmp_path / "nope.jpg", instruction="x") == 2
    assert "cannot read image" in capsys.readouterr().err
    assert _segment(tiny_bundle, tmp_path, image, instruction="   ") == 2
    assert "instruction is empty" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


def _segment(tiny_bundle, tmp_path, image, instruction="the cable", out="m.png", extra=()):
    return main(
        [
            "segment",
            "--model",
            str(tiny_bundle),
            "--image",
            str(image),
            "--instruction",
            instruction,
            "--out",
            str(tmp_path / out),
            *extra,
        ]
    )


def test_bad_inputs_are_messages_and_keep_existing_outputs(tiny_bundle, tmp_path, capsys):
    good = tmp_path / "f.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(good)
    (tmp_path / "m.png").write_bytes(b"old mask")
    bomb = tmp_path / "bomb.png"
    # A valid PNG header claiming 20000x20000 pixels, with no pixel data.
    import struct
    import zlib

    def png_chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"")
        + png_chunk(b"IEND", b"")
    )
    (tmp_path / "outdir").mkdir()
    cases = [
        (dict(image=bomb), "pixels"),
        (dict(image=good, instruction="the [SEG] [SEG] cable"), "control token"),
        (dict(image=good, instruction="x <im_start> y"), "'<im_start>'"),
        (dict(image=good, out="outdir"), "is a directory"),
        (dict(image=good, out="mask.jpg"), "use .png"),
        (dict(image=good, extra=("--max-new-tokens", "0")), "max_new_tokens must be within"),
        (dict(image=good, extra=("--device", "tpu")), "device"),
    ]
    for kwargs, message in cases:
        assert _segment(tiny_bundle, tmp_path, **kwargs) == 2, kwargs
        err = capsys.readouterr().err
        assert err.startswith("minelisa segment: ") and message in err, (kwargs, err)
        assert "Traceback" not in err
        assert (tmp_path / "m.png").read_bytes() == b"old mask"


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from minelisa_training.image_io import read_rgb

    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "depthlike.png")
    rgb = read_rgb(tmp_path / "depthlike.png")
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert (rgb == 255).mean() < 0.01 and rgb.max() >= 250 and rgb.min() == 0


def test_internal_errors_hide_the_traceback_unless_debug(
    tiny_bundle, tmp_path, capsys, monkeypatch
):
    from minelisa_training import engine as engine_module

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "f.png")
    monkeypatch.setattr(engine_module.SegmentationEngine, "segment", broken)
    assert _segment(tiny_bundle, tmp_path, tmp_path / "f.png") == 1
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: boom" in err and "--debug" in err
    assert "Traceback" not in err
    assert _segment(tiny_bundle, tmp_path, tmp_path / "f.png", extra=("--debug",)) == 1
    assert "Traceback" in capsys.readouterr().err


def test_launcher_local_rank_is_accepted_anywhere(monkeypatch):
    from minelisa_training.cli import split_launcher_args

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    argv, debug = split_launcher_args(["--local_rank=1", "segment", "--debug", "--model", "m"])
    assert argv == ["segment", "--model", "m"] and debug
    import os

    assert os.environ["LOCAL_RANK"] == "1"
