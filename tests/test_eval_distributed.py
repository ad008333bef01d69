"""`minelisa eval` under torchrun: two processes give the one-process report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _eval(args: list[str], processes: int, out) -> dict:
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_port()),
        "-m",
    ]
    cmd = [
        *(launcher if processes > 1 else [sys.executable, "-m"]),
        "minelisa_training.cli",
        "eval",
        *args,
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_processes_give_the_one_process_numbers(tiny_bundle, synth_data, tmp_path):
    root, _ = synth_data
    args = [
        "--model",
        str(tiny_bundle),
        "--data",
        str(root),
        "--split",
        "val",
        "--limit-images",
        "5",
        "--device",
        "cpu",
    ]
    one = _eval(args, 1, tmp_path / "one.json")
    two = _eval(args, 2, tmp_path / "two.json")
    assert two["timing"]["processes"] == 2 and one["timing"]["processes"] == 1
    assert two["n_samples"] == one["n_samples"] > 0
    assert two["giou"] == one["giou"] and two["ciou"] == one["ciou"]
    assert [r["key"] for r in two["samples"]] == [r["key"] for r in one["samples"]]
    assert two["timing"]["n_images"] == one["timing"]["n_images"]
