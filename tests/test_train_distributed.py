"""`minelisa train` under torchrun with 2 CPU processes (gloo): an odd sample count and an
unreadable image on one rank keep both ranks in lockstep; a run stopped mid-epoch resumes
with 2 processes and is refused, with the way out, with 1."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

from train_helpers import subprocess_env, tiny_demo_bundle

from minelisa_training.training.checkpointing import CRASH_ENV
from minelisa_training.training.config import load_config
from minelisa_training.training.dataset import load_split_samples
from minelisa_training.training.metrics_log import read_metrics
from minelisa_training.training.schedule import epoch_batches

TIMEOUT = 420  # never hang the suite: a stuck collective ends here


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train(args: list[str], processes: int, crash: str | None = None):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    launcher += ["--master_addr", "127.0.0.1", "--master_port", str(_port()), "-m"]
    cmd = [*(launcher if processes > 1 else [sys.executable, "-m"]), "minelisa_training.cli"]
    env = {**subprocess_env(), "OMP_NUM_THREADS": "1"}
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.run(
        ["timeout", "-k", "10", str(TIMEOUT), *cmd, "train", *args],
        env=env,
        capture_output=True,
        text=True,
    )


def _spoil_an_image_of_rank_1(overrides: list[str]) -> tuple[str, int]:
    """Truncates the image of rank 1's second micro-batch of epoch 0 (a JPEG that no
    longer decodes); returns its path and how often the resumed run below (epoch 0 from
    batch 3, then epoch 1, both ranks) meets it."""
    config = load_config("tiny_cpu", overrides)
    train = load_split_samples(config.data, progress=False).train
    seed, n = config.train.seed, len(train)
    spoiled = epoch_batches(n, 1, seed, 0, rank=1, world=2)[1][0]
    path = Path(train[spoiled].record.image_path)
    path.write_bytes(path.read_bytes()[:200])
    met = 0
    for rank in (0, 1):
        resumed = epoch_batches(n, 1, seed, 0, rank, 2)[3:] + epoch_batches(n, 1, seed, 1, rank, 2)
        met += sum(batch.count(spoiled) for batch in resumed)
    return str(path), met


def test_two_processes_train_resume_and_refuse_one(synth_copy, tmp_path) -> None:
    bundle = tiny_demo_bundle(tmp_path / "model")
    run = tmp_path / "run"
    data = [f"data.root={synth_copy}", "data.max_train_samples=7", "data.max_val_samples=2"]
    spoiled, met_after_resume = _spoil_an_image_of_rank_1(data)
    args = ["--config", "tiny_cpu", "--out", str(run), f"model.path={bundle}", *data]
    args += ["train.epochs=2", "runtime.save_every_steps=3", "runtime.log_every=1"]
    args += ["runtime.progress=false", "optim.warmup_steps=1"]
    # 7 samples on 2 ranks: 4 steps per epoch on each (the last share padded). Stopped
    # while the step-4 checkpoint is written: latest is step 3, in the middle of epoch 0.
    first = _train(args, 2, crash="before-latest@step00000004")
    log = first.stdout[-3000:] + first.stderr[-3000:]
    assert first.returncode not in (0, 124), log  # 124: timed out, a hang
    assert "4 steps per epoch, 8 steps in all" in first.stdout, log
    assert (run / "checkpoints" / "latest").read_text().strip() == "step00000003", log

    one = _train(["--resume", "--out", str(run)], 1)
    assert one.returncode == 1, one.stdout[-2000:] + one.stderr[-2000:]
    assert "Resume with 2 process(es)" in one.stderr and "Traceback" not in one.stderr

    resumed = _train(["--resume", "--out", str(run), "runtime.progress=false"], 2)
    log = resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert resumed.returncode == 0, log
    assert re.search(r"resumed from \S+ at step 3 \(epoch 0, batch 3\)", resumed.stdout), log
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["epochs_completed"] == 2
    # Each rank skips what it met; the summary (rank 0's) counts both ranks' skips.
    assert met_after_resume >= 1 and summary["skipped_files"] == met_after_resume, summary
    steps = [r["step"] for r in read_metrics(run, "train")]
    assert steps == list(range(1, 9))  # every step logged once, across the stop
    assert [r["step"] for r in read_metrics(run, "val")] == [4, 8]
    assert spoiled  # the unreadable image was on rank 1's path: both ranks still finished
