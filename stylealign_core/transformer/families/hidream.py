"""HiDream-I1 (comfy/ldm/hidream): image tokens FIRST, double then single blocks, partial RoPE, counted.

Double blocks call attention on [image, text], single blocks on [image, text, llama text]; q/k/v reach the
backend flattened, (B, L, H*D) with heads as the fourth argument, after RoPE on the first rope-dims
channels of each head (HiDream rotates only the first half when its rope axes cover half the head dim:
the rotation tables are padded with identity to the head dim). Nothing is tagged in
transformer_options: the call plan lists the calls (CallLayout.call_plan). Image ids (0, row, col), text ids 0.
HiDream E1 (editing) puts the edited image beside the latent along the width: the generated image's
tokens are then not one contiguous range, which the route cannot express yet, so it is refused.
Defaults are ours (no paper; AlignedGen's choice carried over): the single-stream blocks, reference keys
shifted by the image width, lambda = 1.1 (untested on real weights).
"""

from __future__ import annotations

from ...batch_layout import NODE_NAME
from ...errors import StyleAlignedError
from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, PlannedBlocksFamily, latent_grid
from ..rope import grid_ids, image_and_shift_rotations

DOUBLE = "double"
SINGLE = "single"


class HiDreamFamily(PlannedBlocksFamily):
    name = "HiDream"
    models = ("HiDream",)
    host_modules = ("comfy.ldm.hidream.model",)
    groups = (DOUBLE, SINGLE)
    default_groups = (SINGLE,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {DOUBLE: len(diffusion_model.double_stream_blocks), SINGLE: len(diffusion_model.single_stream_blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        if kwargs.get("image_cond") is not None:
            raise StyleAlignedError(
                f"{NODE_NAME}: HiDream E1 (editing, an image concatenated to the latent) is not supported; use "
                f"HiDream I1 or bypass the node for this model."
            )
        h_len, w_len = latent_grid(x, diffusion_model.patch_size)
        llama = kwargs.get("encoder_hidden_states_llama3")
        # [image, T5, last Llama layer, this block's Llama layer] in every block.
        tokens = None if llama is None else h_len * w_len + c_crossattn.shape[1] + 2 * llama.shape[2]

        def make():
            ids = grid_ids(h_len, w_len, len(diffusion_model.pe_embedder.axes_dim))
            return image_and_shift_rotations(
                diffusion_model.pe_embedder, ids, self.width_axis, x.device, head_dim=diffusion_model.attention_head_dim)

        image_rotations, shift_rotation = self.cached((h_len, w_len, x.device), make)
        counts = self.block_counts(diffusion_model)
        return CallLayout(
            batch=batch, image_start=0, image_tokens=h_len * w_len, active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
            call_plan=call_plan(counts[DOUBLE], counts[SINGLE], tokens),
        )


def call_plan(double_blocks: int, single_blocks: int, tokens: int) -> tuple:
    """(block key, image_start, tokens) per attention call: image first in every block, the same length
    everywhere ([image, T5, last Llama layer, this block's Llama layer])."""
    return tuple(((DOUBLE, i), 0, tokens) for i in range(double_blocks)) + tuple(((SINGLE, i), 0, tokens) for i in range(single_blocks))


FAMILY = HiDreamFamily
