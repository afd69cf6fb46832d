"""The transformer route (DiT / MMDiT models): StyleAligned through the host's attention override.

How it runs, per model call:
1. The model-call wrapper (model_call.py, installed as an APPLY_MODEL wrapper by
   nodes/transformer_model.py) asks the family for the call's `CallLayout` (call_layout.py), built from
   the model's own helpers: the batch layout (chunks, reference slot), where the generated image's tokens
   sit in the joint sequence, their RoPE rotations and the rotation for the position shift (from the model's own embedder), whether the schedule is active. It puts it in
   transformer_options[CALL_LAYOUT_KEY].
2. `SharedAttentionOverride` (attention_override.py), set as transformer_options
   ["optimized_attention_override"] and chaining any override already there, sees every attention call:
   asks the family which block this is, and for shared blocks splits reference rows from target rows,
   AdaINs the targets' image-token q/k before RoPE (rope.py undoes and redoes the rotation), appends the
   reference's image-token K (shifted, times lambda) and V, and calls the backend once for the reference
   rows and once for the target rows.

A family plugs in with ONE module under families/ (see families/__init__.py for where the host-reading
half lives and why the core stays free of ComfyUI imports) defining a `TransformerFamily` subclass
(family.py, every member declared and documented there) exported as `FAMILY`; the registry finds it:
- `groups` / `default_groups`: block groups in execution order and the ones shared by default;
  `default_key_scale` (lambda, for the node's "auto"); `width_axis` (the RoPE axis of the position shift).
- `block_key(transformer_options, call_index) -> (group, index) | None`: recognise the block from the
  keys the model writes (block_type/block_index: `TaggedBlocksFamily`) or by counting attention calls
  (call_index, reset every model call); None passes the call through (text-only refiners...).
- `heads_first(args, kwargs) -> (q, k, v, heads)` with q/k/v as (B, H, L, D), or None: the default reads
  the host's two standard formats; override it for odd formats. The backend is then always called with
  skip_reshape=True, its output format unchanged.
- `recognises(diffusion_model)`, `block_counts(diffusion_model)` and `call_layout(...)`: the host half.
  Token order and padding live in the CallLayout it builds: image_start and image_tokens (image-first
  families use image_start 0; text, padding and extra tokens are everything outside the range).
  image_rotations None means no RoPE (AdaIN on the tokens as they arrive), and shift_rotation None means
  no position shift. Rotations are 2x2 matrices per channel pair, (1, 1, N, D/2, 2, 2), covering the
  whole head dim (rope.py builds them from the model's own embedder, pads partial RoPE with identity).
- Families whose blocks tag nothing subclass `PlannedBlocksFamily`: their call_layout lists the model
  call's attention calls in order in CallLayout.call_plan, each (block key or None, image_start of that
  call, its token count); stages with another token range (an image-only noise refiner, an image-only
  attention) get their own image_start, and a call whose length the plan does not expect (a block
  skipped by another node shifts the count) passes through.
- Calls whose rows are not chunks x images of this model call (e.g. a nested split), whose q/k/v lengths
  differ (cross-attention) or are shorter than the image range, or that carry a mask, pass through.
  An empty mask slot passed by position is read as no mask.
"""

from .attention_override import SharedAttentionOverride, TransformerSharing
from .call_layout import CALL_LAYOUT_KEY, CallLayout
from .families import family_for, registered_families
from .family import BlockKey, PlannedBlocksFamily, TaggedBlocksFamily, TransformerFamily
from .rope import rotate, unrotate

__all__ = [
    "CALL_LAYOUT_KEY",
    "BlockKey",
    "CallLayout",
    "PlannedBlocksFamily",
    "SharedAttentionOverride",
    "TaggedBlocksFamily",
    "TransformerFamily",
    "TransformerSharing",
    "family_for",
    "registered_families",
    "rotate",
    "unrotate",
]
