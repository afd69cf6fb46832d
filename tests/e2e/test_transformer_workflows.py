"""The shipped transformer workflows (Flux.1 dev, Qwen-Image, Z-Image Turbo, Wan 2.2 video and stills) on the real
ComfyUI server.

Each `workflows/api/stylealigned_{flux,qwen_image,z_image}_set.json` runs through POST /prompt on a server of
its own (the `transformer_comfy` fixture) with the graph as shipped — UNETLoader, VAELoader, the model
sampling node (ModelSamplingAuraFlow), StyleAlignedPromptBatch, FluxGuidance / ConditioningZeroOut / the
negative prompt, EmptySD3LatentImage with its batch size linked to the prompt batch, KSampler with the
shipped sampler, scheduler, cfg and seed, StyleAlignedPatch with its defaults, VAEDecode, SaveImage — except
for what cannot run here, which `host.api_workflows.adapt_for_transformer_stand_ins` substitutes:

- the diffusion-model files: random-weight files that the host's own detection loads as Flux (guidance
  embedding), Qwen-Image and Z-Image, with one block per block list; their widths are the real ones (the
  detection fixes them) — tests/host/tiny_transformer_files.py;
- the VAE files: the Flux VAE (`ae`, also Z-Image's) full size with random weights, the Qwen-Image VAE
  (Wan 2.1 layout) at base width 16 instead of 96;
- the text encoders T5-XXL, Qwen2.5-VL 7B and Qwen3 4B (billions of parameters, no weights downloadable):
  the shipped DualCLIPLoader / CLIPLoader node is replaced, under the same node id, by the test-only node
  StyleAlignedTestStandInTextEncoder (tests/host/standin_text_encoders, installed into this server's
  custom_nodes only). It builds the CLIP object as the host does for that loader type (the host's tokenizer
  and text-encoder classes, the template handling, Flux's 256-token T5 padding) with the big encoder
  replaced by a tiny random one whose features are mapped to the real width, so the conditioning has the
  real shapes (Flux (1, 256, 4096) + CLIP-L pooled (1, 768); Qwen-Image (1, T, 3584); Z-Image (1, T, 2560)
  + attention mask). Flux's CLIP-L is the real full-size model (random weights) loaded from its file;
- 64×64 latents instead of 1024²/1328², at most 2 steps, a fresh SaveImage prefix per run.

Wan 2.2's workflows load both experts from one Wan stand-in file (UMT5-XXL is a stand-in too, the VAE is the
Wan 2.1 layout at base width 16), keep the split of the steps between the experts (scaled to the 2 steps)
and make 9-frame clips; the video set's decoded frames are also saved as PNGs (a SaveImage added by the
test) for the exact comparison, and its shipped SaveWEBM must write one video of every clip's frames.

Checked for each workflow: one saved 64×64 image per prompt line (per frame of each clip), the prompt batch's report; with
StyleAlignedPatch the reference slot equals the same graph with the patch bypassed within 1/255 (compared
on the decoded PNGs) and every target differs from it. The pictures are noise from random weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from host.api_workflows import (
    API_WORKFLOWS_DIR, STAND_IN_TEXT_ENCODER, TEXT_ENCODER_LOADERS, adapt_for_transformer_stand_ins, bypass, load_prompt,
    nodes_of)
from host.tiny_transformer_files import (
    CLIP_L_NAME, FLUX_UNET_NAME, FLUX_VAE_NAME, QWEN_IMAGE_UNET_NAME, QWEN_IMAGE_VAE_NAME, WAN_UNET_NAME, Z_IMAGE_UNET_NAME)
from test_server import EXPECTED, PATCH, PROMPT_BATCH, assert_reference_unchanged, images_of, the_only

SIZE = 64
STEPS = 2
RUN_TIMEOUT = 300


@dataclass(frozen=True)
class StandIns:
    diffusion_model: str
    vae: str
    loader_type: str  # the shipped text-encoder loader's type


TRANSFORMER_WORKFLOWS = {
    "stylealigned_flux_set": StandIns(FLUX_UNET_NAME, FLUX_VAE_NAME, "flux"),
    "stylealigned_qwen_image_set": StandIns(QWEN_IMAGE_UNET_NAME, QWEN_IMAGE_VAE_NAME, "qwen_image"),
    "stylealigned_z_image_set": StandIns(Z_IMAGE_UNET_NAME, FLUX_VAE_NAME, "lumina2"),
    # Both Wan 2.2 experts load the one Wan stand-in; its VAE is the Wan 2.1 layout (Qwen-Image's VAE file).
    "stylealigned_wan_video_set": StandIns(WAN_UNET_NAME, QWEN_IMAGE_VAE_NAME, "wan"),
    "stylealigned_wan_image_set": StandIns(WAN_UNET_NAME, QWEN_IMAGE_VAE_NAME, "wan"),
}
FRAMES = 9  # video lengths on the stand-ins (3 latent frames)
NAMES = sorted(TRANSFORMER_WORKFLOWS)


def adapted(name: str, prefix: str) -> dict:
    stand_ins = TRANSFORMER_WORKFLOWS[name]
    return adapt_for_transformer_stand_ins(load_prompt(API_WORKFLOWS_DIR / f"{name}.json"), stand_ins.diffusion_model,
                                           stand_ins.vae, CLIP_L_NAME, size=SIZE, max_steps=STEPS, filename_prefix=prefix)


@pytest.fixture(scope="module")
def transformer_object_info(transformer_comfy) -> dict:
    return transformer_comfy.object_info()


def test_every_shipped_transformer_workflow_is_run_here():
    """test_server.py skips the workflows it marks as transformer ones in favour of this file."""
    assert sorted(name for name, expected in EXPECTED.items() if expected.transformer) == NAMES


def test_adaptation_substitutes_only_the_stand_ins():
    """The adapted graphs differ from the shipped ones only in the model files, the text-encoder loader, the
    size, the steps and the save prefix."""
    for name, stand_ins in TRANSFORMER_WORKFLOWS.items():
        shipped = load_prompt(API_WORKFLOWS_DIR / f"{name}.json")
        prompt = adapted(name, "prefix")
        assert sorted(prompt) == sorted(shipped)
        (loader,) = nodes_of(shipped, *TEXT_ENCODER_LOADERS)
        assert prompt[loader]["class_type"] == STAND_IN_TEXT_ENCODER
        assert prompt[loader]["inputs"] == {"type": stand_ins.loader_type,
                                            "clip_name": CLIP_L_NAME if stand_ins.loader_type == "flux" else ""}
        changed = {(nid, key) for nid in shipped if nid != loader for key in shipped[nid]["inputs"]
                   if shipped[nid]["inputs"][key] != prompt[nid]["inputs"][key]}
        allowed = {"unet_name", "vae_name", "width", "height", "steps", "filename_prefix", "length", "start_at_step",
                   "end_at_step"}
        assert {key for _, key in changed} <= allowed, changed
        assert {prompt[nid]["inputs"]["unet_name"] for nid in nodes_of(prompt, "UNETLoader")} == {stand_ins.diffusion_model}
        assert {prompt[nid]["inputs"]["steps"] for nid in nodes_of(prompt, "KSampler", "KSamplerAdvanced")} == {STEPS}
    # Wan 2.2's two experts keep their split of the steps: the high-noise one 0-1, the low-noise one 1-end.
    wan = adapted("stylealigned_wan_video_set", "prefix")
    ranges = [(wan[nid]["inputs"]["start_at_step"], wan[nid]["inputs"]["end_at_step"]) for nid in nodes_of(wan, "KSamplerAdvanced")]
    assert ranges == [(0, 1), (1, 10000)]
    assert wan[the_only(wan, "EmptyHunyuanLatentVideo")]["inputs"]["length"] == FRAMES


def test_stand_in_node_is_installed(transformer_object_info):
    assert STAND_IN_TEXT_ENCODER in transformer_object_info
    assert transformer_object_info[STAND_IN_TEXT_ENCODER]["python_module"] == "custom_nodes.test-standin-text-encoders"


@pytest.mark.parametrize("name", NAMES)
def test_transformer_workflow_runs_and_reference_equals_bypassed(transformer_comfy, transformer_object_info, unique_prefix,
                                                                 name):
    """As shipped on the stand-ins: one 64×64 image per prompt line, the prompt batch's report of which image
    gets which line; the reference slot equals the same graph with StyleAlignedPatch bypassed within 1/255,
    every target differs from it. (Both runs back to back, so the server loads each model once.)"""
    prompt = adapted(name, unique_prefix("patched"))
    # Wan 2.2: a patch on each expert, both bypassed for the comparison.
    patches, batch = nodes_of(prompt, PATCH), the_only(prompt, PROMPT_BATCH)
    videos = nodes_of(prompt, "SaveWEBM")
    if videos:  # the decoded frames are saved as PNGs too (a node added here) to compare them exactly
        save = str(max(int(nid) for nid in prompt) + 1)
        prompt[save] = {"class_type": "SaveImage", "inputs": {"images": [the_only(prompt, "VAEDecode"), 0],
                                                              "filename_prefix": unique_prefix("frames")}}
    else:
        save = the_only(prompt, "SaveImage")
    bypassed_prompt = bypass(prompt, patches, transformer_object_info)
    bypassed_prompt[save]["inputs"]["filename_prefix"] = unique_prefix("bypassed")
    bypassed_entry = transformer_comfy.run(bypassed_prompt, timeout=RUN_TIMEOUT)
    entry = transformer_comfy.run(prompt, timeout=RUN_TIMEOUT)

    lines = prompt[batch]["inputs"]["prompts"].strip().splitlines()
    frames = FRAMES if videos else 1
    patched, bypassed = images_of(transformer_comfy, entry, save), images_of(transformer_comfy, bypassed_entry, save)
    assert len(patched) == len(bypassed) == len(lines) * frames and len(lines) in (3, 4)
    assert [image.shape for image in patched + bypassed] == [(SIZE, SIZE, 3)] * (2 * len(lines) * frames)
    assert all(image.std() > 1 for image in patched + bypassed), "a flat image: nothing was decoded"
    report = bypassed_entry["outputs"][batch]["text"][0].splitlines()  # the first run of the prompt batch
    assert [line.split(":")[0] for line in report] == ["image 0 (reference)"] + [f"image {i} (target)" for i in range(1, len(lines))]
    def slots(images):  # one per prompt line: a clip's frames stacked (the decoded batch is clip after clip)
        return [np.stack(images[i * frames:(i + 1) * frames]) for i in range(len(lines))]

    reference = {prompt[patch]["inputs"]["reference_index"] for patch in patches}
    assert len(reference) == 1, "the experts' patches name different reference slots"
    assert_reference_unchanged(slots(patched), slots(bypassed), reference.pop())
    for video in videos:  # the shipped SaveWEBM wrote one video of every clip's frames
        (ref,) = transformer_comfy.output_images(entry, node_id=video)
        assert video_frames(transformer_comfy.image_path(ref)) == (len(lines) * frames, SIZE, SIZE)


def video_frames(path) -> tuple[int, int, int]:
    """(frames, height, width) of a video file, decoded with PyAV (a ComfyUI requirement)."""
    import av

    with av.open(str(path)) as container:
        decoded = [frame for frame in container.decode(video=0)]
    return len(decoded), decoded[0].height, decoded[0].width
