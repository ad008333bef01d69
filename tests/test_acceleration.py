"""The GPU path's switches: image views on the model's device, compiled stages' fallback."""

from __future__ import annotations

import argparse
import logging

import pytest
import torch

from minelisa_training import acceleration
from minelisa_training.acceleration import CompiledStage, resolve_image_views
from minelisa_training.engine import SegmentationEngine
from minelisa_training.errors import InvalidInputError
from minelisa_training.model_options import ModelOptions, add_model_arguments

INSTRUCTIONS = ["segment the exposed cable", "where is the person near the conveyor?"]


def test_auto_views_are_device_on_cuda_and_exact_on_the_cpu():
    assert resolve_image_views("auto", torch.device("cuda", 0)) == "device"
    assert resolve_image_views("auto", torch.device("cpu")) == "exact"
    assert resolve_image_views("device", torch.device("cpu")) == "device"
    with pytest.raises(InvalidInputError, match="unknown image_views 'gpu'"):
        resolve_image_views("gpu", torch.device("cpu"))


def test_bad_switches_are_refused_before_anything_loads():
    with pytest.raises(InvalidInputError, match="compile must be true or false, got 'off'"):
        ModelOptions(path="bundle", compile="off")  # a truthy string must not turn it on
    with pytest.raises(InvalidInputError, match="unknown image_views"):
        ModelOptions(path="bundle", image_views="fast")
    with pytest.raises(InvalidInputError, match="compile must be true or false"):
        SegmentationEngine.from_pretrained("/nonexistent/bundle", device="cpu", compile="1")


def test_compile_is_a_flag_on_the_command_line():
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    assert ModelOptions.from_args(parser.parse_args(["--model", "b"])).compile is False
    assert ModelOptions.from_args(parser.parse_args(["--model", "b", "--compile"])).compile
    views = parser.parse_args(["--model", "b", "--image-views", "device"]).image_views
    assert views == "device"
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "b", "--image-views", "gpu"])


def test_device_views_give_the_masks_of_the_exact_ones(tiny, rgb_image):
    model, tok = tiny
    exact = SegmentationEngine(model, tok, image_views="exact")
    device = SegmentationEngine(model, tok, image_views="device")
    assert (exact.encoder.image_views, device.encoder.image_views) == ("exact", "device")
    ours = device.segment_batch(rgb_image, INSTRUCTIONS)
    for theirs, mine in zip(exact.segment_batch(rgb_image, INSTRUCTIONS), ours):
        # Inputs within one level of 255: the prompts and masks stay all but equal.
        assert torch.allclose(theirs.prompts, mine.prompts, atol=1e-3)
        assert (theirs.mask == mine.mask).mean() > 0.99


def _broken_compile(fn, **_):
    def compiled(*args):
        raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")

    return compiled


def test_a_stage_that_fails_to_compile_runs_eagerly_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(acceleration.torch, "compile", _broken_compile)
    calls = []

    def double(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return 2 * x

    stage = CompiledStage(double, "the doubler", torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger="minelisa_training.acceleration"):
        assert torch.equal(stage(torch.ones(2)), torch.full((2,), 2.0))
    assert not stage.compiled and "no working C++ compiler" in stage.fallback_reason
    assert "torch.compile of the doubler failed, running it eagerly" in caplog.text
    assert torch.equal(stage(torch.ones(1)), torch.full((1,), 2.0)) and len(calls) == 2


def test_an_error_of_the_input_is_raised_not_taken_for_a_compile_failure(monkeypatch):
    monkeypatch.setattr(acceleration.torch, "compile", _broken_compile)

    def checked(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 1:
            raise ValueError("x must be 1-D")
        return x

    stage = CompiledStage(checked, "checker", torch.device("cpu"))
    with pytest.raises(ValueError, match="x must be 1-D"):
        stage(torch.ones(2, 2))
    assert stage.compiled  # still to be tried on a good input


def test_engine_with_compile_off_runs_the_plain_functions(tiny):
    model, tok = tiny
    engine = SegmentationEngine(model, tok)
    assert engine.encoder.compiled == {"sam_encoder": False, "llm_prefix": False}
    assert engine.encoder._sam == model.encode_sam  # the bound method itself
