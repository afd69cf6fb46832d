"""SD3 / SD3.5 (comfy/ldm/modules/diffusionmodules/mmdit.py): joint blocks, context first, no RoPE.

Each joint block calls attention once on [context (registers + text), image] with q and k as (B, L, H*D),
v as (B, L, H, D) and heads= as a keyword; SD3.5 Medium's MMDiT-X blocks then call an image-only
attention on the image tokens (same block key: both share when the block does). Nothing is tagged in
transformer_options: the call plan lists the calls (CallLayout.call_plan). Positions are an absolute
embedding added at the input, so there is nothing to undo before AdaIN and no position shift.
Defaults are ours (no paper): every block, lambda = 1.0 (untested on real weights).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..call_layout import CallLayout
from ..family import PlannedBlocksFamily, _split_heads, latent_grid

JOINT = "joint"


class MMDiTFamily(PlannedBlocksFamily):
    name = "SD3 / SD3.5"
    models = ("SD3", "SD3.5")
    host_modules = ("comfy.ldm.modules.diffusionmodules.mmdit",)
    groups = (JOINT,)
    default_groups = (JOINT,)
    default_key_scale = 1.0

    def heads_first(self, args: tuple, kwargs: dict) -> Optional[tuple]:
        if len(args) != 3 or kwargs.get("skip_reshape", False) or kwargs.get("heads") is None:
            return None
        q, k, v = args
        heads = kwargs["heads"]
        if not all(torch.is_tensor(t) for t in (q, k, v)) or q.dim() != 3 or k.dim() != 3 or v.dim() not in (3, 4):
            return None
        v = v.reshape(v.shape[0], v.shape[1], -1)  # (B, L, H, D) -> (B, L, H*D), as the backend views it
        return _split_heads(q, heads), _split_heads(k, heads), _split_heads(v, heads), heads

    @staticmethod
    def image_only_attention(diffusion_model) -> list[bool]:
        """The model's block structure: per joint block, whether it adds an image-only attention (MMDiT-X)."""
        return [bool(block.x_block.x_block_self_attn) for block in diffusion_model.joint_blocks]

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {JOINT: len(self.image_only_attention(diffusion_model))}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        context = diffusion_model.register_length + (0 if c_crossattn is None else c_crossattn.shape[1])
        h_len, w_len = latent_grid(x, diffusion_model.patch_size)
        return CallLayout(
            batch=batch, image_start=context, image_tokens=h_len * w_len, active=active,
            call_plan=call_plan(self.image_only_attention(diffusion_model), context, h_len * w_len),
        )


def call_plan(x_block_self_attn: list[bool], context_tokens: int, image_tokens: int) -> tuple:
    """(block key, image_start, tokens) per attention call: the joint call, then the image-only one (MMDiT-X)."""
    plan = []
    for index, image_only in enumerate(x_block_self_attn):
        plan.append(((JOINT, index), context_tokens, context_tokens + image_tokens))
        if image_only:
            plan.append(((JOINT, index), 0, image_tokens))
    return tuple(plan)


FAMILY = MMDiTFamily
