"""Where every file a shipped workflow loads goes and where to get it: the one list that the workflows' notes
(tests/host/build_workflows.py) are written from and that the README's Models table is checked against
(tests/test_model_sources.py). Sources are the official repositories / model cards by name (Hugging Face)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

# A string input value with one of these endings names a file a loader reads (checkpoints, images, ...).
FILE_ENDINGS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class ModelFile:
    name: str
    folder: str          # under the ComfyUI folder
    repository: str      # Hugging Face repository (owner/name); "" for a file of your own
    how: str             # what to download there, in a few words

    @property
    def where(self) -> str:
        return f"Hugging Face {self.repository} ({self.how})" if self.repository else self.how

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.name}"


MODEL_FILES = {
    file.name: file
    for file in (
        ModelFile("v1-5-pruned-emaonly.safetensors", "models/checkpoints", "stable-diffusion-v1-5/stable-diffusion-v1-5",
                  "the Stable Diffusion v1.5 model card's file (any SD1.x checkpoint works)"),
        ModelFile("sd_xl_base_1.0.safetensors", "models/checkpoints", "stabilityai/stable-diffusion-xl-base-1.0",
                  "the SDXL base model card's file (no refiner needed)"),
        ModelFile("control_v11p_sd15_canny.pth", "models/controlnet", "lllyasviel/ControlNet-v1-1",
                  "the canny ControlNet for SD1.5"),
        ModelFile("example.png", "input", "",
                  "any picture of yours (ComfyUI ships one as input/example.png); pick it in Load Image"),
        ModelFile("dinov2_large.safetensors", "models/clip_vision", "facebook/dinov2-large",
                  "its model.safetensors, renamed dinov2_large.safetensors"),
        ModelFile("flux1-dev.safetensors", "models/diffusion_models", "black-forest-labs/FLUX.1-dev",
                  "flux1-dev.safetensors (gated: accept the licence on the model card)"),
        ModelFile("clip_l.safetensors", "models/text_encoders", "comfyanonymous/flux_text_encoders",
                  "clip_l.safetensors"),
        ModelFile("t5xxl_fp16.safetensors", "models/text_encoders", "comfyanonymous/flux_text_encoders",
                  "t5xxl_fp16.safetensors (or t5xxl_fp8_e4m3fn_scaled.safetensors)"),
        ModelFile("ae.safetensors", "models/vae", "black-forest-labs/FLUX.1-schnell",
                  "ae.safetensors, the Flux VAE (also in Comfy-Org/z_image_turbo, split_files/vae)"),
        ModelFile("qwen_image_fp8_e4m3fn.safetensors", "models/diffusion_models", "Comfy-Org/Qwen-Image_ComfyUI",
                  "split_files/diffusion_models"),
        ModelFile("qwen_2.5_vl_7b_fp8_scaled.safetensors", "models/text_encoders", "Comfy-Org/Qwen-Image_ComfyUI",
                  "split_files/text_encoders"),
        ModelFile("qwen_image_vae.safetensors", "models/vae", "Comfy-Org/Qwen-Image_ComfyUI", "split_files/vae"),
        ModelFile("z_image_turbo_bf16.safetensors", "models/diffusion_models", "Comfy-Org/z_image_turbo",
                  "split_files/diffusion_models"),
        ModelFile("qwen_3_4b.safetensors", "models/text_encoders", "Comfy-Org/z_image_turbo", "split_files/text_encoders"),
        ModelFile("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "models/diffusion_models",
                  "Comfy-Org/Wan_2.2_ComfyUI_Repackaged", "split_files/diffusion_models"),
        ModelFile("wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "models/diffusion_models",
                  "Comfy-Org/Wan_2.2_ComfyUI_Repackaged", "split_files/diffusion_models"),
        ModelFile("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "models/text_encoders", "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
                  "split_files/text_encoders"),
        ModelFile("wan_2.1_vae.safetensors", "models/vae", "Comfy-Org/Wan_2.1_ComfyUI_repackaged", "split_files/vae"),
    )
}


def loaded_files(values: Any) -> list[str]:
    """Every file name among `values` (an API prompt, a node's widget values, ...), in order, once each."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if value.lower().endswith(FILE_ENDINGS) and value not in found:
                found.append(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(values)
    return found


def sources_note(names: list[str]) -> str:
    """The note section that says where each file goes and where to get it (KeyError for a file not listed)."""
    lines = [f"- {MODEL_FILES[name].path}: {MODEL_FILES[name].where}" for name in names]
    return "Files (where they go, where to get them; all in the README's Models table):\n" + "\n".join(lines)


def with_sources_note(spec: dict) -> dict:
    """A copy of a workflow spec (build_workflows.py) whose first note ends with the sources of every file its
    nodes load."""
    spec = copy.deepcopy(spec)
    notes = [node for node in spec["nodes"] if node["type"] == "Note"]
    names = loaded_files([node.get("widgets", {}) for node in spec["nodes"] if node["type"] != "Note"])
    if notes and names:
        notes[0]["widgets"]["text"] = notes[0]["widgets"]["text"].rstrip() + "\n\n" + sources_note(names)
    return spec
