"""Small stand-ins for the real files, written in the real formats.

No weights can be downloaded here, so tests, benchmarks and the demo build a
tiny sentencepiece tokenizer and random-weight models with LISA's structure,
and write them exactly as the public files are laid out (LISA sharded `.bin` +
index with `inv_freq` keys, a CLIP directory, a SAM `.pth`, our bundle).
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import CLIPConfig, CLIPModel

from .checkpoint import construction, iter_lisa_state_dict, save_bundle
from .config import MineLisaConfig, lisa_7b_config, tiny_config
from .modeling.lisa import MineLisaModel
from .prompts import SYSTEM
from .tokenization import LisaTokenizer

# LISA-7B-v1's added tokens, in its order (ids follow the base vocabulary).
LISA_ADDED_TOKENS = ("<im_patch>", "<im_start>", "<im_end>", "[SEG]")

_CORPUS = [
    SYSTEM,
    "USER: Please segment the {} in this image. ASSISTANT: Sure, it is [SEG].",
    "Where is the {} near the conveyor? Segment the exposed {} on the left wall.",
    "What is in the roadway? Show me the {} next to the rail track and the support.",
]
_WORDS = (
    "person cable tube indicator metal fixture container tools materials door electrical electronic "
    "equipment mining anchoring support rescue rail area background roof wall floor light lamp miner "
    "helmet pipe hose conveyor belt shearer roadway tunnel coal gold mine sign pump fan"
).split()


def write_tiny_tokenizer(path: str | Path, vocab_size: int = 600) -> LisaTokenizer:
    """A Llama-like sentencepiece model (BPE, byte fallback, dummy prefix) plus
    LISA's added tokens, trained here in well under a second."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lines = [t.format(w, w) for t in _CORPUS for w in _WORDS]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    (path / "tokenizer.model").write_bytes(model.getvalue())
    base = spm.SentencePieceProcessor(model_file=str(path / "tokenizer.model")).get_piece_size()
    added = {tok: base + i for i, tok in enumerate(LISA_ADDED_TOKENS)}
    (path / "added_tokens.json").write_text(json.dumps(added, indent=2) + "\n")
    return LisaTokenizer.from_dir(path)


def build_model(
    config: MineLisaConfig,
    tokenizer: LisaTokenizer,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> MineLisaModel:
    """Random weights, built directly on `device` in `dtype` (a 7B model never exists in fp32)."""
    torch.manual_seed(seed)
    with construction(dtype, torch.device(device), skip_init=False):
        model = MineLisaModel(config, seg_token_id=tokenizer.token_to_id("[SEG]"))
    return model.to(device=device, dtype=dtype).eval()


def build_tiny(path: str | Path, seed: int = 0) -> tuple[MineLisaModel, LisaTokenizer]:
    """A random tiny model and its tokenizer (the tokenizer files are written to `path`)."""
    tokenizer = write_tiny_tokenizer(path)
    return build_model(tiny_config(len(tokenizer)), tokenizer, seed), tokenizer


def write_tiny_bundle(path: str | Path, seed: int = 0) -> Path:
    """A complete, loadable bundle with random tiny weights."""
    path = Path(path)
    model, tokenizer = build_tiny(path.parent / f".{path.name}-tokenizer", seed)
    return save_bundle(model, tokenizer, path, card={"note": "random tiny weights for tests"})


def lisa_7b_random(
    tokenizer: LisaTokenizer,
    device: str | torch.device = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    vocab_size: int | None = None,
) -> MineLisaModel:
    """LISA-7B sizes with random weights (for GPU benchmarks; 7.7 B parameters).

    Built directly on `device` in `dtype` (about 16 GB in bf16/fp16; never an fp32
    copy on the CPU). The vocabulary is LISA-7B-v1's 32,004 rows unless given (the
    tiny tokenizer's ids are a subset), so embedding and lm_head sizes are the real
    ones. `device="meta"` builds the structure without allocating any memory.
    """
    vocab = vocab_size if vocab_size is not None else max(len(tokenizer), 32004)
    if vocab < len(tokenizer):
        raise ValueError(f"vocab_size {vocab} is smaller than the tokenizer ({len(tokenizer)} ids)")
    return build_model(lisa_7b_config(vocab), tokenizer, device=device, dtype=dtype)


def write_clip_dir(path: str | Path, model: MineLisaModel) -> Path:
    """The model's CLIP tower written as a full CLIPModel directory (vision and a
    small text tower), the layout of openai/clip-vit-large-patch14."""
    path = Path(path)
    vision = model.vision_tower.config.to_dict()
    config = CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 100,
            "max_position_embeddings": 16,
        },
        vision_config=vision,
        projection_dim=int(vision.get("projection_dim", 32)),
    )
    clip = CLIPModel(config)
    if not next(model.vision_tower.parameters()).is_meta:  # meta: keep CLIPModel's random init
        clip.vision_model.load_state_dict(model.vision_tower.state_dict())
    clip.save_pretrained(path)
    return path


