"""LISA-7B at full size on the path users run: load, segment, train, within the machine's memory.

1. Writes, streaming one tensor at a time, a checkpoint in the exact LISA-7B-v1 layout
   with random weights (two ``.bin`` shards + index, bf16 LLM and projector, fp32 SAM
   ViT-H and [SEG] head, ``inv_freq`` keys, LISA's config.json and added tokens) and a
   CLIP ViT-L/14-shaped directory (vision and text towers). About 16 GB on disk.
2. Measures, each in a fresh process, with peak anonymous memory (``RssAnon`` sampled
   every 20 ms; memory-mapped file pages of the shards are not anonymous):
   - ``load``: `SegmentationEngine.from_pretrained` in bf16 on the CPU: time, peak
     anonymous memory, bytes of the loaded tensors (target: peak <= 1.15x those bytes);
   - ``segment``: one fast-mode segmentation on the CPU in bf16 (time; slow on 2 cores);
   - ``train``: `minelisa train --config museg_lisa7b` on a small synthetic dataset up to
     its first optimizer step (``train.max_steps=1``) on the CPU in bf16: it trains, or it
     stops with a clear message before it would run out of memory; never an OOM kill.
3. Prints a table (and ``--out`` writes it).

    python benchmarks/bench_scale.py --dir /scratch/lisa7b [--skip-write] [--steps load,segment,train]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GIB = 1024**3


def rss_anon(pid: int) -> int:
    """Anonymous resident bytes of a process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakSampler:
    """Samples RssAnon of a process every 20 ms on a thread; `.peak` in bytes."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon(self.pid))
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def write_checkpoint(root: Path) -> tuple[Path, Path]:
    """The LISA-7B-v1-layout directory and the CLIP directory, written streaming."""
    from minelisa_training.testing import (
        lisa_7b_random,
        write_clip_dir,
        write_lisa_checkpoint,
        write_tiny_tokenizer,
    )

    tokenizer = write_tiny_tokenizer(root / "tokenizer")
    model = lisa_7b_random(tokenizer, device="meta")  # structure only, no memory
    start = time.perf_counter()
    lisa = write_lisa_checkpoint(root / "LISA-7B-v1", model, tokenizer, shards=2)
    clip = write_clip_dir(root / "clip-vit-large-patch14", model)
    size = sum(f.stat().st_size for f in lisa.iterdir()) / GIB
    print(f"wrote {lisa} ({size:.1f} GiB) and {clip} in {time.perf_counter() - start:.0f} s")
    return lisa, clip


def measure_in_child(step: str, lisa: Path, clip: Path) -> dict:
    """Run `step` in this script as a fresh process; its JSON result plus peak memory."""
    cmd = [sys.executable, __file__, "--child", step, "--lisa", str(lisa), "--clip", str(clip)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = PeakSampler(proc.pid)
    out, err = proc.communicate()
    peak = sampler.stop()
    result = {"step": step, "exit": proc.returncode, "peak_anon_gib": peak / GIB}
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    result.update(json.loads(lines[-1]) if lines else {"error": err.strip()[-600:]})
    if "train_peak_anon_gib" in result:  # the trainer process's own peak
        result["peak_anon_gib"] = result["train_peak_anon_gib"]
        result["exit"] = result["train_exit"]
    return result


def child_load_or_segment(step: str, lisa: Path, clip: Path) -> dict:
    import numpy as np

    from minelisa_training.checkpoint.memory import module_bytes
    from minelisa_training.engine import SegmentationEngine

    start = time.perf_counter()
    engine = SegmentationEngine.from_pretrained(lisa, vision_tower=clip, device="cpu", dtype="bf16")
    result = {"load_s": time.perf_counter() - start, "tensor_gib": module_bytes(engine.model) / GIB}
    if step == "segment":
        image = np.random.default_rng(0).integers(0, 255, (932, 1082, 3), dtype=np.uint8)
        start = time.perf_counter()
        mask = engine.segment(image, "segment the exposed cable", timed=True)
        result.update(segment_s=time.perf_counter() - start, timings=mask.timings)
    return result


def child_train(lisa: Path, clip: Path) -> dict:
    from minelisa_training.synth import SynthConfig, write_dataset

    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    write_dataset(
        work / "data", SynthConfig(images=12, seed=0, width=216, height=186), progress=False
    )
    cmd = [
        sys.executable,
        "-m",
        "minelisa_training.cli",
        "train",
        "--config",
        "museg_lisa7b",
        "--out",
        str(work / "run"),
        f"model.path={lisa}",
        f"model.vision_tower={clip}",
        f"data.root={work / 'data'}",
        "runtime.device=cpu",
        "runtime.precision=bf16",
        "train.max_steps=1",
        "runtime.progress=false",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = PeakSampler(proc.pid)  # the trainer is this child's child: sample it here
    out, err = proc.communicate()
    peak = sampler.stop()
    steps = next((ln for ln in out.splitlines() if "steps in all" in ln), "")
    tail = (err.strip().splitlines() or [""])[-1] if proc.returncode else steps.strip()
    return {
        "train_exit": proc.returncode,
        "train_s": time.perf_counter() - start,
        "train_peak_anon_gib": peak / GIB,
        "message": tail,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| step | exit | time (s) | peak anon (GiB) | tensors (GiB) | ratio | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r.get("segment_s") or r.get("train_s") or r.get("load_s") or float("nan")
        tensors = r.get("tensor_gib", float("nan"))
        ratio = r["peak_anon_gib"] / tensors if tensors == tensors else float("nan")
        note = r.get("message") or r.get("error") or ""
        lines.append(
            f"| {r['step']} | {r['exit']} | {t:.1f} | {r['peak_anon_gib']:.2f} | "
            f"{tensors:.2f} | {ratio:.2f} | {note[:120]} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "minelisa-7b")
    parser.add_argument("--skip-write", action="store_true", help="reuse the files in --dir")
    parser.add_argument("--steps", default="load,segment,train")
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--lisa", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = child_train if args.child == "train" else None
        result = (
            run(args.lisa, args.clip)
            if run
            else child_load_or_segment(args.child, args.lisa, args.clip)
        )
        print(json.dumps(result))
        return 0
    if args.skip_write:
        lisa, clip = args.dir / "LISA-7B-v1", args.dir / "clip-vit-large-patch14"
    else:
        lisa, clip = write_checkpoint(args.dir)
    rows = [measure_in_child(step, lisa, clip) for step in args.steps.split(",")]
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
