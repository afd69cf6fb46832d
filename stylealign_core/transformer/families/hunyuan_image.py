"""HunyuanImage 2.1 (comfy/ldm/hunyuan_video, config HunyuanImage21): double and single blocks from
comfy/ldm/flux/layers.py.

The module's HunyuanVideo class also runs HunyuanVideo (1.0 and 1.5) and the HunyuanImage 2.1 refiner;
those patch in 3D (frames) and are not recognised here (the node's "not supported" error names them).
HunyuanImage 2.1 is the 2D-patch model: image ids (row, col) on two RoPE axes (img_ids_2d), text ids 0.
Joint sequence: [text, ByT5 glyph text, image] on ComfyUI 0.33 (single blocks set img_slice), [image,
text, glyph text] on 0.3.75 (its double blocks are built with flipped_img_txt): the order is read from the
model. Attention (flux/layers.py blocks): q/k/v (B, H, L, D) after QK-norm; on 0.33 the host calls attn1
patches there, before RoPE; flux/math.py attention applies RoPE and calls
optimized_attention(q, k, v, heads, skip_reshape=True, mask=text padding mask or None). Blocks are tagged
block_type "double"/"single", block_index. The text token refiner's attention carries no block tags and
passes through.
Defaults are ours (no paper for HunyuanImage; AlignedGen's choice carried over): the single-stream
blocks, the reference's image keys shifted by the image width along the column axis, lambda 1.1;
untested on real weights.
"""

from __future__ import annotations

from ...batch_layout import NODE_NAME
from ...errors import StyleAlignedError
from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, TaggedBlocksFamily
from ..rope import image_and_shift_rotations

DOUBLE = "double"
SINGLE = "single"
# Inputs of HunyuanVideo's image-to-video modes: they put tokens around the image's.
VIDEO_INPUTS = ("ref_latent", "guiding_frame_index", "clip_fea")


class HunyuanImageFamily(TaggedBlocksFamily):
    name = "HunyuanImage"
    models = ("HunyuanImage 2.1",)
    host_modules = ("comfy.ldm.hunyuan_video.model",)
    defaults_from = ""
    groups = (DOUBLE, SINGLE)
    default_groups = (SINGLE,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 1  # ids (row, col)

    @classmethod
    def recognises(cls, diffusion_model) -> bool:
        # HunyuanVideo 1.0 / 1.5 and the HunyuanImage 2.1 refiner patch in 3D; HunyuanImage 2.1 in 2D.
        return super().recognises(diffusion_model) and len(getattr(diffusion_model, "patch_size", ())) != 3

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {DOUBLE: len(diffusion_model.double_blocks), SINGLE: len(diffusion_model.single_blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        given = [name for name in VIDEO_INPUTS if kwargs.get(name) is not None]
        if given:
            raise StyleAlignedError(
                f"{NODE_NAME}: HunyuanImage 2.1 was given {given[0]}, an input of HunyuanVideo's image-to-video "
                f"modes that StyleAligned does not support. Remove it or bypass the node for this model."
            )
        text_tokens = c_crossattn.shape[1]
        glyph_text = kwargs.get("txt_byt5")
        if glyph_text is not None and getattr(diffusion_model, "byt5_in", None) is not None:
            text_tokens += glyph_text.shape[1]  # the ByT5 glyph tokens follow the text tokens
        image_rotations, shift_rotation = self.cached(
            (tuple(x.shape[-2:]), x.device),
            lambda: image_and_shift_rotations(diffusion_model.pe_embedder, diffusion_model.img_ids_2d(x[:1]), self.width_axis),
        )
        return CallLayout(
            batch=batch, image_start=0 if _image_first(diffusion_model) else text_tokens,
            image_tokens=image_rotations.shape[2], active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
        )


def _image_first(diffusion_model) -> bool:
    """Older hosts (ComfyUI 0.3.75) build the blocks on [image, text] (flipped_img_txt); 0.33 on [text, image]."""
    blocks = diffusion_model.double_blocks
    return bool(len(blocks) and getattr(blocks[0], "flipped_img_txt", False))


FAMILY = HunyuanImageFamily
