"""Build the shipped workflows (`workflows/*.json`, UI format) in the real front end, and their API twins.

Each workflow is described below as nodes (type, position, widget values by name), links and notes. The
graph is built in the page that a test server serves, with the front end's own node classes
(`FrontEnd.build_workflow`), exported exactly as the front end exports a workflow (graphToPrompt's
`workflow`), loaded back like a user's file (it must load with no missing node, alert or warning) and
re-exported until the file is a fixed point of load + export; the API twin `workflows/api/NAME.json` is
the front end's conversion of that file (graphToPrompt's `output`). So a node that gains an input is
picked up by running this again:

    python tests/host/build_workflows.py            # every workflow below
    python tests/host/build_workflows.py stylealigned_sd15_set

A workflow edited by hand instead is brought into the exported form, with its twin, by
`python tests/host/frontend.py --resave FILE`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__:
    from .api_workflows import API_WORKFLOWS_DIR, WORKFLOWS_DIR
    from .distributed import install as install_distributed
    from .fetch_comfyui import comfyui_path
    from .frontend import FrontEnd, save_as_exported, write_api_twin
    from .model_sources import with_sources_note
    from .server import comfy_server
else:  # run as a script: import the helpers as the `host` package; tests/host itself must not shadow ComfyUI's modules
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(HERE.parent))
    from host.api_workflows import API_WORKFLOWS_DIR, WORKFLOWS_DIR
    from host.distributed import install as install_distributed
    from host.fetch_comfyui import comfyui_path
    from host.frontend import FrontEnd, save_as_exported, write_api_twin
    from host.model_sources import with_sources_note
    from host.server import comfy_server

SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SDXL_CHECKPOINT = "sd_xl_base_1.0.safetensors"
CANNY_CONTROLNET = "control_v11p_sd15_canny.pth"
INPUT_IMAGE = "example.png"  # ComfyUI ships input/example.png
NOTE_COLORS = {"color": "#432", "bgcolor": "#653"}  # the front end's "yellow" node colour, as notes usually have
UUID_NAMESPACE = uuid.UUID("6f3c2a8e-5b1d-4e7a-9c4f-2d8b1a7e3f50")

PATCH_DEFAULTS = {
    "reference_index": 0, "share_attention": True, "adain_queries": True, "adain_keys": True, "adain_values": False,
    "reference_strength": 1.0, "share_input_blocks": True, "share_middle_block": True, "share_output_blocks": True,
    "shared_layer_fraction": 1.0, "transformer_blocks": "auto", "shift_reference_positions": True,
    "reference_key_scale": 0.0, "start_percent": 0.0, "end_percent": 1.0,
}


def node(node_id: int, type_: str, pos: tuple[int, int], size: tuple[int, int] | None = None, title: str | None = None,
         **widgets) -> dict:
    spec = {"id": node_id, "type": type_, "pos": list(pos), "widgets": widgets}
    if size:
        spec["size"] = list(size)
    if title:
        spec["title"] = title
    return spec


def note(node_id: int, pos: tuple[int, int], size: tuple[int, int], title: str, text: str) -> dict:
    return {"id": node_id, "type": "Note", "pos": list(pos), "size": list(size), "title": title,
            "widgets": {"text": text.strip()}, **NOTE_COLORS}


def ksampler(node_id: int, pos, seed: int, steps: int, cfg: float = 7.0) -> dict:
    return node(node_id, "KSampler", pos, (320, 270), seed=seed, control_after_generate="fixed", steps=steps, cfg=cfg,
                sampler_name="euler", scheduler="normal", denoise=1.0)


# ---- the workflows ------------------------------------------------------------------------------------------

SET_NOTE = """
StyleAligned: a set of images in one shared style (Hertz et al., CVPR 2024)

What to choose:
1. Load Checkpoint: your {family} model ({checkpoint} or {others}).
2. StyleAligned Prompt Batch: one image per line. Line 1 is the style reference (batch slot 0); every other line is a target that takes on the reference's style. "style" is added to every line (or put where {{prompt}} stands).
3. Empty Latent Image: its batch_size is linked to the prompt batch, so the set has one image per line. {size_hint}
4. StyleAligned: reference_index is the batch slot of the reference (0 = line 1). The other settings follow the paper; raise reference_strength to pull the style harder, lower shared_layer_fraction to keep more of each image's own layout.
5. KSampler: the seed is fixed so the set is reproducible; change it for a new set.

The reference image comes out exactly as without the StyleAligned node: bypass that node (Ctrl+B) to compare.
"""


def prompt_set(name: str, checkpoint: str, family: str, others: str, size: int, size_hint: str, prompts: str, style: str,
               negative: str, seed: int, steps: int) -> dict:
    """Checkpoint → StyleAlignedPatch → KSampler, prompts from StyleAlignedPromptBatch whose batch_size output
    drives EmptyLatentImage's batch_size (a widget input with a link)."""
    return {
        "nodes": [
            node(1, "CheckpointLoaderSimple", (40, 110), (330, 100), ckpt_name=checkpoint),
            node(2, "StyleAlignedPatch", (420, 40), (330, 360), **PATCH_DEFAULTS),
            node(3, "StyleAlignedPromptBatch", (420, 450), (420, 270), "Prompts: one image per line, line 1 = reference",
                 prompts=prompts, style=style),
            node(4, "CLIPTextEncode", (420, 770), (420, 130), "Negative prompt", text=negative),
            node(5, "EmptyLatentImage", (880, 360), (320, 110), "Empty Latent Image (batch_size = prompt lines)",
                 width=size, height=size, batch_size=4),
            ksampler(6, (880, 40), seed, steps),
            node(7, "VAEDecode", (1240, 40), (210, 50)),
            node(8, "SaveImage", (1240, 140), (560, 580), filename_prefix=f"StyleAligned/{name}"),
            note(9, (40, 270), (340, 560), "StyleAligned: what to choose",
                 SET_NOTE.format(family=family, checkpoint=checkpoint, others=others, size_hint=size_hint)),
        ],
        "links": [
            (1, "MODEL", 2, "model"), (1, "CLIP", 3, "clip"), (1, "CLIP", 4, "clip"),
            (2, "MODEL", 6, "model"), (3, "CONDITIONING", 6, "positive"), (4, "CONDITIONING", 6, "negative"),
            (3, "batch_size", 5, "batch_size"), (5, "LATENT", 6, "latent_image"),
            (6, "LATENT", 7, "samples"), (1, "VAE", 7, "vae"), (7, "IMAGE", 8, "images"),
        ],
    }


