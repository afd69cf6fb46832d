"""StyleAligned core: pure torch, no ComfyUI import, so it is unit-tested alone.

Layers, lowest first (tests/test_import_graph.py holds them): maths/ (AdaIN statistics, the fused pass) <
the shared top-level modules both routes use (options, share_flags, batch_layout, layer_fraction,
model_call_inputs, patch_reached, override_chain, real_image/...) < the two routes side by side, unet/ and
transformer/, which never import each other < this facade < the host glue in nodes/.
Data flow: options (one object from the node's inputs) -> the route's model call, once per model call
(unet/model_call.py or transformer/model_call.py: batch layout, schedule, a real-image reference held on
its trajectory, the "patch never ran" guard) -> attention: unet/ (layer_selection, attn1_patch in every
self-attention layer: AdaIN + reference tokens; logit_shift: reference strength inside attention) or
transformer/ (DiT models: the host's attention override with a per-call layout; sharing_policy reads the
options for a family; one module per family under transformer/families/).
A real image as reference: real_image/ (inversion with noise_scaling -> reference_trajectory -> reference_file).
Per-image prompts: prompts/conditioning_batch. Sets larger than one batch: sets/ (chunk plan, each chunk's
inputs, gathering the set back; a set shared by several participants in tagged parts).
"""

from .maths.adain import VARIANCE_EPS, adain_affine, apply_affine, channel_stats
from .batch_layout import BatchLayout, batch_layout
from .prompts.conditioning_batch import common_token_length, prompt_of_each_image, stack_prompt_conditionings
from .errors import StyleAlignedError
from .layer_fraction import evenly_spread
from .unet.layer_selection import LayerKey, select_shared_layers
from .unet.logit_shift import ReferenceLogitShift
from .real_image.inversion import invert, inversion_sigmas
from .unet.model_call import UNetModelCall, replaced_attn1
from .real_image.noise_scaling import NoiseScaling
from .options import StyleAlignedOptions
from .real_image.reference_file import load_reference, save_reference
from .real_image.reference_trajectory import HeldReference, ReferenceTrajectory
from .unet.patch_runtime import CallContext, PatchRuntime
from .sets import (
    DEFAULT_REFERENCE_TOLERANCE, WHOLE_SET, AssembledSet, ConditioningRows, PartTag, SetChunks, assemble_parts,
    decode_tag, encode_tag, latent_rows, part_chunk_range, plan_chunks, tagged_part)
from .unet.attn1_patch import SharedAttentionPatch, share_with_reference

__all__ = [
    "DEFAULT_REFERENCE_TOLERANCE",
    "AssembledSet",
    "PartTag",
    "assemble_parts",
    "decode_tag",
    "encode_tag",
    "part_chunk_range",
    "tagged_part",
    "VARIANCE_EPS",
    "WHOLE_SET",
    "BatchLayout",
    "CallContext",
    "ConditioningRows",
    "HeldReference",
    "NoiseScaling",
    "ReferenceTrajectory",
    "SetChunks",
    "LayerKey",
    "PatchRuntime",
    "ReferenceLogitShift",
    "SharedAttentionPatch",
    "StyleAlignedError",
    "StyleAlignedOptions",
    "UNetModelCall",
    "adain_affine",
    "apply_affine",
    "batch_layout",
    "channel_stats",
    "common_token_length",
    "evenly_spread",
    "invert",
    "latent_rows",
    "inversion_sigmas",
    "load_reference",
    "plan_chunks",
    "prompt_of_each_image",
    "save_reference",
    "stack_prompt_conditionings",
    "select_shared_layers",
    "share_with_reference",
    "replaced_attn1",
]
