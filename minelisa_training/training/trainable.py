"""Which weights train: LoRA on the LLM's q_proj/v_proj, the SAM mask decoder, the [SEG]
head, and the embedding / output rows of the tokens added to the base vocabulary.

New-token rows use a *trainable-rows* approach rather than a gradient mask: the
full embedding and lm_head matrices stay frozen, and a small ``[k, H]`` parameter
replaces their rows for the k added ids. Only ``k * H`` values get optimizer
state (a gradient mask would keep AdamW moments for all 32k rows, and weight
decay would still move the masked rows). Export folds the rows back into the
matrices, so a bundle has plain Llama weights.

LoRA targets are matched with a regular expression anchored at
``language_model.``: a bare ``["q_proj", "v_proj"]`` list would also adapt the
CLIP tower's attention, which the recipe keeps frozen.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import LoraSection, TrainableSection


class RowDeltaEmbedding(nn.Module):
    """An embedding whose rows ``row_ids`` come from the trainable ``rows``; the rest is frozen."""

    def __init__(self, base: nn.Embedding, row_ids: Sequence[int]) -> None:
        super().__init__()
        self.base = base
        ids = torch.tensor(sorted(set(row_ids)), dtype=torch.long, device=base.weight.device)
        self.register_buffer("row_ids", ids, persistent=False)
        self.rows = nn.Parameter(base.weight.detach()[ids].clone())
        slot = torch.full((base.num_embeddings,), -1, dtype=torch.long, device=ids.device)
        slot[ids] = torch.arange(len(ids), device=ids.device)
        self.register_buffer("slot", slot, persistent=False)

    @property
    def weight(self) -> torch.Tensor:  # callers read the dtype/device off it
        return self.base.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.base(input_ids)
        slot = self.slot[input_ids]
        replacement = self.rows[slot.clamp(min=0)].to(out.dtype)
        return torch.where((slot >= 0).unsqueeze(-1), replacement, out)

    def merged(self) -> nn.Embedding:
        with torch.no_grad():
            self.base.weight[self.row_ids] = self.rows.to(self.base.weight.dtype)
        return self.base


class RowDeltaLinear(nn.Module):
    """lm_head whose output rows ``row_ids`` come from the trainable ``rows``."""

    def __init__(
        self, base: nn.Linear, row_ids: Sequence[int], rows: nn.Parameter | None = None
    ) -> None:
        super().__init__()
        if base.bias is not None:
            raise ValueError("lm_head with a bias is not supported by the new-token rows")
        self.base = base
        ids = torch.tensor(sorted(set(row_ids)), dtype=torch.long, device=base.weight.device)
        self.register_buffer("row_ids", ids, persistent=False)
        # Tied embeddings share one rows parameter with the input side.
        self.rows = rows if rows is not None else nn.Parameter(base.weight.detach()[ids].clone())

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = self.base(hidden)
        new = F.linear(hidden, self.rows.to(hidden.dtype))
        return out.index_copy(-1, self.row_ids, new.to(out.dtype))

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight[self.row_ids] = self.rows.to(self.base.weight.dtype)
        return self.base


# Trainable-parameter groups, first match wins; names are those of the prepared model.
GROUPS: OrderedDict[str, str] = OrderedDict(
    [
        ("LoRA (q_proj, v_proj)", r"\.lora_(A|B)\."),
        ("new token rows", r"^language_model\.(model\.embed_tokens|lm_head)\.rows$"),
        ("language model", r"^language_model\."),
        ("SAM mask decoder", r"^visual_model\.mask_decoder\."),
        ("SAM prompt encoder", r"^visual_model\.prompt_encoder\."),
        ("SAM image encoder", r"^visual_model\.image_encoder\."),
        ("[SEG] head (text_hidden_fcs)", r"^text_hidden_fcs\."),
        ("mm_projector", r"^mm_projector\."),
        ("CLIP tower", r"^vision_tower\."),
    ]
)


def group_of(name: str) -> str:
    for group, pattern in GROUPS.items():
        if re.search(pattern, name):
            return group
    return "other"


def parameter_counts(model: nn.Module) -> OrderedDict[str, tuple[int, int]]:
    """group -> (trainable, total) parameter counts; a shared tensor counts once."""
    counts: OrderedDict[str, list[int]] = OrderedDict((g, [0, 0]) for g in [*GROUPS, "other"])
    for name, p in model.named_parameters():
        c = counts[group_of(name)]
        c[1] += p.numel()
        if p.requires_grad:
            c[0] += p.numel()
    return OrderedDict((g, (t, n)) for g, (t, n) in counts.items() if n)


def format_parameter_counts(model: nn.Module) -> str:
    rows = parameter_counts(model)
    width = max(len(g) for g in rows)
    lines = [f"{'group':<{width}}  {'trainable':>13}  {'total':>13}"]
    for group, (trainable, total) in rows.items():
        lines.append(f"{group:<{width}}  {trainable:>13,}  {total:>13,}")
    t = sum(v[0] for v in rows.values())
    n = sum(v[1] for v in rows.values())
    lines.append(f"{'all':<{width}}  {t:>13,}  {n:>13,}  ({100.0 * t / max(n, 1):.3f}% trainable)")
    return "\n".join(lines)


def lora_target_regex(target_modules: Sequence[str]) -> str:
    """Full-name regex (peft uses re.fullmatch) limited to the language model's layers."""
    names = "|".join(re.escape(m) for m in target_modules)
    return rf"language_model\.model\.layers\.\d+\..*\b({names})"