def _shard_groups(items: list, shards: int) -> list[list]:
    """`items` cut into `shards` consecutive groups of about equal bytes (as the public
    LISA shards are cut: a shard is held in memory while it is written)."""
    sizes = [v.numel() * 4 for _, v in items]
    total, groups, done = sum(sizes), [[] for _ in range(shards)], 0
    for (key, value), size in zip(items, sizes):
        index = min(shards - 1, done * shards // max(total, 1))
        groups[index].append((key, value))
        done += size
    return groups


def _stored(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The tensor to write: a copy in `dtype`; for a meta tensor (a model built on the
    meta device, e.g. LISA-7B sizes), random values drawn one tensor at a time, so a
    full-size checkpoint is written without the model ever being in memory."""
    if value.is_meta:
        return torch.empty(value.shape, dtype=dtype).normal_(0.0, 0.02)
    return value.detach().to(dtype).contiguous().clone()


# Key prefixes the public LISA-7B-v1 file stores in bf16 (SAM and the [SEG] head are fp32).
LISA_BF16_PREFIXES = (
    "model.embed_tokens.",
    "model.layers.",
    "model.norm.",
    "lm_head.",
    "model.mm_projector.",
)


def lisa_config_json(cfg: MineLisaConfig) -> dict:
    """LISA's own config.json (LLaVA v1 style) for a model configuration."""
    return {
        "architectures": ["LISAForCausalLM"],
        "model_type": "llava",
        **cfg.llm,
        "mm_hidden_size": cfg.mm_hidden_size,
        "mm_use_im_start_end": cfg.mm_use_im_start_end,
        "mm_vision_select_layer": cfg.mm_vision_select_layer,
        "mm_vision_tower": "openai/clip-vit-large-patch14",
        "out_dim": cfg.out_dim,
        "torch_dtype": "bfloat16",
        "use_mm_proj": True,
    }


def write_lisa_checkpoint(
    path: str | Path,
    model: MineLisaModel,
    tokenizer: LisaTokenizer,
    shards: int = 2,
    safetensors: bool = False,
    with_inv_freq: bool = True,
) -> Path:
    """Write `model` as a LISA release directory: config.json (LISA's own LLaVA
    format), tokenizer files, sharded weights under LISA's key names with an index,
    LLM and projector in bf16 as in the public file, and optional `inv_freq` keys.
    A model on the meta device is written with random weights, shard by shard."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    llm = model.config.llm
    (path / "config.json").write_text(json.dumps(lisa_config_json(model.config), indent=2) + "\n")
    tokenizer.save(path)
    items = list(iter_lisa_state_dict(model))
    if with_inv_freq:
        head_dim = llm["hidden_size"] // llm["num_attention_heads"]
        inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        items += [
            (f"model.layers.{i}.self_attn.rotary_emb.inv_freq", inv)
            for i in range(llm["num_hidden_layers"])
        ]
    weight_map: dict[str, str] = {}
    groups = _shard_groups(items, shards)
    suffix = "safetensors" if safetensors else "bin"
    stem = "model" if safetensors else "pytorch_model"
    for s in range(shards):
        name = f"{stem}-{s + 1:05d}-of-{shards:05d}.{suffix}"
        chunk = {}
        for key, value in groups[s]:
            is_bf16 = key.startswith(LISA_BF16_PREFIXES) and not key.endswith("inv_freq")
            chunk[key] = _stored(value, torch.bfloat16 if is_bf16 else torch.float32)
            weight_map[key] = name
        if safetensors:
            save_file(chunk, str(path / name), metadata={"format": "pt"})
        else:
            torch.save(chunk, path / name)
    index = f"{stem}.{suffix}.index.json"
    (path / index).write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2) + "\n"
    )
    return path


def with_token_bias(
    model: MineLisaModel, token_id: int, bias: float, keep_weights: bool = True
) -> MineLisaModel:
    """A copy of `model` whose LM head adds `bias` to one token's logit (tests of chat mode).

    With ``keep_weights=False`` the head's weights are zero, so the model always answers
    that token; with a small bias and the weights kept, it answers other tokens first.
    """
    model = copy.deepcopy(model)
    lm = model.language_model
    head = torch.nn.Linear(lm.lm_head.in_features, lm.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(lm.lm_head.weight if keep_weights else torch.zeros_like(head.weight))
        head.bias.zero_()
        head.bias[token_id] = bias
    lm.lm_head = head
    return model.eval()
