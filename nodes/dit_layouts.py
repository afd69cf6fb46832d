"""Per-call layouts of Qwen-Image, SD3 / SD3.5, HiDream and Lumina 2 / Z-Image (issue 10's families).

Host glue only: token counts come from the call's own tensors and the model's config, positions and
rotations from the model's own embedder (pe_embedder / rope_embedder), built once per image grid and
reused by every step. Each builder is called as builder(diffusion_model, batch, active, x, c_crossattn,
transformer_options, kwargs) and returns the CallLayout the attention override reads.
"""

from __future__ import annotations

import math

import torch

from ..stylealign_core import BatchLayout, StyleAlignedError
from ..stylealign_core.batch_layout import NODE_NAME
from ..stylealign_core.transformer import CallLayout
from ..stylealign_core.transformer.families import hidream, mmdit, next_dit


def _grid(x: torch.Tensor, patch: int) -> tuple[int, int]:
    """Image tokens along height and width after the model pads the latent to its patch size."""
    return math.ceil(x.shape[-2] / patch), math.ceil(x.shape[-1] / patch)


def _grid_ids(h_len: int, w_len: int, axes: int, first=0.0, row_start=0.0, col_start=0.0, row_scale=1.0, col_scale=1.0) -> torch.Tensor:
    """(1, h*w, axes) row-major position ids (first, row, col, 0...)."""
    ids = torch.zeros(h_len, w_len, axes)
    ids[..., 0] = first
    ids[..., 1] = (torch.arange(h_len, dtype=torch.float32) * row_scale + row_start)[:, None]
    ids[..., 2] = (torch.arange(w_len, dtype=torch.float32) * col_scale + col_start)[None, :]
    return ids.reshape(1, h_len * w_len, axes)


