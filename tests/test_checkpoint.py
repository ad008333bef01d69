"""Loading the real layouts (LISA shards, CLIP dir, SAM .pth, bundle) with tiny random weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from minelisa_training import checkpoint
from minelisa_training.checkpoint import CheckpointError, detect_format, load_model, save_bundle
from minelisa_training.config import SamConfig
from minelisa_training.engine import SegmentationEngine
from minelisa_training.modeling.sam import build_sam, infer_sam_geometry
from minelisa_training.testing import write_clip_dir, write_lisa_checkpoint

BF16_PREFIXES = ("language_model.", "mm_projector.")


@pytest.fixture(scope="module")
def lisa_dirs(tiny, tmp_path_factory):
    model, tok = tiny
    root = tmp_path_factory.mktemp("lisa")
    clip = write_clip_dir(root / "clip-vit-large-patch14", model)
    bin_dir = write_lisa_checkpoint(root / "LISA-bin", model, tok, shards=2, safetensors=False)
    st_dir = write_lisa_checkpoint(
        root / "LISA-st", model, tok, shards=3, safetensors=True, with_inv_freq=False
    )
    return clip, bin_dir, st_dir


def _expected(key: str, value: torch.Tensor) -> torch.Tensor:
    # The public file stores the LLM and projector in bf16.
    return value.to(torch.bfloat16).float() if key.startswith(BF16_PREFIXES) else value.float()


@pytest.mark.parametrize("which", ["bin", "safetensors"])
def test_lisa_layout_loads_every_tensor(tiny, lisa_dirs, which):
    model, tok = tiny
    clip, bin_dir, st_dir = lisa_dirs
    path = bin_dir if which == "bin" else st_dir
    assert detect_format(path) == "lisa"
    index = json.loads(next(path.glob("*.index.json")).read_text())
    assert len(set(index["weight_map"].values())) == (2 if which == "bin" else 3)
    loaded = load_model(path, vision_tower=clip)
    got = loaded.model.state_dict()
    want = model.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key].float(), _expected(key, value)), key
    report = loaded.report
    n_layers = model.config.llm["num_hidden_layers"]
    assert len(report.ignored) == (n_layers if which == "bin" else 0)
    assert all(k.endswith("rotary_emb.inv_freq") for k in report.ignored)
    assert report.unexpected == [] and report.fresh == []
    assert loaded.model.config.sam == model.config.sam  # geometry read off the weights
    assert loaded.tokenizer.token_to_id("[SEG]") == tok.token_to_id("[SEG]")


def test_lisa_without_vision_tower_explains(lisa_dirs):
    _, bin_dir, _ = lisa_dirs
    with pytest.raises(CheckpointError, match="--vision-tower"):
        load_model(bin_dir)


def test_missing_and_unexpected_keys_are_named(tiny, lisa_dirs, tmp_path):
    model, tok = tiny
    clip, _, _ = lisa_dirs
    broken = write_lisa_checkpoint(tmp_path / "broken", model, tok, shards=1, safetensors=True)
    from safetensors.torch import load_file, save_file

    shard = next(broken.glob("*.safetensors"))
    sd = load_file(str(shard))
    del sd["model.text_hidden_fcs.0.2.weight"]
    sd["model.something_new.weight"] = torch.zeros(2)
    save_file(sd, str(shard))
    with pytest.raises(CheckpointError, match=r"missing.*text_hidden_fcs\.0\.2\.weight"):
        load_model(broken, vision_tower=clip)
    sd["model.text_hidden_fcs.0.2.weight"] = torch.zeros(256, model.config.hidden_size)
    save_file(sd, str(shard))
    assert load_model(broken, vision_tower=clip).report.unexpected == ["model.something_new.weight"]


def test_bad_paths_fail_specifically(tmp_path, lisa_dirs):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="neither a MineLISA bundle"):
        load_model(tmp_path)
    _, bin_dir, _ = lisa_dirs
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in bin_dir.iterdir():
        if not f.name.startswith("pytorch_model-00002"):
            (partial / f.name).write_bytes(f.read_bytes())
    with pytest.raises(
        CheckpointError, match="shards that are not there: pytorch_model-00002-of-00002.bin"
    ):
        load_model(partial)
    shard = partial / "pytorch_model-00002-of-00002.bin"
    shard.write_bytes((bin_dir / shard.name).read_bytes()[:1000])  # truncated download
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_model(partial)


def test_base_llava_plus_sam_pth(tiny, lisa_dirs, tmp_path):
    """Format (b): a LLaVA without SAM or [SEG] + a SAM .pth; the head starts fresh."""
    model, tok = tiny
    clip, _, _ = lisa_dirs
    base = write_lisa_checkpoint(tmp_path / "llava", model, tok, shards=1)
    shard = next(base.glob("*.bin"))
    sd = torch.load(shard, weights_only=True)
    seg = tok.token_to_id("[SEG]")
    llava = {
        k: v[:seg] if k in ("model.embed_tokens.weight", "lm_head.weight") else v
        for k, v in sd.items()
        if not k.startswith(("model.visual_model.", "model.text_hidden_fcs."))
    }
    torch.save(llava, shard)
    added = json.loads((base / "added_tokens.json").read_text())
    del added["[SEG]"]
    (base / "added_tokens.json").write_text(json.dumps(added))
    sam_pth = tmp_path / "sam_vit_tiny.pth"
    torch.save(
        {
            k[len("visual_model.") :]: v
            for k, v in model.state_dict().items()
            if k.startswith("visual_model.")
        },
        sam_pth,
    )

    assert detect_format(base) == "llava"
    with pytest.raises(CheckpointError, match="SAM .pth"):
        load_model(base, vision_tower=clip)
    loaded = load_model(base, vision_tower=clip, sam_checkpoint=sam_pth)
    assert loaded.tokenizer.token_to_id("[SEG]") == seg
    got = loaded.model.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith("visual_model."):
            assert torch.equal(got[key], value), key
    emb = got["language_model.model.embed_tokens.weight"]
    assert torch.equal(
        emb[:seg],
        _expected(
            "language_model.", model.state_dict()["language_model.model.embed_tokens.weight"][:seg]
        ),
    )
    assert any(k.startswith("text_hidden_fcs.") for k in loaded.report.fresh)
    assert f"language_model.model.embed_tokens.weight[{seg}:]" in loaded.report.fresh


@pytest.mark.parametrize(
    "cfg",
    [
        SamConfig(),  # ViT-H
        SamConfig(
            encoder_embed_dim=1024,
            encoder_depth=24,
            encoder_num_heads=16,
            encoder_global_attn_indexes=(5, 11, 17, 23),
        ),
        SamConfig(
            encoder_embed_dim=768,
            encoder_depth=12,
            encoder_num_heads=12,
            encoder_global_attn_indexes=(2, 5, 8, 11),
        ),
        SamConfig(
            encoder_embed_dim=96,
            encoder_depth=3,
            encoder_num_heads=3,
            encoder_global_attn_indexes=(2,),
            window_size=8,
            decoder_mlp_dim=512,
        ),
    ],
    ids=["vit_h", "vit_l", "vit_b", "custom"],
)
def test_sam_geometry_read_off_weights(cfg):
    with torch.device("meta"):
        sam = build_sam(cfg)
    assert infer_sam_geometry(sam.state_dict()) == cfg


def test_bundle_round_trip_gives_identical_masks(tiny, tmp_path, rgb_image):
    model, tok = tiny
    bundle = save_bundle(model, tok, tmp_path / "bundle")
    engine_a = SegmentationEngine(model, tok)
    engine_b = SegmentationEngine.from_pretrained(bundle)
    assert engine_b.report.format == "bundle"
    instructions = ["segment the cable", "where is the person near the conveyor?"]
    for a, b in zip(
        engine_a.segment_batch(rgb_image, instructions),
        engine_b.segment_batch(rgb_image, instructions),
    ):
        assert np.array_equal(a.mask, b.mask)


def test_failed_bundle_write_keeps_the_old_bundle(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    bundle = save_bundle(model, tok, tmp_path / "bundle")
    before = (bundle / "model.safetensors").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.bundle, "save_file", disk_full)
    with pytest.raises(OSError):
        save_bundle(model, tok, bundle)
    assert (bundle / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary left behind


def test_a_model_that_cannot_fit_is_refused_before_it_is_built(tiny_bundle, monkeypatch):
    from minelisa_training.checkpoint import memory
    from minelisa_training.modeling import lisa

    built = []
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1024**2)
    monkeypatch.setattr(lisa.MineLisaModel, "to", lambda self, *a, **k: built.append(1) or self)
    with pytest.raises(
        CheckpointError,
        match=r"needs about [\d.]+ GiB on cpu \(.*headroom\), but only 0\.0 GiB.*bf16",
    ):
        load_model(tiny_bundle, dtype="fp32")
    assert built == []  # refused from the meta-device estimate, nothing allocated
    monkeypatch.setenv(memory.SKIP_ENV, "1")
    assert load_model(tiny_bundle, dtype="fp32").report.format == "bundle"