def add_new_token_rows(model: nn.Module, new_token_ids: Sequence[int]) -> None:
    llm = model.language_model
    embed = llm.get_input_embeddings()
    head = llm.get_output_embeddings()
    tied = head.weight is embed.weight
    row_embed = RowDeltaEmbedding(embed, new_token_ids)
    llm.set_input_embeddings(row_embed)
    llm.set_output_embeddings(
        RowDeltaLinear(head, new_token_ids, rows=row_embed.rows if tied else None)
    )


def prepare_for_training(
    model: nn.Module,
    new_token_ids: Sequence[int],
    trainable: TrainableSection,
    lora: LoraSection,
) -> nn.Module:
    """Adds LoRA adapters / new-token rows as the recipe says and sets ``requires_grad``.

    Works in place on the loaded model, so weights that came from a checkpoint (for
    LISA: the trained mask decoder and [SEG] head) are the ones that train.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    if trainable.new_token_rows and new_token_ids and not trainable.language_model:
        add_new_token_rows(model, new_token_ids)
    if trainable.lora:
        from peft import LoraConfig, inject_adapter_in_model

        lora_config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora_target_regex(lora.target_modules),
            # The paper: A Gaussian-initialised, B zero, so training starts from the base model.
            init_lora_weights="gaussian",
            bias="none",
        )
        inject_adapter_in_model(lora_config, model)
    for name, p in model.named_parameters():
        group = group_of(name)
        p.requires_grad_(
            (group == "LoRA (q_proj, v_proj)" and trainable.lora)
            or (group == "new token rows")
            or (group == "language model" and trainable.language_model and "lora_" not in name)
            or (group == "SAM mask decoder" and trainable.mask_decoder)
            or (group == "SAM prompt encoder" and trainable.sam_prompt_encoder)
            or (group == "SAM image encoder" and trainable.sam_image_encoder)
            or (group == "[SEG] head (text_hidden_fcs)" and trainable.text_hidden_fcs)
            or (group == "mm_projector" and trainable.mm_projector)
        )
    return model


def merge_for_serving(model: nn.Module) -> nn.Module:
    """Folds LoRA into q_proj/v_proj and new-token rows into the matrices, in place.

    The result has exactly the module structure of an untouched MineLisaModel, so
    checkpoint.save_bundle writes plain weights.
    """
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge(safe_merge=True)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
    llm = model.language_model
    if isinstance(llm.get_input_embeddings(), RowDeltaEmbedding):
        llm.set_input_embeddings(llm.get_input_embeddings().merged())
    if isinstance(llm.get_output_embeddings(), RowDeltaLinear):
        llm.set_output_embeddings(llm.get_output_embeddings().merged())
    return model
