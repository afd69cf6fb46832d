"""StyleAlignedSplitSet / StyleAlignedGatherSet: a set larger than one batch, sampled a few images at a time.

The split node's list outputs make the stock KSampler and VAE Decode run once per batch; the gather node
(is_input_list) takes the decoded batches back as one set. Node ids and input names are a public contract.
"""

from __future__ import annotations

from comfy_api.latest import io, ui

from ..stylealign_core import ConditioningRows, StyleAlignedError, latent_rows, plan_chunks
from .input_checks import check_inputs, check_latent

SPLIT_NODE_ID = "StyleAlignedSplitSet"
GATHER_NODE_ID = "StyleAlignedGatherSet"
MAX_BATCH_SLOT = 4095
DEFAULT_IMAGES_PER_BATCH = 4  # our choice, not the paper's: the reference and 3 targets

StyleAlignedSetChunks = io.Custom("STYLEALIGN_SET_CHUNKS")

EXACTNESS = (
    "The images equal those of the whole set in one batch with deterministic samplers (euler, heun, dpmpp_2m, "
    "ddim...). Ancestral and SDE samplers (euler_ancestral, dpmpp_2m_sde...) draw fresh noise over the whole "
    "batch at every step, so with them each batch gives a different but equally valid set."
)


class StyleAlignedSplitSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=SPLIT_NODE_ID,
            display_name="StyleAligned Split Set into Batches",
            category="latent/style_aligned",
            description=(
                "Samples a set larger than one batch a few images at a time: splits the set's latent and per-image "
                "prompts (and ControlNet hints) into batches that each hold the reference at slot reference_index, "
                "as lists, so KSampler and VAE Decode run once per batch. StyleAligned Gather Set puts the decoded "
                "set back together. " + EXACTNESS
            ),
            inputs=[
                io.Conditioning.Input(
                    "positive",
                    tooltip="The set's prompts: one per image (StyleAligned Prompt Batch) or one for all, optionally "
                    "with a ControlNet applied (a hint per image or one for all).",
                ),
                io.Conditioning.Input("negative", tooltip="The negative prompt (one for all images, or one per image)."),
                io.Latent.Input(
                    "latent",
                    tooltip="The whole set's latent batch (Empty Latent Image with batch_size from the prompt batch, "
                    "or Latent Batch of an encoded reference image and empty latents).",
                ),
                io.Int.Input(
                    "reference_index", default=0, min=0, max=MAX_BATCH_SLOT,
                    tooltip="The reference's slot in the set; set the same value on StyleAligned (shared attention). "
                    "Every batch holds the reference at this slot.",
                ),
                io.Int.Input(
                    "images_per_batch", default=DEFAULT_IMAGES_PER_BATCH, min=0, max=MAX_BATCH_SLOT + 1,
                    tooltip="Most images sampled at once, the reference included (it is sampled again in every batch). "
                    "0 = the whole set in one batch. At least 2 and more than reference_index. Default 4 (the reference and 3 "
                    "targets) is our choice, not the paper's; lower it when memory runs out. " + EXACTNESS,
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", is_output_list=True,
                                       tooltip="Each batch's prompts: connect to KSampler's positive."),
                io.Conditioning.Output(display_name="negative", is_output_list=True,
                                       tooltip="Each batch's negative prompts: connect to KSampler's negative."),
                io.Latent.Output(display_name="latent", is_output_list=True,
                                 tooltip="Each batch's latent (keeping each image's noise): connect to KSampler's latent_image."),
                StyleAlignedSetChunks.Output(display_name="set_chunks",
                                             tooltip="Which images each batch holds: connect to StyleAligned Gather Set."),
            ],
        )

    @classmethod
    def execute(cls, positive, negative, latent, reference_index: int, images_per_batch: int) -> io.NodeOutput:
        check_inputs(cls, locals())
        set_size = int(check_latent(SPLIT_NODE_ID, "latent", latent).shape[0])
        plan = plan_chunks(set_size, reference_index, images_per_batch, SPLIT_NODE_ID)
        positives, negatives, latents = [], [], []
        for rows in plan.chunks:
            conditioning_rows = ConditioningRows(set_size, rows, SPLIT_NODE_ID)
            positives.append(conditioning_rows.conditioning(positive, "positive"))
            negatives.append(conditioning_rows.conditioning(negative, "negative"))
            latents.append(latent_rows(latent, rows))
        return io.NodeOutput(positives, negatives, latents, plan, ui=ui.PreviewText(plan.describe()))


class StyleAlignedGatherSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=GATHER_NODE_ID,
            display_name="StyleAligned Gather Set",
            category="image/style_aligned",
            description=(
                "Puts a set sampled in batches (StyleAligned Split Set into Batches) back together: one image batch "
                "in set order, the reference once at its slot."
            ),
            is_input_list=True,
            inputs=[
                io.Image.Input("images", tooltip="The decoded batches (VAE Decode after the KSampler fed by the split node)."),
                StyleAlignedSetChunks.Input("set_chunks", tooltip="The split node's set_chunks output."),
            ],
            outputs=[io.Image.Output(tooltip="The whole set as one image batch, in set order (prompt order).")],
        )

    @classmethod
    def execute(cls, images: list, set_chunks: list) -> io.NodeOutput:
        plans = {id(plan): plan for plan in set_chunks}
        if len(plans) != 1:
            raise StyleAlignedError(
                f"{GATHER_NODE_ID}: set_chunks holds {len(plans)} different splits; connect one StyleAligned Split Set "
                f"into Batches node."
            )
        return io.NodeOutput(set_chunks[0].gather(list(images), GATHER_NODE_ID, "images"))
