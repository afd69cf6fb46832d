"""Lumina 2 and Z-Image (comfy/ldm/lumina NextDiT): three stages per forward, blocks counted.

Per forward: the text-only context refiner (never shared), the image-only noise refiner ([image, image
padding]), then the main layers on [caption, caption padding, image, image padding]. Z-Image pads caption
and image tokens to multiples of dm.pad_tokens_multiple (32; pad tokens are neither normalised nor
shared); Lumina 2 pads nothing. q/k/v reach the backend as (B, H, L, D) after QK-norm and RoPE, grouped
K/V heads already repeated to the query heads. Nothing is tagged in transformer_options: the call plan
lists the calls (CallLayout.call_plan). RoPE ids: caption (i + 1, 0, 0), image (caption length + 1, row,
col), rope_options honoured as NextDiT.patchify_and_embed does.
Z-Image Omni (ComfyUI 0.33+: reference latents) is refused: see call_layout.
Defaults are ours (no paper): the main layers only, reference keys shifted by the image width,
lambda = 1.1 (AlignedGen's values carried over; untested on real weights).
"""

from __future__ import annotations

from ...batch_layout import NODE_NAME
from ...errors import StyleAlignedError
from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, PlannedBlocksFamily, latent_grid
from ..rope import grid_ids, image_and_shift_rotations

CONTEXT_REFINER = "context_refiner"  # read for the call plan; never shared (not a group)
NOISE_REFINER = "noise_refiner"
MAIN = "main"


class NextDiTFamily(PlannedBlocksFamily):
    name = "Lumina 2 / Z-Image"
    models = ("Lumina 2", "Z-Image")
    host_modules = ("comfy.ldm.lumina.model",)
    groups = (NOISE_REFINER, MAIN)
    default_groups = (MAIN,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2

    @staticmethod
    def stages(diffusion_model) -> dict[str, int]:
        """The model's block structure: blocks per stage, in execution order."""
        return {
            CONTEXT_REFINER: len(diffusion_model.context_refiner),
            NOISE_REFINER: len(diffusion_model.noise_refiner),
            MAIN: len(diffusion_model.layers),
        }

    def block_counts(self, diffusion_model) -> dict[str, int]:
        stages = self.stages(diffusion_model)
        return {group: stages[group] for group in self.groups}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        dm = diffusion_model
        if kwargs.get("ref_latents"):
            # Z-Image Omni (ComfyUI 0.33+): reference latents switch the model to [captions, SigLIP features,
            # references, image] in its main layers, an extra SigLIP refiner and doubled timesteps; the
            # generated image's positions and token ranges then differ from the plan below.
            raise StyleAlignedError(
                f"{NODE_NAME}: Z-Image Omni (a Z-Image / Lumina 2 model given reference latents, e.g. by "
                f"ReferenceLatent) is not supported yet: its joint sequence mixes the reference images and SigLIP "
                f"features with the generated image. Remove the reference latents from the conditioning or bypass "
                f"StyleAlignedPatch for this model."
            )
        caption = padded(c_crossattn.shape[1], dm.pad_tokens_multiple)
        h_len, w_len = latent_grid(x, dm.patch_size)
        rope = transformer_options.get("rope_options") or {}

        def make():
            # As NextDiT.patchify_and_embed: image ids (caption length + 1, row, col), rope_options honoured.
            ids = grid_ids(
                h_len, w_len, len(dm.rope_embedder.axes_dim), first=caption + 1,
                row_start=rope.get("shift_y", 0.0), col_start=rope.get("shift_x", 0.0),
                row_scale=rope.get("scale_y", 1.0), col_scale=rope.get("scale_x", 1.0),
            )
            return image_and_shift_rotations(dm.rope_embedder, ids, self.width_axis, x.device)

        image_rotations, shift_rotation = self.cached((h_len, w_len, caption, x.device, repr(rope)), make)
        stages = self.stages(dm)
        return CallLayout(
            batch=batch, image_start=caption, image_tokens=h_len * w_len, active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
            call_plan=call_plan(
                stages[CONTEXT_REFINER], stages[NOISE_REFINER], stages[MAIN], c_crossattn.shape[1], h_len * w_len,
                dm.pad_tokens_multiple),
        )


def padded(tokens: int, multiple) -> int:
    """Token count after the model pads to a multiple (None: no padding)."""
    return tokens if not multiple else tokens + (-tokens) % multiple


def call_plan(context_refiners: int, noise_refiners: int, main_layers: int, caption_tokens: int, image_tokens: int, multiple) -> tuple:
    """The attention calls of one forward in order: (block key or None, image_start, tokens)."""
    caption, image = padded(caption_tokens, multiple), padded(image_tokens, multiple)
    return (
        tuple((None, 0, caption) for _ in range(context_refiners))
        + tuple(((NOISE_REFINER, i), 0, image) for i in range(noise_refiners))
        + tuple(((MAIN, i), caption, caption + image) for i in range(main_layers))
    )


FAMILY = NextDiTFamily
