"""MageFlow (comfy/ldm/mage_flow, ComfyUI 0.33+): the joint block of comfy/ldm/qwen_image on a patch-1
latent; this family reuses that family's class (qwen_image.py) with MageFlow's own latent and positions.

Every block is qwen_image's QwenImageTransformerBlock, so attention is that family's: [text, image, edit
reference latents]; q/k/v (B, H, L, D) after QK-norm; the host's attn1 patches run there before RoPE
(img_slice = [text, total]); then RoPE (apply_rope1 with the pe_embedder table) and
optimized_attention_masked(q, k, v, heads, mask, skip_reshape=True), the text padding mask (from the
conditioning's attention_mask, made additive) passed by position. Blocks are tagged block_type "double",
block_index.
Positions (MageFlow's own process_img, latent (B, C, H, W), one token per latent pixel): image ids
(0, row - (h - h//2), col - (w - w//2)) (centred, rounding up for odd sizes); text ids 0 (unrotated); edit
references (index, ...) after the image, never normalised or shared.
Defaults are ours (no paper for MageFlow; those of the family whose block it reuses): every block (there are
no single-stream blocks), the reference's image keys shifted by the image width along the column axis,
lambda 1.1, AdaIN at the host's pre-RoPE hook; untested on real weights.
"""

from __future__ import annotations

from .qwen_image import QwenImageFamily


class MageFlowFamily(QwenImageFamily):
    name = "MageFlow"
    models = ("MageFlow",)
    host_modules = ("comfy.ldm.mage_flow.model",)
    defaults_from = ""

    def image_latent(self, x):
        return x  # (B, C, H, W): MageFlow's process_img reads a 4D latent


FAMILY = MageFlowFamily
