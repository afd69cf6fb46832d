"""The pack on the real ComfyUI server: startup, node descriptions, workflows run through POST /prompt.

All prompts run on the tiny random SD1.5-layout checkpoint (tests/host/tiny_checkpoint.py) at 64×64 with
3 steps, so the pictures are noise; what is checked is plumbing and exact properties: image counts and
sizes, and that the reference slot comes out equal to the same graph with StyleAlignedPatch bypassed
(within 1/255, compared on the decoded PNGs) while the other slots do change.

Shipped workflows (`workflows/api/*.json`) are run as shipped except for what cannot run here, which
`host.api_workflows.adapt_for_tiny_models` swaps in: the checkpoint and ControlNet names become the tiny
models', every literal width/height becomes 64, steps at most 3, LoadImage reads a 64×64 test picture, and
SaveImage gets a fresh filename_prefix. Batch sizes, seeds, prompts and StyleAligned settings are kept.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from host.api_workflows import (
    TEST_IMAGE_NAME, adapt_for_tiny_models, bypass, load_prompt, nodes_of, shipped_api_workflows)
from host.server import ComfyServer, ExecutionFailed, pack_log_problems
from host.tiny_checkpoint import TINY_CHECKPOINT_NAME, TINY_CONTROLNET_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]
PATCH = "StyleAlignedPatch"
PACK_MODULE = "custom_nodes.ComfyUI-StyleAligned"
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


def text_to_image_prompt(object_info: dict, prefix: str, batch: int = 3, seed: int = 42, patch: dict | None = None,
                         controlnet: bool = False) -> dict:
    """Stock nodes around StyleAlignedPatch (node "2"):
    CheckpointLoaderSimple → StyleAlignedPatch → KSampler(EmptyLatentImage) → VAEDecode → SaveImage (node "8")."""
    prompt = {
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
    if controlnet:
        prompt["10"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": TINY_CONTROLNET_NAME}}
        prompt["11"] = {"class_type": "LoadImage", "inputs": {"image": TEST_IMAGE_NAME}}
        prompt["12"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["3", 0], "negative": ["4", 0], "control_net": ["10", 0], "image": ["11", 0],
            "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "vae": ["1", 2]}}
        prompt["6"]["inputs"].update(positive=["12", 0], negative=["12", 1])
    return prompt


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
    assert info["output"] == ["MODEL"]


def test_every_pack_node_is_described(object_info):
    """Every node of the pack has a description, a tooltip on every input and on every output."""
    pack_nodes = {name: info for name, info in object_info.items() if info.get("python_module") == PACK_MODULE}
    assert PATCH in pack_nodes
    gaps = []
    for name, info in sorted(pack_nodes.items()):
        if not info.get("description", "").strip():
            gaps.append(f"{name}: no description")
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if not str(options.get("tooltip", "")).strip():
                    gaps.append(f"{name}.{input_name}: no tooltip")
        tooltips = info.get("output_tooltips") or []
        for slot, output_name in enumerate(info.get("output_name", [])):
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


def test_controlnet_with_patch(comfy, object_info, unique_prefix):
    """The tiny ControlNet loads through ControlNetLoader and runs with ControlNetApplyAdvanced and the patch."""
    patched = comfy.run(text_to_image_prompt(object_info, unique_prefix("patched"), batch=2, seed=3, controlnet=True),
                        timeout=RUN_TIMEOUT)
    bypassed = comfy.run(bypass(text_to_image_prompt(object_info, unique_prefix("bypassed"), batch=2, seed=3, controlnet=True),
                                ["2"], object_info), timeout=RUN_TIMEOUT)
    without_control = comfy.run(text_to_image_prompt(object_info, unique_prefix("nocontrol"), batch=2, seed=3),
                                timeout=RUN_TIMEOUT)
    patched_images = saved_images(comfy, patched)
    assert [image.shape for image in patched_images] == [(SIZE, SIZE, 3)] * 2
    assert max_abs_diff(patched_images[0], saved_images(comfy, without_control)[0]) > 1, "the ControlNet had no effect"
    assert_reference_unchanged(patched_images, saved_images(comfy, bypassed), reference=0)


def test_wrong_checkpoint_name_is_a_validation_error_and_server_stays_up(comfy, object_info, unique_prefix):
    bad = text_to_image_prompt(object_info, unique_prefix("bad"), batch=2)
    bad["1"]["inputs"]["ckpt_name"] = "no_such_checkpoint.safetensors"
    status, body = comfy.submit(bad)
    assert status == 400
    assert set(body["node_errors"]) == {"1"}, body
    errors = body["node_errors"]["1"]["errors"]
    assert body["node_errors"]["1"]["class_type"] == "CheckpointLoaderSimple"
    assert errors[0]["type"] == "value_not_in_list" and "no_such_checkpoint" in errors[0]["details"]
    assert comfy.alive()

    entry = comfy.run(text_to_image_prompt(object_info, unique_prefix("after"), batch=2, seed=11), timeout=RUN_TIMEOUT)
    assert len(comfy.output_images(entry)) == 2


def test_missing_input_image_is_a_validation_error(comfy):
    status, body = comfy.submit({
        "1": {"class_type": "LoadImage", "inputs": {"image": "no_such_picture.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    })
    assert status == 400
    assert body["node_errors"]["1"]["class_type"] == "LoadImage"
    assert comfy.alive()


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


# ---- shipped workflows ----------------------------------------------------------------------------------

SHIPPED = shipped_api_workflows()


def test_workflows_are_shipped():
    assert SHIPPED, "no workflows/api/*.json"
    for path in SHIPPED:
        load_prompt(path)  # each is an API-format prompt


@pytest.mark.parametrize("api_path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_shipped_api_workflow_runs(comfy, object_info, unique_prefix, api_path: Path):
    shipped = load_prompt(api_path)
    unknown = sorted({node["class_type"] for node in shipped.values()} - set(object_info))
    assert unknown == [], f"{api_path.name} uses node types the server does not know: {unknown}"
    prompt = adapt_for_tiny_models(shipped, TINY_CHECKPOINT_NAME, TINY_CONTROLNET_NAME, TEST_IMAGE_NAME,
                                   size=SIZE, max_steps=STEPS, filename_prefix=unique_prefix("shipped"))
    entry = comfy.run(prompt, timeout=RUN_TIMEOUT)

    save_nodes = nodes_of(prompt, "SaveImage")
    assert save_nodes, f"{api_path.name} saves no image"
    images = saved_images(comfy, entry)
    assert images, f"{api_path.name} saved nothing"
    # Latents are 64×64 after adaptation, and so is the test picture that LoadImage reads.
    assert [image.shape for image in images] == [(SIZE, SIZE, 3)] * len(images)
    latents = nodes_of(prompt, "EmptyLatentImage")
    if len(latents) == 1 and len(save_nodes) == 1:
        batch = prompt[latents[0]]["inputs"]["batch_size"]
        assert len(images) == batch, f"{len(images)} images saved for a latent batch of {batch}"

    # The reference slot equals the same graph with every StyleAlignedPatch bypassed. Only checked for
    # graphs whose pack nodes are the patch and prompt batching; a graph that puts a real image on the
    # reference slot (inversion) has no such unpatched twin.
    patches = nodes_of(prompt, PATCH)
    pack_types = {node["class_type"] for node in prompt.values() if object_info[node["class_type"]].get("python_module") == PACK_MODULE}
    if patches and pack_types <= {PATCH, "StyleAlignedPromptBatch"} and len(save_nodes) == 1:
        reference = prompt[patches[0]]["inputs"]["reference_index"]
        assert isinstance(reference, int)
        bypassed = bypass(prompt, patches, object_info)
        bypassed[save_nodes[0]]["inputs"]["filename_prefix"] = unique_prefix("shipped_bypassed")
        assert_reference_unchanged(images, saved_images(comfy, comfy.run(bypassed, timeout=RUN_TIMEOUT)), reference)


def test_whole_server_log_has_no_unexpected_pack_problems(comfy):
    """Runs last: nothing the pack logged while serving the prompts above is a warning or error, except the
    failure provoked on purpose by test_patch_error_fails_the_prompt_not_the_server."""
    provoked = "start_percent (0.8) is after end_percent (0.2)"
    problems = [p for p in pack_log_problems(comfy.log_text()) if provoked not in p]
    assert problems == [], f"see {comfy.log_path}"
