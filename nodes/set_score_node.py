"""StyleAlignedSetScore: the paper's set consistency (mean pairwise cosine similarity of image embeddings)
of an image batch, its similarity to the reference, and a heatmap of the pairwise similarities."""

from __future__ import annotations

import torch
from comfy_api.latest import io, ui

from ..stylealign_core import StyleAlignedError
from ..stylealign_core.scoring import heatmap
from ..stylealign_core.scoring.heatmap import Panel, heatmap_picture
from ..stylealign_core.scoring.embedding_cache import EmbeddingCache
from ..stylealign_core.scoring.similarity import SetScore, pooled_embeddings, score_set
from .input_checks import check_finite, check_inputs
from .picture_text import picture_to_image
from .schema_features import search_words

NODE_ID = "StyleAlignedSetScore"
MAX_BATCH_SLOT = 4095
ENCODE_BATCH = 16  # images per encoder call (our choice): bounds the encoder's activations
# Re-running a graph re-encodes only pictures this encoder has not seen (the set without the patch and the
# reference usually stay the same).
EMBEDDINGS = EmbeddingCache()


def _check_set(images: torch.Tensor, name: str, reference_index: int) -> None:
    if not torch.is_tensor(images) or images.ndim != 4:
        raise StyleAlignedError(f"{NODE_ID}: {name} is not an image batch; connect an IMAGE output (e.g. VAE Decode).")
    count = int(images.shape[0])
    if count < 2:
        raise StyleAlignedError(
            f"{NODE_ID}: {name} holds {count} image; the score compares pairs of images. Connect a batch of 2 or "
            f"more images (e.g. the decoded StyleAligned set)."
        )
    if reference_index >= count:
        raise StyleAlignedError(
            f"{NODE_ID}: reference_index {reference_index} is outside {name} ({count} images, slots 0 to {count - 1}). "
            f"Set reference_index to the reference's slot, the same as in StyleAlignedPatch."
        )
    # Checked before encoding: NaN pixels would come back as NaN embeddings, wrongly blamed on the encoder.
    check_finite(NODE_ID, name, images, "the images are broken upstream (e.g. a VAE decode or a sampler that "
                 "overflowed in fp16), not the vision model. Fix or re-run the graph that made them.")


def _encode(clip_vision, images: torch.Tensor) -> torch.Tensor:
    """(images, width) float32 embeddings, as CLIPVisionEncode (crop "center") would give them, ENCODE_BATCH
    images at a time so the encoder's memory does not grow with the set."""
    parts = []
    for start in range(0, int(images.shape[0]), ENCODE_BATCH):
        output = clip_vision.encode_image(images[start : start + ENCODE_BATCH])
        try:
            parts.append(pooled_embeddings(output["image_embeds"]))
        except ValueError as error:
            raise StyleAlignedError(f"{NODE_ID}: clip_vision: {error}. Use a CLIP, SigLIP or DINOv2 vision model.") from error
    embeddings = torch.cat(parts)
    if not torch.isfinite(embeddings).all():
        raise StyleAlignedError(
            f"{NODE_ID}: clip_vision returned non-finite embeddings (NaN or inf); the vision model file may be damaged "
            f"or incomplete. Load another one with CLIP Vision Loader."
        )
    return embeddings


def _describe(name: str, score: SetScore) -> str:
    pairs = score.image_count * (score.image_count - 1) // 2
    return (f"{name}: set_consistency {score.set_consistency:.4f} (mean over {pairs} pairs of {score.image_count} images), "
            f"reference_similarity {score.reference_similarity:.4f} (to image {score.reference_index})")


def _panel(name: str, score: SetScore) -> Panel:
    return Panel(name, (f"set consistency {score.set_consistency:.3f}", f"to reference {score.reference_similarity:.3f}"),
                 score.matrix, score.reference_index)


def encoder_name(clip_vision) -> str:
    """What CLIP Vision Loader loaded, in words (ComfyUI runs CLIP and SigLIP through one class)."""
    model_class = type(getattr(clip_vision, "model", clip_vision)).__name__
    if model_class == "Dinov2Model":
        return "DINOv2"
    if model_class == "CLIPVisionModelProjection":
        return "SigLIP" if getattr(clip_vision, "return_all_hidden_states", False) else "CLIP"
    return model_class