def sd15_set() -> dict:
    return prompt_set(
        "sd15_set", SD15_CHECKPOINT, "SD1.5", "any SD1.x checkpoint", 512,
        "512×512 suits SD1.5.",
        prompts="a lighthouse on a rocky coast\na cottage in a forest\na sailing boat at sea\na windmill on a hill",
        style="watercolor painting, soft pastel colors, paper texture",
        negative="photo, realistic, blurry, low quality, watermark, text", seed=1234, steps=30)


def sdxl_set() -> dict:
    return prompt_set(
        "sdxl_set", SDXL_CHECKPOINT, "SDXL", "another SDXL base checkpoint; no refiner is used", 1024,
        "1024×1024 suits SDXL (other SDXL resolutions work too).",
        prompts="a toy train\na toy car\na toy boat\na toy airplane",
        style="in minimal origami style",
        negative="blurry, low quality, watermark, text", seed=20240617, steps=30)


REAL_IMAGE_NOTE = """
StyleAligned: the style of a real picture

What to choose:
1. Load Checkpoint: your SD1.5 model (v1-5-pruned-emaonly.safetensors or any SD1.x checkpoint).
2. Load Image: the picture whose style the new images take (example.png is the picture ComfyUI ships in its input folder). Upscale Image brings it to the size of the new images (512×512, center crop).
3. StyleAligned Invert Reference Image, prompt: a short, faithful description of the picture (the same words as prompt line 1 with the style).
4. StyleAligned Prompt Batch: line 1 describes the picture (the reference), every other line is a new image; "style" is added to every line.
5. Empty Latent Image, batch_size: linked to the prompt batch's target_count (prompt lines − 1, the new images).
6. StyleAligned Save Reference writes the inverted picture to output/stylealign/; next time use StyleAligned Load Reference instead of inverting again.
"""

REFERENCE_SLOT_NOTE = """
The reference slot

- Latent Batch puts the encoded picture first: slot 0 of the batch is the reference, slots 1, 2, 3 are the new images. Keep StyleAligned's reference_index at 0.
- StyleAligned's reference input holds slot 0 on the picture's inverted trajectory at every step, so slot 0 decodes back to the picture itself (see "All slots") and the new images take on its style.
- Image From Batch drops slot 0 before saving: batch_index 1, length linked to the prompt batch's target_count.
"""


def real_image_style() -> dict:
    style = "a child's crayon drawing of {prompt}, flat bright colors"
    reference_line = "a girl in a pink dress on a green hill under a blue sky"
    return {
        "nodes": [
            node(1, "CheckpointLoaderSimple", (40, 110), (330, 100), ckpt_name=SD15_CHECKPOINT),
            node(2, "LoadImage", (40, 270), (330, 330), "Load Image (the style reference)", image=INPUT_IMAGE),
            node(3, "ImageScale", (410, 270), (320, 130), upscale_method="lanczos", width=512, height=512, crop="center"),
            node(4, "VAEEncode", (410, 450), (210, 50)),
            node(5, "StyleAlignedInvertReference", (410, 550), (380, 240),
                 prompt=style.replace("{prompt}", reference_line), steps=50, scheduler="normal"),
            node(6, "StyleAlignedSaveReference", (410, 840), (380, 90), filename_prefix="stylealign/reference"),
            node(7, "StyleAlignedPatch", (830, 40), (330, 380), **PATCH_DEFAULTS),
            node(8, "EmptyLatentImage", (830, 470), (320, 110), "Empty Latent Image (the new images)",
                 width=512, height=512, batch_size=3),
            node(9, "LatentBatch", (830, 640), (260, 50), "Latent Batch (slot 0 = the picture)"),
            node(10, "StyleAlignedPromptBatch", (1200, 40), (400, 260), "Prompts: line 1 = the picture, then the new images",
                 prompts="\n".join([reference_line, "a dog in a garden", "a house with a red roof", "a rocket flying to the moon"]),
                 style=style),
            node(11, "CLIPTextEncode", (1200, 350), (400, 110), "Negative prompt",
                 text="photo, realistic, blurry, low quality, watermark, text"),
            ksampler(12, (1640, 40), seed=1234, steps=30),
            node(13, "VAEDecode", (1640, 360), (210, 50)),
            node(14, "ImageFromBatch", (1640, 460), (300, 110), "Image From Batch (drop the reference slot)",
                 batch_index=1, length=3),
            node(15, "PreviewImage", (1990, 40), (300, 300), "All slots (slot 0 = the picture, rebuilt)"),
            node(16, "SaveImage", (1990, 400), (300, 330), filename_prefix="StyleAligned/real_image_style"),
            note(17, (40, 660), (340, 420), "StyleAligned: what to choose", REAL_IMAGE_NOTE),
            note(18, (1200, 520), (400, 300), "StyleAligned: the reference slot", REFERENCE_SLOT_NOTE),
        ],
        "links": [
            (2, "IMAGE", 3, "image"), (3, "IMAGE", 4, "pixels"), (1, "VAE", 4, "vae"),
            (1, "MODEL", 5, "model"), (1, "CLIP", 5, "clip"), (4, "LATENT", 5, "latent"),
            (5, "reference", 6, "reference"),
            (1, "MODEL", 7, "model"), (5, "reference", 7, "reference"),
            (4, "LATENT", 9, "samples1"), (8, "LATENT", 9, "samples2"),
            (1, "CLIP", 10, "clip"), (1, "CLIP", 11, "clip"),
            (10, "target_count", 8, "batch_size"), (10, "target_count", 14, "length"),
            (7, "MODEL", 12, "model"), (10, "CONDITIONING", 12, "positive"), (11, "CONDITIONING", 12, "negative"),
            (9, "LATENT", 12, "latent_image"),
            (12, "LATENT", 13, "samples"), (1, "VAE", 13, "vae"),
            (13, "IMAGE", 15, "images"), (13, "IMAGE", 14, "image"), (14, "IMAGE", 16, "images"),
        ],
    }


CONTROLNET_NOTE = """
StyleAligned with a ControlNet

What to choose:
1. Load Checkpoint: your SD1.5 model (v1-5-pruned-emaonly.safetensors or any SD1.x checkpoint).
2. Load ControlNet Model: an SD1.5 ControlNet from models/controlnet ({controlnet} here). Its preprocessor must match: Canny edges for a canny model; use a depth or pose preprocessor for those models.
3. Load Image: the picture that gives the layout (example.png ships with ComfyUI). Upscale Image makes it 512×512; the control hint is shown in "Control hint".
4. StyleAligned Prompt Batch: one image per line, line 1 is the style reference; its batch_size drives the empty latent.
5. Apply ControlNet: strength and start/end set how closely every image follows the edges.

The same control applies to every image of the batch, the reference included; the reference still comes out exactly as without the StyleAligned node.
"""


