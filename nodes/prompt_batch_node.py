"""StyleAlignedPromptBatch: one prompt per image of the batch, in a single CONDITIONING."""

from __future__ import annotations

from comfy_api.latest import io, ui

from ..stylealign_core import StyleAlignedError, common_token_length, prompt_of_each_image, stack_prompt_conditionings
from ..stylealign_core.prompts.conditioning_batch import MAX_BATCH_TOKENS, check_token_budget
from .input_checks import check_inputs, check_latent
from .text_encoding import encode_tokens, token_count, tokenize
from .schema_features import search_words

NODE_ID = "StyleAlignedPromptBatch"
PROMPT_PLACEHOLDER = "{prompt}"


def prompt_lines(prompts: str) -> list[str]:
    return [line.strip() for line in prompts.splitlines() if line.strip()]


def styled(line: str, style: str) -> str:
    style = style.strip()
    if not style:
        return line
    if PROMPT_PLACEHOLDER in style:
        return style.replace(PROMPT_PLACEHOLDER, line)
    return f"{line}, {style}"


def describe_assignment(texts: list[str], image_count: int) -> str:
    lines = []
    for image, prompt in enumerate(prompt_of_each_image(len(texts), image_count)):
        role = "reference" if image == 0 else "target"
        lines.append(f"image {image} ({role}): line {prompt + 1}: {texts[prompt]}")
    return "\n".join(lines)


class StyleAlignedPromptBatch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_ID,
            display_name="StyleAligned Prompt Batch",
            **search_words("prompt list", "multiple prompts", "one prompt per image", "prompt per line"),
            category="conditioning/style_aligned",
            description=(
                "Encodes one prompt per line into a single conditioning whose batch gives image i the prompt of "
                "line i. The first line is the reference image's prompt. Use as the sampler's positive input with a "
                "latent batch of the same size."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder (from the checkpoint loader)."),
                io.String.Input(
                    "prompts", multiline=True,
                    default="a toy train\na toy car\na toy boat\na toy airplane",
                    tooltip="One image per non-empty line; line 1 is the style reference (batch slot 0). Every line is "
                    f"brought to the longest line's token count: lines x that count may be at most {MAX_BATCH_TOKENS} "
                    "(our bound on memory, e.g. 425 lines of 77 CLIP tokens).",
                ),
                io.String.Input(
                    "style", multiline=True, default="in minimal origami style",
                    tooltip="Text every line receives: appended as ', style', or put where {prompt} stands "
                    "(e.g. 'a watercolor painting of {prompt}'). Leave empty for the lines alone.",
                ),
                io.Latent.Input(
                    "latent", optional=True,
                    tooltip="Optional: the latent batch you will sample, to check its size against the prompts and show "
                    "which image gets which prompt.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(tooltip="One conditioning with a batch of one prompt per line."),
                io.Int.Output(display_name="batch_size", tooltip="The number of prompts: connect to the empty latent's batch_size."),
                io.Int.Output(
                    display_name="target_count",
                    tooltip="The number of prompts after the first (the new images when slot 0 holds a real reference "
                    "image): connect to the empty latent's batch_size and to Image From Batch's length.",
                ),
            ],
        )

    @classmethod
    def execute(cls, clip, prompts: str, style: str, latent=None) -> io.NodeOutput:
        check_inputs(cls, locals())
        image_count = None if latent is None else int(check_latent(NODE_ID, "latent", latent).shape[0])
        lines = prompt_lines(prompts)
        if not lines:
            raise StyleAlignedError(
                f"{NODE_ID}: prompts is empty. Write one prompt per line; the first line is the reference image."
            )
        texts = [styled(line, style) for line in lines]
        # Counted before any encoding, so an oversized batch costs no encoder memory; checked again exactly
        # on the encoded lengths when stacking.
        tokens = [tokenize(clip, text, NODE_ID) for text in texts]
        counts = [token_count(line_tokens) for line_tokens in tokens]
        if None not in counts:
            check_token_budget(counts, NODE_ID)
        encoded = [encode_tokens(clip, line_tokens, NODE_ID) for line_tokens in tokens]
        del tokens
        cond, extras = stack_prompt_conditionings(encoded, NODE_ID)
        image_count = len(texts) if image_count is None else image_count
        summary = describe_assignment(texts, image_count)
        lengths = [entry_cond.shape[1] for entry_cond, _ in encoded]
        common_length, exact = common_token_length(lengths)
        if not exact:
            summary = (
                f"The prompts encode to {min(lengths)}..{max(lengths)} tokens; each was extended to {common_length} by "
                f"repeating its own tokens (approximate: lines of about equal length are used exactly).\n" + summary
            )
        if image_count != len(texts):
            verb = "repeats" if image_count > len(texts) else "cuts"
            summary = (
                f"The latent batch has {image_count} images for {len(texts)} prompts: the sampler {verb} the prompts "
                f"to fit.\n" + summary
            )
        return io.NodeOutput([[cond, extras]], len(texts), len(texts) - 1, ui=ui.PreviewText(summary))
