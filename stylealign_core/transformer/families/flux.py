"""Flux.1 (dev/schnell, Kontext), Flux.2, Chroma and LongCat-Image: comfy/ldm/flux and comfy/ldm/chroma.

Joint sequence [text, image, extra] where extra holds Kontext/edit reference latents. q/k/v reach the
backend as (B, H, L, D) after QK-norm and RoPE (flux/math.py attention, skip_reshape=True). Blocks are
tagged in transformer_options: block_type "double"/"single", block_index.
Defaults are AlignedGen's (Zhang et al., NeurIPS 2025): single-stream blocks only, reference keys at
positions shifted by the image width, lambda = 1.1.

Host half: image ids from the model's own process_img (Flux.1 / Flux.2, honouring rope_options) or as
Chroma builds them inline; rotations from the model's pe_embedder, cached per image grid and rope_options.
LongCat-Image loads as Flux and adds rope_options inside its own model call: the layout rebuilds its
rotations for the rope_options an attention call carries (CallLayout.rotations_for).
"""

from __future__ import annotations

import torch

from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, TaggedBlocksFamily
from ..rope import grid_ids, image_and_shift_rotations


class FluxFamily(TaggedBlocksFamily):
    name = "Flux"
    models = ("Flux.1", "Flux.2", "Chroma")
    host_modules = ("comfy.ldm.flux.model", "comfy.ldm.chroma.model")
    defaults_from = "AlignedGen"
    groups = ("double", "single")
    default_groups = ("single",)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    # The image-id axis that runs along the image width (ids are (index, row, col[, text position])).
    width_axis = 2

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {"double": len(diffusion_model.double_blocks), "single": len(diffusion_model.single_blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        text_tokens = 0 if c_crossattn is None else c_crossattn.shape[1]
        rope_options = transformer_options.get("rope_options")

        def rotations_for(rope_options):
            # Rebuilt when the attention call sees other rope_options than this wrapper (LongCat-Image adds
            # its offsets inside its own model call): the model's own positions, whoever set them.
            options = {"rope_options": rope_options} if rope_options is not None else {}
            return self.cached(
                (tuple(x.shape[-2:]), x.device, repr(rope_options)),
                lambda: image_and_shift_rotations(
                    diffusion_model.pe_embedder, image_ids(diffusion_model, x, options), self.width_axis),
            )

        image_rotations, shift_rotation = rotations_for(rope_options)
        return CallLayout(
            batch=batch,
            image_start=text_tokens,
            image_tokens=image_rotations.shape[2],
            active=active,
            image_rotations=image_rotations,
            shift_rotation=shift_rotation,
            rotations_for=rotations_for,
            rope_options_key=repr(rope_options),
        )


def image_ids(diffusion_model, x: torch.Tensor, transformer_options: dict) -> torch.Tensor:
    """(1, image_tokens, axes) position ids of the generated image, as the model makes them."""
    with torch.no_grad():
        if hasattr(diffusion_model, "process_img"):  # Flux.1 / Flux.2 (honours rope_options)
            return diffusion_model.process_img(x[:1], transformer_options=transformer_options)[1]
    # Chroma builds its ids inline in _forward: (0, row, col) over the rounded patch grid.
    patch = diffusion_model.patch_size
    h_len = (x.shape[-2] + patch // 2) // patch
    w_len = (x.shape[-1] + patch // 2) // patch
    return grid_ids(h_len, w_len, len(diffusion_model.params.axes_dim), device=x.device)


FAMILY = FluxFamily
