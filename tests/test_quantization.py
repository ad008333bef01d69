"""--quantize int8/int4: which layers change, how much smaller, and that masks stay.

The bounds on mask agreement were measured on this suite's tiny random model and
images (min IoU over 3 images x 4 instructions: int8 0.998, int4 0.976) and set with
margin. Random tiny weights are not what a trained LLM's are (no outlier features,
64-wide rows, one 4-bit block per 64 weights is a whole row); real weights may
quantize better or worse, see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import copy
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from minelisa_training import museg, quantization
from minelisa_training.cli import main
from minelisa_training.engine import SegmentationEngine
from minelisa_training.errors import InvalidInputError
from minelisa_training.model_options import MODEL_OPTIONS, ModelOptions
from minelisa_training.quantization import (
    decoder_linears,
    quantization_of,
    quantize_language_model,
    weight_bytes,
)

REPO = Path(__file__).resolve().parents[1]
MODES = ("int8", "int4")
LAYER_CLASSES = {"int8": "Linear8bitLt", "int4": "Linear4bit"}
MIN_IOU = {"int8": 0.98, "int4": 0.94}  # measured 0.998 / 0.976 (module docstring)
INSTRUCTIONS = [
    "segment the exposed cable",
    "where is the person near the conveyor?",
    "Please segment the door in this image.",
    "the rail area",
]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


@pytest.fixture(scope="module")
def quantized(tiny):
    """mode -> a quantized copy of the tiny model."""
    model, _ = tiny
    return {mode: quantize_language_model(copy.deepcopy(model), mode) for mode in MODES}


@pytest.fixture(scope="module")
def images(synth_data):
    """A MUSeg-size frame and two synthetic val images."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 60, size=(932, 1082, 3), dtype=np.uint8)
    frame[300:500, 200:700] = (200, 180, 40)
    records = museg.read_split(synth_data[0], "val")[:2]
    return [frame] + [np.asarray(Image.open(r.image_path).convert("RGB")) for r in records]


@pytest.mark.parametrize("mode", MODES)
def test_exactly_the_decoder_layer_linears_are_replaced(tiny, quantized, mode):
    model, _ = tiny
    layers = model.config.llm["num_hidden_layers"]
    assert len(decoder_linears(model)) == 7 * layers  # q, k, v, o, gate, up, down
    q = quantized[mode]
    kinds = [type(m).__name__ for m in q.modules()]
    assert kinds.count(LAYER_CLASSES[mode]) == 7 * layers
    assert not decoder_linears(q)  # no full-precision linear left in the decoder layers
    assert quantization_of(q) == mode and quantization_of(model) == "none"
    for name in ("vision_tower", "mm_projector", "visual_model", "text_hidden_fcs"):
        plain = [type(m).__name__ for m in getattr(q, name).modules()]
        assert not set(plain) & set(LAYER_CLASSES.values()), name
    lm = q.language_model
    assert type(lm.lm_head) is torch.nn.Linear and lm.lm_head.weight.dtype == model.dtype
    assert lm.get_input_embeddings().weight.dtype == model.dtype
    assert not q.training and q.dtype == model.dtype


