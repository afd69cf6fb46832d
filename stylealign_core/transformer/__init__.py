"""The transformer route (DiT / MMDiT models): StyleAligned through the host's attention override.

How it runs, per model call:
1. The host glue's model-call wrapper (nodes/transformer_model.py, an APPLY_MODEL wrapper) builds a
   `CallLayout` (call_layout.py) from the model's own helpers: the batch layout (chunks, reference slot),
   where the generated image's tokens sit in the joint sequence, their RoPE rotations and the rotation for
   the position shift (from the model's own embedder), whether the schedule is active. It puts it in
   transformer_options[CALL_LAYOUT_KEY].
2. `SharedAttentionOverride` (attention_override.py), set as transformer_options
   ["optimized_attention_override"] and chaining any override already there, sees every attention call:
   asks the family which block this is, and for shared blocks splits reference rows from target rows,
   AdaINs the targets' image-token q/k before RoPE (rope.py undoes and redoes the rotation), appends the
   reference's image-token K (shifted, times lambda) and V, and calls the backend once for the reference
   rows and once for the target rows.

A family plugs in with one small module under families/ defining a `TransformerFamily` subclass
(family.py):
- `groups` / `default_groups`: block groups in execution order and the ones shared by default
  (Flux: ("double", "single") / ("single",)); `default_key_scale` (lambda, for the node's "auto").
- `block_key(transformer_options, call_index) -> (group, index) | None`: recognise the block from the
  keys the model writes (Flux: block_type/block_index) or by counting attention calls (call_index, reset
  every model call); None passes the call through (text-only refiners, cross-attention...).
- `heads_first(args, kwargs) -> (q, k, v, heads)` with q/k/v as (B, H, L, D), or None: the default reads
  the host's two standard formats; override it for odd formats (SD3's v). The backend is then always
  called with skip_reshape=True, its output format unchanged.
- Token order and padding live in the CallLayout the family's host glue builds: image_start and
  image_tokens (image-first families use image_start 0; text, padding and extra tokens are everything
  outside the range). image_rotations None means no RoPE (AdaIN on the tokens as they arrive), and
  shift_rotation None means no position shift. Rotations are Flux-style 2x2 matrices per channel pair,
  (1, 1, N, D/2, 2, 2), covering the whole head dim: for partial RoPE pad the table with identity
  matrices on the channels the model leaves unrotated (and in the model's pair order).
- Families whose blocks tag nothing (SD3, HiDream, Lumina 2 / Z-Image) subclass `PlannedBlocksFamily`:
  their host glue lists the model call's attention calls in order in CallLayout.call_plan, each (block key
  or None, image_start of that call, its token count); stages with another token range (an image-only
  noise refiner, MMDiT-X's image-only attention) get their own image_start, and a call whose length the
  plan does not expect (a block skipped by another node shifts the count) passes through.
- Calls whose rows are not chunks x images of this model call (e.g. a nested split), whose q/k/v lengths
  differ (cross-attention) or are shorter than the image range, or that carry a mask, pass through.
  An empty mask slot passed by position (Qwen-Image, Lumina) is read as no mask.
The host side of a family (nodes/transformer_model.py, nodes/dit_layouts.py) registers which
diffusion-model classes it covers, how many blocks each group has, and how to build the CallLayout of one
call. Families: flux.py (Flux.1/Flux.2/Chroma), qwen_image.py, mmdit.py (SD3/SD3.5), hidream.py,
next_dit.py (Lumina 2 / Z-Image).
"""

from .attention_override import SharedAttentionOverride, TransformerSharing
from .call_layout import CALL_LAYOUT_KEY, CallLayout
from .family import BlockKey, PlannedBlocksFamily, TransformerFamily
from .families.flux import FluxFamily
from .rope import rotate, unrotate

__all__ = [
    "CALL_LAYOUT_KEY",
    "BlockKey",
    "CallLayout",
    "FluxFamily",
    "PlannedBlocksFamily",
    "SharedAttentionOverride",
    "TransformerFamily",
    "TransformerSharing",
    "rotate",
    "unrotate",
]
