"""StyleAlignedReferences: lists several references of the batch, each with a weight (node id and input
names are a public contract). One node adds one reference; chain them through `references` to list more,
in order (reference 1 first). The list goes to StyleAlignedPatch's and StyleAlignedSplitSet's optional
`references` input; the maths is in stylealign_core/references.py."""

from __future__ import annotations

from comfy_api.latest import io, ui

from ..stylealign_core import StyleAlignedError
from ..stylealign_core.references import REFERENCES_NODE, ReferenceList, WeightedReferences, weighted_references
from .input_checks import check_inputs
from .schema_features import search_words

NODE_ID = REFERENCES_NODE
MAX_BATCH_SLOT = 4095
MAX_WEIGHT = 10.0

StyleAlignedReferenceList = io.Custom("STYLEALIGN_REFERENCES")


class StyleAlignedReferences(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_ID,
            display_name="StyleAligned References (several styles)",
            **search_words("several references", "blend styles", "mix styles", "style weights"),
            category="model_patches/style_aligned",
            description=(
                "Lists a reference slot of the latent batch with its weight; chain several of these nodes to blend "
                "several reference styles, then connect the last one to StyleAligned (shared attention)'s "
                "references input (and to Split Set's). Every target attends to every reference, each reference's "
                "attention weight multiplied by its weight, and is AdaIN-normalised to the references' weighted "
                "mixture. The references are generated as without the pack and never see each other."
            ),
            inputs=[
                io.Int.Input(
                    "slot", default=0, min=0, max=MAX_BATCH_SLOT,
                    tooltip="The slot of this reference in the latent batch (0 = first image). Each slot may be listed once.",
                ),
                io.Float.Input(
                    "weight", default=1.0, min=0.0, max=MAX_WEIGHT, step=0.05,
                    tooltip="How much this reference's style counts: its attention weight is multiplied by this (as "
                    "reference_strength for one reference) and AdaIN uses weight / sum of weights. 1 with one reference "
                    "is the paper. 0 drops the reference (its slot becomes an ordinary target); at least one weight "
                    "must be above 0.",
                ),
                StyleAlignedReferenceList.Input(
                    "references", optional=True,
                    tooltip="Optional: the references listed so far (another StyleAligned References node); this "
                    "node's reference comes after them. Its position in the list (1, 2, ...) sets how far a "
                    "transformer shifts its positions (i image widths).",
                ),
            ],
            outputs=[StyleAlignedReferenceList.Output(
                display_name="references",
                tooltip="The list: connect to StyleAligned (shared attention)'s references input, to Split Set's, or "
                "to another StyleAligned References node.")],
        )

    @classmethod
    def execute(cls, slot: int, weight: float, references: ReferenceList | None = None) -> io.NodeOutput:
        check_inputs(cls, locals())
        listed = (references if references is not None else ReferenceList()).plus(slot, weight, NODE_ID)
        return io.NodeOutput(listed, ui=ui.PreviewText(describe(listed)))


def describe(listed: ReferenceList) -> str:
    total = sum(entry.weight for entry in listed.entries)
    lines = []
    for number, entry in enumerate(listed.entries, start=1):
        share = f"{entry.weight / total:.0%} of AdaIN" if total > 0 and entry.weight > 0 else "dropped (weight 0)"
        lines.append(f"reference {number}: slot {entry.slot}, weight {entry.weight:g} ({share})")
    return "\n".join(lines)


def chosen_references(references, node_name: str, input_name: str = "references") -> WeightedReferences:
    """The weighted references of a connected `references` input (consumers: the patch and split nodes)."""
    if not isinstance(references, ReferenceList):
        raise StyleAlignedError(
            f"{node_name}: {input_name} is not a StyleAligned references list; connect a StyleAligned References node."
        )
    return weighted_references(references, node_name, input_name)