def sd15_controlnet() -> dict:
    return {
        "nodes": [
            node(1, "CheckpointLoaderSimple", (40, 110), (330, 100), ckpt_name=SD15_CHECKPOINT),
            node(2, "ControlNetLoader", (40, 260), (330, 60), control_net_name=CANNY_CONTROLNET),
            node(3, "LoadImage", (40, 380), (330, 320), "Load Image (the layout)", image=INPUT_IMAGE),
            node(4, "ImageScale", (410, 380), (300, 130), upscale_method="lanczos", width=512, height=512, crop="center"),
            node(5, "Canny", (410, 560), (300, 90), low_threshold=0.4, high_threshold=0.8),
            node(6, "PreviewImage", (760, 760), (400, 330), "Control hint"),
            node(7, "StyleAlignedPromptBatch", (760, 40), (400, 260), "Prompts: one image per line, line 1 = reference",
                 prompts="a girl in a pink dress\na robot\na knight in armor\na scarecrow",
                 style="standing on a hill under a blue sky, paper cut-out collage, layered colored paper"),
            node(8, "CLIPTextEncode", (760, 350), (400, 110), "Negative prompt",
                 text="photo, realistic, blurry, low quality, watermark, text"),
            node(9, "ControlNetApplyAdvanced", (760, 510), (320, 190), strength=1.0, start_percent=0.0, end_percent=1.0),
            node(10, "StyleAlignedPatch", (1200, 40), (330, 380), **PATCH_DEFAULTS),
            node(11, "EmptyLatentImage", (1200, 470), (320, 110), "Empty Latent Image (batch_size = prompt lines)",
                 width=512, height=512, batch_size=4),
            ksampler(12, (1570, 40), seed=1234, steps=30),
            node(13, "VAEDecode", (1570, 360), (210, 50)),
            node(14, "SaveImage", (1910, 40), (360, 420), filename_prefix="StyleAligned/sd15_controlnet"),
            note(15, (40, 760), (670, 330), "StyleAligned + ControlNet: what to choose",
                 CONTROLNET_NOTE.format(controlnet=CANNY_CONTROLNET)),
        ],
        "links": [
            (3, "IMAGE", 4, "image"), (4, "IMAGE", 5, "image"), (5, "IMAGE", 6, "images"),
            (1, "CLIP", 7, "clip"), (1, "CLIP", 8, "clip"),
            (7, "CONDITIONING", 9, "positive"), (8, "CONDITIONING", 9, "negative"), (2, "CONTROL_NET", 9, "control_net"),
            (5, "IMAGE", 9, "image"), (1, "VAE", 9, "vae"),
            (1, "MODEL", 10, "model"), (7, "batch_size", 11, "batch_size"),
            (10, "MODEL", 12, "model"), (9, "positive", 12, "positive"), (9, "negative", 12, "negative"),
            (11, "LATENT", 12, "latent_image"),
            (12, "LATENT", 13, "samples"), (1, "VAE", 13, "vae"), (13, "IMAGE", 14, "images"),
        ],
    }


DINOV2_CLIP_VISION = "dinov2_large.safetensors"  # facebook/dinov2-large's model.safetensors, renamed

SET_SCORE_NOTE = """
StyleAligned Set Score: how alike is the set?

1. Load CLIP Vision: the image encoder, from models/clip_vision. DINOv2 measures style the way the paper does (facebook/dinov2-large: put its model.safetensors there as {dinov2}). A CLIP vision model (e.g. CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors) works too but weighs content and meaning more than style.
2. The lower KSampler has the same seed, prompts and latent as the upper one but takes the model straight from the checkpoint: the same set without StyleAligned.
3. StyleAligned Set Score: set_consistency = mean cosine similarity of the image embeddings over all pairs of images; reference_similarity = mean similarity of each image to the reference (slot 0). The heatmap shows every pair, with StyleAligned (left) and without (right); the text on the node gives the numbers and their difference.

For scale, the paper (DINO ViT-B/8, SDXL): StyleAligned 0.51 ± 0.14, without AdaIN 0.428, full attention sharing 0.55 but with worse text alignment. Higher is a more consistent style, but copies of one picture score 1 too: look at the images as well.
"""


def sd15_set_score() -> dict:
    """The SD1.5 set, the same set without StyleAligned (a second KSampler on the unpatched model), and
    StyleAlignedSetScore comparing the two."""
    spec = sd15_set()
    spec["nodes"] = [dict(n) for n in spec["nodes"]]
    by_id = {n["id"]: n for n in spec["nodes"]}
    by_id[6]["title"] = "KSampler (with StyleAligned)"
    by_id[8]["size"] = [440, 400]  # SaveImage: room below for the set without StyleAligned
    by_id[8]["widgets"] = {**by_id[8]["widgets"], "filename_prefix": "StyleAligned/sd15_set_score"}
    spec["nodes"] += [
        {**ksampler(10, (880, 520), seed=1234, steps=30), "title": "KSampler (same set without StyleAligned)"},
        node(11, "VAEDecode", (1240, 580), (210, 50)),
        node(12, "PreviewImage", (1240, 670), (440, 330), "Without StyleAligned"),
        node(13, "CLIPVisionLoader", (1720, 40), (400, 60), clip_name=DINOV2_CLIP_VISION),
        node(14, "StyleAlignedSetScore", (1720, 150), (400, 160), reference_index=0),
        node(15, "PreviewImage", (1720, 360), (520, 420), "Set score: pairwise similarity"),
        note(16, (1720, 820), (520, 330), "StyleAligned Set Score: what it measures",
             SET_SCORE_NOTE.format(dinov2=DINOV2_CLIP_VISION)),
    ]
    spec["links"] = spec["links"] + [
        (1, "MODEL", 10, "model"), (3, "CONDITIONING", 10, "positive"), (4, "CONDITIONING", 10, "negative"),
        (5, "LATENT", 10, "latent_image"), (10, "LATENT", 11, "samples"), (1, "VAE", 11, "vae"),
        (11, "IMAGE", 12, "images"),
        (7, "IMAGE", 14, "images"), (11, "IMAGE", 14, "compare_images"), (13, "CLIP_VISION", 14, "clip_vision"),
        (14, "heatmap", 15, "images"),
    ]
    return spec


