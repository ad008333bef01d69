"""Model configuration: every dimension of MineLISA in one dataclass.

Dimensions come from a checkpoint's files, never from code: `from_lisa_config`
reads a LISA `config.json` (LISA's own LLaVA config, not today's transformers
`LlavaConfig`), SAM geometry is read off the SAM weights (modeling/sam.py), and
the two presets below describe the real LISA-7B sizes and a tiny model for
tests and demos.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# LlamaConfig fields carried over from a LISA config.json when present.
_LLAMA_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "rms_norm_eps",
    "max_position_embeddings",
    "rope_theta",
    "hidden_act",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
)


CLIP_VIT_L14: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}


@dataclass
class SamConfig:
    """Geometry of SAM's image encoder and mask decoder (defaults: ViT-H)."""

    encoder_embed_dim: int = 1280
    encoder_depth: int = 32
    encoder_num_heads: int = 16
    encoder_global_attn_indexes: tuple[int, ...] = (7, 15, 23, 31)
    patch_size: int = 16
    window_size: int = 14
    image_size: int = 1024
    prompt_embed_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8

    @property
    def embedding_size(self) -> int:
        return self.image_size // self.patch_size


@dataclass
class MineLisaConfig:
    llm: dict[str, Any]
    vision: dict[str, Any] = field(default_factory=lambda: dict(CLIP_VIT_L14))
    sam: SamConfig = field(default_factory=SamConfig)
    mm_projector_type: str = "linear"  # LISA-7B-v1; "mlp2x_gelu" for LLaVA-1.5-style projectors
    mm_vision_select_layer: int = -2
    mm_use_im_start_end: bool = True
    out_dim: int = 256
    # Where the CLIP tower comes from: a local directory, or a hub id that a
    # `--vision-tower DIR` must override because nothing is downloaded.
    vision_tower: str | None = None

    @property
    def hidden_size(self) -> int:
        return int(self.llm["hidden_size"])

    @property
    def mm_hidden_size(self) -> int:
        return int(self.vision["hidden_size"])

    @property
    def num_image_tokens(self) -> int:
        return (int(self.vision["image_size"]) // int(self.vision["patch_size"])) ** 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MineLisaConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MineLISA config keys: {', '.join(unknown)}")
        sam = dict(data.pop("sam", {}))
        if "encoder_global_attn_indexes" in sam:
            sam["encoder_global_attn_indexes"] = tuple(sam["encoder_global_attn_indexes"])
        return cls(sam=SamConfig(**sam), **data)

    @classmethod
    def from_lisa_config(cls, cfg: dict[str, Any], sam: SamConfig | None = None) -> MineLisaConfig:
        """Read a LISA / LLaVA v1 `config.json` (LISA's own format)."""
        if "hidden_size" not in cfg or "num_hidden_layers" not in cfg:
            raise ValueError(
                "config.json has no hidden_size/num_hidden_layers: not a LISA/LLaVA config"
            )
        llm = {k: cfg[k] for k in _LLAMA_KEYS if k in cfg}
        if "max_position_embeddings" not in llm and "max_sequence_length" in cfg:
            llm["max_position_embeddings"] = cfg["max_sequence_length"]
        vision = dict(CLIP_VIT_L14)
        if "mm_hidden_size" in cfg:
            vision["hidden_size"] = int(cfg["mm_hidden_size"])
        projector = cfg.get("mm_projector_type", "linear")
        return cls(
            llm=llm,
            vision=vision,
            sam=sam or SamConfig(),
            mm_projector_type=projector,
            mm_vision_select_layer=int(cfg.get("mm_vision_select_layer", -2)),
            mm_use_im_start_end=bool(cfg.get("mm_use_im_start_end", True)),
            out_dim=int(cfg.get("out_dim", 256)),
            vision_tower=cfg.get("mm_vision_tower") or cfg.get("vision_tower"),
        )


def lisa_7b_config(vocab_size: int = 32004) -> MineLisaConfig:
    """The real LISA-7B-v1 sizes (Llama-7B, CLIP ViT-L/14 at 224 px, SAM ViT-H)."""
    return MineLisaConfig(
        llm={
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": vocab_size,
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": 2048,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 0,
        },
        vision_tower="openai/clip-vit-large-patch14",
    )


def tiny_config(vocab_size: int) -> MineLisaConfig:
    """A model small enough for CPU tests and the demo, with LISA's structure intact.

    The CLIP tower keeps 224 px / patch 14 so the image still becomes 256 tokens,
    and SAM keeps its 1024 px input and 256-d prompt space.
    """
    return MineLisaConfig(
        llm={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "vocab_size": vocab_size,
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": 1024,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 0,
        },
        vision={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "image_size": 224,
            "patch_size": 14,
            "projection_dim": 32,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
        },
        sam=SamConfig(
            encoder_embed_dim=64,
            encoder_depth=2,
            encoder_num_heads=2,
            encoder_global_attn_indexes=(1,),
            decoder_depth=2,
            decoder_mlp_dim=256,
        ),
    )
