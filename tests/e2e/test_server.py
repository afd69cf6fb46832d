"""The pack on the real ComfyUI server: startup, node descriptions, workflows run through POST /prompt.

All prompts run on the tiny random SD1.5-layout checkpoint (tests/host/tiny_checkpoint.py) at 64×64 with
3 steps, so the pictures are noise; what is checked is plumbing and exact properties: image counts and
sizes, and that the reference slot comes out equal to the same graph with StyleAlignedPatch bypassed
(within 1/255, compared on the decoded PNGs) while the other slots do change.

Shipped workflows (`workflows/api/*.json`, the front end's conversion of `workflows/*.json`) are run as
shipped except for what cannot run here, which `host.api_workflows.adapt_for_tiny_models` swaps in: the
checkpoint and ControlNet names become the tiny models', every literal width/height becomes 64, steps at
most 3 (sampling and inversion), and SaveImage gets a fresh filename_prefix. Batch sizes, seeds, prompts,
links and StyleAligned settings are kept; LoadImage reads `example.png`, which the server's input folder
holds (a 64×64 test picture). The SDXL workflow, too, runs on the tiny SD1.5-layout checkpoint, because a
full-size SDXL checkpoint (CLIP-G alone ~1.4 GB) is too heavy to build and load here; the SDXL model path
(pooled outputs batched per prompt, the SDXL UNet's attention blocks) is covered in process with tiny SDXL
models by tests/test_*_host.py. Each workflow's expectations are listed in EXPECTED below. The transformer
workflows (Flux.1 dev, Qwen-Image, Z-Image; `transformer=True` there) are checked here as shipped (model
files, sizes, node types, links) and run by tests/e2e/test_transformer_workflows.py on a server of their own
with transformer stand-ins.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from host.api_workflows import (
    API_WORKFLOWS_DIR, SHIPPED_IMAGE_NAME, WORKFLOWS_DIR, adapt_for_tiny_models, add_node, bypass, is_link,
    load_prompt, nodes_of, shipped_api_workflows)
from host.server import PACK_DIR_NAME, ComfyServer, ExecutionFailed, PromptRejected, pack_log_problems
from host.tiny_checkpoint import TINY_CHECKPOINT_NAME, TINY_CONTROLNET_NAME
from host.tiny_clip_vision_file import RANDOM_CLIP_VISION_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]
PATCH = "StyleAlignedPatch"
PACK_MODULE = "custom_nodes.ComfyUI-StyleAligned"
PACK_NODES = ("StyleAlignedPatch", "StyleAlignedPromptBatch", "StyleAlignedInvertReference",
              "StyleAlignedSaveReference", "StyleAlignedLoadReference", "StyleAlignedSetScore",
              "StyleAlignedSplitSet", "StyleAlignedGatherSet", "StyleAlignedGatherPart", "StyleAlignedAssembleSet",
              "StyleAlignedReferences")
SIZE = 64
STEPS = 3
RUN_TIMEOUT = 180


# ---- helpers --------------------------------------------------------------------------------------------

def widget_defaults(info: dict) -> dict:
    """Default values of a node's required widget inputs (those with a default), from /object_info."""
    values = {}
    for name, spec in info["input"].get("required", {}).items():
        if len(spec) > 1 and isinstance(spec[1], dict) and "default" in spec[1]:
            values[name] = spec[1]["default"]
    return values


