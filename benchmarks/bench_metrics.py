"""Scoring speed: 571 mask pairs at MUSeg's 1082x932 (the paper's val set size).

Target (issue 3): under 1 s on one CPU core for the metric itself. Rows:
- accumulator: ``IoUAccumulator.add`` per pair (popcounts), then ``summary()``;
- accumulator + ignore: the same with an ignore mask (label 255) per pair;
- naive: ``np.logical_and(...).sum()`` / ``np.logical_or(...).sum()``, for reference;
- read PNG + score: decoding 571 0/255 PNG masks as ``minelisa score`` does, plus scoring.

Run: python benchmarks/bench_metrics.py [--n 571]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from minelisa_training.evaluation import read_mask, write_mask  # noqa: E402
from minelisa_training.metrics import IoUAccumulator  # noqa: E402

H, W = 932, 1082


def make_pairs(n: int, seed: int = 0):
    """Blob-like ground truths (a few ellipses) and predictions that overlap them partly."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n):
        gt = np.zeros((H, W), np.uint8)
        for _ in range(rng.integers(1, 4)):
            c = (int(rng.integers(W)), int(rng.integers(H)))
            axes = (int(rng.integers(5, 300)), int(rng.integers(5, 200)))
            cv2.ellipse(gt, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        shift = rng.integers(-30, 30, 2)
        pred = np.roll(gt, tuple(shift), axis=(0, 1))
        gts.append(gt.astype(bool))
        preds.append(pred.astype(bool))
    return preds, gts


def bench(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=571)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    preds, gts = make_pairs(args.n)
    ignore = [np.random.default_rng(1).random((H, W)) < 0.01 for _ in range(2)]

    def accumulate(with_ignore: bool):
        acc = IoUAccumulator()
        for i, (p, g) in enumerate(zip(preds, gts)):
            acc.add(p, g, 1 + i % 15, ignore[i % 2] if with_ignore else None)
        return acc.summary()

    def naive():
        return [
            np.logical_and(p, g).sum() / max(np.logical_or(p, g).sum(), 1)
            for p, g in zip(preds, gts)
        ]

    rows = [
        ("accumulator", bench(lambda: accumulate(False))),
        ("accumulator + ignore", bench(lambda: accumulate(True))),
        ("naive logical_and/or .sum()", bench(naive)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, p in enumerate(preds):
            paths.append(Path(tmp) / f"{i}.png")
            write_mask(paths[-1], p)

        def from_png():
            acc = IoUAccumulator()
            for i, (path, g) in enumerate(zip(paths, gts)):
                acc.add(read_mask(path, (H, W)), g, 1 + i % 15)
            return acc.summary()

        rows.append(("read PNG + score", bench(from_png, repeat=1)))

    print(f"{args.n} mask pairs of {W}x{H}, one thread (best of 3, PNG row once)")
    print(f"{'what':32s} {'total s':>8s} {'ms/pair':>8s}")
    for name, sec in rows:
        print(f"{name:32s} {sec:8.3f} {1000 * sec / args.n:8.3f}")


if __name__ == "__main__":
    main()