LARGE_SET_NOTE = """
StyleAligned: a set larger than one batch

What to choose:
1. Load Checkpoint: your SD1.5 model (v1-5-pruned-emaonly.safetensors or any SD1.x checkpoint).
2. StyleAligned Prompt Batch: one image per line, as many as you like. Line 1 is the style reference.
3. StyleAligned Split Set into Batches, images_per_batch: how many images are sampled at once, the reference included (it is sampled again in every batch). 3 here: the 8 images run as 4 batches of the reference plus 2 targets. Lower it when memory runs out; 0 samples the whole set in one batch. reference_index must equal StyleAligned's.
4. KSampler and VAE Decode run once per batch; StyleAligned Gather Set puts the set back together in prompt order, the reference once, and Save Image saves it once.

Every image keeps the starting noise it has in one big batch, so with a deterministic sampler (euler, heun, dpmpp_2m, ddim) the set is the same as sampled in one batch. Ancestral and SDE samplers draw new noise over the whole batch at every step: with them each batch gives a different, equally valid set.
"""


def sd15_large_set() -> dict:
    """prompt batch → StyleAlignedSplitSet (lists) → KSampler → VAEDecode (once per batch) → StyleAlignedGatherSet → SaveImage."""
    prompts = "\n".join([
        "a lighthouse on a rocky coast", "a cottage in a forest", "a sailing boat at sea", "a windmill on a hill",
        "a castle on a cliff", "a hot air balloon over fields", "a steam train on a bridge", "a fox in the snow",
    ])
    return {
        "nodes": [
            node(1, "CheckpointLoaderSimple", (40, 110), (330, 100), ckpt_name=SD15_CHECKPOINT),
            node(2, "StyleAlignedPatch", (420, 40), (330, 360), **PATCH_DEFAULTS),
            node(3, "StyleAlignedPromptBatch", (420, 450), (420, 330), "Prompts: one image per line, line 1 = reference",
                 prompts=prompts, style="watercolor painting, soft pastel colors, paper texture"),
            node(4, "CLIPTextEncode", (420, 830), (420, 130), "Negative prompt",
                 text="photo, realistic, blurry, low quality, watermark, text"),
            node(5, "EmptyLatentImage", (880, 450), (320, 110), "Empty Latent Image (batch_size = prompt lines)",
                 width=512, height=512, batch_size=4),
            node(6, "StyleAlignedSplitSet", (880, 620), (360, 170), "Split the set: 3 images per batch",
                 reference_index=0, images_per_batch=3),
            ksampler(7, (1280, 40), seed=1234, steps=30),
            node(8, "VAEDecode", (1280, 360), (210, 50)),
            node(9, "StyleAlignedGatherSet", (1280, 460), (300, 60)),
            node(10, "SaveImage", (1640, 40), (560, 580), filename_prefix="StyleAligned/sd15_large_set"),
            note(11, (40, 270), (340, 620), "StyleAligned: a large set, batch by batch", LARGE_SET_NOTE),
        ],
        "links": [
            (1, "MODEL", 2, "model"), (1, "CLIP", 3, "clip"), (1, "CLIP", 4, "clip"),
            (3, "batch_size", 5, "batch_size"),
            (3, "CONDITIONING", 6, "positive"), (4, "CONDITIONING", 6, "negative"), (5, "LATENT", 6, "latent"),
            (2, "MODEL", 7, "model"), (6, "positive", 7, "positive"), (6, "negative", 7, "negative"),
            (6, "latent", 7, "latent_image"),
            (7, "LATENT", 8, "samples"), (1, "VAE", 8, "vae"),
            (8, "IMAGE", 9, "images"), (6, "set_chunks", 9, "set_chunks"), (9, "IMAGE", 10, "images"),
        ],
    }
DISTRIBUTED_SET_NOTE = """
StyleAligned: one set rendered by several GPUs or machines (ComfyUI-Distributed)

This workflow expects 2 participants: the master (this ComfyUI) and 1 worker.

Set-up:
1. Install this node pack and ComfyUI-Distributed on every participant, with the same models.
2. In the Distributed panel add the worker and enable it; queue with the Distributed panel's queue button (a plain Queue Prompt renders on the master alone and stops at StyleAligned Assemble Set: part 1 is missing).

What to choose:
1. StyleAligned Split Set into Batches: part_count = the number of participants (2). The set's batches are shared out in whole batches: the master renders the first half, the worker the second; each samples the reference in every batch with the same noise.
2. Distributed Value gives each participant its part_index: 0 on the master (default_value), 1 on worker 1. With more workers raise part_count and give worker k the value k.
3. KSampler: one fixed seed for everyone. Do NOT connect Distributed Seed (or anything that varies per participant) to the seed: the reference must get the same noise on every participant, or the set is not one style (StyleAligned Assemble Set refuses parts whose reference differs).
4. StyleAligned Gather Part of Set → Distributed Collector → StyleAligned Assemble Set: the set comes back in prompt order, the reference once, and is saved once on the master. A worker that is down, disabled or times out sends nothing: the run stops with a message naming the missing part, and nothing is saved.
"""


def sd15_distributed_set() -> dict:
    """The large set shared by 2 participants: Distributed Value drives the split's part_index, each participant
    gathers its part (tagged), Distributed Collector brings the parts to the master, StyleAlignedAssembleSet puts
    the set together. Same prompts, seed and batches as stylealigned_sd15_large_set."""
    spec = sd15_large_set()
    nodes = {n["id"]: n for n in spec["nodes"]}
    nodes[6]["widgets"].update(part_index=0, part_count=2)
    nodes[6]["title"] = "Split the set: 3 images per batch, 2 participants"
    nodes[6]["size"] = [360, 220]
    nodes[9] = node(9, "StyleAlignedGatherPart", (1280, 460), (300, 60))
    nodes[10] = node(10, "SaveImage", (1640, 40), (560, 580), filename_prefix="StyleAligned/sd15_distributed_set")
    nodes[11] = note(11, (40, 270), (340, 760), "StyleAligned: one set across several GPUs", DISTRIBUTED_SET_NOTE)
    nodes[12] = node(12, "DistributedCollector", (1280, 580), (300, 80), load_balance=False)
    nodes[13] = node(13, "StyleAlignedAssembleSet", (1280, 720), (300, 80))
    nodes[14] = node(14, "DistributedValue", (880, 880), (360, 110), "part_index: master 0, worker 1",
                     default_value="0", worker_values='{"_type": "INT", "1": "1"}')
    links = [link for link in spec["links"] if link != (9, "IMAGE", 10, "images")]
    links += [(9, "part", 12, "images"), (12, "images", 13, "images"), (13, "IMAGE", 10, "images"),
              (14, "value", 6, "part_index")]
    return {"nodes": [nodes[key] for key in sorted(nodes)], "links": links}


# ---- transformer (DiT) models: the loaders and sampler settings ComfyUI's own templates use -----------------

