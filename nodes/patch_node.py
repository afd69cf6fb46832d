"""StyleAlignedPatch: the model patch node (node id and input names are a public contract)."""

from __future__ import annotations

from comfy_api.latest import io

from ..stylealign_core import (
    HeldReference,
    PatchRuntime,
    ReferenceTrajectory,
    ReferenceLogitShift,
    SharedAttentionPatch,
    StyleAlignedError,
    StyleAlignedOptions,
    UNetModelCall,
    select_shared_layers,
)
from ..stylealign_core.transformer.block_selection import BLOCK_CHOICES
from ..stylealign_core.transformer.sharing_policy import transformer_sharing
from .patch_set import install_patch_set
from .shared_norm import install_shared_group_norm
from .host_model import model_family, noise_scaling, percent_to_sigma, self_attention_layers, to_model_latent
from .transformer_model import install_transformer_route, transformer_family
from .family_names import (
    default_blocks_text, default_key_scale_text, paper_models_text, position_shift_ignored_text, supported_models_text,
)
from .reference_type import StyleAlignedReference
from .references_node import StyleAlignedReferenceList, chosen_references
from .schema_features import search_words, with_advanced_inputs
from .input_checks import check_inputs

NODE_ID = "StyleAlignedPatch"
MAX_BATCH_SLOT = 4095
# Folded under "advanced" where the host can (ComfyUI 0.33): one route's inputs and the method's switches,
# so a newcomer sees the model, the reference slot, its strength, the layer fraction and the schedule.
ADVANCED_INPUTS = (
    "share_attention", "adain_queries", "adain_keys", "adain_values",
    "share_input_blocks", "share_middle_block", "share_output_blocks",
    "transformer_blocks", "shift_reference_positions", "reference_key_scale",
    "adain_on", "full_attention_sharing", "share_group_norm", "shared_frames",
)
ADAIN_ON_PROJECTIONS = "projections (paper)"
ADAIN_ON_INPUTS = "inputs"
ADAIN_PLACES = (ADAIN_ON_PROJECTIONS, ADAIN_ON_INPUTS)
# The paper's maths by default: on the CPU benchmark it costs the same as AdaIN on the inputs (README,
# Performance). Saved graphs without this input therefore change slightly.
ADAIN_DEFAULT = ADAIN_ON_PROJECTIONS
# Video models: which frames of the reference clip a target frame attends to. All frames is the reference
# standing beside the target as one side-by-side clip (our default, no paper); matching frames is cheaper.
SHARED_FRAMES_ALL = "all frames"
SHARED_FRAMES_MATCHING = "matching frames"
SHARED_FRAMES = (SHARED_FRAMES_ALL, SHARED_FRAMES_MATCHING)


