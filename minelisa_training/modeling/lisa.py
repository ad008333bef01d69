"""MineLISA: LISA's architecture on transformers' Llama and CLIP and segment-anything's SAM.

Image -> CLIP ViT (layer -2 patch tokens) -> mm_projector -> image tokens that
replace `<image>` in the prompt -> Llama. The last-layer hidden state that
predicts `[SEG]` -> text_hidden_fcs -> a 256-d SAM prompt -> SAM mask decoder
over SAM's image embedding -> mask logits at the original resolution.

Attribute names are LISA's checkpoint key names without its `model.` prefix,
so the mapping in checkpoint.py stays a short, explicit table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from ..config import MineLisaConfig
from ..prompts import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from .sam import build_sam


def build_projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind.startswith("mlp") and kind.endswith("x_gelu"):
        depth = int(kind[3:-6])
        layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        return nn.Sequential(*layers)
    raise ValueError(f"unknown mm_projector_type {kind!r}: use 'linear' or 'mlpNx_gelu'")


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over the supervised (answer) positions only."""
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
    )


@dataclass
class MultimodalInputs:
    inputs_embeds: torch.Tensor  # [N, T', H], right-padded
    attention_mask: torch.Tensor  # [N, T'] long
    labels: torch.Tensor | None  # [N, T'] with IGNORE_INDEX on prompt, image and padding
    seg_positions: list[list[int]]  # per prompt: positions whose hidden state predicts a [SEG]


@dataclass
class ModelInputs:
    """A training or evaluation batch: N prompts over I images.

    Pixels come from transforms.sam_view / clip_view. Callers whose encoders are
    frozen may pass precomputed `image_tokens` / `sam_embeddings` instead.
    """

    input_ids: torch.Tensor  # [N, T] with one IMAGE_TOKEN_INDEX per prompt, right-padded
    attention_mask: torch.Tensor  # [N, T]
    image_index: torch.Tensor  # [N] which image each prompt is about
    input_sizes: list[tuple[int, int]]  # per image: resized (h, w) inside SAM's square
    original_sizes: list[tuple[int, int]]  # per image: (H, W)
    clip_pixels: torch.Tensor | None = None  # [I, 3, 224, 224]
    sam_pixels: torch.Tensor | None = None  # [I, 3, 1024, 1024]
    image_tokens: torch.Tensor | None = None  # [I, P, H] (encode_clip output)
    sam_embeddings: torch.Tensor | None = None  # [I, 256, 64, 64] (encode_sam output)
    labels: torch.Tensor | None = None  # [N, T]


@dataclass
class ModelOutputs:
    mask_logits: list[torch.Tensor]  # per prompt: [k, H, W] at the original size, one per [SEG]
    seg_embeddings: list[torch.Tensor]  # per prompt: [k, 256]
    logits: torch.Tensor | None = None  # [N, T', V] when labels were given
    ce_loss: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