def text_to_image_prompt(object_info: dict, prefix: str, batch: int = 3, seed: int = 42, patch: dict | None = None) -> dict:
    """Stock nodes around StyleAlignedPatch (node "2"):
    CheckpointLoaderSimple → StyleAlignedPatch → KSampler(EmptyLatentImage) → VAEDecode → SaveImage (node "8")."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_CHECKPOINT_NAME}},
        "2": {"class_type": PATCH, "inputs": {**widget_defaults(object_info[PATCH]), **(patch or {}), "model": ["1", 0]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house by a lake, watercolor painting", "clip": ["1", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, low quality", "clip": ["1", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": batch}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["2", 0], "seed": seed, "steps": STEPS, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": prefix}},
    }


def saved_images(server: ComfyServer, entry: dict) -> list[np.ndarray]:
    """The images a finished prompt saved, decoded from the PNGs the server serves (GET /view)."""
    images = []
    for ref in server.output_images(entry):
        with Image.open(io.BytesIO(server.view(ref))) as png:
            assert png.format == "PNG"
            images.append(np.asarray(png.convert("RGB")).copy())
    return images


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def assert_reference_unchanged(patched: list[np.ndarray], bypassed: list[np.ndarray], reference: int) -> None:
    """The reference slot equals the unpatched run within 1/255; every other slot differs from it."""
    assert len(patched) == len(bypassed)
    diff = max_abs_diff(patched[reference], bypassed[reference])
    assert diff <= 1, f"reference slot {reference} differs from the bypassed graph by {diff}/255"
    for slot in range(len(patched)):
        if slot != reference:
            assert max_abs_diff(patched[slot], bypassed[slot]) > 1, (
                f"target slot {slot} is identical with and without StyleAlignedPatch: the patch had no effect")


# ---- startup and node descriptions ----------------------------------------------------------------------

def test_server_starts_with_pack_and_clean_log(comfy):
    log = comfy.startup_log
    import_lines = [line for line in log.splitlines() if "ComfyUI-StyleAligned" in line and "seconds" in line]
    assert import_lines, f"the pack does not appear in the custom node import times:\n{log[-3000:]}"
    assert not any("IMPORT FAILED" in line for line in import_lines), import_lines
    assert pack_log_problems(log) == [], f"startup log has warnings/errors about the pack (log: {comfy.log_path})"
    assert comfy.alive()


def test_log_checker_catches_pack_problems():
    # The startup check above is only worth something if the checker does flag such lines.
    log = "\n".join([
        "Starting server",
        "WARNING: StyleAlignedPatch: something is off",
        "Traceback (most recent call last):",
        '  File "/x/custom_nodes/ComfyUI-StyleAligned/__init__.py", line 3, in <module>',
        "    from .nodes import comfy_entrypoint",
        "ImportError: cannot import name 'comfy_entrypoint'",
        "   0.0 seconds (IMPORT FAILED): /x/custom_nodes/ComfyUI-StyleAligned",
        "WARNING: some other pack is noisy",
        "Traceback (most recent call last):",
        f'  File "{REPO_ROOT}/.cache/comfyui-0.3.75/comfy_extras/nodes_audio.py", line 4, in <module>',
        "ModuleNotFoundError: No module named 'torchaudio'",
        f"{REPO_ROOT}/nodes/patch_node.py:12: DeprecationWarning: old API",
    ])
    problems = pack_log_problems(log)
    assert len(problems) == 4, problems
    assert "ImportError" in problems[1]
    assert "DeprecationWarning" in problems[3]


def test_object_info_lists_patch_node_with_tooltips(comfy, object_info):
    assert PATCH in object_info
    assert comfy.object_info(PATCH)[PATCH] == object_info[PATCH]
    info = object_info[PATCH]
    assert info["python_module"] == PACK_MODULE
    assert list(info["input"]["required"]) == [
        "model", "reference_index", "share_attention", "adain_queries", "adain_keys", "adain_values",
        "reference_strength", "share_input_blocks", "share_middle_block", "share_output_blocks",
        "shared_layer_fraction", "start_percent", "end_percent"]
    # Transformer-only inputs are optional, so API graphs saved before them still validate.
    assert list(info["input"].get("optional", {})) == [
        "transformer_blocks", "shift_reference_positions", "reference_key_scale", "reference",
        "adain_on", "full_attention_sharing", "share_group_norm", "shared_frames", "references"]
    assert info["input"]["optional"]["adain_on"][1]["default"] == "projections (paper)"
    assert info["input"]["optional"]["transformer_blocks"][1]["default"] == "auto"
    assert info["input"]["optional"]["reference_key_scale"][1]["default"] == 0.0
    assert info["input"]["optional"]["reference"][0] == "STYLEALIGN_REFERENCE"
    assert info["input"]["optional"]["references"][0] == "STYLEALIGN_REFERENCES"
    assert info["input"]["optional"]["shared_frames"][1]["default"] == "all frames"
    assert info["output"] == ["MODEL"]


def test_every_pack_node_is_described(object_info):
    """Every node of the pack has a description, a tooltip on every input and on every output."""
    pack_nodes = {name: info for name, info in object_info.items() if info.get("python_module") == PACK_MODULE}
    assert sorted(pack_nodes) == sorted(PACK_NODES)
    gaps = []
    for name, info in sorted(pack_nodes.items()):
        if not info.get("description", "").strip():
            gaps.append(f"{name}: no description")
        if not info.get("display_name", "").startswith("StyleAligned"):
            gaps.append(f"{name}: display name {info.get('display_name')!r} does not start with StyleAligned")
        if "style_aligned" not in info.get("category", ""):
            gaps.append(f"{name}: category {info.get('category')!r} is not a style_aligned one")
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if not str(options.get("tooltip", "")).strip():
                    gaps.append(f"{name}.{input_name}: no tooltip")
        tooltips = info.get("output_tooltips") or []
        names = info.get("output_name") or info.get("output", [])
        for slot, output_name in enumerate(names):
            if slot >= len(tooltips) or not str(tooltips[slot] or "").strip():
                gaps.append(f"{name} output {slot} ({output_name}): no tooltip")
    assert gaps == [], gaps


# ---- running prompts ------------------------------------------------------------------------------------

def test_text_to_image_set_and_reference_equals_bypassed(comfy, object_info, unique_prefix):
    patched_prompt = text_to_image_prompt(object_info, unique_prefix("patched"))
    bypassed_prompt = bypass(text_to_image_prompt(object_info, unique_prefix("bypassed")), ["2"], object_info)
    assert PATCH not in json.dumps(bypassed_prompt) and bypassed_prompt["6"]["inputs"]["model"] == ["1", 0]

    patched_entry = comfy.run(patched_prompt, timeout=RUN_TIMEOUT)
    bypassed_entry = comfy.run(bypassed_prompt, timeout=RUN_TIMEOUT)
    refs = comfy.output_images(patched_entry, node_id="8")
    assert len(refs) == 3
    assert all(comfy.image_path(ref).is_file() for ref in refs)
    patched, bypassed = saved_images(comfy, patched_entry), saved_images(comfy, bypassed_entry)
    assert [image.shape for image in patched] == [(SIZE, SIZE, 3)] * 3
    assert [image.shape for image in bypassed] == [(SIZE, SIZE, 3)] * 3
    assert_reference_unchanged(patched, bypassed, reference=0)


def test_reference_index_other_than_zero(comfy, object_info, unique_prefix):
    patched = comfy.run(text_to_image_prompt(object_info, unique_prefix("patched"), seed=7, patch={"reference_index": 1}),
                        timeout=RUN_TIMEOUT)
    bypassed = comfy.run(bypass(text_to_image_prompt(object_info, unique_prefix("bypassed"), seed=7), ["2"], object_info),
                         timeout=RUN_TIMEOUT)
    assert_reference_unchanged(saved_images(comfy, patched), saved_images(comfy, bypassed), reference=1)


def test_patch_error_fails_the_prompt_not_the_server(comfy, object_info, unique_prefix):
    """start_percent after end_percent is refused at execution with a readable message; the server carries on."""
    prompt = text_to_image_prompt(object_info, unique_prefix("bad"), batch=2, patch={"start_percent": 0.8, "end_percent": 0.2})
    prompt_id = comfy.queue(prompt)
    with pytest.raises(ExecutionFailed) as failure:
        comfy.wait(prompt_id, timeout=RUN_TIMEOUT)
    assert "start_percent" in str(failure.value)
    assert PATCH in str(failure.value)
    assert comfy.alive()
    entry = comfy.run(text_to_image_prompt(object_info, unique_prefix("after"), batch=2, seed=12), timeout=RUN_TIMEOUT)
    assert len(comfy.output_images(entry)) == 2


@pytest.mark.parametrize("patch, name", [
    ({"transformer_blocks": "bogus"}, "transformer_blocks"),   # the host does not check a V3 dropdown's options
    ({"start_percent": float("nan")}, "start_percent"),        # NaN passes the host's min/max check
])
def test_bad_widget_value_through_the_api_is_refused_by_name(comfy, object_info, unique_prefix, patch, name):
    """Issue 21's probes through POST /prompt: refused naming the node and the input (by the host's own
    validation where a host version has it, else by the node), never sampled or crashed."""
    prompt = text_to_image_prompt(object_info, unique_prefix("bad"), batch=2, patch=patch)
    try:
        comfy.wait(comfy.queue(prompt), timeout=RUN_TIMEOUT)
    except (ExecutionFailed, PromptRejected) as failure:
        message = str(failure)
    else:
        pytest.fail(f"{patch} was accepted")
    assert name in message and (PATCH in message or "prompt_outputs_failed_validation" in message), message
    assert "IndexError" not in message and comfy.alive()


# ---- shipped workflows ----------------------------------------------------------------------------------

SHIPPED = shipped_api_workflows()
SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SDXL_CHECKPOINT = "sd_xl_base_1.0.safetensors"
REAL_IMAGE = "stylealigned_real_image_style"
PROMPT_BATCH = "StyleAlignedPromptBatch"


@dataclass(frozen=True)
class Expected:
    """What a shipped workflow is and does (add an entry for every new workflow)."""
    checkpoint: str | None     # ckpt_name as shipped (None: the model comes from separate loaders, see model_files)
    size: int                  # width and height of its latents as shipped
    saved: int                 # images its SaveImage writes
    reference_unchanged: bool  # the reference slot equals the same graph with StyleAlignedPatch bypassed
    batch_from_prompts: bool   # EmptyLatentImage.batch_size is linked to StyleAlignedPromptBatch.batch_size
    # EmptyLatentImage.batch_size and ImageFromBatch.length are linked to StyleAlignedPromptBatch.target_count
    targets_from_prompts: bool = False
    # Separate loaders (UNETLoader, CLIPLoader, DualCLIPLoader, VAELoader): (input name, file name as shipped),
    # in node order (an input name given twice: two loaders).
    model_files: tuple = ()
    # Runs on the transformer stand-ins in tests/e2e/test_transformer_workflows.py (a server of its own with the
    # DiT files and the stand-in text encoders), not on this file's tiny SD1.5 checkpoint.
    transformer: bool = False
    # Uses ComfyUI-Distributed's nodes (installed on the test server when its tarball is there, else skipped).
    # Runs here on one server with the split's part_count set to 1; across a master and a worker in
    # tests/e2e/test_distributed_set.py.
    distributed: bool = False
    # The saved batch holds the set this many times (one row per StyleAlignedPatch setting).
    rows: int = 1


WAN_FILES = (("unet_name", "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"),
             ("unet_name", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"),
             ("clip_name", "umt5_xxl_fp8_e4m3fn_scaled.safetensors"), ("vae_name", "wan_2.1_vae.safetensors"))
EXPECTED = {
    "stylealigned_sd15_set": Expected(SD15_CHECKPOINT, 512, saved=4, reference_unchanged=True, batch_from_prompts=True),
    # Runs here on the tiny SD1.5-layout checkpoint: a full-size SDXL checkpoint (CLIP-G alone is ~1.4 GB) is too
    # heavy to build and load in these tests. What is SDXL-specific in the pack (pooled output batched per prompt,
    # the SDXL UNet's blocks) is covered in process with tiny SDXL models (tests/test_*_host.py); here the graph,
    # its nodes and links are checked as the front end converts them.
    "stylealigned_sdxl_set": Expected(SDXL_CHECKPOINT, 1024, saved=4, reference_unchanged=True, batch_from_prompts=True),
    "stylealigned_sd15_controlnet": Expected(SD15_CHECKPOINT, 512, saved=4, reference_unchanged=True, batch_from_prompts=True),
    # Slot 0 holds the real picture; Image From Batch drops it, so 3 of the 4 slots are saved.
    REAL_IMAGE: Expected(SD15_CHECKPOINT, 512, saved=3, reference_unchanged=False, batch_from_prompts=False,
                         targets_from_prompts=True),
    # The SD1.5 set scored against itself without the patch (a second KSampler, previewed): one SaveImage.
    "stylealigned_sd15_set_score": Expected(SD15_CHECKPOINT, 512, saved=4, reference_unchanged=True, batch_from_prompts=True),
    # 8 prompts sampled 3 images per batch (4 batches); StyleAlignedGatherSet gives the set back once, in order.
    "stylealigned_sd15_large_set": Expected(SD15_CHECKPOINT, 512, saved=8, reference_unchanged=True, batch_from_prompts=True),
    # The large set shared by a master and a worker (ComfyUI-Distributed); the same 8 images saved once on the master.
    "stylealigned_sd15_distributed_set": Expected(SD15_CHECKPOINT, 512, saved=8, reference_unchanged=True,
                                                  batch_from_prompts=True, distributed=True),
    "stylealigned_flux_set": Expected(
        None, 1024, saved=4, reference_unchanged=True, batch_from_prompts=True, transformer=True,
        model_files=(("unet_name", "flux1-dev.safetensors"), ("clip_name1", "clip_l.safetensors"),
                     ("clip_name2", "t5xxl_fp16.safetensors"), ("vae_name", "ae.safetensors"))),
    "stylealigned_qwen_image_set": Expected(
        None, 1328, saved=4, reference_unchanged=True, batch_from_prompts=True, transformer=True,
        model_files=(("unet_name", "qwen_image_fp8_e4m3fn.safetensors"), ("clip_name", "qwen_2.5_vl_7b_fp8_scaled.safetensors"),
                     ("vae_name", "qwen_image_vae.safetensors"))),
    "stylealigned_z_image_set": Expected(
        None, 1024, saved=4, reference_unchanged=True, batch_from_prompts=True, transformer=True,
        model_files=(("unet_name", "z_image_turbo_bf16.safetensors"), ("clip_name", "qwen_3_4b.safetensors"),
                     ("vae_name", "ae.safetensors"))),
    # Wan 2.2 A14B: two experts (two UNETLoaders, each patched); the video set saves one video of its 3 clips.
    "stylealigned_wan_video_set": Expected(None, 640, saved=3, reference_unchanged=True, batch_from_prompts=True,
                                           transformer=True, model_files=WAN_FILES),
    "stylealigned_wan_image_set": Expected(None, 640, saved=3, reference_unchanged=True, batch_from_prompts=True,
                                           transformer=True, model_files=WAN_FILES),
    # Two references (slots 0 and 1) at three weight settings: three rows of 5 saved as one batch (SDXL graph run
    # on the tiny SD1.5 checkpoint, as stylealigned_sdxl_set); both references checked below.
    "stylealigned_sdxl_two_styles": Expected(SDXL_CHECKPOINT, 1024, saved=15, reference_unchanged=False,
                                             batch_from_prompts=True, rows=3),
}
LATENT_NODES = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo")


def skip_without_distributed(expected: Expected, object_info: dict) -> None:
    if expected.distributed and "DistributedCollector" not in object_info:
        from host import distributed
        pytest.skip(f"needs ComfyUI-Distributed on the server: {distributed.missing_reason()}")


def shipped(name: str) -> dict:
    return load_prompt(API_WORKFLOWS_DIR / f"{name}.json")


def adapted(name: str, prefix: str) -> dict:
    """A shipped workflow on the tiny models at 64×64 and ≤3 steps (LoadImage keeps example.png; CLIP Vision
    Loader gets the random ViT-L stand-in)."""
    return adapt_for_tiny_models(shipped(name), TINY_CHECKPOINT_NAME, TINY_CONTROLNET_NAME,
                                 size=SIZE, max_steps=STEPS, filename_prefix=prefix, clip_vision_name=RANDOM_CLIP_VISION_NAME)


def images_of(server: ComfyServer, entry: dict, node_id: str, kind: str = "output") -> list[np.ndarray]:
    images = []
    for ref in server.output_images(entry, node_id=node_id, kind=kind):
        with Image.open(io.BytesIO(server.view(ref))) as png:
            images.append(np.asarray(png.convert("RGB")).copy())
    return images


def the_only(prompt: dict, class_type: str) -> str:
    found = nodes_of(prompt, class_type)
    assert len(found) == 1, f"expected one {class_type}, found {found}"
    return found[0]


def test_workflows_are_shipped():
    assert sorted(path.stem for path in SHIPPED) == sorted(EXPECTED), (
        "workflows/api/*.json and EXPECTED in this file disagree: every shipped workflow needs its expectations")
    for path in SHIPPED:
        load_prompt(path)  # each is an API-format prompt


@pytest.mark.parametrize("api_path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_shipped_workflow_uses_usual_models_and_known_nodes(object_info, api_path: Path):
    """As shipped (before any adaptation): usual model and file names, the sizes of its model family,
    only node types the server knows, a prompt batch driving the latent batch where promised."""
    prompt, expected = load_prompt(api_path), EXPECTED[api_path.stem]
    skip_without_distributed(expected, object_info)
    unknown = sorted({node["class_type"] for node in prompt.values()} - set(object_info))
    assert unknown == [], f"{api_path.name} uses node types the server does not know: {unknown}"
    assert {prompt[nid]["inputs"]["ckpt_name"] for nid in nodes_of(prompt, "CheckpointLoaderSimple")} == (
        {expected.checkpoint} if expected.checkpoint else set())
    for input_name in dict(expected.model_files):
        shipped = [node["inputs"][input_name] for _, node in sorted(prompt.items(), key=lambda item: int(item[0]))
                   if input_name in node["inputs"]]
        assert shipped == [file_name for name, file_name in expected.model_files if name == input_name]
    for nid in nodes_of(prompt, *LATENT_NODES, "ImageScale"):
        assert (prompt[nid]["inputs"]["width"], prompt[nid]["inputs"]["height"]) == (expected.size, expected.size)
    assert all(prompt[nid]["inputs"]["image"] == SHIPPED_IMAGE_NAME for nid in nodes_of(prompt, "LoadImage"))
    assert all(prompt[nid]["inputs"]["control_net_name"] == "control_v11p_sd15_canny.pth"
               for nid in nodes_of(prompt, "ControlNetLoader"))
    assert nodes_of(prompt, PATCH), f"{api_path.name} has no StyleAlignedPatch"
    if expected.batch_from_prompts:
        (latent,) = nodes_of(prompt, *LATENT_NODES)
        source = prompt[latent]["inputs"]["batch_size"]
        assert is_link(source) and prompt[source[0]]["class_type"] == PROMPT_BATCH and source[1] == 1, (
            f"EmptyLatentImage.batch_size is {source}, not StyleAlignedPromptBatch's batch_size output")
    if expected.targets_from_prompts:
        for class_type, name in (("EmptyLatentImage", "batch_size"), ("ImageFromBatch", "length")):
            source = prompt[the_only(prompt, class_type)]["inputs"][name]
            assert is_link(source) and prompt[source[0]]["class_type"] == PROMPT_BATCH and source[1] == 2, (
                f"{class_type}.{name} is {source}, not StyleAlignedPromptBatch's target_count output")


@pytest.mark.parametrize("api_path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_shipped_api_workflow_runs(comfy, object_info, unique_prefix, api_path: Path):
    """Each shipped workflow runs on the real server (tiny models, 64×64, ≤3 steps): the number and size of
    the saved images, the prompt batch's report of which image gets which prompt, and, where the graph uses
    the plain patch, the reference slot equal to the same graph with the patch bypassed."""
    expected = EXPECTED[api_path.stem]
    if expected.transformer:
        pytest.skip("a transformer workflow: run with its stand-ins by tests/e2e/test_transformer_workflows.py "
                    "(a server with the DiT files and stand-in text encoders), not on the tiny SD1.5 checkpoint")
    skip_without_distributed(expected, object_info)
    prompt = adapted(api_path.stem, unique_prefix("shipped"))
    if expected.distributed:  # one server renders the whole set: one part
        prompt[the_only(prompt, "StyleAlignedSplitSet")]["inputs"]["part_count"] = 1
    # The server caches nodes by their inputs: workflows sharing the SD1.5 set's prompts would get no report
    # from a cached prompt batch. A style unique to this run makes it execute (and shows in every line).
    prompt_batch = the_only(prompt, PROMPT_BATCH)
    prompt[prompt_batch]["inputs"]["style"] += f", {unique_prefix('style')}"
    entry = comfy.run(prompt, timeout=RUN_TIMEOUT)

    save = the_only(prompt, "SaveImage")
    images = images_of(comfy, entry, save)
    assert len(images) == expected.saved, f"{len(images)} images saved, expected {expected.saved}"
    assert all(comfy.image_path(ref).is_file() for ref in comfy.output_images(entry, node_id=save))
    assert [image.shape for image in images] == [(SIZE, SIZE, 3)] * expected.saved
    assert all(image.std() > 1 for image in images), "a flat image: nothing was decoded"

    # StyleAlignedPromptBatch shows which image gets which prompt: one line per image, image 0 the reference.
    lines = prompt[the_only(prompt, PROMPT_BATCH)]["inputs"]["prompts"].strip().splitlines()
    report = entry["outputs"][the_only(prompt, PROMPT_BATCH)]["text"][0].splitlines()
    assert len(report) == len(lines) == (expected.saved // expected.rows + (0 if expected.batch_from_prompts else 1))
    for i, (line, text) in enumerate(zip(report, lines)):
        role = "reference" if i == 0 else "target"
        assert line.startswith(f"image {i} ({role}): line {i + 1}: ") and text.strip() in line, report

    if expected.reference_unchanged:
        patch = the_only(prompt, PATCH)
        reference = prompt[patch]["inputs"]["reference_index"]
        assert isinstance(reference, int) and "reference" not in prompt[patch]["inputs"]
        bypassed = bypass(prompt, [patch], object_info)
        bypassed[save]["inputs"]["filename_prefix"] = unique_prefix("shipped_bypassed")
        assert_reference_unchanged(images, images_of(comfy, comfy.run(bypassed, timeout=RUN_TIMEOUT), save), reference)


def test_shipped_two_styles_workflow_keeps_both_references(comfy, object_info, unique_prefix):
    """Every row (weight setting) keeps both references (slots 0 and 1) as without StyleAligned; its targets
    differ from the unpatched ones and from row to row (the weights count)."""
    prompt = adapted("stylealigned_sdxl_two_styles", unique_prefix("two_styles"))
    save = the_only(prompt, "SaveImage")
    rows = [images[i:i + 5] for images in [images_of(comfy, comfy.run(prompt, timeout=RUN_TIMEOUT), save)] for i in (0, 5, 10)]
    bypassed = bypass(prompt, nodes_of(prompt, PATCH), object_info)
    bypassed[save]["inputs"]["filename_prefix"] = unique_prefix("two_styles_bypassed")
    plain = images_of(comfy, comfy.run(bypassed, timeout=RUN_TIMEOUT), save)[:5]
    for row in rows:
        assert all(max_abs_diff(row[slot], plain[slot]) <= 1 for slot in (0, 1))
        assert all(max_abs_diff(row[slot], plain[slot]) > 1 for slot in (2, 3, 4))
    assert max_abs_diff(rows[0][2], rows[2][2]) > 1, "the weights made no difference"


def test_shipped_controlnet_workflow_is_controlled(comfy, object_info, unique_prefix):
    """The ControlNet acts on the set (bypassing Apply ControlNet changes the images) and its hint, the
    Canny edges of the picture, is previewed at the latent size."""
    prompt = adapted("stylealigned_sd15_controlnet", unique_prefix("control"))
    entry = comfy.run(prompt, timeout=RUN_TIMEOUT)
    hint = images_of(comfy, entry, the_only(prompt, "PreviewImage"), kind="temp")
    assert [image.shape for image in hint] == [(SIZE, SIZE, 3)]
    assert set(np.unique(hint[0])) <= set(range(256)) and hint[0].max() > 200 and hint[0].min() < 50, "no edges"

    uncontrolled = bypass(prompt, [the_only(prompt, "ControlNetApplyAdvanced")], object_info)
    save = the_only(prompt, "SaveImage")
    uncontrolled[save]["inputs"]["filename_prefix"] = unique_prefix("uncontrolled")
    controlled_images = images_of(comfy, entry, save)
    uncontrolled_images = images_of(comfy, comfy.run(uncontrolled, timeout=RUN_TIMEOUT), save)
    for slot, (a, b) in enumerate(zip(controlled_images, uncontrolled_images)):
        assert max_abs_diff(a, b) > 1, f"slot {slot}: the ControlNet had no effect"


def test_real_image_workflow_holds_the_picture_in_the_reference_slot(comfy, object_info, unique_prefix):
    """The real-image workflow: the reference slot (slot 0, before Image From Batch drops it) decodes to
    VAEDecode(VAEEncode(picture)), i.e. its final latent is the encoded picture; the three new images are
    saved; the inverted reference is saved as .safetensors under output/stylealign/ and, loaded back with
    StyleAlignedLoadReference instead of inverting again, gives the same images; and the reference does
    act on the new images (they change when the patch is bypassed)."""
    prompt = adapted(REAL_IMAGE, unique_prefix("real"))
    encode, patch, invert = the_only(prompt, "VAEEncode"), the_only(prompt, PATCH), the_only(prompt, "StyleAlignedInvertReference")
    save, preview, save_reference = the_only(prompt, "SaveImage"), the_only(prompt, "PreviewImage"), the_only(prompt, "StyleAlignedSaveReference")
    assert prompt[patch]["inputs"]["reference"] == [invert, 0] and prompt[patch]["inputs"]["reference_index"] == 0
    # Tap: the encoded picture decoded straight away.
    decoded = add_node(prompt, "VAEDecode", {"samples": [encode, 0], "vae": prompt[encode]["inputs"]["vae"]})
    roundtrip_tap = add_node(prompt, "SaveImage", {"images": [decoded, 0], "filename_prefix": unique_prefix("roundtrip")})
    entry = comfy.run(prompt, timeout=RUN_TIMEOUT)

    slots = images_of(comfy, entry, preview, kind="temp")  # "All slots": the whole decoded batch
    (roundtrip,) = images_of(comfy, entry, roundtrip_tap)
    targets = images_of(comfy, entry, save)
    assert len(slots) == 4 and len(targets) == 3
    assert max_abs_diff(slots[0], roundtrip) <= 1, "the reference slot does not decode to the encoded picture"
    for slot in range(1, 4):
        assert max_abs_diff(slots[slot], targets[slot - 1]) == 0, "Image From Batch did not drop exactly slot 0"
        assert max_abs_diff(slots[slot], roundtrip) > 1, f"slot {slot} is the picture too"

    # The reference file: named in the save node's report, under output/stylealign/, a StyleAligned reference.
    (report,) = entry["outputs"][save_reference]["text"]
    relative = report.removeprefix("saved ").strip()
    assert relative.startswith("stylealign/") and relative.endswith(".safetensors"), report
    reference_file = comfy.base_dir / "output" / relative
    assert reference_file.is_file()
    with safe_open(str(reference_file), framework="pt") as handle:
        metadata = handle.metadata()
        assert metadata["format"] == "comfyui-stylealigned.reference" and "SD15" in metadata["model_family"], metadata
        assert tuple(handle.get_tensor("clean_latent").shape)[-3:] == (4, SIZE // 8, SIZE // 8)

    # Loaded back instead of inverted: the same images.
    reloaded = {nid: node for nid, node in prompt.items() if nid not in (invert, save_reference, decoded, roundtrip_tap)}
    loader = add_node(reloaded, "StyleAlignedLoadReference", {"reference_name": relative.removeprefix("stylealign/")})
    reloaded[patch]["inputs"]["reference"] = [loader, 0]
    reloaded[save]["inputs"]["filename_prefix"] = unique_prefix("reloaded")
    again = images_of(comfy, comfy.run(reloaded, timeout=RUN_TIMEOUT), save)
    assert [max_abs_diff(a, b) for a, b in zip(again, targets)] == [0, 0, 0]

    # Without the patch (and so without its reference) the new images are different.
    bypassed = bypass({nid: node for nid, node in prompt.items() if nid not in (decoded, roundtrip_tap)}, [patch], object_info)
    bypassed[save]["inputs"]["filename_prefix"] = unique_prefix("bypassed")
    unpatched = images_of(comfy, comfy.run(bypassed, timeout=RUN_TIMEOUT), save)
    assert all(max_abs_diff(a, b) > 1 for a, b in zip(unpatched, targets)), "the reference had no effect on the new images"


def _assert_validation_error(status: int, body: dict, node_id: str, class_type: str, detail: str) -> None:
    assert status == 400, (status, body)
    assert body["error"]["type"] == "prompt_outputs_failed_validation", body
    assert set(body["node_errors"]) == {node_id}, body
    assert body["node_errors"][node_id]["class_type"] == class_type
    assert any(detail in error["details"] for error in body["node_errors"][node_id]["errors"]), body


def test_missing_input_image_is_a_validation_error_and_server_stays_up(comfy, unique_prefix):
    prompt = adapted(REAL_IMAGE, unique_prefix("bad"))
    load = the_only(prompt, "LoadImage")
    prompt[load]["inputs"]["image"] = "no_such_picture.png"
    status, body = comfy.submit(prompt)
    _assert_validation_error(status, body, load, "LoadImage", "Invalid image file: no_such_picture.png")
    assert comfy.alive()
    entry = comfy.run(adapted("stylealigned_sd15_set", unique_prefix("after")), timeout=RUN_TIMEOUT)
    assert len(comfy.output_images(entry)) == 4


def test_wrong_checkpoint_name_is_a_validation_error_and_server_stays_up(comfy, unique_prefix):
    """The shipped workflow with its checkpoint name as shipped: this server has no such file."""
    prompt = adapted("stylealigned_sd15_set", unique_prefix("bad"))
    loader = the_only(prompt, "CheckpointLoaderSimple")
    prompt[loader]["inputs"]["ckpt_name"] = SD15_CHECKPOINT
    status, body = comfy.submit(prompt)
    _assert_validation_error(status, body, loader, "CheckpointLoaderSimple", f"'{SD15_CHECKPOINT}' not in")
    assert body["node_errors"][loader]["errors"][0]["type"] == "value_not_in_list"
    assert comfy.alive()
    prompt[loader]["inputs"]["ckpt_name"] = TINY_CHECKPOINT_NAME
    prompt[the_only(prompt, "KSampler")]["inputs"]["seed"] += 1
    entry = comfy.run(prompt, timeout=RUN_TIMEOUT)
    assert len(comfy.output_images(entry)) == 4


def test_workflow_templates_list_the_shipped_workflows(comfy):
    """ComfyUI's template browser lists the pack's workflows/*.json and serves each file as shipped."""
    templates = comfy.get_json("/workflow_templates")
    assert sorted(templates.get(PACK_DIR_NAME, [])) == sorted(EXPECTED)
    for name in EXPECTED:
        status, body = comfy._request("GET", f"/api/workflow_templates/{PACK_DIR_NAME}/{name}.json")
        assert status == 200
        served = body if isinstance(body, dict) else json.loads(body)
        assert served == json.loads((WORKFLOWS_DIR / f"{name}.json").read_text())


def test_whole_server_log_has_no_unexpected_pack_problems(comfy):
    """Runs last: nothing the pack logged while serving the prompts above is a warning or error, except the
    failures provoked on purpose by test_patch_error_fails_the_prompt_not_the_server (and test_set_score.py)."""
    provoked = ("start_percent (0.8) is after end_percent (0.2)",
                # test_bad_widget_value_through_the_api_is_refused_by_name's probes
                "StyleAlignedPatch: transformer_blocks is 'bogus'", "StyleAlignedPatch: start_percent is nan",
                # test_set_score.py's errors, when that file runs first
                "StyleAlignedSetScore: images holds 1 image", "StyleAlignedSetScore: reference_index 2 is outside images")
    problems = [p for p in pack_log_problems(comfy.log_text()) if not any(text in p for text in provoked)]
    assert problems == [], f"see {comfy.log_path}"
