"""Wan 2.1 / 2.2 text-to-video, and text-to-image with one frame (comfy/ldm/wan, WanModel).

Every block runs a self-attention over the video tokens alone, then a cross-attention to the text (and,
on I2V models, a second one to CLIP image features). The self-attention applies RoPE itself (3 axes:
frame t, row h, column w, the model's `rope_embedder`, channel pairs (2i, 2i+1)) and reaches the backend
flattened, (B, L, H*D) with heads as a keyword; tokens are time-major (frame, row, column). The
cross-attention calls (query length = video tokens, key length = text) pass through untouched: the call
plan marks them None. ComfyUI 0.33 tags block_index in transformer_options, 0.3.75 does not, and the
self- and cross-attention of a block carry the same tag, so the calls are counted (CallLayout.call_plan)
on both hosts.
The reference clip's video tokens are shared with every target clip: "all frames" (every target frame
sees every reference frame, the reference standing right of the target as in a side-by-side video) or
"matching frames" (the node's shared_frames: target frame t sees the reference's frame t only; the
CallLayout's `frames` tells the attention override where frames start). AdaIN statistics are over the
whole clip's tokens in both modes.
Conditioning frames are never touched silently: inputs that put them into the model (I2V / FLF2V / Fun /
camera channels concatenated to the latent, the first frame fixed by a noise mask on Wan 2.2 TI2V, CLIP
vision features, VACE control frames, frames concatenated in time, reference or in-context latents) are
refused with a StyleAlignedError naming the node and the cause. Wan 2.2's two experts are two models:
patch each; the reference slot is the same in both.
Defaults are ours (no paper for Wan): every block (no single-stream blocks), reference keys shifted by the
clip width along the width axis, lambda = 1.1 (AlignedGen's values carried over; untested on real
weights), all frames shared.
"""

from __future__ import annotations

import torch

from ...batch_layout import NODE_NAME
from ...errors import StyleAlignedError
from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, PlannedBlocksFamily

BLOCKS = "double"  # one kind of block; the name ComfyUI 0.33 tags them with
SHARED_CLASS = "WanModel"

# Model inputs that bring conditioning frames or extra tokens into the video's attention, and why each is
# refused (kwargs of the model call -> what it is).
CONDITIONING_INPUTS = {
    "denoise_mask": "a noise mask fixing frames (Wan 2.2 TI2V image-to-video: the first frame is the image)",
    "clip_fea": "CLIP vision features (image-to-video)",
    "vace_context": "VACE control frames (a VACE model: they enter through its VACE blocks)",
    "time_dim_concat": "frames concatenated in time",
    "reference_latent": "a reference latent prepended to the video tokens",
    "context_latents": "in-context reference latents appended to the video tokens",
}


class WanFamily(PlannedBlocksFamily):
    name = "Wan"
    models = ("Wan 2.1", "Wan 2.2")
    # The module holds WanModel (text-to-video, what is shared) and its variants (VACE, camera, HuMo, S2V,
    # Animate, SCAIL...), which are refused with their cause at sampling.
    host_modules = ("comfy.ldm.wan.model",)
    defaults_from = ""
    groups = (BLOCKS,)
    default_groups = (BLOCKS,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2  # rope ids (frame, row, column)
    uses_pre_rope_hook = False  # Wan's attn1_patch runs after attention, with another signature

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {BLOCKS: len(diffusion_model.blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        dm = diffusion_model
        refuse_conditioning(dm, x, kwargs)
        t_len, h_len, w_len = token_grid(x, dm.patch_size)
        frame_tokens = h_len * w_len
        rope_options = transformer_options.get("rope_options")
        key = (t_len, h_len, w_len, x.device, repr(rope_options))
        image_rotations, shift_rotation = self.cached(key, lambda: rotations(dm, x, rope_options))
        cross_calls = [2 if hasattr(block.cross_attn, "k_img") else 1 for block in dm.blocks]
        return CallLayout(
            batch=batch, image_start=0, image_tokens=t_len * frame_tokens, active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
            call_plan=call_plan(cross_calls, t_len * frame_tokens), frames=t_len,
        )


def token_grid(x: torch.Tensor, patch_size) -> tuple[int, int, int]:
    """(frames, rows, columns) of video tokens after the model pads the latent (B, C, T, H, W) to its patch."""
    return tuple(-(-size // patch) for size, patch in zip(x.shape[-3:], patch_size))


def refuse_conditioning(dm, x: torch.Tensor, kwargs: dict) -> None:
    """StyleAlignedError for inputs that bring conditioning frames into the model's attention: sharing
    would restyle the frames the user gave (or misread the token layout); and for WanModel's variants."""
    causes = []
    channels = dm.patch_embedding.weight.shape[1]
    if channels > x.shape[1]:
        causes.append(
            f"{channels - x.shape[1]} conditioning channels concatenated to the latent (image-to-video, "
            "first/last frame, Fun control or camera models)")
    causes += [why for name, why in CONDITIONING_INPUTS.items() if kwargs.get(name) is not None]
    variant = type(dm).__name__
    if not causes and variant != SHARED_CLASS:
        raise StyleAlignedError(
            f"{NODE_NAME}: the Wan variant {variant} (camera control, speech-to-video, HuMo, Animate, SCAIL and "
            f"the like add their own inputs and tokens to the video's attention) is not supported; StyleAligned "
            f"shares Wan text-to-video / text-to-image sets ({SHARED_CLASS}). Bypass StyleAlignedPatch for this model."
        )
    if causes:
        raise StyleAlignedError(
            f"{NODE_NAME}: this Wan model call carries conditioning frames ({'; '.join(causes)}). StyleAligned "
            f"shares only text-to-video / text-to-image Wan sets and would restyle those frames. Use a Wan "
            f"text-to-video model and latent (EmptyHunyuanLatentVideo, or Wan22ImageToVideoLatent without a start "
            f"image), or bypass StyleAlignedPatch."
        )


def rotations(dm, x: torch.Tensor, rope_options) -> tuple[torch.Tensor, torch.Tensor]:
    """(video token rotations (1, 1, L, D/2, 2, 2), width shift rotation (1, 1, 1, D/2, 2, 2)) from the
    model's own rope_encode / rope_embedder, in float32 (rope_options honoured as the model does)."""
    options = {} if rope_options is None else {"rope_options": rope_options}
    t, h, w = x.shape[-3:]
    with torch.no_grad():
        table = dm.rope_encode(t, h, w, device=x.device, dtype=torch.float32, transformer_options=options)
        table = table.movedim(2, 1).float()  # rope_encode gives (1, L, 1, D/2, 2, 2)
        # The reference sits right of the target: columns shifted by the clip's extent along the width
        # (as rope_encode spaces them: (w_len - 1) * scale_x + 1).
        w_len = token_grid(x, dm.patch_size)[2]
        width = (w_len - 1) * (rope_options or {}).get("scale_x", 1.0) + 1
        shift = torch.zeros((1, 1, 3), device=x.device, dtype=torch.float32)
        shift[..., 2] = width
        shift_table = dm.rope_embedder(shift).float()  # (1, 1, 1, D/2, 2, 2)
    return table, shift_table


def call_plan(cross_calls: list[int], tokens: int) -> tuple:
    """(block key, image_start, tokens) per attention call: each block's self-attention over the video
    tokens, then its cross-attention call(s) (text; image features first on I2V blocks), passed through."""
    plan = []
    for index, cross in enumerate(cross_calls):
        plan.append(((BLOCKS, index), 0, tokens))
        plan.extend((None, 0, None) for _ in range(cross))
    return tuple(plan)


FAMILY = WanFamily
