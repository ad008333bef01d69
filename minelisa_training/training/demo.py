"""`minelisa demo`: the whole pipeline on synthetic MUSeg-format data, on a CPU.

1. write a synthetic dataset in the raw MUSeg layout (``synth``);
2. build a tiny random-weight MineLISA and evaluate it on the val split;
3. base stage, standing in for what LISA-7B brings from pre-training (a random
   model has nothing for LoRA to adapt), reported as its own row:
   a. instruction naming (``naming.py``): the LLM learns to answer an instruction
      with the name of the object it asks for, so the state that predicts
      ``[SEG]`` carries the class (LLaVA's instruction tuning, in miniature);
   b. mask decoder and ``[SEG]`` head trained on the masks, everything else frozen;
4. LoRA stage: the paper's recipe (``tiny_cpu``: LoRA r=8 on q_proj/v_proj, mask
   decoder, [SEG] head and new-token rows trainable; 0.5 CE + 1.5 Dice + 1.0 BCE;
   AdamW (0.9, 0.95); clip 1.0; DeepSpeed ZeRO-2) starting from the base-stage bundle;
5. export the merged bundle, evaluate it, write overlays and ``summary.json``.

Every number comes from ``evaluation.evaluate`` on exported bundles loaded by the
serving engine: the same code path as ``minelisa eval``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import MineLisaConfig, tiny_config
from ..fileio import atomic_write

# The tiny preset with SAM's input at 256 px and 8-px patches instead of 1024 px and
# 16-px patches: the mask decoder attends over 32x32 instead of 64x64 image tokens
# (4x less work per mask), which is what lets the demo train on two CPU cores, while
# each token still covers few enough pixels to outline objects. Everything else
# (256-d prompt space, decoder depth, LLM, CLIP at 224 px) is the tiny preset.
DEMO_SAM_SIZE = 256
DEMO_SAM_PATCH = 8


def demo_model_config(vocab_size: int) -> MineLisaConfig:
    config = tiny_config(vocab_size)
    config.sam = dataclasses.replace(
        config.sam, image_size=DEMO_SAM_SIZE, patch_size=DEMO_SAM_PATCH, window_size=8
    )
    return config


@dataclass(frozen=True)
class DemoPlan:
    images: int
    width: int
    height: int
    val_fraction: float
    naming_steps: int
    naming_batch: int
    naming_lr: float
    base_steps: int
    lora_steps: int
    base_lr: float
    lora_lr: float
    overlays: int
    log_every: int


PLANS = {
    # The README's main job: about 10 minutes on 2 CPU cores. The learning rates are
    # what the random mask decoder tolerates: at 2e-3 and above it stays at the
    # empty-mask optimum (benchmarks/RESULTS.md).
    "full": DemoPlan(
        images=120,
        width=432,
        height=372,
        val_fraction=0.25,
        naming_steps=300,
        naming_batch=16,
        naming_lr=3e-3,
        base_steps=1500,
        lora_steps=1000,
        base_lr=5e-4,
        lora_lr=3e-4,
        overlays=6,
        log_every=25,
    ),
    # CI: the same pipeline at a size that runs in about a minute.
    "quick": DemoPlan(
        images=24,
        width=216,
        height=186,
        val_fraction=0.25,
        naming_steps=20,
        naming_batch=8,
        naming_lr=3e-3,
        base_steps=60,
        lora_steps=80,
        base_lr=5e-4,
        lora_lr=3e-4,
        overlays=2,
        log_every=5,
    ),
}

# Base stage (b): the tiny_cpu recipe without LoRA, so the mask decoder, the [SEG]
# head and the new-token rows train while the named-in LLM and both encoders stay
# frozen (their outputs are cached, which is what makes the stage fast on a CPU).
BASE_STAGE_OVERRIDES = ["trainable.lora=false"]


def _metrics(report: dict[str, Any]) -> dict[str, Any]:
    return {"giou": report["giou"], "ciou": report["ciou"], "n_samples": report["n_samples"]}


def _loss_trend(run_dir: Path) -> dict[str, float]:
    from .metrics_log import read_metrics

    losses = [r["total"] for r in read_metrics(run_dir, "train")]
    if not losses:
        return {}
    k = max(1, len(losses) // 4)
    return {
        "first": losses[0],
        "last": losses[-1],
        "mean_first_quarter": sum(losses[:k]) / k,
        "mean_last_quarter": sum(losses[-k:]) / k,
    }


def _overlay_samples(samples, n: int):
    """``n`` validation samples on different images, each asking for a class not shown yet
    where the images allow it (so the overlays show several instructions, not one)."""
    by_image: dict[str, list] = {}
    for s in samples:
        by_image.setdefault(s.image_id, []).append(s)
    shown, chosen = set(), []
    for group in by_image.values():
        fresh = [s for s in group if s.class_id not in shown]
        pick = (fresh or group)[0]
        shown.add(pick.class_id)
        chosen.append(pick)
        if len(chosen) == n:
            break
    return chosen


def format_results_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [f"{'model':44s} {'gIoU':>7s} {'cIoU':>7s}", "-" * 60]
    for name, m in rows:
        lines.append(f"{name:44s} {m['giou']:7.4f} {m['ciou']:7.4f}")
    return "\n".join(lines)


class _Demo:
    """What the stages of one demo run share: the output folder, the data, the timings."""

    def __init__(self, out: Path, plan: DemoPlan, seed: int, echo: Callable[[str], None]) -> None:
        self.out, self.plan, self.seed, self.echo = out, plan, seed, echo
        self.timings: dict[str, float] = {}
        self.data_root = out / "MUSeg"
        self.common = [
            f"data.root={self.data_root}",
            "data.split=official",
            "runtime.validate_every_epochs=1000",
            f"runtime.log_every={plan.log_every}",
            "runtime.save_every_steps=100",
            f"train.seed={seed}",
            "train.epochs=1000",
        ]

    @contextlib.contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        self.echo(f"\n=== {name} ===")
        yield
        self.timings[name] = round(time.perf_counter() - t0, 1)

    def write_data(self) -> None:
        from .. import synth
        from .config import load_config
        from .dataset import load_split_samples

        plan = self.plan
        synth.write_dataset(
            self.data_root,
            synth.SynthConfig(
                images=plan.images,
                seed=self.seed,
                width=plan.width,
                height=plan.height,
                val_fraction=plan.val_fraction,
            ),
            progress=True,
        )
        self.config = load_config("tiny_cpu", self.common)
        self.splits = load_split_samples(self.config.data, progress=False)
        self.echo(
            f"{len(self.splits.train)} training and {len(self.splits.val)} validation instructions "
            f"({self.splits.description})"
        )
        self.overlay_set = _overlay_samples(self.splits.val, plan.overlays)

    def evaluate_bundle(self, bundle: Path, name: str) -> dict[str, Any]:
        """gIoU / cIoU of a bundle on the val split (the `minelisa eval` path), plus overlays."""
        from ..engine import SegmentationEngine
        from ..evaluation import evaluate, write_report

        engine = SegmentationEngine.from_pretrained(bundle)
        report = evaluate(engine, self.splits.val, self.splits.class_map, progress=True)
        write_report(report, self.out / "reports" / f"{name}.json")
        evaluate(
            engine,
            self.overlay_set,
            self.splits.class_map,
            overlays_dir=self.out / "overlays" / name,
            progress=False,
        )
        return _metrics(report)

    def untrained_model(self):
        from ..checkpoint import save_bundle
        from ..testing import build_model, write_tiny_tokenizer

        tokenizer = write_tiny_tokenizer(self.out / "models" / ".tokenizer")
        model = build_model(demo_model_config(len(tokenizer)), tokenizer, self.seed)
        bundle = save_bundle(
            model,
            tokenizer,
            self.out / "models" / "untrained",
            card={"note": "random tiny weights (minelisa demo, before training)"},
        )
        return model, tokenizer, bundle

    def name_instructions(self, model, tokenizer) -> tuple[list[float], Path]:
        """Base stage (a): the LLM learns to name what an instruction asks for."""
        from ..checkpoint import save_bundle
        from .naming import pretrain_instruction_naming

        plan = self.plan
        losses = pretrain_instruction_naming(
            model,
            tokenizer,
            self.splits.train,
            steps=plan.naming_steps,
            batch_size=plan.naming_batch,
            lr=plan.naming_lr,
            seed=self.seed,
            log_every=max(1, plan.naming_steps // 6),
            echo=self.echo,
        )
        bundle = save_bundle(
            model,
            tokenizer,
            self.out / "models" / "named",
            card={"note": "minelisa demo: random tiny model after instruction naming"},
        )
        return losses, bundle

    def train(
        self, name: str, start: Path, steps: int, lr: float, extra: Sequence[str] = ()
    ) -> Path:
        """A `minelisa train` run of the tiny_cpu recipe from ``start``; returns its run folder."""
        from .config import load_config
        from .trainer import Trainer

        config = load_config(
            "tiny_cpu",
            [
                *self.common,
                *extra,
                f"model.path={start}",
                f"train.max_steps={steps}",
                f"optim.lr={lr}",
            ],
        )
        run_dir = self.out / "runs" / name
        Trainer(config, run_dir).run()
        return run_dir


def run_demo(
    out: str | Path, plan: DemoPlan, seed: int = 0, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    from .export import export_run

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    demo = _Demo(out, plan, seed, echo)
    start = time.perf_counter()
    with demo.stage("1/7 synthetic MUSeg-format data"):
        demo.write_data()
    with demo.stage("2/7 tiny random-weight model, evaluated before training"):
        model, tokenizer, untrained = demo.untrained_model()
        before = demo.evaluate_bundle(untrained, "before")
    with demo.stage(
        f"3/7 base stage (a): instruction naming, LLM only ({plan.naming_steps} steps)"
    ):
        # The untrained model is evaluated from its bundle, so the in-memory copy can be trained.
        naming_losses, named_bundle = demo.name_instructions(model, tokenizer)
    with demo.stage(f"4/7 base stage (b): mask decoder and [SEG] head ({plan.base_steps} steps)"):
        base_run = demo.train(
            "base", named_bundle, plan.base_steps, plan.base_lr, BASE_STAGE_OVERRIDES
        )
        base_bundle = export_run(base_run, out / "models" / "base")
        after_base = demo.evaluate_bundle(base_bundle, "after_base_stage")
    with demo.stage(
        f"5/7 LoRA stage: the paper's recipe ({plan.lora_steps} steps, DeepSpeed ZeRO-2)"
    ):
        lora_run = demo.train("lora", base_bundle, plan.lora_steps, plan.lora_lr)
    with demo.stage("6/7 export: LoRA merged into the serving bundle"):
        bundle = export_run(lora_run, out / "models" / "minelisa-demo")
        echo(f"wrote {bundle}")
    with demo.stage("7/7 evaluation of the exported bundle"):
        after = demo.evaluate_bundle(bundle, "after")
    demo.timings["total"] = round(time.perf_counter() - start, 1)
    summary = _summary(demo, before, after_base, after, bundle, naming_losses)
    atomic_write(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _report(demo, summary, bundle)
    return summary


def _summary(
    demo: _Demo,
    before: dict,
    after_base: dict,
    after: dict,
    bundle: Path,
    naming_losses: list[float],
) -> dict:
    from .. import museg

    out, plan, splits = demo.out, demo.plan, demo.splits
    return {
        "before": before,
        "after_base_stage": after_base,
        "after": after,
        "gain": {k: after[k] - before[k] for k in ("giou", "ciou")},
        "lora_stage_gain": {k: after[k] - after_base[k] for k in ("giou", "ciou")},
        "bundle": str(bundle.resolve()),
        "train_loss": {
            "naming": {"first": naming_losses[0], "last": naming_losses[-1]},
            "base_stage": _loss_trend(out / "runs" / "base"),
            "lora_stage": _loss_trend(out / "runs" / "lora"),
        },
        "data": {
            "root": str(demo.data_root.resolve()),
            "images": plan.images,
            "size": f"{plan.width}x{plan.height}",
            "train_samples": len(splits.train),
            "val_samples": len(splits.val),
            "split": splits.description,
            "class_order": museg.load_class_map(demo.config.data.classes).source,
        },
        "plan": dataclasses.asdict(plan),
        "model": {
            "preset": "tiny",
            "sam_image_size": DEMO_SAM_SIZE,
            "sam_patch_size": DEMO_SAM_PATCH,
        },
        "timing_s": demo.timings,
        "overlays": str((out / "overlays").resolve()),
    }


def _report(demo: _Demo, summary: dict, bundle: Path) -> None:
    rows = [
        ("untrained tiny model", summary["before"]),
        ("after base stage (naming + mask decoder)", summary["after_base_stage"]),
        ("after LoRA stage (paper recipe), exported", summary["after"]),
    ]
    out, echo = demo.out, demo.echo
    echo("\n" + format_results_table(rows))
    echo(
        f"\ngain on the validation split: gIoU {summary['gain']['giou']:+.4f}, cIoU {summary['gain']['ciou']:+.4f} "
        f"(LoRA stage alone: gIoU {summary['lora_stage_gain']['giou']:+.4f})"
    )
    echo(
        f"bundle: {bundle}\noverlays: {out / 'overlays'}\nsummary: {out / 'summary.json'}  "
        f"({demo.timings['total']:.0f} s in all)"
    )
