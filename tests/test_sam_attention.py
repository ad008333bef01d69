"""The fused SAM attention computes what segment-anything's Attention computes."""

from __future__ import annotations

import copy

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import Attention

from minelisa_training.modeling.sam_attention import FusedRelPosAttention, use_fused_attention


@pytest.mark.parametrize("size,batch", [((14, 14), 4), ((8, 8), 1), ((6, 10), 2)])
def test_fused_attention_matches_segment_anything(size, batch) -> None:
    torch.manual_seed(0)
    ref = Attention(48, num_heads=3, qkv_bias=True, use_rel_pos=True, input_size=size)
    with torch.no_grad():  # SAM zero-initialises the relative positions; make them count
        ref.rel_pos_h.normal_(0, 0.5)
        ref.rel_pos_w.normal_(0, 0.5)
    fused = FusedRelPosAttention(48, num_heads=3, qkv_bias=True, use_rel_pos=True, input_size=size)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(batch, *size, 48)
    expected = ref(x)
    got = fused(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # Not trivially equal: without the relative-position terms the output differs.
    plain = FusedRelPosAttention(48, num_heads=3, qkv_bias=True, use_rel_pos=False)
    plain.load_state_dict(
        {k: v for k, v in ref.state_dict().items() if not k.startswith("rel_pos")}
    )
    assert (plain(x) - expected).abs().max() > 1e-2


def test_encoder_with_fused_attention_matches_and_keeps_keys() -> None:
    torch.manual_seed(1)
    ref = ImageEncoderViT(
        img_size=128,
        patch_size=16,
        embed_dim=64,
        depth=2,
        num_heads=2,
        use_rel_pos=True,
        window_size=4,
        global_attn_indexes=(1,),
        out_chans=32,
    )
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "rel_pos" in name:
                p.normal_(0, 0.5)
    fused = use_fused_attention(copy.deepcopy(ref))
    assert all(isinstance(b.attn, FusedRelPosAttention) for b in fused.blocks)
    assert list(fused.state_dict()) == list(ref.state_dict())
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), ref(x), rtol=1e-4, atol=1e-4)