class StyleAlignedPatch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return with_advanced_inputs(io.Schema(
            node_id=NODE_ID,
            display_name="StyleAligned (shared attention)",
            **search_words("style transfer", "style reference", "same style", "alignedgen"),
            category="model_patches/style_aligned",
            description=(
                "Makes every image of a latent batch share the style of one reference image of that batch "
                "(Hertz et al., Style Aligned Image Generation via Shared Attention, CVPR 2024). Each target "
                "image attends to the reference's self-attention tokens, with its queries and keys AdaIN-"
                "normalised to the reference's statistics. The reference is generated unchanged. "
                f"Works with {supported_models_text()}. On {paper_models_text()} it follows AlignedGen (Zhang et "
                "al., NeurIPS 2025): only the reference's image tokens are shared, in the single-stream blocks, "
                "with their positions shifted beside the image; the other transformers share their image tokens alike, "
                "with defaults of ours (see the tooltips)."
            ),
            # The transformer inputs are optional widgets: API-format graphs saved before them still validate
            # and run with the defaults (auto / on / auto).
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip=f"The model to patch: one of the {supported_models_text()}. The loaded model itself is not changed.",
                ),
                io.Int.Input(
                    "reference_index", default=0, min=0, max=MAX_BATCH_SLOT,
                    tooltip="Slot of the style reference in the latent batch (0 = first image). Every other image takes on its style.",
                ),
                io.Boolean.Input(
                    "share_attention", default=True,
                    tooltip="Let every target attend to the reference's self-attention keys and values (the core of the method).",
                ),
                io.Boolean.Input(
                    "adain_queries", default=True,
                    tooltip="Normalise each target's self-attention query input to the reference's per-channel mean and std (AdaIN).",
                ),
                io.Boolean.Input(
                    "adain_keys", default=True,
                    tooltip="Normalise each target's self-attention key input to the reference's per-channel mean and std (AdaIN).",
                ),
                io.Boolean.Input(
                    "adain_values", default=False,
                    tooltip="Also normalise the value input. Off in the paper: on makes colours follow the reference more strongly.",
                ),
                io.Float.Input(
                    "reference_strength", default=1.0, min=0.0, max=10.0, step=0.05,
                    tooltip="Multiplies the attention weight of the reference's tokens (adds log(strength) to their logits). "
                    "1.0 is the paper; above 1 pulls the style harder, 0 turns sharing off.",
                ),
                io.Boolean.Input("share_input_blocks", default=True, tooltip="UNets only: share attention in the input (down) blocks. Ignored for transformers."),
                io.Boolean.Input("share_middle_block", default=True, tooltip="UNets only: share attention in the middle block. Ignored for transformers."),
                io.Boolean.Input("share_output_blocks", default=True, tooltip="UNets only: share attention in the output (up) blocks. Ignored for transformers."),
                io.Float.Input(
                    "shared_layer_fraction", default=1.0, min=0.0, max=1.0, step=0.05,
                    tooltip="Fraction of the selected self-attention layers (UNet) or blocks (transformer) that share, "
                    "spread evenly over the network. Lower values keep more of each image's own layout and detail.",
                ),
                io.Combo.Input(
                    "transformer_blocks", options=list(BLOCK_CHOICES), default="auto", optional=True,
                    tooltip=f"Transformers only (ignored for UNets): which blocks share. auto = the family's default: "
                    f"{default_blocks_text()}. double / single = only those blocks (a family without that kind shares "
                    "all); all = every block, the image noise refiner included where a model has one.",
                ),
                io.Boolean.Input(
                    "shift_reference_positions", default=True, optional=True,
                    tooltip=f"Transformers with RoPE only (ignored for {position_shift_ignored_text()}): give the "
                    "reference's shared keys positions shifted by the image width, so they do not collide with the "
                    "target's own positions (AlignedGen's ShiftPE). Off copies the reference's layout more.",
                ),
                io.Float.Input(
                    "reference_key_scale", default=0.0, min=0.0, max=4.0, step=0.05, optional=True,
                    tooltip="Transformers only (ignored for UNets): multiplies the reference's shared keys (lambda). "
                    f"0 = auto, the family's default: {default_key_scale_text()}. Above 1 pulls the style harder.",
                ),
                io.Float.Input(
                    "start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                    tooltip="Where in the sampling schedule sharing starts (0 = first step).",
                ),
                io.Float.Input(
                    "end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                    tooltip="Where in the sampling schedule sharing ends (1 = last step).",
                ),
                StyleAlignedReference.Input(
                    "reference", optional=True,
                    tooltip="Optional: a real image as the style reference (from the invert or load node). Its slot "
                    "(reference_index) is held on the image's inverted trajectory and decodes to the image itself; "
                    "put the encoded image there, e.g. LatentBatch(image latent, empty latents).",
                ),
                io.Combo.Input(
                    "adain_on", options=list(ADAIN_PLACES), default=ADAIN_DEFAULT, optional=True,
                    tooltip="UNets only (transformers always normalise the projected queries and keys): where AdaIN "
                    "normalises. 'projections (paper)': the projected queries/keys (to_q/to_k outputs), as the authors' "
                    "code (the default). 'inputs': the inputs of those projections (what the attn1 patch receives; the "
                    "pack's behaviour before this option, so older graphs come out slightly different now). They differ "
                    "slightly; both leave the reference unchanged.",
                ),
                io.Boolean.Input(
                    "full_attention_sharing", default=False, optional=True,
                    tooltip="UNets only (ignored for transformers). Off = the paper's method. On = the paper's 'full attention "
                    "sharing' baseline: every image of the batch attends to every other image, the REFERENCE INCLUDED, so "
                    "the reference changes too and content leaks between images; AdaIN and reference_strength are not "
                    "used. Costs more with more images (attention grows with the square of the batch).",
                ),
                io.Boolean.Input(
                    "share_group_norm", default=False, optional=True,
                    tooltip="UNets only (ignored for transformers). Off as in the authors' demos. On: every GroupNorm of the "
                    "UNet normalises each target with statistics over its own and the reference's feature maps (the "
                    "authors' share_group_norm), pulling overall colour and contrast towards the reference; the "
                    "reference itself is unchanged.",
                ),
                io.Combo.Input(
                    "shared_frames", options=list(SHARED_FRAMES), default=SHARED_FRAMES_ALL, optional=True,
                    tooltip="Video transformers only (ignored for images and UNets): which frames of the reference clip "
                    "each target frame attends to. 'all frames' (default, our choice): every reference frame, as if the "
                    "reference clip played beside the target. 'matching frames': only the reference frame at the same "
                    "time; cheaper, and each clip's motion stays its own.",
                ),
                StyleAlignedReferenceList.Input(
                    "references", optional=True,
                    tooltip="Optional: several references with weights (StyleAligned References nodes). Then every "
                    "listed slot is a reference, generated as without the pack, and each target blends their styles by "
                    "weight; reference_index is not used (a real image on the reference input is held on the first "
                    "listed slot). Not with full_attention_sharing; share_group_norm takes one reference.",
                ),
            ],
            outputs=[io.Model.Output(tooltip="A patched copy of the model; connect it to the sampler.")],
        ), *ADVANCED_INPUTS)

    @classmethod
    def execute(
        cls,
        model,
        reference_index: int,
        share_attention: bool,
        adain_queries: bool,
        adain_keys: bool,
        adain_values: bool,
        reference_strength: float,
        share_input_blocks: bool,
        share_middle_block: bool,
        share_output_blocks: bool,
        shared_layer_fraction: float,
        start_percent: float,
        end_percent: float,
        transformer_blocks: str = "auto",
        shift_reference_positions: bool = True,
        reference_key_scale: float = 0.0,
        reference=None,
        adain_on: str = ADAIN_DEFAULT,
        full_attention_sharing: bool = False,
        share_group_norm: bool = False,
        shared_frames: str = SHARED_FRAMES_ALL,
        references=None,
    ) -> io.NodeOutput:
        check_inputs(cls, locals())
        chosen = None if references is None else listed_references(references, full_attention_sharing, share_group_norm)
        if chosen is not None:
            reference_index = chosen.slots[0]
        if start_percent > end_percent:
            raise StyleAlignedError(
                f"{NODE_ID}: start_percent ({start_percent}) is after end_percent ({end_percent}); "
                f"set start_percent <= end_percent."
            )
        options = StyleAlignedOptions(
            reference_index=reference_index,
            share_attention=share_attention,
            adain_queries=adain_queries,
            adain_keys=adain_keys,
            adain_values=adain_values,
            reference_strength=reference_strength,
            share_input_blocks=share_input_blocks,
            share_middle_block=share_middle_block,
            share_output_blocks=share_output_blocks,
            shared_layer_fraction=shared_layer_fraction,
            sigma_start=percent_to_sigma(model, start_percent),
            sigma_end=percent_to_sigma(model, end_percent),
            adain_on_projections=adain_on_projections(adain_on),
            full_attention_sharing=full_attention_sharing,
            share_group_norm=share_group_norm,
            transformer_blocks=transformer_blocks,
            shift_reference_positions=shift_reference_positions,
            reference_key_scale=reference_key_scale,
            matching_frames=shared_frames == SHARED_FRAMES_MATCHING,  # checked by check_inputs
            references=chosen,
        )
        family = transformer_family(model, NODE_ID)
        held_reference = None if reference is None else hold_reference(model, reference)
        if family is not None:
            return io.NodeOutput(patch_transformer(model, family, options, held_reference))
        shared_layers = select_shared_layers(self_attention_layers(model, NODE_ID), options)
        runtime = PatchRuntime()
        # The attention override applies reference_strength and re-tiles the keys for tiled queries (HyperTile).
        make_override = lambda previous: ReferenceLogitShift(runtime, previous)  # noqa: E731
        # A model already carrying a StyleAligned patch set loses it: the later node's settings win.
        patched = install_patch_set(
            model,
            UNetModelCall(options, runtime, held_reference=held_reference),
            attn1_patch=SharedAttentionPatch(options, runtime, shared_layers),
            make_attention_override=make_override,
        )
        if options.share_group_norm:
            install_shared_group_norm(patched, runtime)
        return io.NodeOutput(patched)


