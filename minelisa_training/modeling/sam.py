"""SAM built from segment-anything's own modules, with its geometry read off the weights.

LISA hard-codes SAM ViT-H; reading the geometry from the checkpoint lets edge
deployments use ViT-B/L weights with the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from ..config import SamConfig
from ..transforms import SAM_PIXEL_MEAN, SAM_PIXEL_STD
from .sam_attention import use_fused_attention


def infer_sam_geometry(state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> SamConfig:
    """SamConfig from SAM weights whose keys start with `prefix` + `image_encoder.` etc."""
    enc = prefix + "image_encoder."
    try:
        patch_w = state_dict[enc + "patch_embed.proj.weight"]  # [embed, 3, p, p]
        pos = state_dict[enc + "pos_embed"]  # [1, S/p, S/p, embed]
    except KeyError as exc:
        raise KeyError(f"not SAM weights: missing {exc.args[0]}") from None
    embed_dim, patch = int(patch_w.shape[0]), int(patch_w.shape[-1])
    grid = int(pos.shape[1])
    depth = 0
    while f"{enc}blocks.{depth}.norm1.weight" in state_dict:
        depth += 1
    global_idx, window, head_dim = [], 0, 0
    for i in range(depth):
        rel = state_dict[f"{enc}blocks.{i}.attn.rel_pos_h"]  # [2*size-1, head_dim]
        head_dim = int(rel.shape[1])
        if rel.shape[0] == 2 * grid - 1:
            global_idx.append(i)
        else:
            window = (int(rel.shape[0]) + 1) // 2
    dec = prefix + "mask_decoder.transformer."
    dec_depth = 0
    while f"{dec}layers.{dec_depth}.mlp.lin1.weight" in state_dict:
        dec_depth += 1
    if dec_depth == 0:
        raise KeyError(f"not SAM weights: missing {dec}layers.0.mlp.lin1.weight")
    lin1 = state_dict[f"{dec}layers.0.mlp.lin1.weight"]  # [mlp_dim, prompt_dim]
    return SamConfig(
        encoder_embed_dim=embed_dim,
        encoder_depth=depth,
        encoder_num_heads=embed_dim // head_dim,
        encoder_global_attn_indexes=tuple(global_idx),
        patch_size=patch,
        window_size=window or 14,
        image_size=grid * patch,
        prompt_embed_dim=int(lin1.shape[1]),
        decoder_depth=dec_depth,
        decoder_mlp_dim=int(lin1.shape[0]),
    )


def build_sam(cfg: SamConfig) -> Sam:
    dim = cfg.prompt_embed_dim
    grid = cfg.embedding_size
    return Sam(
        image_encoder=use_fused_attention(
            ImageEncoderViT(
                depth=cfg.encoder_depth,
                embed_dim=cfg.encoder_embed_dim,
                img_size=cfg.image_size,
                mlp_ratio=4,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=cfg.encoder_num_heads,
                patch_size=cfg.patch_size,
                qkv_bias=True,
                use_rel_pos=True,
                global_attn_indexes=cfg.encoder_global_attn_indexes,
                window_size=cfg.window_size,
                out_chans=dim,
            )
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(cfg.image_size, cfg.image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=cfg.decoder_depth,
                embedding_dim=dim,
                mlp_dim=cfg.decoder_mlp_dim,
                num_heads=cfg.decoder_num_heads,
            ),
            transformer_dim=dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=list(SAM_PIXEL_MEAN),
        pixel_std=list(SAM_PIXEL_STD),
    )