TRANSFORMER_NOTE = """
StyleAligned on {family}: a set of images in one shared style

Download (as ComfyUI's own {family} template does):
{downloads}

What to choose:
1. StyleAligned Prompt Batch: one image per line. Line 1 is the style reference (batch slot 0); every other line is a target that takes on the reference's style. "style" is added to every line (or put where {{prompt}} stands).{prompt_hint}
2. Empty Latent: its batch_size is linked to the prompt batch, so the set has one image per line. {size_hint}
3. StyleAligned: reference_index is the batch slot of the reference (0 = line 1). {defaults_hint}
4. KSampler: {sampler_hint} The seed is fixed so the set is reproducible; change it for a new set.

The reference image comes out exactly as without the StyleAligned node: bypass that node (Ctrl+B) to compare.
"""


def transformer_set(name: str, family: str, downloads: str, loaders: list[dict], model_nodes: list[dict],
                    model_links: list[tuple], clip_source: tuple, size: int, size_hint: str, defaults_hint: str,
                    prompts: str, style: str, negative: dict, guidance: dict | None, seed: int, steps: int, cfg: float,
                    sampler: str, sampler_hint: str, prompt_hint: str = "") -> dict:
    """Diffusion model, text encoder and VAE loaders → (model sampling) → StyleAlignedPatch → KSampler, prompts
    from StyleAlignedPromptBatch whose batch_size drives EmptySD3LatentImage's batch_size. Node ids: 1–3 the
    loaders' place, 10 the patch, 11 the prompt batch, 12 the negative, 13 guidance, 14 latent, 15 sampler,
    16 decode, 17 save, 18 the note; model_nodes (e.g. ModelSamplingAuraFlow) sit between loader and patch."""
    positive = (13, "CONDITIONING") if guidance else (11, "CONDITIONING")
    nodes = [
        *loaders,
        *model_nodes,
        node(10, "StyleAlignedPatch", (820, 40), (340, 420), **PATCH_DEFAULTS),
        node(11, "StyleAlignedPromptBatch", (410, 470), (420, 270), "Prompts: one image per line, line 1 = reference",
             prompts=prompts, style=style),
        negative,
        *([guidance] if guidance else []),
        node(14, "EmptySD3LatentImage", (1200, 470), (320, 110), "Empty Latent (batch_size = prompt lines)",
             width=size, height=size, batch_size=4),
        node(15, "KSampler", (1200, 40), (320, 270), seed=seed, control_after_generate="fixed", steps=steps, cfg=cfg,
             sampler_name=sampler, scheduler="simple", denoise=1.0),
        node(16, "VAEDecode", (1560, 40), (210, 50)),
        node(17, "SaveImage", (1560, 140), (560, 580), filename_prefix=f"StyleAligned/{name}"),
        note(18, (40, 470), (340, 620), f"StyleAligned on {family}: what to set",
             TRANSFORMER_NOTE.format(family=family, downloads=downloads.strip(), size_hint=size_hint,
                                     defaults_hint=defaults_hint, sampler_hint=sampler_hint,
                                     prompt_hint=prompt_hint and " " + prompt_hint)),
    ]
    links = [
        *model_links,
        (*clip_source, 11, "clip"),
        (10, "MODEL", 15, "model"), (*positive, 15, "positive"), (12, "CONDITIONING", 15, "negative"),
        (11, "batch_size", 14, "batch_size"), (14, "LATENT", 15, "latent_image"),
        (15, "LATENT", 16, "samples"), (3, "VAE", 16, "vae"), (16, "IMAGE", 17, "images"),
    ]
    if guidance:
        links.append((11, "CONDITIONING", 13, "conditioning"))
    if negative["type"] == "ConditioningZeroOut":
        links.append((11, "CONDITIONING", 12, "conditioning"))
    else:  # a negative prompt of its own
        links.append((*clip_source, 12, "clip"))
    return {"nodes": nodes, "links": links}


def _zero_negative() -> dict:
    """The negative as ComfyUI's Flux and Z-Image templates make it: the prompts' conditioning zeroed."""
    return node(12, "ConditioningZeroOut", (880, 520), (260, 30), "Negative (unused at cfg 1)")


FLUX_DEV_UNET = "flux1-dev.safetensors"
FLUX_CLIP_L = "clip_l.safetensors"
FLUX_T5XXL = "t5xxl_fp16.safetensors"
FLUX_VAE = "ae.safetensors"


def flux_set() -> dict:
    """Flux.1 dev as ComfyUI's template loads it (UNETLoader, DualCLIPLoader clip_l + t5xxl type flux, VAELoader
    ae), FluxGuidance 3.5 on the prompts, cfg 1 (one chunk), euler/simple 20 steps, 1024²."""
    return transformer_set(
        "flux_set", "Flux.1 dev",
        downloads=f"""
- models/diffusion_models/{FLUX_DEV_UNET} (or an fp8 version: then set weight_dtype)
- models/text_encoders/{FLUX_CLIP_L} and {FLUX_T5XXL} (or t5xxl_fp8_e4m3fn_scaled.safetensors)
- models/vae/{FLUX_VAE}""",
        loaders=[
            node(1, "UNETLoader", (40, 40), (320, 90), unet_name=FLUX_DEV_UNET, weight_dtype="default"),
            node(2, "DualCLIPLoader", (40, 180), (320, 140), clip_name1=FLUX_CLIP_L, clip_name2=FLUX_T5XXL, type="flux"),
            node(3, "VAELoader", (40, 370), (320, 60), vae_name=FLUX_VAE),
        ],
        model_nodes=[], model_links=[(1, "MODEL", 10, "model")], clip_source=(2, "CLIP"),
        size=1024, size_hint="1024×1024 is what AlignedGen (the published Flux method) used.",
        defaults_hint="Its defaults on Flux are AlignedGen's (Zhang et al., NeurIPS 2025): the single-stream blocks share, "
                      "the reference's keys sit at positions shifted by the image width and are scaled by 1.1 "
                      "(reference_key_scale 0 = auto). Raise reference_key_scale to pull the style harder.",
        prompts="a lighthouse on a rocky coast\na cottage in a forest\na sailing boat at sea\na windmill on a hill",
        style="watercolor painting, soft pastel colors, paper texture",
        negative=_zero_negative(),
        guidance=node(13, "FluxGuidance", (880, 600), (260, 60), guidance=3.5),
        seed=1234, steps=20, cfg=1.0, sampler="euler",
        sampler_hint="Flux dev is guidance-distilled: keep cfg 1 and set the strength with FluxGuidance (3.5); "
                     "euler / simple, 20 steps as ComfyUI's Flux dev template (AlignedGen used 30).")


def _aura_flow_shift(shift: float) -> dict:
    return node(4, "ModelSamplingAuraFlow", (410, 40), (320, 60), shift=shift)


