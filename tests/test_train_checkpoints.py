"""Checkpoints (#12) with a stand-in engine: a kill at any point of a save (a re-save of
the same step included) leaves ``latest`` naming a complete checkpoint; completeness is
the manifest's; resume falls back to the newest complete checkpoint; old ones are pruned
only after ``latest`` moved; and what the run folder allows after a stop.
(tests/test_train_resume.py kills real training processes inside a save.)"""

from __future__ import annotations

import json

import pytest
from train_helpers import FakeEngine

from minelisa_training.errors import InvalidInputError
from minelisa_training.training import checkpointing
from minelisa_training.training.checkpointing import (
    LATEST_FILE,
    MANIFEST_FILE,
    STATE_FILE,
    TRAINABLE_FILE,
    CheckpointManager,
    incomplete_reason,
)
from minelisa_training.training.metrics_log import MetricsLog, read_metrics
from minelisa_training.training.run_folder import (
    find_resume_point,
    interruption_message,
    prepare_new_run,
)


class Killed(BaseException):
    """Stands in for the process dying at a crash point."""


def state(step: int, epoch: int = 0) -> dict:
    return {"step": step, "epoch": epoch, "batch_in_epoch": 0}


def saved_state(path) -> dict:
    return json.loads((path / STATE_FILE).read_text())


def names(manager: CheckpointManager) -> list[str]:
    return [p.name for p in manager.checkpoints()]


@pytest.mark.parametrize("point", ["before-manifest", "before-latest", "before-prune"])
def test_a_kill_while_re_saving_a_step_keeps_a_complete_latest(tmp_path, monkeypatch, point):
    engine, run = FakeEngine(), tmp_path / "run"
    manager = CheckpointManager(run, keep=2)
    manager.save(engine, state(3))
    first = manager.save(engine, state(6))  # e.g. the periodic save at max_steps

    def crash(at: str, name: str) -> None:
        if at == point and name == "step00000006-1":
            raise Killed

    monkeypatch.setattr(checkpointing, "crash_point", crash)
    with pytest.raises(Killed):  # the end-of-run save of the same step, after validation
        manager.save(engine, state(6, epoch=1))

    after = CheckpointManager(run, keep=2).find()  # what the next process sees
    assert after.note is None and incomplete_reason(after.path) is None
    if point == "before-prune":  # latest moved: the new save counts, the old is still there
        assert after.path.name == "step00000006-1" and saved_state(after.path)["epoch"] == 1
        assert "step00000006" in names(manager)
    else:  # latest never moved: the first save of step 6 is intact
        assert after.path == first and saved_state(first)["epoch"] == 0
    # The next save cleans up: the newest save of each step, `keep` steps, nothing newer.
    monkeypatch.setattr(checkpointing, "crash_point", lambda *_: None)
    manager.save(engine, state(9))
    remaining = names(manager)
    assert remaining[-1] == "step00000009" and len(remaining) == 2
    assert remaining[0] in ("step00000006", "step00000006-1")
    assert not list(manager.root.glob(".tmp-*"))


def test_completeness_is_the_manifest_and_resume_falls_back(tmp_path) -> None:
    engine, manager = FakeEngine(), CheckpointManager(tmp_path / "run", keep=3)
    three, six = manager.save(engine, state(3)), manager.save(engine, state(6))
    manifest = json.loads((six / MANIFEST_FILE).read_text())["files"]
    assert {STATE_FILE, TRAINABLE_FILE} <= set(manifest) and len(manifest) == 3
    assert manager.find().path == six and manager.find().note is None

    trainable = six / TRAINABLE_FILE  # a file cut short (disk full, a copy interrupted)
    trainable.write_bytes(trainable.read_bytes()[:-10])
    found = manager.find()
    assert found.path == three
    assert "step00000006, which is damaged" in found.note and "step00000003" in found.note
    assert "resuming" not in found.note  # the trainer says what it does with it
    (six / MANIFEST_FILE).unlink()  # the manifest is written last: a save that never finished
    assert "no manifest.json" in manager.find().note and manager.latest() == three

    (manager.root / LATEST_FILE).unlink()  # a kill between the first rename and `latest`
    assert manager.find().path == three and "is missing" in manager.find().note
    (three / MANIFEST_FILE).unlink()
    assert manager.find().path is None and manager.latest() is None


