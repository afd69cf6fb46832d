"""StyleAlignedSplitSet / StyleAlignedGatherSet: a set larger than one batch, sampled a few images at a time.

The split node's list outputs make the stock KSampler and VAE Decode run once per batch; the gather node
(is_input_list) takes the decoded batches back as one set. With part_index / part_count the split gives only
one participant's batches (several servers or GPUs, e.g. with ComfyUI-Distributed): StyleAlignedGatherPart
hands them on behind a tag, and StyleAlignedAssembleSet on the master puts the parts back together.
Node ids and input names are a public contract.
"""

from __future__ import annotations

from comfy_api.latest import io, ui

from ..stylealign_core import (
    DEFAULT_REFERENCE_TOLERANCE, ConditioningRows, StyleAlignedError, assemble_parts, latent_rows, plan_chunks,
    tagged_part)
from .schema_features import search_words
from .input_checks import check_inputs, check_latent
from .references_node import StyleAlignedReferenceList, chosen_references

SPLIT_NODE_ID = "StyleAlignedSplitSet"
GATHER_NODE_ID = "StyleAlignedGatherSet"
GATHER_PART_NODE_ID = "StyleAlignedGatherPart"
ASSEMBLE_NODE_ID = "StyleAlignedAssembleSet"
MAX_BATCH_SLOT = 4095
MAX_PARTS = 1024
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
            **search_words("large set", "split batch", "low memory"),
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
                io.Int.Input(
                    "part_index", default=0, min=0, max=MAX_PARTS - 1, optional=True,
                    tooltip="Which participant's share of the set this server renders, 0..part_count-1, when several "
                    "servers or GPUs share the set (drive it with ComfyUI-Distributed's Distributed Value: 0 on the "
                    "master, 1, 2... on the workers). Default 0.",
                ),
                io.Int.Input(
                    "part_count", default=1, min=1, max=MAX_PARTS, optional=True,
                    tooltip="How many participants share the set; each renders a contiguous run of whole batches (as "
                    "even as the batches allow) and samples the reference in each of them with the same noise. 1 (the "
                    "default) = this server renders the whole set. More than 1: connect set_chunks to StyleAligned "
                    "Gather Part of Set, then Distributed Collector, then StyleAligned Assemble Set.",
                ),
                StyleAlignedReferenceList.Input(
                    "references", optional=True,
                    tooltip="Optional: the same StyleAligned References list as on StyleAligned (shared attention). Then "
                    "every batch holds every reference at its slot (reference_index is not used), and the node shows "
                    "them. images_per_batch must exceed the highest reference slot and the number of references.",
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
    def execute(cls, positive, negative, latent, reference_index: int, images_per_batch: int, part_index: int = 0,
                part_count: int = 1, references=None) -> io.NodeOutput:
        check_inputs(cls, locals())
        set_size = int(check_latent(SPLIT_NODE_ID, "latent", latent).shape[0])
        more_references = ()
        if references is not None:
            chosen = chosen_references(references, SPLIT_NODE_ID)
            reference_index, more_references = chosen.slots[0], chosen.slots[1:]
            if more_references and part_count > 1:
                raise StyleAlignedError(
                    f"{SPLIT_NODE_ID}: part_count is {part_count} but references lists {len(chosen.slots)} references; "
                    f"a set shared by several participants takes one reference for now. Set part_count to 1, or list "
                    f"one reference."
                )
        plan = plan_chunks(set_size, reference_index, images_per_batch, SPLIT_NODE_ID, part_index, part_count,
                           more_references)
        positives, negatives, latents = [], [], []
        for rows in plan.part_chunks:
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
            **search_words("large set", "gather batches", "join batches"),
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
        plan = the_one_plan(set_chunks, GATHER_NODE_ID)
        if plan.part_count > 1:
            raise StyleAlignedError(
                f"{GATHER_NODE_ID}: the split renders part {plan.part_index} of {plan.part_count} parts, not the whole "
                f"set. Use StyleAligned Gather Part of Set, Distributed Collector and StyleAligned Assemble Set instead, "
                f"or set the split's part_count to 1."
            )
        return io.NodeOutput(plan.gather(list(images), GATHER_NODE_ID, "images"))


def the_one_plan(set_chunks: list, node_name: str):
    plans = {id(plan): plan for plan in set_chunks}
    if len(plans) != 1:
        raise StyleAlignedError(
            f"{node_name}: set_chunks holds {len(plans)} different splits; connect one StyleAligned Split Set into "
            f"Batches node."
        )
    return set_chunks[0]


class StyleAlignedGatherPart(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=GATHER_PART_NODE_ID,
            display_name="StyleAligned Gather Part of Set",
            category="image/style_aligned",
            **search_words("distributed", "multi gpu", "gather part"),
            description=(
                "One participant's share of a set rendered by several servers or GPUs (the split node's part_index / "
                "part_count): its decoded batches as one image batch, each image once in set order, the reference "
                "included, led by a tag image that says which part of which set they are. Connect it to Distributed "
                "Collector (ComfyUI-Distributed), and the collector to StyleAligned Assemble Set."
            ),
            is_input_list=True,
            inputs=[
                io.Image.Input("images", tooltip="The decoded batches (VAE Decode after the KSampler fed by the split node)."),
                StyleAlignedSetChunks.Input("set_chunks", tooltip="The split node's set_chunks output."),
            ],
            outputs=[io.Image.Output(
                display_name="part",
                tooltip="The tag image, then this participant's images in set order: connect to Distributed Collector "
                        "(the tag is not a picture; StyleAligned Assemble Set reads and drops it).")],
        )

    @classmethod
    def execute(cls, images: list, set_chunks: list) -> io.NodeOutput:
        plan = the_one_plan(set_chunks, GATHER_PART_NODE_ID)
        return io.NodeOutput(tagged_part(plan, plan.gather(list(images), GATHER_PART_NODE_ID, "images")))


class StyleAlignedAssembleSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=ASSEMBLE_NODE_ID,
            display_name="StyleAligned Assemble Set",
            category="image/style_aligned",
            **search_words("distributed", "multi gpu", "assemble parts"),
            description=(
                "On the master: the set put back together from every participant's part (StyleAligned Gather Part of "
                "Set, gathered by Distributed Collector), in set order with the reference once, whatever order the "
                "parts arrive in. Fails, naming the cause, when a part is missing (a worker down or timed out), comes "
                "twice, or was rendered with other settings (its reference differs)."
            ),
            inputs=[
                io.Image.Input("images", tooltip="Distributed Collector's images: every participant's tagged part."),
                io.Float.Input(
                    "reference_tolerance", default=DEFAULT_REFERENCE_TOLERANCE, min=0.0, max=1.0, step=0.001,
                    optional=True,
                    tooltip="How much the participants' renderings of the reference may differ (mean |difference| "
                    "per pixel, 0..1) before a part counts as rendered with other settings. Default 0.02 is our "
                    "choice: one server's batches agree within 1/255, other GPU models a little less; another seed "
                    "or prompt differs by tenths. 1 = no check.",
                ),
            ],
            outputs=[io.Image.Output(tooltip="The whole set as one image batch, in set order (prompt order).")],
        )

    @classmethod
    def execute(cls, images, reference_tolerance: float = DEFAULT_REFERENCE_TOLERANCE) -> io.NodeOutput:
        check_inputs(cls, locals())
        assembled = assemble_parts(images, reference_tolerance, ASSEMBLE_NODE_ID, "images")
        return io.NodeOutput(assembled.images, ui=ui.PreviewText(assembled.report))