QWEN_IMAGE_UNET = "qwen_image_fp8_e4m3fn.safetensors"
QWEN_IMAGE_TEXT_ENCODER = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
QWEN_IMAGE_VAE = "qwen_image_vae.safetensors"


UNEVEN_PROMPTS_HINT = ("Keep the lines about equally long: this text encoder does not pad, so the prompt batch "
                       "brings the lines to a common length by repeating their own tokens, which is exact only "
                       "for lines of about equal length (the node's text says when it approximated).")


def qwen_image_set() -> dict:
    """Qwen-Image as ComfyUI's template loads it (UNETLoader, CLIPLoader qwen_image, VAELoader qwen_image_vae),
    ModelSamplingAuraFlow shift 3.1, 1328², euler/simple 20 steps, cfg 2.5 with an empty negative prompt."""
    return transformer_set(
        "qwen_image_set", "Qwen-Image",
        downloads=f"""
- models/diffusion_models/{QWEN_IMAGE_UNET}
- models/text_encoders/{QWEN_IMAGE_TEXT_ENCODER}
- models/vae/{QWEN_IMAGE_VAE}""",
        loaders=[
            node(1, "UNETLoader", (40, 40), (320, 90), unet_name=QWEN_IMAGE_UNET, weight_dtype="default"),
            node(2, "CLIPLoader", (40, 180), (320, 110), clip_name=QWEN_IMAGE_TEXT_ENCODER, type="qwen_image"),
            node(3, "VAELoader", (40, 340), (320, 60), vae_name=QWEN_IMAGE_VAE),
        ],
        model_nodes=[_aura_flow_shift(3.1)], model_links=[(1, "MODEL", 4, "model"), (4, "MODEL", 10, "model")],
        clip_source=(2, "CLIP"),
        size=1328, size_hint="1328×1328 is Qwen-Image's native size (the template's); 1024×1024 needs less memory.",
        defaults_hint="No paper gives StyleAligned settings for Qwen-Image: the pack's defaults for it are its own "
                      "choice, untested on real weights (see the README); tune transformer_blocks, "
                      "shared_layer_fraction and reference_key_scale.",
        prompts="a toy train\na toy car\na toy boat\na toy airplane",
        style="in minimal origami style",
        negative=node(12, "CLIPTextEncode", (880, 520), (300, 100), "Negative prompt", text=""),
        guidance=None, seed=20240617, steps=20, cfg=2.5, sampler="euler", prompt_hint=UNEVEN_PROMPTS_HINT,
        sampler_hint="euler / simple, 20 steps, cfg 2.5 as ComfyUI's Qwen-Image template; ModelSamplingAuraFlow "
                     "shift 3.1 (raise it if images come out blurry or dark).")


Z_IMAGE_UNET = "z_image_turbo_bf16.safetensors"
Z_IMAGE_TEXT_ENCODER = "qwen_3_4b.safetensors"


def z_image_set() -> dict:
    """Z-Image Turbo as ComfyUI's template loads it (UNETLoader, CLIPLoader qwen_3_4b type lumina2, VAELoader
    ae), ModelSamplingAuraFlow shift 3, 1024², res_multistep/simple 9 steps, cfg 1."""
    return transformer_set(
        "z_image_set", "Z-Image Turbo",
        downloads=f"""
- models/diffusion_models/{Z_IMAGE_UNET}
- models/text_encoders/{Z_IMAGE_TEXT_ENCODER}
- models/vae/{FLUX_VAE} (the Flux VAE)""",
        loaders=[
            node(1, "UNETLoader", (40, 40), (320, 90), unet_name=Z_IMAGE_UNET, weight_dtype="default"),
            node(2, "CLIPLoader", (40, 180), (320, 110), clip_name=Z_IMAGE_TEXT_ENCODER, type="lumina2"),
            node(3, "VAELoader", (40, 340), (320, 60), vae_name=FLUX_VAE),
        ],
        model_nodes=[_aura_flow_shift(3.0)], model_links=[(1, "MODEL", 4, "model"), (4, "MODEL", 10, "model")],
        clip_source=(2, "CLIP"),
        size=1024, size_hint="1024×1024 as ComfyUI's Z-Image Turbo template.",
        defaults_hint="No paper gives StyleAligned settings for Z-Image: the pack's defaults for it are its own "
                      "choice, untested on real weights (see the README); tune transformer_blocks, "
                      "shared_layer_fraction and reference_key_scale.",
        prompts="a fox in the snow\nan owl on a branch\na hare by a stream\na wolf on a hill",
        style="linocut print, bold black lines, two-color",
        negative=_zero_negative(),
        guidance=None, seed=1234, steps=9, cfg=1.0, sampler="res_multistep", prompt_hint=UNEVEN_PROMPTS_HINT,
        sampler_hint="Z-Image Turbo is distilled: res_multistep / simple, 9 steps, cfg 1 as ComfyUI's template "
                     "(the negative is not used at cfg 1); ModelSamplingAuraFlow shift 3.")


WAN_HIGH_NOISE_UNET = "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"
WAN_LOW_NOISE_UNET = "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"
WAN_TEXT_ENCODER = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
WAN_STEPS, WAN_SWITCH_STEP = 20, 10

WAN_NOTE = """
StyleAligned on Wan 2.2 (A14B text-to-video): {what} in one shared style

What to set:
1. Wan 2.2 A14B is two models: the high-noise expert denoises the first {switch} of {steps} steps, the low-noise expert the rest (two KSamplerAdvanced, as ComfyUI's Wan 2.2 template). Each gets its own StyleAligned node with the SAME settings (same reference_index): the reference stays unchanged through both.
2. StyleAligned Prompt Batch: one {item} per line. Line 1 is the style reference (batch slot 0); every other line is a target that takes on the reference's style. "style" is added to every line (or put where {{prompt}} stands).
3. EmptyHunyuanLatentVideo: batch_size is linked to the prompt batch (one {item} per line); {length_hint}
4. StyleAligned: no paper gives settings for Wan; the defaults are the pack's own, untested on real weights (see the README): every block shares, each target attends to the reference's video tokens at positions shifted by the frame width, keys x1.1.{frames_hint}
5. KSamplerAdvanced: euler / simple, {steps} steps, cfg 3.5, ModelSamplingSD3 shift 8 as ComfyUI's template; the seed is fixed so the set is reproducible.

The reference comes out exactly as without the StyleAligned nodes: bypass both (Ctrl+B) to compare. Image-to-video inputs (a start image, VACE, a noise mask on the first frame) are refused with an error: their conditioning frames would be restyled.
"""


