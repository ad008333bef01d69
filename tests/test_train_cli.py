"""`minelisa train` refuses bad input with a specific message before any heavy work."""

from __future__ import annotations

import pytest

from minelisa_training import museg
from minelisa_training.cli import main


def _train(tmp_path, *extra: str) -> list[str]:
    return ["train", "--config", "tiny_cpu", "--out", str(tmp_path / "run"), *extra]


def test_unknown_key(tmp_path, capsys) -> None:
    assert main(_train(tmp_path, "lora.rank=4")) == 2
    assert "unknown config key lora.rank" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override", ["runtime.save_every_steps=0", "runtime.log_every=0", "train.max_steps=-3"]
)
def test_value_out_of_range_before_any_loading(tmp_path, capsys, override) -> None:
    # Neither the data nor the model exists: the recipe is refused first.
    args = _train(tmp_path, override, f"data.root={tmp_path / 'nowhere'}", "model.path=/nowhere")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"minelisa train: {override.partition('=')[0]} must be" in err and ">= 1" in err
    assert not (tmp_path / "run").exists()


def test_missing_data_message(tmp_path, capsys) -> None:
    assert (
        main(_train(tmp_path, f"data.root={tmp_path / 'nowhere'}", "model.path=/also/nowhere")) == 2
    )
    err = capsys.readouterr().err
    assert "data.root" in err and "is not a directory" in err
    assert main(_train(tmp_path, "model.path=/x")) == 2
    assert "data.root is not set" in capsys.readouterr().err


def test_empty_split(synth_copy, tmp_path, capsys) -> None:
    split = museg.read_official_split(synth_copy)
    folder = synth_copy / "Experiment" / "DatasetSplit"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("\n".join(split["train"]) + "\n")
    (folder / "val.txt").write_text("")
    assert main(_train(tmp_path, f"data.root={synth_copy}", "model.path=/x")) == 2
    assert "the val split (official) has no images" in capsys.readouterr().err


def test_model_that_does_not_load(synth_data, tmp_path, capsys) -> None:
    root, _ = synth_data
    assert main(_train(tmp_path, f"data.root={root}", f"model.path={tmp_path / 'no-model'}")) == 2
    err = capsys.readouterr().err
    assert "model.path" in err and "does not load" in err


def test_resume_rules(tmp_path, capsys) -> None:
    assert main(["train", "--resume", "--config", "tiny_cpu", "--out", str(tmp_path)]) == 2
    assert "do not pass --config" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path)]) == 2
    assert "--config is required" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "export", "demo"])
def test_help_teaches(command, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "--out" in out