def patch_transformer(model, family, options: StyleAlignedOptions, held_reference=None):
    diffusion_model = model.get_model_object("diffusion_model")
    sharing = transformer_sharing(options, family, family.block_counts(diffusion_model))
    return install_transformer_route(model, family, options, sharing, held_reference)


def listed_references(references, full_attention_sharing: bool, share_group_norm: bool):
    """The weighted references of the `references` input, checked against the options they cannot go with."""
    chosen = chosen_references(references, NODE_ID)
    if full_attention_sharing:
        raise StyleAlignedError(
            f"{NODE_ID}: references is connected but full_attention_sharing is on, which has no references (every "
            f"image attends to every image). Turn full_attention_sharing off, or disconnect references."
        )
    if share_group_norm and chosen.several:
        raise StyleAlignedError(
            f"{NODE_ID}: share_group_norm shares each GroupNorm with one reference, but references lists "
            f"{len(chosen.slots)} of weight above 0. Turn share_group_norm off, or list one reference."
        )
    return chosen


def hold_reference(model, reference) -> HeldReference:
    if not isinstance(reference, ReferenceTrajectory):
        raise StyleAlignedError(f"{NODE_ID}: reference is not a StyleAligned reference; connect the invert or load node's output.")
    made_for = reference.metadata.get("model_family")
    family = model_family(model)
    if not made_for:
        raise StyleAlignedError(
            f"{NODE_ID}: reference does not say which model it was made with (its file lacks the model family). "
            f"Invert the image again with this model (StyleAlignedInvertReference)."
        )
    if made_for != family:
        raise StyleAlignedError(
            f"{NODE_ID}: reference was made with a {made_for} model but this model is {family}. Invert the image "
            f"again with this model (StyleAlignedInvertReference)."
        )
    return HeldReference(reference, to_model_latent(model, reference.clean_latent), noise_scaling(model))


def adain_on_projections(adain_on: str) -> bool:
    if adain_on not in ADAIN_PLACES:
        raise StyleAlignedError(f"{NODE_ID}: adain_on '{adain_on}' is not one of: {', '.join(ADAIN_PLACES)}.")
    return adain_on == ADAIN_ON_PROJECTIONS