def wan_set(name: str, length: int, item: str, what: str, prompts: str, length_hint: str, frames_hint: str,
            outputs: list[dict], output_links: list[tuple]) -> dict:
    """Wan 2.2 A14B T2V as ComfyUI's template loads it: two UNETLoaders (high- and low-noise experts), each through
    ModelSamplingSD3 shift 8 and a StyleAlignedPatch, CLIPLoader umt5 type wan, VAELoader wan_2.1_vae, two
    KSamplerAdvanced (steps 0-10 with leftover noise, then 10-20), 640x640; prompts from StyleAlignedPromptBatch
    whose batch_size drives EmptyHunyuanLatentVideo's batch_size. outputs: what follows VAEDecode (node 17)."""
    sampler = dict(control_after_generate="fixed", noise_seed=20250728, steps=WAN_STEPS, cfg=3.5, sampler_name="euler",
                   scheduler="simple")
    return {
        "nodes": [
            node(1, "UNETLoader", (40, 40), (360, 90), "High-noise expert", unet_name=WAN_HIGH_NOISE_UNET, weight_dtype="default"),
            node(2, "UNETLoader", (40, 180), (360, 90), "Low-noise expert", unet_name=WAN_LOW_NOISE_UNET, weight_dtype="default"),
            node(3, "CLIPLoader", (40, 320), (360, 110), clip_name=WAN_TEXT_ENCODER, type="wan"),
            node(4, "VAELoader", (40, 480), (360, 60), vae_name=WAN_VAE),
            node(5, "ModelSamplingSD3", (440, 40), (260, 60), shift=8.0),
            node(6, "ModelSamplingSD3", (440, 180), (260, 60), shift=8.0),
            node(10, "StyleAlignedPatch", (900, 40), (340, 420), "StyleAligned (high-noise expert)", **PATCH_DEFAULTS),
            node(11, "StyleAlignedPatch", (900, 500), (340, 420), "StyleAligned (low-noise expert)", **PATCH_DEFAULTS),
            node(12, "StyleAlignedPromptBatch", (440, 300), (420, 270), f"Prompts: one {item} per line, line 1 = reference",
                 prompts=prompts,
                 style="hand-painted watercolor animation, soft pastel colors, paper texture"),
            node(13, "CLIPTextEncode", (440, 620), (420, 130), "Negative prompt",
                 text="blurry, low quality, jpeg artifacts, static, deformed, watermark, text"),
            node(14, "EmptyHunyuanLatentVideo", (440, 800), (320, 130), "Empty latent (batch_size = prompt lines)",
                 width=640, height=640, length=length, batch_size=3),
            node(15, "KSamplerAdvanced", (1280, 40), (320, 330), "High noise: steps 0-10", add_noise="enable", **sampler,
                 start_at_step=0, end_at_step=WAN_SWITCH_STEP, return_with_leftover_noise="enable"),
            node(16, "KSamplerAdvanced", (1280, 500), (320, 330), "Low noise: steps 10-20", add_noise="disable", **sampler,
                 start_at_step=WAN_SWITCH_STEP, end_at_step=10000, return_with_leftover_noise="disable"),
            node(17, "VAEDecode", (1640, 40), (210, 50)),
            *outputs,
            note(20, (40, 600), (360, 560), "StyleAligned on Wan 2.2: what to set",
                 WAN_NOTE.format(what=what, item=item, steps=WAN_STEPS, switch=WAN_SWITCH_STEP,
                                 length_hint=length_hint, frames_hint=frames_hint)),
        ],
        "links": [
            (1, "MODEL", 5, "model"), (2, "MODEL", 6, "model"), (5, "MODEL", 10, "model"), (6, "MODEL", 11, "model"),
            (3, "CLIP", 12, "clip"), (3, "CLIP", 13, "clip"), (12, "batch_size", 14, "batch_size"),
            (10, "MODEL", 15, "model"), (12, "CONDITIONING", 15, "positive"), (13, "CONDITIONING", 15, "negative"),
            (14, "LATENT", 15, "latent_image"),
            (11, "MODEL", 16, "model"), (12, "CONDITIONING", 16, "positive"), (13, "CONDITIONING", 16, "negative"),
            (15, "LATENT", 16, "latent_image"),
            (16, "LATENT", 17, "samples"), (4, "VAE", 17, "vae"), *output_links,
        ],
    }


def wan_video_set() -> dict:
    """Three clips of 81 frames (5 s at 16 fps) in one style, saved as one WebM video (the clips one after another)."""
    return wan_set(
        "wan_video_set", 81, "clip", "three video clips",
        prompts="a fox running through a snowy forest\nan owl taking off from a branch\na hare leaping across a meadow",
        length_hint="length 81 frames = 5 s at 16 fps (21 latent frames); 640x640 keeps memory moderate, 1280x720 is "
                    "Wan 2.2's full size.",
        frames_hint=" shared_frames: 'all frames' (default) lets every target frame see the whole reference clip; "
                    "'matching frames' only the reference frame at the same time: cheaper, each clip keeps its own motion.",
        # SaveWEBM: the host's video save node whose inputs are the same on ComfyUI 0.3.75 and 0.33 (SaveVideo and
        # CreateVideo gained widgets in 0.33, so the graph would not come back the same in both front ends).
        outputs=[node(18, "SaveWEBM", (1640, 140), (500, 560), "Save video (the clips one after another)",
                      filename_prefix="StyleAligned/wan_video_set", codec="vp9", fps=16.0, crf=24.0)],
        output_links=[(17, "IMAGE", 18, "images")])


def wan_image_set() -> dict:
    """Three still images (one frame each) in one style."""
    return wan_set(
        "wan_image_set", 1, "image", "a set of still images (one frame each)",
        prompts="a fox sitting in the snow\nan owl perched on a branch\na hare resting in a meadow",
        length_hint="length 1 = one frame, a still image.", frames_hint="",
        outputs=[node(18, "SaveImage", (1640, 140), (500, 560), filename_prefix="StyleAligned/wan_image_set")],
        output_links=[(17, "IMAGE", 18, "images")])
TWO_STYLES_NOTE = """
StyleAligned: two reference styles, blended by weight

What to choose:
1. Load Checkpoint: your SDXL model (sd_xl_base_1.0.safetensors or another SDXL base checkpoint).
2. StyleAligned Prompt Batch: line 1 and line 2 are the two style references (batch slots 0 and 1), each with its own style words; every other line is a new image. "style" is empty here, since each reference carries its own.
3. StyleAligned References: one node per reference. "Reference 1" lists slot 0 with weight 1; each "Reference 2" node lists slot 1 after it (its references input) with another weight. A weight multiplies that reference's attention weight, and AdaIN follows the weighted mix of the references' statistics (weight / sum of weights); 0 drops a reference.
4. Three StyleAligned nodes, one per weight setting (slot 1 weighted 0.25, 1 and 4 against slot 0's 1), each sampled with the same seed: the three previews (one per setting, top to bottom) move from the first style towards the second. The two references come out the same in each, exactly as without StyleAligned. Save Image saves the three one after the other (5 images each).
5. To blend more styles, chain more StyleAligned References nodes and add a prompt line for each. (The prompt batch's report calls line 2 a target: it does not know about the references list; StyleAligned does.)
"""


