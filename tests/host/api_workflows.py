"""Helpers for API-format prompts (the `{node_id: {class_type, inputs}}` JSON that POST /prompt takes).

Used by the end-to-end tests and the demo to run the shipped `workflows/api/*.json` on the tiny models:
`adapt_for_tiny_models` swaps in the tiny checkpoint/ControlNet names, a small resolution and few steps
(and, when asked, another input image), and `bypass` builds "the same graph with a node bypassed" the way
the front end's Bypass mode converts it (the node is removed and each consumer of its output is wired to
the node's input of the same type). `add_node` taps a graph (e.g. an extra SaveImage).

The shipped workflows' LoadImage nodes read `example.png` (SHIPPED_IMAGE_NAME), the picture ComfyUI ships
in its input folder; the tests put their own small test picture in the server's input folder under that
name, so those nodes run as shipped.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / "workflows"
API_WORKFLOWS_DIR = WORKFLOWS_DIR / "api"

Prompt = dict[str, dict[str, Any]]

# Input name -> what the tiny set-up puts there. Model file names are given by the caller.
RESOLUTION_INPUTS = ("width", "height")
STEP_INPUTS = ("steps",)
SAVE_NODES = ("SaveImage", "SaveWEBM")  # whose filename_prefix the adaptations set
LATENT_NODES = ("EmptyLatentImage", "EmptySD3LatentImage")


# The picture LoadImage nodes read in the tests and the tiny demo (put in the server's input folder).
TEST_IMAGE_NAME = "stylealigned_e2e_input.png"
# The picture the shipped workflows load (ComfyUI ships input/example.png).
SHIPPED_IMAGE_NAME = "example.png"
TEST_IMAGE_SIZE = 64


def write_test_image(path: Path, size: int = TEST_IMAGE_SIZE) -> Path:
    """A deterministic size×size RGB picture (gradients and a disc) for LoadImage nodes."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size))
    image.putdata([(256 * x // size, 256 * y // size, 255 - 128 * (x + y) // size) for y in range(size) for x in range(size)])
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(250, 220, 40))
    image.save(path)
    return Path(path)


def load_prompt(path: Path) -> Prompt:
    prompt = json.loads(Path(path).read_text())
    if not isinstance(prompt, dict) or not all(isinstance(n, dict) and "class_type" in n for n in prompt.values()):
        raise ValueError(f"{path} is not an API-format prompt ({{id: {{class_type, inputs}}}})")
    return prompt


def shipped_api_workflows() -> list[Path]:
    return sorted(API_WORKFLOWS_DIR.glob("*.json"))


def ui_twin(api_path: Path) -> Path:
    return WORKFLOWS_DIR / Path(api_path).name


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def nodes_of(prompt: Prompt, *class_types: str) -> list[str]:
    return [nid for nid, node in prompt.items() if node["class_type"] in class_types]


def adapt_for_tiny_models(
    prompt: Prompt,
    checkpoint_name: str,
    controlnet_name: str | None = None,
    image_name: str | None = None,
    size: int = 64,
    max_steps: int = 3,
    filename_prefix: str | None = None,
    clip_vision_name: str | None = None,
) -> Prompt:
    """A copy of `prompt` that runs in seconds on CPU with the tiny models:

    - every `ckpt_name` (CheckpointLoaderSimple & co.) -> `checkpoint_name`;
    - every `control_net_name` (ControlNetLoader) -> `controlnet_name`;
    - every CLIPVisionLoader's `clip_name` -> `clip_vision_name` when given;
    - every `image` of a LoadImage -> `image_name` (a file in the server's input folder) when given, else
      kept as shipped;
    - every literal `width`/`height` -> `size` (latent sizes, scalers), `steps` -> at most `max_steps`, a
      KSamplerAdvanced's `start_at_step`/`end_at_step` scaled alike (a split of the steps between two models
      stays a split);
    - every SaveImage / SaveWEBM `filename_prefix` -> `filename_prefix` (so reruns are not served from the
      cache and files are easy to find).
    Batch sizes, seeds, prompts and all StyleAligned settings are kept as shipped."""
    adapted = copy.deepcopy(prompt)
    for node in adapted.values():
        inputs = node.setdefault("inputs", {})
        for name, value in list(inputs.items()):
            if is_link(value):
                continue
            if name == "ckpt_name":
                inputs[name] = checkpoint_name
            elif name == "control_net_name" and controlnet_name is not None:
                inputs[name] = controlnet_name
            elif name in RESOLUTION_INPUTS and isinstance(value, int):
                inputs[name] = size
            elif name in STEP_INPUTS and isinstance(value, int):
                inputs[name] = min(value, max_steps)
                _scale_step_range(inputs, value, inputs[name])
        if node["class_type"] == "CLIPVisionLoader" and clip_vision_name is not None:
            inputs["clip_name"] = clip_vision_name
        if node["class_type"] == "LoadImage" and image_name is not None:
            inputs["image"] = image_name
        if node["class_type"] in SAVE_NODES and filename_prefix is not None:
            inputs["filename_prefix"] = filename_prefix
    return adapted


def _scale_step_range(inputs: dict, steps: int, new_steps: int) -> None:
    """start_at_step / end_at_step (KSamplerAdvanced) scaled from `steps` to `new_steps`; an end past the
    schedule (10000: to the end) stays past it."""
    for name in ("start_at_step", "end_at_step"):
        value = inputs.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value < steps:
            inputs[name] = round(value * new_steps / steps)


# The test-only node (tests/host/standin_text_encoders) that stands in for the big text encoders' loaders.
STAND_IN_TEXT_ENCODER = "StyleAlignedTestStandInTextEncoder"
TEXT_ENCODER_LOADERS = ("DualCLIPLoader", "CLIPLoader")


def adapt_for_transformer_stand_ins(
    prompt: Prompt,
    diffusion_model_name: str,
    vae_name: str,
    clip_l_name: str,
    size: int = 64,
    max_steps: int = 2,
    filename_prefix: str | None = None,
    max_frames: int = 9,
) -> Prompt:
    """A copy of a transformer (DiT) workflow that runs on the stand-ins of tests/host/tiny_transformer_files.py:

    - every UNETLoader `unet_name` -> `diffusion_model_name`, every VAELoader `vae_name` -> `vae_name`;
    - each text-encoder loader (DualCLIPLoader, CLIPLoader) -> STAND_IN_TEXT_ENCODER under the same node id
      (so every link stays), with the loader's `type`; a DualCLIPLoader's CLIP-L (`clip_name1`, Flux) is
      `clip_l_name`, loaded for real; only the big encoder (T5-XXL, Qwen2.5-VL, Qwen3) is the stand-in;
    - sizes, steps and save prefixes as adapt_for_tiny_models; video lengths (EmptyHunyuanLatentVideo
      `length`) at most `max_frames`.
    Everything else (model sampling, guidance, sampler settings, prompts, StyleAligned settings) is kept."""
    adapted = adapt_for_tiny_models(prompt, checkpoint_name="", size=size, max_steps=max_steps, filename_prefix=filename_prefix)
    for node_id, node in adapted.items():
        inputs = node["inputs"]
        if node["class_type"] == "UNETLoader":
            inputs["unet_name"] = diffusion_model_name
        elif node["class_type"] == "EmptyHunyuanLatentVideo" and isinstance(inputs.get("length"), int):
            inputs["length"] = min(inputs["length"], max_frames)
        elif node["class_type"] == "VAELoader":
            inputs["vae_name"] = vae_name
        elif node["class_type"] in TEXT_ENCODER_LOADERS:
            loader_type = inputs["type"]
            clip_name = clip_l_name if node["class_type"] == "DualCLIPLoader" else ""
            if node["class_type"] == "DualCLIPLoader" and loader_type != "flux":
                raise ValueError(f"node {node_id}: no stand-in for DualCLIPLoader type {loader_type}")
            adapted[node_id] = {"class_type": STAND_IN_TEXT_ENCODER, "inputs": {"type": loader_type, "clip_name": clip_name},
                                "_meta": {"title": f"stand-in for {node['class_type']} ({loader_type})"}}
    return adapted


def bypass(prompt: Prompt, node_ids: Iterable[str], object_info: dict | None = None) -> Prompt:
    """The prompt with `node_ids` bypassed, as the front end converts a bypassed node: removed, and every
    link from its output slot k rewired to its input k when that one has output k's type (ControlNetApply-
    Advanced: positive → positive, negative → negative), else to its first input of that type (the model
    patch: MODEL in, MODEL out). Types come from `object_info` ({class_type: info}); without it, the
    node's first linked input is used (right for a node with a single linked input, like the patch)."""
    result = copy.deepcopy(prompt)
    for node_id in node_ids:
        node = result.pop(node_id)
        info = (object_info or {}).get(node["class_type"])
        for consumer in result.values():
            for name, value in consumer.get("inputs", {}).items():
                if is_link(value) and value[0] == node_id:
                    consumer["inputs"][name] = _bypass_source(node, value[1], info)
    return result


def _bypass_source(node: dict, output_slot: int, info: dict | None) -> Any:
    inputs = node.get("inputs", {})
    if info is not None:
        out_type = info["output"][output_slot]
        declared = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        order = info.get("input_order", {}).get("required", []) + info.get("input_order", {}).get("optional", [])
        matching = [name for name in order if declared.get(name, [None])[0] == out_type and is_link(inputs.get(name))]
        if output_slot < len(order) and order[output_slot] in matching:
            return inputs[order[output_slot]]
        if matching:
            return inputs[matching[0]]
        raise ValueError(f"{node['class_type']} has no linked {out_type} input to pass through output {output_slot}")
    for name, value in inputs.items():
        if is_link(value):
            return value
    raise ValueError(f"{node['class_type']} has no linked input to pass through")


def add_node(prompt: Prompt, class_type: str, inputs: dict[str, Any], title: str | None = None) -> str:
    """Add a node to `prompt` (in place) under the next free numeric id; return that id."""
    node_id = str(max((int(nid) for nid in prompt if str(nid).isdigit()), default=0) + 1)
    prompt[node_id] = {"class_type": class_type, "inputs": dict(inputs)}
    if title:
        prompt[node_id]["_meta"] = {"title": title}
    return node_id


def consumers(prompt: Prompt, node_id: str, output: int | None = None) -> list[tuple[str, str]]:
    """(consumer id, input name) of every link from `node_id` (from its `output` slot, or any)."""
    return [(nid, name) for nid, node in prompt.items() for name, value in node.get("inputs", {}).items()
            if is_link(value) and value[0] == node_id and (output is None or value[1] == output)]
