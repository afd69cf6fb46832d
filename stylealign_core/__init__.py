"""StyleAligned core: pure torch, no ComfyUI import, so it is unit-tested alone.

Data flow: options -> layer_selection (which layers share) -> model_call (once per UNet call: batch
layout, schedule, a real-image reference held on its trajectory) -> shared_attention (every
self-attention layer: AdaIN + reference tokens) -> logit_shift (reference strength inside attention).
A real image as reference: inversion (with noise_scaling) -> reference_trajectory -> reference_file.
Per-image prompts: conditioning_batch.
"""

from .adain import VARIANCE_EPS, adain_affine, apply_affine, channel_stats
from .batch_layout import BatchLayout, batch_layout
from .conditioning_batch import prompt_of_each_image, stack_prompt_conditionings
from .errors import StyleAlignedError
from .layer_selection import LayerKey, evenly_spread, select_shared_layers
from .logit_shift import ReferenceLogitShift
from .inversion import invert, inversion_sigmas
from .model_call import StyleAlignedModelCall
from .noise_scaling import NoiseScaling
from .options import StyleAlignedOptions
from .reference_file import load_reference, save_reference
from .reference_trajectory import HeldReference, ReferenceTrajectory
from .runtime import CallContext, PatchRuntime
from .shared_attention import SharedAttentionPatch, share_with_reference

__all__ = [
    "VARIANCE_EPS",
    "BatchLayout",
    "CallContext",
    "HeldReference",
    "NoiseScaling",
    "ReferenceTrajectory",
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
    "invert",
    "inversion_sigmas",
    "load_reference",
    "prompt_of_each_image",
    "save_reference",
    "stack_prompt_conditionings",
    "select_shared_layers",
    "share_with_reference",
]
