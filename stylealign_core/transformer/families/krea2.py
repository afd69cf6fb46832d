"""Krea 2 (comfy/ldm/krea2, ComfyUI 0.33+): one stream of single blocks over [text, image, edit references].

Attention (krea2 Attention.forward): q (B, H, L, D) and k/v (B, H_kv, L, D) with grouped K/V heads, after
per-head QK RMSNorm; there the host calls attn1 patches before RoPE (extra_options carry block_type,
block_index and img_slice = [text, total]); then RoPE with the pe_embedder table, k/v repeated to the
H query heads, and optimized_attention_masked(q, k, v, heads, mask=None, skip_reshape=True). Blocks are
tagged block_type "single", block_index. The text-fusion adapter's attention runs before the blocks with
no block tags (and other rows): it passes through.
Positions: text ids 0, image ids (0, row, col) over the patch grid (the model's process_img), edit
references (index, row, col) after the image (never normalised or shared). RoPE on 3 axes of the head dim.
Defaults are ours (no paper for Krea 2), AlignedGen's principles: every block (all are single-stream), the
reference's image keys at positions shifted by the image width along the column axis, lambda 1.1, AdaIN of
the targets' image q/k at the host's pre-RoPE hook (the published order, nothing unrotated; on the K/V
heads before the model repeats them, which is the same per head); untested on real weights.
"""

from __future__ import annotations

from ...batch_layout import NODE_NAME
from ...errors import StyleAlignedError
from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, TaggedBlocksFamily
from ..rope import image_and_shift_rotations

SINGLE = "single"


class Krea2Family(TaggedBlocksFamily):
    name = "Krea 2"
    models = ("Krea 2",)
    host_modules = ("comfy.ldm.krea2.model",)
    defaults_from = ""
    groups = (SINGLE,)
    default_groups = (SINGLE,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2  # ids (index, row, col)

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {SINGLE: len(diffusion_model.blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        if x.dim() == 5 and x.shape[2] != 1:
            # The model folds frames into its batch: its rows would no longer be the batch's images.
            raise StyleAlignedError(
                f"{NODE_NAME}: Krea 2 was given a latent with {x.shape[2]} frames; StyleAligned shares between the "
                f"images of a batch of single frames. Use an image latent or bypass the node for this model."
            )
        image = x[:1, :, 0] if x.dim() == 5 else x[:1]  # (1, C, H, W) as the model reads a one-frame latent
        image_rotations, shift_rotation = self.cached(
            (tuple(image.shape[-2:]), x.device),
            lambda: image_and_shift_rotations(diffusion_model.pe_embedder, diffusion_model.process_img(image)[1], self.width_axis),
        )
        return CallLayout(
            batch=batch, image_start=c_crossattn.shape[1], image_tokens=image_rotations.shape[2], active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
        )


FAMILY = Krea2Family
