"""Synthetic camera sequences: deterministic, ordered, readable, moving; stills untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minelisa_training import museg, synth
from minelisa_training.cli import main
from minelisa_training.errors import DataError, InvalidInputError

SIZE = {"width": 96, "height": 80}


def _in_sequence(path: str) -> bool:
    """A file of a sequence frame: its id's roadway field is 02 (still images: 01)."""
    return "-Mine/" in path and path.split("/")[-1].split("-")[1] == "02"


def _files(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def seq_data(tmp_path_factory):
    """(root, summary) of 3 sequences x 6 frames (160x138) and no still image."""
    root = tmp_path_factory.mktemp("sequences") / "MUSeg"
    cfg = synth.SynthConfig(images=0, sequences=3, frames=6, width=160, height=138, mines=2)
    return root, synth.write_dataset(root, cfg, progress=False)


def test_same_seed_same_bytes_and_stills_unchanged(tmp_path):
    cfg = synth.SynthConfig(images=4, seed=5, mines=2, sequences=2, frames=3, **SIZE)
    synth.write_dataset(tmp_path / "a", cfg, progress=False)
    synth.write_dataset(tmp_path / "b", cfg, progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    # 5 files per frame or image, the split zip, the intrinsics, the sequence manifest
    assert len(a) == (4 + 2 * 3) * 5 + 3 and a == b
    other = synth.SynthConfig(images=4, seed=6, mines=2, sequences=2, frames=3, **SIZE)
    synth.write_dataset(tmp_path / "c", other, progress=False)
    c = _files(tmp_path / "c")
    jpgs = lambda f: [v for k, v in sorted(f.items()) if k.endswith(".jpg") and _in_sequence(k)]  # noqa: E731
    assert len(jpgs(a)) == 6 and all(x != y for x, y in zip(jpgs(a), jpgs(c)))
    # The still images are the bytes a stills-only dataset of the same seed has.
    stills = synth.SynthConfig(images=4, seed=5, mines=2, **SIZE)
    synth.write_dataset(tmp_path / "s", stills, progress=False)
    s = _files(tmp_path / "s")
    assert {k: v for k, v in s.items() if "-Mine/" in k} == {
        k: v for k, v in a.items() if "-Mine/" in k and not _in_sequence(k)
    }
    assert "Experiment/sequences.json" not in s


def test_manifest_lists_ordered_frames_the_reader_finds(seq_data):
    root, summary = seq_data
    sequences = museg.read_sequences(root)
    assert list(sequences) == list(summary["sequences"]) == ["01-02-01", "02-02-01", "01-02-02"]
    scanned = museg.scan(root)
    for key, seq in sequences.items():
        ids = [r.image_id for r in seq.records]
        assert ids == summary["sequences"][key] and len(ids) == 6
        assert [int(i.split("-")[3]) for i in ids] == list(range(1, 7))  # frame field orders
        assert {museg.capture_group(i) for i in ids} == {key}
        assert seq.fps == 15.0 and seq.timestamps_s == pytest.approx(
            [k / 15 for k in range(6)], abs=1e-6
        )
        stamps = [i.split("-")[4] for i in ids]
        assert stamps == sorted(stamps)
        assert all(scanned[i].image_path == r.image_path for i, r in zip(ids, seq.records))
        assert all(r.label_path.is_file() and r.depth_path.is_file() for r in seq.records)
    split = museg.read_official_split(root)
    for key in sequences:  # a sequence is one capture group: one side of the split
        sides = {name for name, ids in split.items() for i in ids if i.startswith(key)}
        assert len(sides) == 1


def test_camera_moves_and_frames_share_their_classes(seq_data):
    root, _ = seq_data
    for seq in museg.read_sequences(root).values():
        images = [museg.load_image(r.image_path).astype(np.float32) for r in seq.records]
        labels = [museg.load_label(r.label_path) for r in seq.records]
        for k in range(1, len(images)):
            assert np.abs(images[k] - images[k - 1]).mean() > 2.0  # not a still
            assert not np.array_equal(labels[k], labels[k - 1])
            before, after = set(np.unique(labels[k - 1])), set(np.unique(labels[k]))
            assert len(before & after) >= 0.8 * len(before | after)
            assert (labels[k] == labels[k - 1]).mean() > 0.7
        person = museg.ORDER_A.id_of("person")
        assert (labels[0] == person).any()  # every sequence has its walking person
        for r, label in zip(seq.records, labels):
            shapes = json.loads(r.polygons_path.read_text())["shapes"]
            raster = museg.rasterize_shapes(shapes, *label.shape, museg.ORDER_A)
            np.testing.assert_array_equal(raster, label, err_msg=r.image_id)


def test_camera_path_drives_forward():
    path = synth.CameraPath.draw(np.random.default_rng(0))
    poses = [path.pose(t, 900.0) for t in (0.0, 0.5, 1.0)]
    assert poses[0].offset_m == (0.0, 0.0, 0.0) and poses[0].shift_px == (0.0, 0.0)
    forward = [p.offset_m[2] for p in poses]
    assert forward[0] < forward[1] < forward[2] and 0.4 <= forward[2] <= 1.0


def test_reader_without_and_with_a_broken_manifest(tmp_path):
    root = tmp_path / "MUSeg"
    synth.write_dataset(root, synth.SynthConfig(images=2, mines=1, **SIZE), progress=False)
    assert museg.read_sequences(root) == {}
    layout = museg.Layout(root)
    layout.sequences_path.write_text('{"fps": 15, "sequences": {"01-02-01": {}}}')
    with pytest.raises(DataError, match="sequences.json"):
        museg.read_sequences(root)
    bad = {"01-02-01": {"mine": "01", "frames": ["01-02-01-0001"], "timestamps_s": [0, 1]}}
    layout.sequences_path.write_text(json.dumps({"fps": 15, "sequences": bad}))
    with pytest.raises(DataError, match="pair up"):
        museg.read_sequences(root)


def test_config_and_cli_options(tmp_path, capsys):
    with pytest.raises(InvalidInputError, match="frames"):
        synth.SynthConfig(images=0, sequences=1, frames=1)
    with pytest.raises(InvalidInputError, match="images must be >= 1"):
        synth.SynthConfig(images=0)
    out = tmp_path / "cli"
    argv = ["synth", "--out", str(out), "--sequences", "1", "--frames", "2", "--size", "64x48"]
    assert main([*argv, "--fps", "10", "--mines", "1"]) == 0
    assert "1 sequence(s) of 2 frames at 10 Hz" in capsys.readouterr().out
    (seq,) = museg.read_sequences(out).values()
    assert seq.fps == 10.0 and len(seq.records) == 2
    assert len(museg.scan(out)) == 2  # --sequences alone: no still images
    assert main(["synth", "--out", str(tmp_path / "x"), "--sequences", "1", "--frames", "1"]) == 2