def summary(scores: dict[str, SetScore], encoder: str, width: int) -> str:
    lines = [_describe(name, score) for name, score in scores.items()]
    if len(scores) == 2:
        (name_a, a), (name_b, b) = scores.items()
        lines.append(f"{name_a} - {name_b}: set_consistency {a.set_consistency - b.set_consistency:+.4f}, "
                     f"reference_similarity {a.reference_similarity - b.reference_similarity:+.4f}")
    advice = ("the paper's kind of style metric" if encoder == "DINOv2"
              else "it weighs content and meaning more than style; DINOv2 measures style the paper's way")
    lines.append(f"encoder: {encoder}, {width}-wide image embeddings ({advice})")
    return "\n".join(lines)


class StyleAlignedSetScore(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_ID,
            display_name="StyleAligned Set Score",
            **search_words("style consistency", "clip similarity", "dino score", "style metric"),
            category="image/style_aligned",
            is_output_node=True,
            description=(
                "How alike the images of a set are: the mean cosine similarity of their vision-encoder embeddings over "
                "all pairs (the set consistency of the StyleAligned paper, measured there with DINO), the mean "
                "similarity to the reference image, and a heatmap of every pair. Optionally the same for a second set, "
                "e.g. the same graph with StyleAligned bypassed."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The set to score: a batch of 2 or more images (e.g. VAE Decode of the StyleAligned batch)."),
                io.ClipVision.Input(
                    "clip_vision",
                    tooltip="The image encoder (CLIP Vision Loader). DINOv2 (e.g. facebook/dinov2-large) is the paper's kind of "
                    "style metric; CLIP ViT-L/H/G measure content and meaning more. SigLIP's token embeddings are averaged.",
                ),
                io.Int.Input(
                    "reference_index", default=0, min=0, max=MAX_BATCH_SLOT,
                    tooltip="Slot of the reference image in the set (0 = first), as in StyleAlignedPatch.",
                ),
                io.Image.Input(
                    "compare_images", optional=True,
                    tooltip="Optional second set scored the same way and shown beside the first, e.g. the same graph with "
                    "StyleAligned bypassed. 2 or more images; its reference is the same slot.",
                ),
            ],
            outputs=[
                io.Float.Output("set_consistency", display_name="set_consistency",
                                tooltip="Mean cosine similarity of the images' embeddings over all unordered pairs (1 = identical)."),
                io.Float.Output("reference_similarity", display_name="reference_similarity",
                                tooltip="Mean cosine similarity of each other image to the reference image."),
                io.Image.Output("heatmap", display_name="heatmap",
                                tooltip="The pairwise similarities as a labelled heatmap with the values (both sets side by side when compared). "
                                f"At most {heatmap.MAX_GRID_SIDE} px of grid per set whatever its size: cells shrink, values show from "
                                f"{heatmap.VALUE_MIN_CELL} px cells, labels thin out, and past {heatmap.MAX_GROUPS} images each cell is the "
                                "mean over groups of images. The scores always cover every pair."),
            ],
        )

    @classmethod
    def execute(cls, images, clip_vision, reference_index: int, compare_images=None) -> io.NodeOutput:
        check_inputs(cls, locals())
        sets = {"images": images}
        if compare_images is not None:
            sets["compare_images"] = compare_images
        for name, batch in sets.items():
            _check_set(batch, name, reference_index)
        embeddings = {name: EMBEDDINGS.embeddings(clip_vision, batch, lambda new: _encode(clip_vision, new))
                      for name, batch in sets.items()}
        scores = {name: score_set(rows, reference_index) for name, rows in embeddings.items()}
        picture = heatmap_picture([_panel(name, score) for name, score in scores.items()])
        heatmap = picture_to_image(picture.pixels, picture.texts)
        text = summary(scores, encoder_name(clip_vision), int(embeddings["images"].shape[1]))
        main = scores["images"]
        return io.NodeOutput(main.set_consistency, main.reference_similarity, heatmap, ui=ui.PreviewText(text))
