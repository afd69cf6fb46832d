"""Reading a transformer (DiT) model for the transformer route: which family, its blocks, each call's layout.

Host glue only: positions and rotations come from the model's own helpers (process_img, pe_embedder), so
theta, axes, patch size and rope_options are the model's. The maths lives in stylealign_core.transformer.
A family's host side is one entry of FAMILY_HOSTS: the diffusion-model module it covers, the core family,
its block counts, and its per-call layout builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..stylealign_core import BatchLayout, HeldReference, StyleAlignedError, StyleAlignedOptions
from ..stylealign_core.transformer import CallLayout, FluxFamily, SharedAttentionOverride, TransformerFamily, TransformerSharing
from ..stylealign_core.transformer.families.hidream import HiDreamFamily
from ..stylealign_core.transformer.families.mmdit import MMDiTFamily
from ..stylealign_core.transformer.families.next_dit import NextDiTFamily
from ..stylealign_core.transformer.families.qwen_image import QwenImageFamily
from ..stylealign_core.transformer.family import PlannedBlocksFamily
from ..stylealign_core.transformer.model_call import TransformerModelCall
from ..stylealign_core.transformer.pre_rope_patch import PreRopeAdaIN
from .dit_layouts import HiDreamCallLayout, MMDiTCallLayout, NextDiTCallLayout, QwenImageCallLayout
from .family_names import supported_models_text
from .patch_set import install_patch_set


@dataclass(frozen=True)
class FamilyHost:
    family: TransformerFamily
    block_counts: Callable[[torch.nn.Module], dict]
    # family -> builder(diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout
    call_layout: Callable[..., Callable[..., CallLayout]]


def _flux_block_counts(diffusion_model) -> dict:
    return {"double": len(diffusion_model.double_blocks), "single": len(diffusion_model.single_blocks)}


def _flux_image_ids(diffusion_model, x: torch.Tensor, transformer_options: dict) -> torch.Tensor:
    """(1, image_tokens, axes) position ids of the generated image, as the model makes them."""
    one = x[:1]
    if hasattr(diffusion_model, "process_img"):  # Flux.1 / Flux.2 (honours rope_options)
        return diffusion_model.process_img(one, transformer_options=transformer_options)[1]
    # Chroma builds its ids inline in _forward: (0, row, col) over the rounded patch grid.
    patch = diffusion_model.patch_size
    h_len = (x.shape[-2] + patch // 2) // patch
    w_len = (x.shape[-1] + patch // 2) // patch
    ids = torch.zeros((h_len, w_len, len(diffusion_model.params.axes_dim)), device=x.device, dtype=torch.float32)
    ids[:, :, 1] += torch.arange(h_len, device=x.device, dtype=torch.float32).unsqueeze(1)
    ids[:, :, 2] += torch.arange(w_len, device=x.device, dtype=torch.float32).unsqueeze(0)
    return ids.reshape(1, h_len * w_len, -1)


class FluxCallLayout:
    """Per-call layout for Flux.1/Flux.2/Chroma: [text, image, extra]; rotations from pe_embedder, cached
    per image grid (the same for every step of a sampling run)."""

    def __init__(self, family: FluxFamily):
        self.family = family
        self._cache: dict = {}

    def __call__(
        self, diffusion_model, batch: BatchLayout, active: bool, x, c_crossattn, transformer_options: dict, kwargs: dict
    ) -> CallLayout:
        text_tokens = 0 if c_crossattn is None else c_crossattn.shape[1]
        rope_options = transformer_options.get("rope_options")

        def rotations_for(rope_options):
            # Rebuilt when the attention call sees other rope_options than this wrapper (LongCat-Image adds
            # its offsets inside its own model call): the model's own positions, whoever set them.
            key = (tuple(x.shape[-2:]), x.device, repr(rope_options))
            cached = self._cache.get(key)
            if cached is None:
                cached = self._cache[key] = self._rotations(diffusion_model, x, {"rope_options": rope_options} if rope_options is not None else {})
            return cached

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

    def _rotations(self, diffusion_model, x, transformer_options):
        embedder = diffusion_model.pe_embedder
        with torch.no_grad():
            ids = _flux_image_ids(diffusion_model, x, transformer_options)
            image_rotations = embedder(ids)  # (1, 1, N, D/2, 2, 2)
            # AlignedGen's ShiftPE: the reference's keys move by the image width (in position units)
            # along the width axis, as if the reference sat right of the target.
            axis = self.family.width_axis
            shift = torch.zeros((1, 1, ids.shape[-1]), device=ids.device, dtype=torch.float32)
            shift[..., axis] = ids[0, :, axis].max() - ids[0, :, axis].min() + 1
            shift_rotation = embedder(shift)  # (1, 1, 1, D/2, 2, 2)
        return image_rotations.float(), shift_rotation.float()


FLUX_MODULES = ("comfy.ldm.flux.model", "comfy.ldm.chroma.model")

# diffusion-model module -> how to read it.
FAMILY_HOSTS: dict[str, FamilyHost] = {
    module: FamilyHost(FluxFamily(), _flux_block_counts, FluxCallLayout) for module in FLUX_MODULES
}
FAMILY_HOSTS.update({
    "comfy.ldm.qwen_image.model": FamilyHost(
        QwenImageFamily(), lambda dm: {"double": len(dm.transformer_blocks)}, QwenImageCallLayout),
    "comfy.ldm.lumina.model": FamilyHost(
        NextDiTFamily(), lambda dm: {"noise_refiner": len(dm.noise_refiner), "main": len(dm.layers)}, NextDiTCallLayout),
    "comfy.ldm.modules.diffusionmodules.mmdit": FamilyHost(
        MMDiTFamily(), lambda dm: {"joint": len(dm.joint_blocks)}, MMDiTCallLayout),
    "comfy.ldm.hidream.model": FamilyHost(
        HiDreamFamily(), lambda dm: {"double": len(dm.double_stream_blocks), "single": len(dm.single_stream_blocks)}, HiDreamCallLayout),
})


def transformer_family_host(model, node_name: str) -> Optional[FamilyHost]:
    """The family host for a transformer model; None for a UNet (the attn1 route). A transformer model the
    pack cannot patch raises StyleAlignedError naming the node and the family."""
    diffusion_model = model.get_model_object("diffusion_model")
    if all(hasattr(diffusion_model, name) for name in ("input_blocks", "middle_block", "output_blocks")):
        return None
    host = FAMILY_HOSTS.get(type(diffusion_model).__module__)
    if host is None:
        family = f"{type(model.model).__name__} ({type(diffusion_model).__module__}.{type(diffusion_model).__name__})"
        raise StyleAlignedError(
            f"{node_name}: the model family {family} is not supported. StyleAligned works with "
            f"{supported_models_text()}. Bypass the node for this model."
        )
    return host


def install_transformer_route(
    model, family_host: FamilyHost, options: StyleAlignedOptions, sharing: TransformerSharing,
    held_reference: Optional[HeldReference] = None,
):
    """A clone of `model` with the transformer route as its StyleAligned patch set (replacing any earlier
    set): the attention override, chaining whatever override is there, and the per-call wrapper (which
    holds the reference slot on a real image's trajectory when held_reference is given)."""
    build_layout = family_host.call_layout(family_host.family)
    # Hosts that call attn1 patches inside DiT blocks before RoPE (0.33: Flux, Qwen-Image) AdaIN there; on
    # others the patch never runs and the override does it. Families recognised by counting calls have no
    # such hook.
    pre_rope = None if isinstance(family_host.family, PlannedBlocksFamily) else PreRopeAdaIN(family_host.family, sharing)
    return install_patch_set(
        model,
        TransformerModelCall(options, family_host.family, sharing, build_layout, held_reference),
        attn1_patch=pre_rope,
        make_attention_override=lambda previous: SharedAttentionOverride(family_host.family, sharing, previous),
    )
