"""benchmarks/bench_following.py's core on a 3-frame sequence with the tiny random model."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from minelisa_training import museg, synth
from minelisa_training.engine import SegmentationEngine

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_following.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_following", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    root = tmp_path_factory.mktemp("follow") / "MUSeg"
    cfg = synth.SynthConfig(images=0, sequences=2, frames=3, width=96, height=80, mines=1)
    synth.write_dataset(root, cfg, progress=False)
    return list(museg.read_sequences(root).values())


def test_table_structure_and_same_frame_iou_is_one(bench, sequences, tiny):
    model, tokenizer = tiny
    engine = SegmentationEngine(model, tokenizer)
    table = bench.measure_following(engine, sequences)
    assert table.fps == 15.0 and table.sequences == 2 and table.frames == 6
    assert [r.k for r in table.rows] == [0, 1, 2]
    assert [r.seconds for r in table.rows] == pytest.approx([0.0, 1 / 15, 2 / 15])
    first = table.rows[0]
    # k = 0: the refresh frame itself, decoded with its own prompts.
    assert first.mean_iou == 1.0 and first.p10_iou == 1.0 and first.change_max < 1e-6
    assert first.fresh_gt_iou == pytest.approx(first.reused_gt_iou)
    counts = [r.n for r in table.rows]
    assert counts[0] > counts[1] > counts[2] > 0  # fewer refresh frames have k later frames
    assert all(0.0 <= r.mean_iou <= 1.0 and r.change_mean >= 0.0 for r in table.rows)
    assert len(table.cross_scene) == 2 * 3 * 3  # ordered pairs of frames of two sequences
    assert sorted(k for k, _ in table.within) == [0] * 6 + [1] * 4 + [2] * 2
    assert first.prompt_drift == 0.0 and table.class_spread > 0.0
    choice = bench.choose_defaults(table)
    assert set(choice) >= {"refresh_period_s", "change_threshold", "separated"}
    assert choice["refresh_period_s"] >= 0.0 and not math.isnan(choice["change_threshold"])
    assert "IoU reused/fresh" in bench.format_table(table)


def _table(bench, fps, ious, within, cross):
    rows = [
        bench.Row(k, k / fps, 5, iou, iou, 0.5, 0.5, 0.0, 0.0, 0.0) for k, iou in enumerate(ious)
    ]
    return bench.FollowingTable(fps, rows, within, cross, 1.0, 1, len(ious))


def test_choose_defaults_reads_the_table(bench):
    within = [(0, 0.0), (1, 0.01), (2, 0.02), (3, 0.03)]
    table = _table(bench, 10.0, [1.0, 0.97, 0.92, 0.85], within, [0.1, 0.2])
    choice = bench.choose_defaults(table)
    # IoU >= 0.9 up to k = 2: prompts may be 0.2 s old, so refresh once they are 0.3 s old
    # (shorter than the 1 s that keeps 90% of following's saving at 10 Hz).
    assert choice["refresh_period_s"] == pytest.approx(0.3) and choice["frames_within_target"] == 2
    assert choice["saving_period_s"] == 1.0 and choice["iou_period_bounded_by_measurement"]
    # Reused frames (k = 1, 2) change by 0.01 and 0.02: 0.03 refreshes none of them early.
    assert choice["change_threshold"] == pytest.approx(0.03)
    assert choice["early_refresh_share"] == 0.0 and choice["other_scene_caught_share"] == 1.0
    assert choice["separated"]
    # IoU never below 0.9: the period is the one that keeps 90% of the saving at 15 Hz.
    within = [(k, 0.01 * k) for k in range(31)]
    table = _table(bench, 15.0, [0.95] * 31, within, [0.05, 0.5])
    choice = bench.choose_defaults(table)
    assert choice["refresh_period_s"] == 1.0 and not choice["iou_period_bounded_by_measurement"]
    # k = 1..14 are reused, changes 0.01-0.14: 0.15 is the first value that refreshes none.
    assert choice["change_threshold"] == pytest.approx(0.15)
    assert choice["other_scene_caught_share"] == 0.5 and not choice["separated"]