class MineLisaModel(nn.Module):
    def __init__(
        self, config: MineLisaConfig, seg_token_id: int, vision_tower: CLIPVisionModel | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.seg_token_id = seg_token_id
        llm_cfg = LlamaConfig(**config.llm)
        self.language_model = LlamaForCausalLM(llm_cfg)
        # A CLIP tower loaded by the caller (LISA files do not contain it) or a new one.
        self.vision_tower = (
            vision_tower
            if vision_tower is not None
            else CLIPVisionModel(CLIPVisionConfig(**config.vision))
        )
        self.mm_projector = build_projector(
            config.mm_projector_type, config.mm_hidden_size, config.hidden_size
        )
        self.visual_model = build_sam(config.sam)
        h = config.hidden_size
        self.text_hidden_fcs = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Linear(h, h),
                    nn.ReLU(inplace=True),
                    nn.Linear(h, config.out_dim),
                    nn.Dropout(0.0),
                )
            ]
        )

    def _apply(self, fn, recurse=True):
        # SAM's random positional-encoding matrix must stay fp32 whatever dtype the
        # model is cast to: its dense grid is built in fp32 and then cast (see decode_masks).
        super()._apply(fn, recurse)
        pe = self.visual_model.prompt_encoder.pe_layer
        if pe.positional_encoding_gaussian_matrix.is_floating_point():
            pe.positional_encoding_gaussian_matrix = pe.positional_encoding_gaussian_matrix.float()
        return self

    @property
    def dtype(self) -> torch.dtype:
        return next(self.mm_projector.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.mm_projector.parameters()).device

    # -- image encoders -------------------------------------------------
    def encode_clip(self, clip_pixels: torch.Tensor) -> torch.Tensor:
        out = self.vision_tower(clip_pixels.to(self.vision_tower.dtype), output_hidden_states=True)
        patches = out.hidden_states[self.config.mm_vision_select_layer][:, 1:]  # drop CLS
        return self.mm_projector(patches.to(self.dtype))

    def encode_sam(self, sam_pixels: torch.Tensor) -> torch.Tensor:
        encoder = self.visual_model.image_encoder
        return encoder(sam_pixels.to(encoder.patch_embed.proj.weight.dtype))

    # -- language model -------------------------------------------------
    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_tokens: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> MultimodalInputs:
        """Replace each prompt's IMAGE_TOKEN_INDEX by its image tokens; right-pad the batch."""
        embed = self.language_model.get_input_embeddings()
        seqs, label_seqs, seg_positions = [], [], []
        for n in range(input_ids.shape[0]):
            keep = attention_mask[n].bool()
            ids = input_ids[n][keep]
            where = (ids == IMAGE_TOKEN_INDEX).nonzero().flatten()
            if where.numel() != 1:
                raise ValueError(
                    f"prompt {n} must hold exactly one image placeholder, found {where.numel()}"
                )
            p = int(where[0])
            img = image_tokens[n]
            seqs.append(
                torch.cat([embed(ids[:p]), img.to(embed.weight.dtype), embed(ids[p + 1 :])])
            )
            shift = img.shape[0] - 1
            seg_pos = [
                (j + shift if j > p else j) - 1
                for j in (ids == self.seg_token_id).nonzero().flatten().tolist()
            ]
            seg_positions.append(seg_pos)
            if labels is not None:
                lab = labels[n][keep]
                ignore = torch.full(
                    (img.shape[0],), IGNORE_INDEX, dtype=lab.dtype, device=lab.device
                )
                label_seqs.append(torch.cat([lab[:p], ignore, lab[p + 1 :]]))
        length = max(s.shape[0] for s in seqs)
        h = seqs[0].shape[1]
        batch = seqs[0].new_zeros((len(seqs), length, h))
        mask = torch.zeros((len(seqs), length), dtype=torch.long, device=batch.device)
        out_labels = None
        if labels is not None:
            out_labels = torch.full(
                (len(seqs), length), IGNORE_INDEX, dtype=torch.long, device=batch.device
            )
        for n, s in enumerate(seqs):
            batch[n, : s.shape[0]] = s
            mask[n, : s.shape[0]] = 1
            if out_labels is not None:
                out_labels[n, : s.shape[0]] = label_seqs[n]
        return MultimodalInputs(batch, mask, out_labels, seg_positions)

    def run_language_model(
        self, inputs: MultimodalInputs, with_logits: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Last-layer (post-norm) hidden states, and logits only when asked: the
        vocabulary projection is the costliest single matmul and masks do not need it."""
        # use_cache=False: a KV cache of the whole prompt (~156 MiB per prompt at 7B) is
        # never read here; prompt prefixes are cached on purpose in prefix.py instead.
        out = self.language_model.model(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=inputs.attention_mask,
            use_cache=False,
        )
        hidden = out.last_hidden_state
        logits = self.language_model.lm_head(hidden) if with_logits else None
        return hidden, logits

    def seg_embeddings(
        self, hidden: torch.Tensor, seg_positions: list[list[int]]
    ) -> list[torch.Tensor]:
        head = self.text_hidden_fcs[0]
        flat = [hidden[n, pos] for n, pos in enumerate(seg_positions)]
        counts = [len(p) for p in seg_positions]
        projected = (
            head(torch.cat(flat)) if sum(counts) else hidden.new_zeros((0, self.config.out_dim))
        )
        return list(projected.split(counts))

    # -- mask decoder ---------------------------------------------------
    def decode_masks(
        self,
        sam_embedding: torch.Tensor,
        seg_embeddings: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
    ) -> torch.Tensor:
        """[k, H, W] mask logits for k prompts on one image (threshold at 0)."""
        sam = self.visual_model
        k = seg_embeddings.shape[0]
        if k == 0:
            return sam_embedding.new_zeros((0, *original_size), dtype=torch.float32)
        dtype = sam.mask_decoder.iou_token.weight.dtype
        # SAM's positional grid is fp32 by construction; the decoder runs in the model dtype.
        image_pe = sam.prompt_encoder.get_dense_pe().to(dtype)
        sparse = seg_embeddings.to(dtype).unsqueeze(1)
        dense = sam.prompt_encoder.no_mask_embed.weight.to(dtype).reshape(1, -1, 1, 1)
        dense = dense.expand(k, -1, *sam_embedding.shape[-2:])
        low_res, _ = sam.mask_decoder(
            image_embeddings=sam_embedding.to(dtype),
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        return sam.postprocess_masks(low_res.float(), input_size, original_size)[:, 0]

    # -- everything, for training and batch evaluation -------------------
    def forward(self, batch: ModelInputs) -> ModelOutputs:
        image_tokens = (
            batch.image_tokens
            if batch.image_tokens is not None
            else self.encode_clip(batch.clip_pixels)
        )
        sam_embeddings = (
            batch.sam_embeddings
            if batch.sam_embeddings is not None
            else self.encode_sam(batch.sam_pixels)
        )
        idx = batch.image_index
        inputs = self.embed_inputs(
            batch.input_ids, batch.attention_mask, image_tokens[idx], batch.labels
        )
        hidden, logits = self.run_language_model(inputs, with_logits=inputs.labels is not None)
        seg = self.seg_embeddings(hidden, inputs.seg_positions)
        masks = []
        for n, emb in enumerate(seg):
            i = int(idx[n])
            masks.append(
                self.decode_masks(
                    sam_embeddings[i : i + 1], emb, batch.input_sizes[i], batch.original_sizes[i]
                )
            )
        ce = answer_loss(logits, inputs.labels) if inputs.labels is not None else None
        return ModelOutputs(mask_logits=masks, seg_embeddings=seg, logits=logits, ce_loss=ce)
