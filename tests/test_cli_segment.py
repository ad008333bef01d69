"""`minelisa segment` end to end on a tiny bundle."""
from __future__ import annotations

import numpy as np
from PIL import Image

from minelisa_training.cli import main
from minelisa_training.engine import SegmentationEngine


def test_segment_writes_mask_and_overlay(tiny_bundle, tmp_path, rgb_image, capsys):
    Image.fromarray(rgb_image).save(tmp_path / "frame.jpg", quality=95)
    code = main(["segment", "--model", str(tiny_bundle), "--image", str(tmp_path / "frame.jpg"),
                 "--instruction", "segment the exposed cable", "--out", str(tmp_path / "m" / "mask.png"),
                 "--overlay", str(tmp_path / "overlay.png")])
    assert code == 0
    mask = np.asarray(Image.open(tmp_path / "m" / "mask.png"))
    assert mask.shape == rgb_image.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    # Same mask as the engine gives for the decoded JPEG.
    frame = np.asarray(Image.open(tmp_path / "frame.jpg").convert("RGB"))
    expected = SegmentationEngine.from_pretrained(tiny_bundle).segment(frame, "segment the exposed cable")[0].mask
    assert np.array_equal(mask == 255, expected)
    overlay = np.asarray(Image.open(tmp_path / "overlay.png"))
    assert overlay.shape == rgb_image.shape
    out = capsys.readouterr().out
    assert "sam_encoder" in out and "llm" in out and "answer: [SEG]." in out


def test_segment_errors_are_specific(tiny_bundle, tmp_path, capsys):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "f.png")
    assert main(["segment", "--model", str(tmp_path / "missing"), "--image", str(tmp_path / "f.png"),
                 "--instruction", "x", "--out", str(tmp_path / "m.png")]) == 2
    assert "model path does not exist" in capsys.readouterr().err
    assert main(["segment", "--model", str(tiny_bundle), "--image", str(tmp_path / "nope.jpg"),
                 "--instruction", "x", "--out", str(tmp_path / "m.png")]) == 2
    assert "cannot read image" in capsys.readouterr().err
    assert main(["segment", "--model", str(tiny_bundle), "--image", str(tmp_path / "f.png"),
                 "--instruction", "   ", "--out", str(tmp_path / "m.png")]) == 2
    assert "instruction is empty" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()
