"""`minelisa demo --quick`: the main job's whole pipeline at CI size."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from train_helpers import subprocess_env


def test_quick_demo(tmp_path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "minelisa_training.cli", "demo", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("before", "after_base_stage", "after"):
        assert set(summary[key]) >= {"giou", "ciou", "n_samples"}
        assert 0.0 <= summary[key]["giou"] <= 1.0 and 0.0 <= summary[key]["ciou"] <= 1.0
        assert summary[key]["n_samples"] == summary["data"]["val_samples"] > 0
    assert summary["gain"]["giou"] == summary["after"]["giou"] - summary["before"]["giou"]
    # Training reduced the loss in every stage.
    assert summary["train_loss"]["naming"]["last"] < summary["train_loss"]["naming"]["first"]
    for stage in ("base_stage", "lora_stage"):
        trend = summary["train_loss"][stage]
        assert trend["mean_last_quarter"] < trend["mean_first_quarter"], (stage, trend)
    bundle = summary["bundle"]
    assert (out / "models" / "minelisa-demo" / "model.safetensors").is_file() and bundle.endswith(
        "minelisa-demo"
    )
    card = json.loads((out / "models" / "minelisa-demo" / "model_card.json").read_text())
    assert card["training_config"]["lora"]["r"] == 8
    assert {"untrained", "named", "base", "minelisa-demo"} <= {
        p.name for p in (out / "models").iterdir()
    }
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [
        "after",
        "after_base_stage",
        "before",
    ]
    assert len(list((out / "overlays" / "after").glob("*.jpg"))) == summary["plan"]["overlays"]
    assert "gIoU" in proc.stdout and "untrained tiny model" in proc.stdout
    # The exported bundle serves through the engine.
    from minelisa_training.engine import SegmentationEngine

    result = SegmentationEngine.from_pretrained(bundle).segment(
        np.zeros((64, 80, 3), np.uint8), "Please segment the door in this image."
    )
    assert result.mask.shape == (64, 80)


def test_overlay_samples_vary_the_instruction() -> None:
    from types import SimpleNamespace

    from minelisa_training.training.demo import _overlay_samples

    samples = [SimpleNamespace(image_id=f"img{i}", class_id=c) for i in range(4) for c in (1, 2, 3)]
    chosen = _overlay_samples(samples, 3)
    assert [s.image_id for s in chosen] == ["img0", "img1", "img2"]
    assert [s.class_id for s in chosen] == [1, 2, 3]
    # When an image only has classes already shown, it still contributes one.
    only_one = [SimpleNamespace(image_id=f"img{i}", class_id=5) for i in range(3)]
    assert [s.image_id for s in _overlay_samples(only_one, 2)] == ["img0", "img1"]
