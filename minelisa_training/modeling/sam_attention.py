"""SAM image-encoder attention on PyTorch's fused scaled-dot-product kernel.

segment-anything's ``Attention`` writes the full attention matrix, adds the
decomposed relative-position terms to it, applies softmax and multiplies by V in
separate kernels; at 1024 px the four global layers of ViT-H hold 16 heads x
4096 x 4096 scores. Handing the relative-position terms to
``F.scaled_dot_product_attention`` as an additive mask gives the same result with
fused kernels. Parameter names are segment-anything's, so checkpoints load as-is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, ImageEncoderViT, get_rel_pos


class FusedRelPosAttention(Attention):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, HW, head_dim]
        bias = None
        if self.use_rel_pos:
            rh = get_rel_pos(h, h, self.rel_pos_h)
            rw = get_rel_pos(w, w, self.rel_pos_w)
            rq = q.reshape(b, self.num_heads, h, w, -1)
            # SAM adds these terms computed from the unscaled q (add_decomposed_rel_pos).
            rel_h = torch.einsum("bnhwc,hkc->bnhwk", rq, rh.to(q.dtype))
            rel_w = torch.einsum("bnhwc,wkc->bnhwk", rq, rw.to(q.dtype))
            bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(
                b, self.num_heads, h * w, h * w
            )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


def use_fused_attention(encoder: ImageEncoderViT) -> ImageEncoderViT:
    """Swaps every block's attention for ``FusedRelPosAttention`` (before weights are loaded)."""
    for block in encoder.blocks:
        old = block.attn
        size = None
        if old.use_rel_pos:  # rel_pos_* hold 2 * size - 1 rows
            size = ((old.rel_pos_h.shape[0] + 1) // 2, (old.rel_pos_w.shape[0] + 1) // 2)
        new = FusedRelPosAttention(
            old.qkv.in_features,
            num_heads=old.num_heads,
            qkv_bias=old.qkv.bias is not None,
            use_rel_pos=old.use_rel_pos,
            input_size=size,
        )
        new.load_state_dict(old.state_dict())
        block.attn = new.to(device=old.qkv.weight.device, dtype=old.qkv.weight.dtype)
    return encoder