def _rotations(embed, ids: torch.Tensor, width_axis: int, device, head_dim: int | None = None):
    """(image rotations (1, 1, N, D/2, 2, 2), shift rotation (1, 1, 1, D/2, 2, 2)) from the model's own
    embedder. The shift moves positions by the image's extent along the width axis (AlignedGen's ShiftPE).
    head_dim: pad with identity rotations for the channels a partial RoPE leaves alone (HiDream)."""
    ids = ids.to(device)
    shift = torch.zeros((1, 1, ids.shape[-1]), device=device)
    shift[..., width_axis] = ids[0, :, width_axis].max() - ids[0, :, width_axis].min() + 1
    with torch.no_grad():
        tables = [_heads_axis_first(embed(t)).float() for t in (ids, shift)]
    if head_dim is not None and tables[0].shape[-3] * 2 < head_dim:
        tables = [_pad_identity(t, head_dim // 2) for t in tables]
    return tables[0], tables[1]


def _heads_axis_first(table: torch.Tensor) -> torch.Tensor:
    """Embedders put the singleton heads axis at 1 (Flux EmbedND) or 2 (HiDream): make it (1, 1, L, ...)."""
    return table if table.shape[1] == 1 else table.movedim(2, 1)


def _pad_identity(table: torch.Tensor, pairs: int) -> torch.Tensor:
    identity = torch.eye(2, dtype=table.dtype, device=table.device).expand(*table.shape[:-3], pairs - table.shape[-3], 2, 2)
    return torch.cat([table, identity], dim=-3)


class _CachedRotations:
    def __init__(self, family):
        self.family = family
        self._cache: dict = {}

    def rotations(self, key, make):
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = make()
        return cached


class QwenImageCallLayout(_CachedRotations):
    """[text, image, edit references]; image ids centred as QwenImageTransformer2DModel.process_img."""

    def __call__(self, dm, batch: BatchLayout, active: bool, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        latent = x if x.dim() == 5 else x.unsqueeze(2)  # (B, C, T, H, W) as the model reads it

        def make():
            ids = dm.process_img(latent[:1])[1].float()  # the model's own ids, centred
            return _rotations(dm.pe_embedder, ids, self.family.width_axis, x.device)

        image_rotations, shift_rotation = self.rotations((tuple(latent.shape[-2:]), x.device), make)
        return CallLayout(
            batch=batch, image_start=c_crossattn.shape[1], image_tokens=image_rotations.shape[2], active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
        )


class NextDiTCallLayout(_CachedRotations):
    """Lumina 2 / Z-Image: [caption, caption padding, image, image padding] in the main layers, [image,
    image padding] in the noise refiner; caption padding to dm.pad_tokens_multiple (Z-Image: 32)."""

    def __call__(self, dm, batch: BatchLayout, active: bool, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        if kwargs.get("ref_latents"):
            # Z-Image Omni (ComfyUI 0.33+): reference latents switch the model to [captions, SigLIP features,
            # references, image] in its main layers, an extra SigLIP refiner and doubled timesteps; the
            # generated image's positions and token ranges then differ from the plan above.
            raise StyleAlignedError(
                f"{NODE_NAME}: Z-Image Omni (a Z-Image / Lumina 2 model given reference latents, e.g. by "
                f"ReferenceLatent) is not supported yet: its joint sequence mixes the reference images and SigLIP "
                f"features with the generated image. Remove the reference latents from the conditioning or bypass "
                f"StyleAlignedPatch for this model."
            )
        caption = next_dit.padded(c_crossattn.shape[1], dm.pad_tokens_multiple)
        h_len, w_len = _grid(x, dm.patch_size)
        rope = transformer_options.get("rope_options") or {}

        def make():
            # As NextDiT.patchify_and_embed: image ids (caption length + 1, row, col), rope_options honoured.
            ids = _grid_ids(
                h_len, w_len, len(dm.rope_embedder.axes_dim), first=caption + 1,
                row_start=rope.get("shift_y", 0.0), col_start=rope.get("shift_x", 0.0),
                row_scale=rope.get("scale_y", 1.0), col_scale=rope.get("scale_x", 1.0),
            )
            return _rotations(dm.rope_embedder, ids, self.family.width_axis, x.device)

        image_rotations, shift_rotation = self.rotations((h_len, w_len, caption, x.device, repr(rope)), make)
        return CallLayout(
            batch=batch, image_start=caption, image_tokens=h_len * w_len, active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
            call_plan=next_dit.call_plan(
                len(dm.context_refiner), len(dm.noise_refiner), len(dm.layers), c_crossattn.shape[1], h_len * w_len, dm.pad_tokens_multiple),
        )


class MMDiTCallLayout(_CachedRotations):
    """SD3 / SD3.5: [registers + context, image] per joint call; MMDiT-X adds an image-only call. No RoPE."""

    def __call__(self, dm, batch: BatchLayout, active: bool, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        context = dm.register_length + (0 if c_crossattn is None else c_crossattn.shape[1])
        h_len, w_len = _grid(x, dm.patch_size)
        image_only = [bool(block.x_block.x_block_self_attn) for block in dm.joint_blocks]
        return CallLayout(
            batch=batch, image_start=context, image_tokens=h_len * w_len, active=active,
            call_plan=mmdit.call_plan(image_only, context, h_len * w_len),
        )


class HiDreamCallLayout(_CachedRotations):
    """HiDream: [image, text...] in every block; partial RoPE padded with identity to the head dim."""

    def __call__(self, dm, batch: BatchLayout, active: bool, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        if kwargs.get("image_cond") is not None:
            # HiDream E1 puts the edited image beside the latent along the width: the generated image's tokens
            # are then not one contiguous range, which the route cannot express yet.
            raise StyleAlignedError(
                f"{NODE_NAME}: HiDream E1 (editing, an image concatenated to the latent) is not supported; use "
                f"HiDream I1 or bypass the node for this model."
            )
        h_len, w_len = _grid(x, dm.patch_size)
        llama = kwargs.get("encoder_hidden_states_llama3")
        # [image, T5, last Llama layer, this block's Llama layer] in every block.
        tokens = None if llama is None else h_len * w_len + c_crossattn.shape[1] + 2 * llama.shape[2]

        def make():
            ids = _grid_ids(h_len, w_len, len(dm.pe_embedder.axes_dim))
            return _rotations(dm.pe_embedder, ids, self.family.width_axis, x.device, head_dim=dm.attention_head_dim)

        image_rotations, shift_rotation = self.rotations((h_len, w_len, x.device), make)
        return CallLayout(
            batch=batch, image_start=0, image_tokens=h_len * w_len, active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
            call_plan=hidream.call_plan(len(dm.double_stream_blocks), len(dm.single_stream_blocks), tokens),
        )