def test_prune_keeps_newest_steps_and_drops_superseded_and_abandoned(tmp_path) -> None:
    engine, manager = FakeEngine(), CheckpointManager(tmp_path / "run", keep=2)
    for step in (3, 6):
        manager.save(engine, state(step))
    manager.save(engine, state(6, epoch=1))  # a re-save of step 6 gets its own name
    assert names(manager) == ["step00000003", "step00000006-1"]
    manager.save(engine, state(9))
    assert names(manager) == ["step00000006-1", "step00000009"]
    # A complete checkpoint `latest` never named (a kill before `latest` moved), then a
    # resumed run from step 9 saving step 10: the abandoned step 12 goes.
    abandoned = manager.root / "step00000012"
    checkpointing.shutil.copytree(manager.root / "step00000009", abandoned)
    assert manager.find().path.name == "step00000009"
    manager.save(engine, state(10))
    assert names(manager) == ["step00000009", "step00000010"]


def test_metrics_log_resume_drops_newer_records_atomically(tmp_path) -> None:
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in range(1, 7):
        log.write("train", step, {"total": 1.0 / step})
        if step == 5:
            log.write("val", 5, {"giou": 0.3})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "st')  # a line cut short by a kill
    MetricsLog(tmp_path, resume_step=5, tensorboard=False, keep_validation=True)
    assert [(r["kind"], r["step"]) for r in read_metrics(tmp_path)][-2:] == [
        ("train", 5),
        ("val", 5),
    ]
    # A checkpoint written before the validation of its step: the validation runs again.
    MetricsLog(tmp_path, resume_step=5, tensorboard=False, keep_validation=False)
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5] and {r["kind"] for r in records} == {
        "train"
    }
    assert not list(tmp_path.glob(".metrics.jsonl.tmp*"))


def test_run_folder_rules_after_a_stop(tmp_path) -> None:
    engine, run = FakeEngine(), tmp_path / "run"
    manager = CheckpointManager(run)
    said: list[str] = []
    # Killed during the first checkpoint: nothing to resume, the same command starts over.
    (manager.root / ".tmp-step00000003").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match="no complete checkpoint.*without --resume"):
        find_resume_point(run, manager)
    message = interruption_message(run, 2, manager)
    assert "nothing was saved" in message and "minelisa train --resume" not in message
    prepare_new_run(run, manager, said.append)
    assert "starting it over" in said[0] and not manager.root.exists()
    # With a complete checkpoint: a new run is refused, --resume is the way on.
    manager.save(engine, state(3))
    with pytest.raises(InvalidInputError, match=r"already holds a run \(checkpoint step00000003\)"):
        prepare_new_run(run, manager, said.append)
    assert find_resume_point(run, manager).path.name == "step00000003"
    message = interruption_message(run, 4, manager)
    assert "step00000003 (step 3)" in message and "minelisa train --resume --out" in message


def test_checkpoints_without_a_manifest_are_never_deleted(tmp_path) -> None:
    """Step folders none of which is complete (damaged, or from before manifests): a new
    run and --resume both refuse and say where to look; nothing is removed."""
    run = tmp_path / "run"
    manager = CheckpointManager(run)
    manager.save(FakeEngine(), state(3))
    (manager.root / "step00000003" / MANIFEST_FILE).unlink()
    for attempt in (
        lambda: prepare_new_run(run, manager, print),
        lambda: find_resume_point(run, manager),
    ):
        with pytest.raises(InvalidInputError, match="none is complete.*no manifest.json"):
            attempt()
    assert (manager.root / "step00000003" / STATE_FILE).is_file()