def sdxl_two_styles() -> dict:
    """One prompt batch with two references (slots 0 and 1), StyleAlignedReferences chains with three weights
    for the second, three StyleAlignedPatch → KSampler → VAEDecode → PreviewImage columns side by side, and
    the three results saved as one batch."""
    prompts = "\n".join([
        "a lighthouse on a rocky coast, in minimal origami style",
        "a lighthouse on a rocky coast, watercolor painting, soft pastel colors, paper texture",
        "a toy train", "a sailing boat at sea", "a cottage in a forest",
    ])
    nodes = [
        node(1, "CheckpointLoaderSimple", (40, 40), (330, 100), ckpt_name=SDXL_CHECKPOINT),
        node(2, "StyleAlignedPromptBatch", (40, 170), (420, 300), "Prompts: lines 1 and 2 = the two references",
             prompts=prompts, style=""),
        node(3, "CLIPTextEncode", (40, 500), (420, 130), "Negative prompt", text="blurry, low quality, watermark, text"),
        node(4, "EmptyLatentImage", (40, 660), (340, 110), "Empty Latent Image (batch_size = prompt lines)",
             width=1024, height=1024, batch_size=5),
        node(5, "StyleAlignedReferences", (40, 800), (320, 110), "Reference 1: slot 0", slot=0, weight=1.0),
        note(6, (2090, 600), (300, 570), "StyleAligned: two styles, what to choose", TWO_STYLES_NOTE),
    ]
    links = [(1, "CLIP", 2, "clip"), (1, "CLIP", 3, "clip"), (2, "batch_size", 4, "batch_size")]
    for column, weight in enumerate((0.25, 1.0, 4.0)):
        x, base = 500 + column * 360, 10 + column * 10
        reference, patch, sampler, decode, preview = base, base + 1, base + 2, base + 3, base + 4
        nodes += [
            node(reference, "StyleAlignedReferences", (x, 40), (330, 100), f"Reference 2: slot 1, weight {weight:g}",
                 slot=1, weight=weight),
            node(patch, "StyleAlignedPatch", (x, 170), (330, 500), f"StyleAligned (weights 1 : {weight:g})",
                 **PATCH_DEFAULTS),
            {**ksampler(sampler, (x, 700), seed=20240617, steps=30), "title": f"KSampler (weights 1 : {weight:g})"},
            node(decode, "VAEDecode", (x, 1000), (210, 50)),
            node(preview, "PreviewImage", (1580, 40 + column * 380), (480, 350), f"Weights 1 : {weight:g}"),
        ]
        links += [
            (5, "references", reference, "references"), (reference, "references", patch, "references"),
            (1, "MODEL", patch, "model"), (patch, "MODEL", sampler, "model"), (2, "CONDITIONING", sampler, "positive"),
            (3, "CONDITIONING", sampler, "negative"), (4, "LATENT", sampler, "latent_image"),
            (sampler, "LATENT", decode, "samples"), (1, "VAE", decode, "vae"), (decode, "IMAGE", preview, "images"),
        ]
    # The three results saved as one batch, in weight order.
    nodes += [
        node(40, "ImageBatch", (500, 1090), (210, 70)),
        node(41, "ImageBatch", (860, 1090), (210, 70)),
        node(42, "SaveImage", (2090, 40), (300, 530), "Save: all three (1 : 0.25, 1 : 1, 1 : 4)",
             filename_prefix="StyleAligned/sdxl_two_styles"),
    ]
    links += [(13, "IMAGE", 40, "image1"), (23, "IMAGE", 40, "image2"), (40, "IMAGE", 41, "image1"),
              (33, "IMAGE", 41, "image2"), (41, "IMAGE", 42, "images")]
    return {"nodes": nodes, "links": links}


NEEDS_DISTRIBUTED = ("stylealigned_sd15_distributed_set",)
WORKFLOWS = {
    "stylealigned_sd15_set": sd15_set,
    "stylealigned_sdxl_set": sdxl_set,
    "stylealigned_real_image_style": real_image_style,
    "stylealigned_sd15_controlnet": sd15_controlnet,
    "stylealigned_sd15_set_score": sd15_set_score,
    "stylealigned_sd15_large_set": sd15_large_set,
    "stylealigned_sd15_distributed_set": sd15_distributed_set,
    "stylealigned_flux_set": flux_set,
    "stylealigned_qwen_image_set": qwen_image_set,
    "stylealigned_z_image_set": z_image_set,
    "stylealigned_wan_video_set": wan_video_set,
    "stylealigned_wan_image_set": wan_image_set,
    "stylealigned_sdxl_two_styles": sdxl_two_styles,
}


# ---- building -----------------------------------------------------------------------------------------------

def build(page: FrontEnd, name: str, spec: dict) -> tuple[Path, Path]:
    """Build `spec` in the page and write workflows/NAME.json (as the front end exports it) and its API twin.
    The first note gets where each loaded file goes and where to get it (model_sources.py)."""
    workflow = page.build_workflow(with_sources_note(spec))
    workflow["id"] = str(uuid.uuid5(UUID_NAMESPACE, name))  # stable from one build to the next
    ui_path = WORKFLOWS_DIR / f"{name}.json"
    result = save_as_exported(page, ui_path, workflow)
    return ui_path, write_api_twin(result, API_WORKFLOWS_DIR / ui_path.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"workflows to build (default: all of {', '.join(WORKFLOWS)})")
    options = parser.parse_args(argv)
    names = options.names or list(WORKFLOWS)
    unknown = [name for name in names if name not in WORKFLOWS]
    if unknown:
        parser.error(f"unknown workflows {unknown}; choose from {list(WORKFLOWS)}")
    example = comfyui_path() / "input" / INPUT_IMAGE
    inputs = {INPUT_IMAGE: example} if example.is_file() else {}
    base_dir = None
    if any(name in NEEDS_DISTRIBUTED for name in names):  # its nodes come from ComfyUI-Distributed
        base_dir = Path(tempfile.mkdtemp(prefix="comfy-build-workflows-"))
        install_distributed(base_dir)
    with comfy_server(base_dir, inputs=inputs) as server, FrontEnd(server.url) as page:
        for name in names:
            ui_path, api_path = build(page, name, WORKFLOWS[name]())
            print(f"{ui_path} + {api_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
