"""Following (issue #13): a reused `[SEG]` prompt against a fresh LLM run, k frames later.

`Follower` runs the LLM on a refresh frame and, until the next refresh, decodes each
later frame with the refresh frame's `[SEG]` prompts (`SegmentationEngine.follow`:
only SAM's image encoder and mask decoder run). This measures what that costs in
masks and what it saves in time, on synthetic camera sequences (`minelisa synth
--sequences`: a camera driving along a roadway past a walking person and swinging
cables):

- for refresh frames s of a sequence (every ``--refresh-every`` frames from its
  first; default 15, once a second), the instructions of the classes s's label map
  shows (the paper's template, as training and evaluation), and every later frame
  j = s + k: IoU(mask from s's prompt on frame j, mask from a fresh LLM run on frame
  j), averaged over sequences, refresh frames and instructions, per k (k = 0 is the
  refresh frame itself: 1 by construction); also both masks' IoU with the ground
  truth and `scene_change(frame j, frame s)`;
- `scene_change` between frames of different sequences (a different scene);
- the prompt drift (how far a fresh `[SEG]` prompt on frame j is from frame s's, for
  the same instruction) against the spread between two instructions' prompts;
- time per frame (wall and process CPU, default threads and one thread) of
  `Follower.step` refreshing on every frame (the full model) and following on every
  frame, interleaved, on this machine.

`choose_defaults` turns the table into `Follower`'s defaults. Refresh period: the
shortest that keeps 90% of following's time saving at the sequences' frame rate
(one refresh in P * fps frames gives up 1 / (P * fps) of it: 1 s at 15 Hz), unless
the mean IoU(reused, fresh) falls below 0.9 at a younger age, which then bounds it.
Change threshold: the smallest that refreshes at most 5% of the frames a Follower
reuses within that period early; the share of other-scene frame pairs it catches
is reported with it, and a table of both shares for other thresholds. Results and
the chosen values: benchmarks/RESULTS.md ("Following: reused vs fresh prompts").

Run (the demo's trained bundle, `minelisa demo --out DIR`):
    python benchmarks/bench_following.py --model DIR/models/minelisa-demo
    python benchmarks/bench_following.py --model LISA_DIR --vision-tower CLIP_DIR --device cuda
    python benchmarks/bench_following.py --tiny     # random tiny model: structure only
Options: --data DIR (a dataset with Experiment/sequences.json; default: synthesise
--sequences 8 --frames 46 --size 432x372 --seed 1 into a temporary folder: 3 s at
15 Hz), --refresh-every N, --json FILE.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minelisa_training import museg, synth
from minelisa_training.engine import SegmentationEngine
from minelisa_training.following import Follower, scene_change
from minelisa_training.metrics import intersection_union
from minelisa_training.results import EncodedImage

TARGET_IOU = 0.9  # mean IoU(reused, fresh) a refresh period must keep
SAVING_SHARE = 0.9  # share of following's time saving the refresh period must keep
MAX_EXTRA_REFRESH = 0.05  # share of reused frames the change threshold may refresh early


@dataclass(frozen=True)
class Row:
    """Frames k after a refresh: reused-prompt masks against fresh ones."""

    k: int
    seconds: float
    n: int  # (refresh frame, instruction) pairs
    mean_iou: float  # IoU(reused, fresh), mean
    p10_iou: float  # its 10th percentile
    fresh_gt_iou: float  # mean IoU(fresh mask, ground truth)
    reused_gt_iou: float  # mean IoU(reused mask, ground truth)
    change_mean: float  # scene_change(frame, refresh frame), mean over (sequence, s)
    change_max: float
    prompt_drift: float  # mean |fresh prompt on the frame - refresh prompt| / |refresh prompt|


@dataclass(frozen=True)
class FollowingTable:
    fps: float
    rows: list[Row]
    within: list[tuple[int, float]]  # (k, scene_change) of every (refresh frame, frame)
    cross_scene: list[float]  # scene_change between frames of different sequences
    class_spread: float  # mean relative distance between two instructions' prompts, one frame
    sequences: int
    frames: int


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a - b| / |b| of two [k, 256] prompt sets (flattened)."""
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def mask_iou(a: np.ndarray, b: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """IoU of two bool masks; 1 when both are empty (the metrics' no-target rule)."""
    inter, union = intersection_union(a, b, ignore)
    return 1.0 if union == 0 else inter / union


def _instructions(
    records: Sequence[museg.ImageRecord], class_map: museg.ClassMap
) -> dict[str, list[tuple[str, int]]]:
    """Frame id -> [(instruction, class id)] for the classes its label map shows."""
    out: dict[str, list[tuple[str, int]]] = {r.image_id: [] for r in records}
    for s in museg.expand_samples(list(records), class_map, progress=False):
        out[s.image_id].append((s.instruction, s.class_id))
    return out


def sequence_pairs(
    engine: SegmentationEngine,
    seq: museg.FrameSequence,
    class_map: museg.ClassMap,
    refresh_every: int = 1,
) -> tuple[list[dict], list[tuple[int, float]], list[EncodedImage], list[float]]:
    """Per (s, j >= s, instruction): k, IoUs, prompt drift; per (s, j): (k, scene change);
    the frames' encodings; the refresh frames' prompt spreads between instructions.
    Refresh frames s = 0, refresh_every, 2 refresh_every, ..."""
    frames = [museg.load_image_and_label(r) for r in seq.records]
    encoded = [engine.encode(image) for image, _ in frames]
    asked = _instructions(seq.records, class_map)
    union = list(dict.fromkeys(t for r in seq.records for t, _ in asked[r.image_id]))
    fresh = [dict(zip(union, engine.segment_batch(e, union))) if union else {} for e in encoded]
    pairs, changes, spreads = [], [], []
    for s in range(0, len(seq.records), refresh_every):
        items = asked[seq.records[s].image_id]
        refresh = [fresh[s][text] for text, _ in items]
        spreads += [_relative(a.prompts, b.prompts) for a in refresh for b in refresh if a is not b]
        for j in range(s, len(encoded)):
            changes.append((j - s, scene_change(encoded[j], encoded[s])))
            if not items:
                continue
            label = frames[j][1]
            for (text, cid), reused in zip(items, engine.follow(encoded[j], refresh)):
                gt, ignore = museg.target_masks(label, cid, class_map)
                new = fresh[j][text]
                pairs.append(
                    {
                        "k": j - s,
                        "iou": mask_iou(reused.mask, new.mask),
                        "fresh_gt": mask_iou(new.mask, gt, ignore),
                        "reused_gt": mask_iou(reused.mask, gt, ignore),
                        "drift": _relative(new.prompts, reused.prompts),
                    }
                )
    return pairs, changes, encoded, spreads


def cross_scene_changes(encoded: list[list[EncodedImage]]) -> list[float]:
    """`scene_change` between every two frames of different sequences."""
    tokens = [
        torch.nn.functional.normalize(e.image_tokens.float()[0], dim=-1) for e in sum(encoded, [])
    ]
    owner = np.repeat(np.arange(len(encoded)), [len(e) for e in encoded])
    stacked = torch.stack(tokens)  # [N, P, H]
    sim = torch.einsum("aph,bph->ab", stacked, stacked) / stacked.shape[1]
    other = torch.from_numpy(owner[:, None] != owner[None, :])
    return (1.0 - sim[other]).tolist()


def _mean(items: list[dict], key: str) -> float:
    return statistics.fmean(p[key] for p in items) if items else math.nan


def _rows(pairs: list[dict], changes: list[tuple[int, float]], fps: float) -> list[Row]:
    rows = []
    for k in sorted({c[0] for c in changes}):
        at_k = [p for p in pairs if p["k"] == k]
        ious = [p["iou"] for p in at_k]
        ch = [c for kk, c in changes if kk == k]
        rows.append(
            Row(
                k=k,
                seconds=k / fps,
                n=len(at_k),
                mean_iou=_mean(at_k, "iou"),
                p10_iou=float(np.percentile(ious, 10)) if ious else math.nan,
                fresh_gt_iou=_mean(at_k, "fresh_gt"),
                reused_gt_iou=_mean(at_k, "reused_gt"),
                change_mean=statistics.fmean(ch),
                change_max=max(ch),
                prompt_drift=_mean(at_k, "drift"),
            )
        )
    return rows


@torch.inference_mode()
def measure_following(
    engine: SegmentationEngine,
    sequences: Sequence[museg.FrameSequence],
    class_map: museg.ClassMap = museg.ORDER_A,
    refresh_every: int = 1,
) -> FollowingTable:
    """The table of reused-vs-fresh IoU and scene change against frames since refresh,
    each ``refresh_every``-th frame of a sequence (from its first) a refresh frame."""
    if not sequences:
        raise ValueError("no sequences to measure (write some with minelisa synth --sequences)")
    pairs, changes, encoded, spreads = [], [], [], []
    for seq in sequences:
        p, c, e, spread = sequence_pairs(engine, seq, class_map, refresh_every)
        pairs += p
        changes += c
        encoded.append(e)
        spreads += spread
    fps = sequences[0].fps
    cross = cross_scene_changes(encoded) if len(encoded) > 1 else []
    return FollowingTable(
        fps=fps,
        rows=_rows(pairs, changes, fps),
        within=changes,
        cross_scene=cross,
        class_spread=statistics.fmean(spreads) if spreads else math.nan,
        sequences=len(sequences),
        frames=sum(len(s.records) for s in sequences),
    )


def _period(table: FollowingTable, target: float) -> tuple[float, dict]:
    """The refresh period: the shortest that keeps SAVING_SHARE of following's time
    saving at the sequences' frame rate (a refresh every P * fps frames gives up
    1 / (P * fps) of it), rounded up to 0.5 s, unless the mean IoU falls below
    ``target`` sooner: then the longest age before it does, rounded down to 0.1 s."""
    last_ok = 0
    for row in table.rows:
        if not row.mean_iou >= target:
            break
        last_ok = row.k
    iou_period = math.floor((last_ok + 1) / table.fps * 10 + 1e-9) / 10
    saving_period = math.ceil(1 / (1 - SAVING_SHARE) / table.fps * 2 - 1e-9) / 2
    facts = {
        "frames_within_target": last_ok,
        "iou_period_s": iou_period,
        "iou_period_bounded_by_measurement": last_ok < table.rows[-1].k,
        "saving_period_s": saving_period,
    }
    return min(iou_period, saving_period), facts


def threshold_shares(table: FollowingTable, period: float, threshold: float) -> tuple[float, float]:
    """(share of reused frames, 1 <= k < period * fps, that ``threshold`` would refresh;
    share of other-scene frame pairs it would catch)."""
    reused = [c for k, c in table.within if 1 <= k < period * table.fps - 1e-9]
    extra = statistics.fmean(c >= threshold for c in reused) if reused else 0.0
    caught = (
        statistics.fmean(c >= threshold for c in table.cross_scene)
        if table.cross_scene
        else math.nan
    )
    return extra, caught


def choose_defaults(table: FollowingTable, target: float = TARGET_IOU) -> dict:
    """Refresh period (``_period``) and change threshold from the table.

    The threshold: the smallest (0.01 steps) at which at most MAX_EXTRA_REFRESH of the
    frames a Follower would reuse within the period refresh early, so that the change
    test keeps most of following's saving; the share of other-scene frame pairs it
    catches at that value is reported (``separated``: every other-scene pair is
    above every change within the period).
    """
    period, facts = _period(table, target)
    threshold = 0.01
    while threshold < 2.0 and threshold_shares(table, period, threshold)[0] > MAX_EXTRA_REFRESH:
        threshold = round(threshold + 0.01, 2)
    extra, caught = threshold_shares(table, period, threshold)
    reused = [c for k, c in table.within if 1 <= k < period * table.fps - 1e-9]
    return {
        "refresh_period_s": period,
        **facts,
        "change_threshold": threshold,
        "early_refresh_share": extra,
        "other_scene_caught_share": caught,
        "largest_change_within_period": max(reused, default=0.0),
        "smallest_change_to_other_scene": min(table.cross_scene, default=math.nan),
        "separated": max(reused, default=0.0) < min(table.cross_scene, default=math.nan),
    }


def time_modes(
    engine: SegmentationEngine,
    images: list[np.ndarray],
    instructions: list[str],
    fps: float,
    passes: int = 2,
) -> dict:
    """Median wall and process-CPU ms per frame of `Follower.step` refreshing every frame
    (the full model) and following every frame, interleaved frame by frame over
    ``passes`` passes so that both see the same load from other work; each pass's first,
    refreshing step is not counted. CPU time is what a busy machine inflates less
    (though spinning threads count: compare with ``torch.set_num_threads(1)``)."""
    times: dict[str, list[tuple[float, float]]] = {"full": [], "follow": []}
    for _ in range(passes):
        followers = {
            "full": Follower(engine, refresh_period_s=0.0, change_threshold=2.0),
            "follow": Follower(engine, refresh_period_s=math.inf, change_threshold=2.0),
        }
        for follower in followers.values():
            follower.step(images[0], instructions, now=0.0)
        for k, image in enumerate(images[1:], start=1):
            for name, follower in followers.items():
                t, c = time.perf_counter(), time.process_time()
                follower.step(image, instructions, now=k / fps)
                times[name].append((time.perf_counter() - t, time.process_time() - c))
    med = {
        name: [1000 * statistics.median(v[i] for v in values) for i in (0, 1)]
        for name, values in times.items()
    }
    return {
        "instructions": len(instructions),
        "frames": len(times["full"]),
        "threads": torch.get_num_threads(),
        "full_ms": med["full"][0],
        "follow_ms": med["follow"][0],
        "full_cpu_ms": med["full"][1],
        "follow_cpu_ms": med["follow"][1],
        "ratio_wall": med["full"][0] / med["follow"][0],
        "ratio_cpu": med["full"][1] / med["follow"][1],
    }


def format_table(table: FollowingTable) -> str:
    """The table: one row per k, then the other-scene changes and the prompt spread."""
    lines = [
        f"{'k':>3s} {'s':>6s} {'n':>5s} {'IoU reused/fresh':>16s} {'p10':>6s} "
        f"{'fresh/GT':>8s} {'reused/GT':>9s} {'change mean':>11s} {'max':>6s} {'drift':>6s}",
        "-" * 87,
    ]
    for r in table.rows:
        lines.append(
            f"{r.k:3d} {r.seconds:6.3f} {r.n:5d} {r.mean_iou:16.3f} {r.p10_iou:6.3f} "
            f"{r.fresh_gt_iou:8.3f} {r.reused_gt_iou:9.3f} {r.change_mean:11.4f} "
            f"{r.change_max:6.4f} {r.prompt_drift:6.3f}"
        )
    if table.cross_scene:
        cross = np.asarray(table.cross_scene)
        lines.append(
            f"scene_change to another sequence's frames: min {cross.min():.4f}, "
            f"p5 {np.percentile(cross, 5):.4f}, median {np.median(cross):.4f} ({cross.size} pairs)"
        )
    lines.append(
        f"prompt drift = |fresh prompt - refresh prompt| / |refresh prompt|; two instructions' "
        f"prompts on one frame differ by {table.class_spread:.3f} on average"
    )
    return "\n".join(lines)


def format_thresholds(table: FollowingTable, period: float) -> str:
    """Candidate change thresholds: early refreshes within ``period`` and scenes caught."""
    lines = [f"change threshold: share of reused frames (age < {period:g} s) refreshed early / "]
    lines[0] += "share of other-scene frame pairs caught"
    for threshold in (0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.15, 0.20, 0.30):
        extra, caught = threshold_shares(table, period, threshold)
        lines.append(f"  {threshold:4.2f}: {extra:6.1%} / {caught:6.1%}")
    return "\n".join(lines)


def format_timing(timing: dict, period: float, fps: float) -> str:
    mean_ms = timing["follow_cpu_ms"] + (timing["full_cpu_ms"] - timing["follow_cpu_ms"]) / (
        period * fps
    )
    return (
        f"per frame, {timing['instructions']} instructions, {timing['threads']} torch thread(s) "
        f"(median of {timing['frames']}): "
        f"full model {timing['full_ms']:.0f} ms wall / {timing['full_cpu_ms']:.0f} ms CPU, "
        f"following {timing['follow_ms']:.0f} ms wall / {timing['follow_cpu_ms']:.0f} ms CPU: "
        f"following runs {timing['ratio_wall']:.2f}x (wall) / {timing['ratio_cpu']:.2f}x (CPU) "
        f"the full model's frame rate; refreshing every {period:g} s at {fps:g} Hz: "
        f"{mean_ms:.0f} ms CPU per frame on average"
    )


def _json(
    args: argparse.Namespace,
    model_name: str,
    machine: str,
    table: FollowingTable,
    timing: list[dict],
    choice: dict,
) -> None:
    cross = table.cross_scene
    out = {
        "model": model_name,
        "machine": machine,
        "table": dataclasses.asdict(table) | {"cross_scene": None},
        "cross_scene": {
            "pairs": len(cross),
            "min": min(cross, default=math.nan),
            "percentiles_1_5_10_25_50": np.percentile(cross, [1, 5, 10, 25, 50]).tolist()
            if cross
            else [],
        },
        "timing": timing,
        "choice": choice,
    }
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def _engine(args: argparse.Namespace) -> tuple[SegmentationEngine, str]:
    if args.tiny:
        from minelisa_training.testing import build_tiny

        model, tokenizer = build_tiny(tempfile.mkdtemp(prefix="bench-follow-tok-"), seed=0)
        return SegmentationEngine(model, tokenizer), "tiny preset, random weights"
    engine = SegmentationEngine.from_pretrained(
        args.model, vision_tower=args.vision_tower, device=args.device, dtype=args.dtype
    )
    return engine, str(args.model)


def _sequences(args: argparse.Namespace) -> list[museg.FrameSequence]:
    root = args.data
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="bench-follow-data-")) / "MUSeg"
        width, height = synth.parse_size(args.size)
        cfg = synth.SynthConfig(
            images=0,
            seed=args.seed,
            width=width,
            height=height,
            sequences=args.sequences,
            frames=args.frames,
        )
        synth.write_dataset(root, cfg, progress=False)
    return list(museg.read_sequences(root).values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", type=Path, help="bundle or LISA folder")
    which.add_argument("--tiny", action="store_true", help="random tiny model (no accuracy)")
    parser.add_argument("--vision-tower", type=Path, help="CLIP folder (LISA releases)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    parser.add_argument("--dtype", help="fp32, fp16, bf16 (default: fp32 on the CPU)")
    parser.add_argument("--data", type=Path, help="dataset with Experiment/sequences.json")
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--frames", type=int, default=46)
    parser.add_argument("--size", default="432x372", help="WxH (default: the demo's 432x372)")
    parser.add_argument("--seed", type=int, default=1, help="synthetic data seed (demo: 0)")
    parser.add_argument(
        "--refresh-every",
        type=int,
        default=15,
        help="frames between refresh frames of the measurement (default 15: every second)",
    )
    parser.add_argument("--json", type=Path, help="write the table and choices here")
    args = parser.parse_args(argv)
    engine, model_name = _engine(args)
    sequences = _sequences(args)
    start = time.perf_counter()
    table = measure_following(engine, sequences, refresh_every=args.refresh_every)
    took = time.perf_counter() - start
    choice = choose_defaults(table)
    seq = sequences[0]
    images = [museg.load_image(r.image_path) for r in seq.records]
    asked = _instructions(seq.records[:1], museg.ORDER_A)[seq.records[0].image_id]
    timing = time_modes(engine, images, [t for t, _ in asked], seq.fps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # no spinning threads: CPU time is the work itself
    timing_1 = time_modes(engine, images, [t for t, _ in asked], seq.fps)
    torch.set_num_threads(threads)
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
    print(f"model: {model_name}\nmachine: {machine}")
    print(f"{table.sequences} sequences, {table.frames} frames at {table.fps:g} Hz ({took:.0f} s)")
    print("\n" + format_table(table))
    print("\n" + format_thresholds(table, choice["refresh_period_s"]))
    print("\n" + format_timing(timing, choice["refresh_period_s"], table.fps))
    print(format_timing(timing_1, choice["refresh_period_s"], table.fps))
    print("\nchosen: " + json.dumps(choice))
    if args.json:
        _json(args, model_name, machine, table, [timing, timing_1], choice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
