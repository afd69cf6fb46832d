"""StyleAligned core: pure torch, no ComfyUI import, so it is unit-tested alone.

Data flow: options -> layer_selection (which layers share) -> model_call (once per UNet call: batch
layout, schedule) -> shared_attention (every self-attention layer: AdaIN + reference tokens) ->
logit_shift (reference strength inside attention).
"""

from .adain import VARIANCE_EPS, adain_affine, apply_affine, channel_stats
from .batch_layout import BatchLayout, batch_layout
from .errors import StyleAlignedError
from .layer_selection import LayerKey, evenly_spread, select_shared_layers
from .logit_shift import ReferenceLogitShift
from .model_call import StyleAlignedModelCall
from .options import StyleAlignedOptions
from .runtime import CallContext, PatchRuntime
from .shared_attention import SharedAttentionPatch, share_with_reference

__all__ = [
    "VARIANCE_EPS",
    "BatchLayout",
    "CallContext",
    "LayerKey",
    "PatchRuntime",
    "ReferenceLogitShift",
    "SharedAttentionPatch",
    "StyleAlignedError",
    "StyleAlignedModelCall",
    "StyleAlignedOptions",
    "adain_affine",
    "apply_affine",
    "batch_layout",
    "channel_stats",
    "evenly_spread",
    "select_shared_layers",
    "share_with_reference",
]
