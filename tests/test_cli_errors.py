"""The bad-input catalogue: every user error is a message and an exit status, never a
traceback, and existing outputs stay as they were."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
from PIL import Image

from minelisa_training.cli import main
from minelisa_training.testing import write_lisa_checkpoint


@pytest.fixture(scope="module")
def truncated_lisa(tiny, tmp_path_factory):
    """A LISA folder whose second safetensors shard is cut in half."""
    model, tok = tiny
    path = write_lisa_checkpoint(
        tmp_path_factory.mktemp("lisa") / "LISA", model, tok, shards=2, safetensors=True
    )
    shard = sorted(path.glob("*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return path


def _cases(tmp, bundle, data, lisa):
    image = tmp / "frame.png"
    seg = ["segment", "--model", str(bundle), "--image", str(image), "--instruction", "the cable"]
    ev = ["eval", "--model", str(bundle), "--data", str(data), "--limit-images", "1"]
    return [
        (
            "segment: model folder missing",
            [*seg[:2], str(tmp / "nope"), *seg[3:], "--out", "m.png"],
            "model path does not exist",
        ),
        (
            "segment: truncated safetensors shard",
            [*seg[:2], str(lisa), *seg[3:], "--out", "m.png"],
            "cannot read weights",
        ),
        ("segment: unknown dtype", [*seg, "--out", "m.png", "--dtype", "fp8"], "invalid choice"),
        (
            "segment: chat cap 0",
            [*seg, "--out", "m.png", "--mode", "chat", "--max-new-tokens", "0"],
            "max_new_tokens must be within",
        ),
        (
            "segment: chat cap negative",
            [*seg, "--out", "m.png", "--max-new-tokens", "-5"],
            "max_new_tokens must be within",
        ),
        ("segment: out is a folder", [*seg, "--out", "existing_dir"], "is a directory"),
        (
            "eval: data folder missing",
            ["eval", "--model", str(bundle), "--data", str(tmp / "none"), "--out", "r.json"],
            "does not exist",
        ),
        ("eval: zero images", [*ev[:-1], "0", "--out", "r.json"], "must be >= 1"),
        ("eval: out is a folder", [*ev, "--out", "existing_dir"], "is a directory"),
        ("synth: bad size", ["synth", "--out", "synth_out", "--size", "12x"], "size"),
        (
            "museg check: classes file missing",
            ["museg", "check", str(data), "--classes", str(tmp / "c.txt")],
            "classes file",
        ),
    ]


def test_every_bad_input_is_a_message_and_keeps_outputs(
    tiny_bundle, synth_data, truncated_lisa, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "frame.png")
    (tmp_path / "existing_dir").mkdir()
    for name in ("m.png", "r.json"):
        (tmp_path / name).write_text("old")
    for label, argv, message in _cases(tmp_path, tiny_bundle, synth_data[0], truncated_lisa):
        with pytest.raises(SystemExit) if message == "invalid choice" else nullcontext():
            status = main(argv)
            assert status == 2, (label, status)
        err = capsys.readouterr().err
        assert message in err, (label, err)
        assert "Traceback" not in err, label
        assert (tmp_path / "m.png").read_text() == "old", label
        assert (tmp_path / "r.json").read_text() == "old", label
        assert not (tmp_path / "synth_out").exists(), label
