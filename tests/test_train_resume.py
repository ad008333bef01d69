"""Real `minelisa train` runs through DeepSpeed ZeRO-2 on CPU, killed and resumed: with
SIGKILL at a random moment (same final step count, the schedule continues where it
stopped, the loss keeps falling), and at named points inside a checkpoint write
(MINELISA_TEST_CRASH_AT): the first save, and the re-save of a step that already has
a checkpoint."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import FakeEngine, subprocess_env, tiny_demo_bundle

from minelisa_training.training.checkpointing import CRASH_ENV, CRASH_STATUS, CheckpointManager
from minelisa_training.training.metrics_log import read_metrics

MAX_STEPS = 60


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "minelisa_training.cli", *args]


def _latest_step(run: Path) -> int | None:
    try:
        name = (run / "checkpoints" / "latest").read_text().strip()
    except FileNotFoundError:
        return None
    return int(name.removeprefix("step").split("-")[0])  # step00000120 or step00000120-1


def test_kill_and_resume(synth_data, tmp_path) -> None:
    root, _ = synth_data
    bundle = tiny_demo_bundle(tmp_path / "model")
    run = tmp_path / "run"
    args = _cli(
        "train",
        "--config",
        "tiny_cpu",
        "--out",
        str(run),
        f"model.path={bundle}",
        f"data.root={root}",
        f"train.max_steps={MAX_STEPS}",
        "train.epochs=100",
        "runtime.save_every_steps=5",
        "runtime.log_every=1",
        "runtime.progress=false",
        "data.max_val_samples=4",
        "optim.warmup_steps=5",
    )
    proc = subprocess.Popen(
        args, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 240
    while time.time() < deadline and (_latest_step(run) or 0) < 15 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(
        signal.SIGKILL
    )  # no chance to clean up: the checkpoint files must be safe on their own
    output = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL, output[-3000:]
    killed_at = _latest_step(run)
    assert killed_at is not None and 15 <= killed_at < MAX_STEPS, output[-3000:]
    assert not (run / "summary.json").exists()

    resumed = subprocess.run(
        _cli("train", "--resume", "--out", str(run)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    match = re.search(r"resumed from \S+ at step (\d+)", resumed.stdout)
    assert match and int(match.group(1)) == killed_at

    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == MAX_STEPS
    records = read_metrics(run, "train")
    steps = [r["step"] for r in records]
    assert steps == list(range(1, MAX_STEPS + 1))  # every step logged once: no gap, no repeat

    # The scheduler continued: after warm-up the lr falls by the same amount every step,
    # across the resume too (a fresh scheduler would restart the warm-up from ~0).
    lrs = {r["step"]: r["lr"] for r in records}
    k = killed_at
    assert lrs[k + 1] < lrs[k]
    assert lrs[k + 1] - lrs[k] == pytest.approx(lrs[k] - lrs[k - 1], rel=1e-6)

    losses = [r["total"] for r in records]
    before_kill = losses[:10]
    after_resume = losses[k : k + 10]
    end = losses[-10:]
    assert sum(after_resume) / 10 < sum(before_kill) / 10
    assert sum(end) / 10 < sum(before_kill) / 10

    # The resumed run's weights export through the CLI.
    out = subprocess.run(
        _cli("export", "--run", str(run), "--out", str(tmp_path / "bundle"), "--which", "last"),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "bundle" / "model.safetensors").is_file()


def test_new_run_refuses_an_existing_run_folder_and_resume_needs_one(tmp_path) -> None:
    run = tmp_path / "run"
    CheckpointManager(run).save(FakeEngine(), {"step": 3, "epoch": 0, "batch_in_epoch": 0})
    bad = subprocess.run(
        _cli(
            "train",
            "--config",
            "tiny_cpu",
            "--out",
            str(run),
            "model.path=/x",
            f"data.root={tmp_path}",
        ),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "already holds a run" in bad.stderr
    empty = subprocess.run(
        _cli("train", "--resume", "--out", str(tmp_path / "none")),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert empty.returncode == 2 and "not a training run" in empty.stderr


def _train(*args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    env = subprocess_env()
    if crash is not None:
        env[CRASH_ENV] = crash
    return subprocess.run(
        _cli("train", *args), env=env, capture_output=True, text=True, timeout=400
    )


def test_kills_inside_checkpoint_writes(synth_data, tmp_path) -> None:
    root, _ = synth_data
    bundle = tiny_demo_bundle(tmp_path / "model")
    run = tmp_path / "run"
    checkpoints = CheckpointManager(run)
    new_run = (
        *("--config", "tiny_cpu", "--out", str(run), f"model.path={bundle}", f"data.root={root}"),
        *("train.max_steps=6", "train.epochs=100", "runtime.save_every_steps=3"),
        *("runtime.log_every=1", "runtime.progress=false", "data.max_val_samples=2"),
    )
    # 1. Killed while writing the first checkpoint: nothing to resume, and --resume says
    #    to run the same command again, which starts the run over in the same folder.
    first = _train(*new_run, crash="before-manifest@step00000003")
    assert first.returncode == CRASH_STATUS, first.stdout[-3000:] + first.stderr[-3000:]
    assert checkpoints.latest() is None
    refused = _train("--resume", "--out", str(run))
    assert refused.returncode == 2 and "without --resume" in refused.stderr, refused.stderr
    # 2. Started over, then killed in the end-of-run save of step 6, a re-save: the
    #    periodic save wrote step 6, validation ran, and the final save of step 6 dies
    #    after writing its folder, before `latest` moves.
    second = _train(*new_run, crash="before-latest@step00000006-1")
    assert second.returncode == CRASH_STATUS, second.stdout[-3000:] + second.stderr[-3000:]
    assert "starting it over" in second.stdout
    found = checkpoints.find()
    assert found.path.name == "step00000006" and found.note is None  # the first save survived
    assert not (run / "summary.json").exists()
    # 3. --resume continues from it and runs the final validation again; every step and
    #    that validation are in the log once.
    third = _train("--resume", "--out", str(run))
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert re.search(r"resumed from \S+step00000006 at step 6", third.stdout), third.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["last_validation"]["step"] == 6
    records = read_metrics(run)
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if r["kind"] == "val"] == [6]
    assert [p.name for p in checkpoints.checkpoints()] == ["step00000003", "step00000006-2"]
    # 4. --resume of the finished run changes nothing and says so.
    before = (run / "summary.json").read_bytes()
    fourth = _train("--resume", "--out", str(run))
    assert fourth.returncode == 0 and "is finished" in fourth.stdout, fourth.stdout
    assert (run / "summary.json").read_bytes() == before
