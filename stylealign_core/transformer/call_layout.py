"""What one model call looks like to the attention override: batch, token ranges, RoPE rotations.

The host glue (nodes/transformer_model.py) builds a CallLayout once per model call from the model's own
helpers and puts it in transformer_options[CALL_LAYOUT_KEY]; every attention call of that model call
reads it. Token ranges are in the joint sequence as the attention backend receives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import torch

from ..batch_layout import BatchLayout
from .rope import INTERLEAVED

CALL_LAYOUT_KEY = "stylealigned_call_layout"


@dataclass
class CallLayout:
    batch: BatchLayout
    # Where the generated image's tokens sit in the joint sequence: [image_start, image_start + image_tokens).
    # Everything else (text, padding, Kontext/edit reference latents) is never normalised or shared.
    image_start: int
    image_tokens: int
    # Where the call's queries start in the joint sequence: 0 when queries and keys are the same tokens; a
    # model that attends a suffix of its tokens to all of them (a decoder's generation pass after a causal
    # prompt: its queries are [query_start, L) of the L keys) gives that offset. The query of token i is query row i - query_start.
    query_start: int = 0
    # Whether sharing is on at this step (start_percent/end_percent).
    active: bool = True
    # The image tokens as this many equal consecutive groups: a video's latent frames (time-major); 1 for
    # an image. With TransformerSharing.matching_frames, a target's frame f sees the reference's frame f only.
    frames: int = 1
    # RoPE rotations of the image tokens, (1 or rows, 1, image_tokens, D/2, 2, 2), or None (no RoPE, or
    # AdaIN on the rotated tokens is wanted).
    image_rotations: Optional[torch.Tensor] = None
    # Rotation by the position shift (e.g. the image width along the width axis), (1, 1, 1, D/2, 2, 2), or
    # None for no shift.
    shift_rotation: Optional[torch.Tensor] = None
    # Which channels the rotations pair (rope.py): INTERLEAVED (2i, 2i+1) or SPLIT_HALF (i, i + D/2).
    rope_scheme: str = INTERLEAVED
    # The attention override of the patch set that built this layout: an override of an earlier, replaced
    # set that another pack still wraps must leave the calls alone.
    owner: Optional[object] = None
    # Attention calls seen so far in this model call, for families whose blocks are recognised by order.
    attention_calls: int = field(default=0)
    # For families whose blocks tag nothing in transformer_options (PlannedBlocksFamily): the
    # attention calls of one model call in execution order, each (block key or None, image_start of that
    # call, its total token count or None). Block None for a call the family does not share (a text-only
    # refiner); an image_start differing from the joint one for image-only attention (a noise refiner,
    # MMDiT-X's second attention). A call whose length differs from the plan's passes through: a node that
    # skips blocks (skip-layer guidance, step caches) shifts the count, and a call of another kind must not
    # be read with the wrong token ranges.
    call_plan: Optional[tuple] = None
    # The token count the call plan expects of this call (set by for_call), None: not checked.
    call_tokens: Optional[int] = None
    # Counted by the override (here, not on the override object: a later clone() deep-copies it): calls of
    # shared blocks that reached it, and those it changed.
    reached_calls: int = field(default=0)
    shared_calls: int = field(default=0)
    # Why calls of shared blocks were passed through unchanged (for the model-call wrapper's report).
    pass_causes: set = field(default_factory=set)
    # The block whose q/k/v the host's pre-RoPE hook already AdaIN-normalised (pre_rope_patch.py), for its
    # attention call to skip AdaIN; None: the override does it.
    pre_rope_block: Optional[tuple] = None

    # Rebuilds (image_rotations, shift_rotation) for the rope_options an attention call carries, or None
    # when the positions are fixed at the model call. A model may add offsets after the model-call wrapper
    # (LongCat-Image adds rope_options inside its own model call); rope_options_key: what they were built for.
    rotations_for: Optional[Callable] = field(default=None, repr=False)
    rope_options_key: str = "None"

    _row_indices: dict = field(default_factory=dict, repr=False)
    _frame_parts: dict = field(default_factory=dict, repr=False)

    def follow_rope_options(self, rope_options) -> None:
        """Use the rotations of the rope_options the attention call sees (the model's own positions)."""
        key = repr(rope_options)
        if self.rotations_for is not None and key != self.rope_options_key:
            self.image_rotations, self.shift_rotation = self.rotations_for(rope_options)
            self.rope_options_key = key

    def row_indices(self, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(every reference's rows, target rows, chunk of each target) as index tensors on `device`, made once per
        model call (not per attention call: no host-to-device copy inside the blocks)."""
        indices = self._row_indices.get(device)
        if indices is None:
            targets = self.batch.target_rows()
            indices = self._row_indices[device] = (
                torch.tensor(self.batch.all_reference_rows(), device=device),  # chunk by chunk, references in order
                torch.tensor(targets, device=device),
                torch.tensor([row // self.batch.images_per_chunk for row in targets], device=device),
            )
        return indices

    def frame_parts(self, own_keys: int, copies: int, queries: int, device) -> list:
        """Matching frames: [(query positions, key positions or None for all keys)], one entry per latent
        frame f (its image queries see the target's own keys and frame f of each of the `copies` appended
        reference image ranges), plus one for the queries outside the image (text, extra tokens) that see
        every key. Made once per model call and device (every shared layer of the call reuses them)."""
        cache_key = (own_keys, copies, queries, self.image_start, device)
        parts = self._frame_parts.get(cache_key)
        if parts is None:
            frame, image = self.image_tokens // self.frames, self.image_slice
            own = torch.arange(own_keys, device=device)
            parts = []
            for f in range(self.frames):
                appended = [
                    torch.arange(own_keys + c * self.image_tokens + f * frame, own_keys + c * self.image_tokens + (f + 1) * frame, device=device)
                    for c in range(copies)
                ]
                start = image.start + f * frame
                parts.append((torch.arange(start, start + frame, device=device), torch.cat([own] + appended)))
            if image.start > 0 or image.stop < queries:
                outside = torch.cat([torch.arange(0, image.start, device=device), torch.arange(image.stop, queries, device=device)])
                parts.append((outside, None))
            self._frame_parts[cache_key] = parts
        return parts

    def planned_block(self, call_index: int):
        """The block key the call plan gives the call_index-th attention call (None past its end)."""
        if self.call_plan is None or call_index >= len(self.call_plan):
            return None
        return self.call_plan[call_index][0]

    def for_call(self, call_index: int) -> "CallLayout":
        """This layout as seen by the call_index-th attention call: its own image_start where the call plan
        gives one (the same row-index cache and rotations; counters stay on self)."""
        if self.call_plan is None or call_index >= len(self.call_plan):
            return self
        _, start, tokens = self.call_plan[call_index]
        return replace(self, image_start=start, call_tokens=tokens, call_plan=None)

    @property
    def image_slice(self) -> slice:
        return slice(self.image_start, self.image_start + self.image_tokens)