@pytest.mark.parametrize("mode", MODES)
def test_llm_weight_bytes_shrink_by_the_expected_factor(tiny, quantized, mode):
    model, _ = tiny
    shapes = [(lin.out_features, lin.in_features) for _, _, lin in decoder_linears(model)]
    full = sum(4 * o * i for o, i in shapes)  # fp32
    q_layers = [mod for _, _, mod in _replaced(quantized[mode])]
    got = sum(weight_bytes(mod) for mod in q_layers)
    if mode == "int8":  # one byte a weight and an fp32 scale a row
        assert got == sum(o * i + 4 * o for o, i in shapes)
        assert full / got > 3.7
    else:  # half a byte a weight, a uint8 scale per 64, and small per-layer tables
        low = sum(o * i // 2 + o * i // 64 for o, i in shapes)
        assert low <= got <= low + 2048 * len(shapes)
        assert full / got > 5.0  # ~7.5 at LISA-7B sizes, where the tables do not count
    # Everything else in the LLM (embeddings, lm_head, norms) is unchanged.
    before, after = weight_bytes(model.language_model), weight_bytes(quantized[mode].language_model)
    assert after == before - full + got


def test_each_full_precision_linear_is_freed_as_it_goes(tiny, monkeypatch):
    model = copy.deepcopy(tiny[0])
    refs = [weakref.ref(linear) for _, _, linear in decoder_linears(model)]
    alive = []
    original = quantization._int4

    def spy(*args):
        alive.append(sum(ref() is not None for ref in refs))
        return original(*args)

    monkeypatch.setattr(quantization, "_int4", spy)
    quantize_language_model(model, "int4")
    # Before the k-th is quantized, the k-1 before it are gone: peak = model + one linear.
    assert alive == list(range(len(refs), 0, -1))
    assert all(ref() is None for ref in refs)


def _replaced(model):
    return [
        (p, n, m)
        for layer in model.language_model.model.layers
        for p in layer.modules()
        for n, m in p.named_children()
        if type(m).__name__ in LAYER_CLASSES.values()
    ]


@pytest.fixture(scope="module")
def reference(tiny, images):
    """Fast-mode masks of the unquantized model, per image and instruction."""
    model, tok = tiny
    engine = SegmentationEngine(model, tok)
    return [[r.mask for r in engine.segment_batch(image, INSTRUCTIONS)] for image in images]


@pytest.mark.parametrize("mode", MODES)
def test_masks_agree_with_the_unquantized_model(tiny, quantized, images, reference, mode):
    engine = SegmentationEngine(quantized[mode], tiny[1])
    ious = [
        _iou(want, got.mask)
        for image, masks in zip(images, reference)
        for want, got in zip(masks, engine.segment_batch(image, INSTRUCTIONS))
    ]
    assert min(ious) >= MIN_IOU[mode], ious


def _chatty(model, tok):
    """A copy whose (unquantized) LM head always answers [SEG]: chat mode gives masks."""
    model = copy.deepcopy(model)
    lm = model.language_model
    head = torch.nn.Linear(lm.lm_head.in_features, lm.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(lm.lm_head.weight)
        head.bias.zero_()
        head.bias[tok.token_to_id("[SEG]")] = 1e4
    lm.lm_head = head
    return model.eval()


@pytest.mark.parametrize("mode", MODES)
def test_chat_mode_and_the_prefix_cache_run_quantized(tiny, images, mode):
    model, tok = tiny
    image = images[1]  # small: the mask decoder's upsampling stays cheap
    chatty = _chatty(model, tok)
    small = quantize_language_model(copy.deepcopy(chatty), mode)
    expected = SegmentationEngine(chatty, tok, mode="chat", max_new_tokens=2).segment_batch(
        image, INSTRUCTIONS
    )
    for reuse in (True, False):  # over the prefix's KV cache, and whole prompts
        engine = SegmentationEngine(small, tok, mode="chat", max_new_tokens=2, prefix_reuse=reuse)
        got = engine.segment_batch(image, INSTRUCTIONS)
        assert [r.answer for r in got] == [r.answer for r in expected]
        assert all(len(r.masks) == 2 for r in got)
        assert min(_iou(a.mask, b.mask) for a, b in zip(got, expected)) >= MIN_IOU[mode]


def test_from_pretrained_and_from_options_quantize(tiny_bundle, rgb_image):
    engine = SegmentationEngine.from_pretrained(tiny_bundle, quantize="int8")
    assert quantization_of(engine.model) == "int8"
    full = SegmentationEngine.from_pretrained(tiny_bundle)
    assert quantization_of(full.model) == "none"
    a, b = full.segment(rgb_image, INSTRUCTIONS[0]), engine.segment(rgb_image, INSTRUCTIONS[0])
    assert _iou(a.mask, b.mask) >= MIN_IOU["int8"]
    options = ModelOptions(path=str(tiny_bundle), device="cpu", quantize="int4")
    assert quantization_of(SegmentationEngine.from_options(options).model) == "int4"


def test_segment_command_with_quantize_int4(tiny_bundle, tmp_path, rgb_image, capsys):
    Image.fromarray(rgb_image).save(tmp_path / "frame.png")
    args = ["segment", "--model", str(tiny_bundle), "--image", str(tmp_path / "frame.png")]
    args += ["--instruction", INSTRUCTIONS[0], "--out", str(tmp_path / "mask.png")]
    assert main([*args, "--quantize", "int4"]) == 0
    mask = np.asarray(Image.open(tmp_path / "mask.png")) == 255
    engine = SegmentationEngine.from_pretrained(tiny_bundle, quantize="int4")
    assert np.array_equal(mask, engine.segment(rgb_image, INSTRUCTIONS[0]).mask)
    assert "answer: [SEG]." in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse refuses values outside the choices
        main([*args, "--quantize", "int2"])
    assert "invalid choice: 'int2'" in capsys.readouterr().err


def test_a_missing_backend_names_the_package_to_install(
    tiny, tiny_bundle, tmp_path, monkeypatch, capsys
):
    model, _ = tiny
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` fails
    copied = copy.deepcopy(model)
    with pytest.raises(InvalidInputError, match=r"pip install bitsandbytes"):
        quantize_language_model(copied, "int4")
    assert quantization_of(copied) == "none"
    assert quantize_language_model(copied, "none") is copied  # no backend needed
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "f.png")
    code = main(
        [
            "segment",
            "--model",
            str(tiny_bundle),
            "--image",
            str(tmp_path / "f.png"),
            "--instruction",
            "x",
            "--out",
            str(tmp_path / "m.png"),
            "--quantize",
            "int8",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--quantize int8 needs the bitsandbytes package" in err and "minelisa[quantize]" in err


def test_unknown_modes_are_refused_and_the_option_is_shared(tiny):
    model, _ = tiny
    with pytest.raises(InvalidInputError, match="unknown quantization 'int2'"):
        quantize_language_model(model, "int2")
    with pytest.raises(InvalidInputError, match="unknown quantization 'fp8'"):
        ModelOptions(path="bundle", quantize="fp8")
    spec = next(s for s in MODEL_OPTIONS if s.field == "quantize")
    assert (spec.flag, spec.parameter, spec.default) == ("--quantize", "quantize", "none")
    assert spec.choices == ("none", "int8", "int4")
    assert (
        ModelOptions.from_parameters(
            {s.parameter: s.default for s in MODEL_OPTIONS} | {"model_path": "b"}
        ).quantize
        == "none"
    )


def test_the_quantize_extra_admits_the_ci_pin():
    import ast

    from packaging.requirements import Requirement

    tree = ast.parse((REPO / "setup.py").read_text())
    extras = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXTRAS_REQUIRE"
    )
    pins = dict(
        line.split("==")
        for line in (REPO / "requirements-ci.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    (requirement,) = [Requirement(r) for r in extras["quantize"]]
    assert requirement.name == "bitsandbytes" and pins["bitsandbytes"] in requirement.specifier
