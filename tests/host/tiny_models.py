"""Tiny random UNets built in process, wrapped the way ComfyUI wraps a loaded checkpoint.

They use the host's own model classes (supported_models.SD15 / SDXL -> model_base -> UNetModel) so
sampling goes through the real comfy.sample path; only the sizes are small and the weights random.
"""

from __future__ import annotations

import torch

from .random_tensors import random_values

SD15_TINY_UNET = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 32,
    "use_linear_in_transformer": False,
    "adm_in_channels": None,
    "use_spatial_transformer": True,
    "legacy": False,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "num_heads": 2,
    "num_head_channels": -1,
}

# SDXL layout: linear transformer projections, no attention at the first level, two transformer blocks
# per attention block, and the size/pooled-text "adm" embedding (pooled text + 6 x 256 sizes; the pooled
# width is the tiny CLIP-G's hidden size, 32, instead of 1280).
SDXL_TINY_UNET = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth": [0, 2],
    "transformer_depth_output": [0, 0, 2, 2],
    "transformer_depth_middle": 2,
    "context_dim": 64,
    "use_linear_in_transformer": True,
    "adm_in_channels": 32 + 6 * 256,
    "num_classes": "sequential",
    "use_spatial_transformer": True,
    "legacy": False,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "num_heads": -1,
    "num_head_channels": 16,
}
SDXL_POOLED_DIM = 32


def _is_norm_weight(name: str, shape: tuple) -> bool:
    return len(shape) <= 1 and name.endswith("weight") and (
        "norm" in name or ".in_layers.0." in name or ".out_layers.0." in name or name.startswith("out.0."))


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """ComfyUI's ops skip weight init; give every parameter a deterministic, well-scaled random value
    (tests/host/random_tensors.py, in parameter order)."""
    parameters = dict(module.named_parameters())
    values = random_values({name: p.shape for name, p in parameters.items()}, seed, _is_norm_weight, bias_scale=0.05, sort_keys=False)
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(values[name])


def tiny_model(kind: str = "sd15", seed: int = 0, dtype: torch.dtype = torch.float32):
    """A ModelPatcher around a tiny random SD1.5-like ("sd15") or SDXL-like ("sdxl") model on the CPU."""
    import comfy.model_patcher
    import comfy.supported_models

    config_class, unet_config = {
        "sd15": (comfy.supported_models.SD15, SD15_TINY_UNET),
        "sdxl": (comfy.supported_models.SDXL, SDXL_TINY_UNET),
    }[kind]
    model_config = config_class(dict(unet_config))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=torch.device("cpu"))
    _randomise(model.diffusion_model, seed)
    model.diffusion_model.to(dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def tiny_conditioning(kind: str, batch: int = 1, seed: int = 1, tokens: int = 8) -> list:
    """Random text conditioning in ComfyUI's [[tensor, extras]] form; SDXL gets a batched pooled output."""
    generator = torch.Generator().manual_seed(seed)
    context_dim = (SD15_TINY_UNET if kind == "sd15" else SDXL_TINY_UNET)["context_dim"]
    extras = {}
    if kind == "sdxl":
        extras = {"pooled_output": torch.randn(batch, SDXL_POOLED_DIM, generator=generator), "width": 64, "height": 64}
    return [[torch.randn(batch, tokens, context_dim, generator=generator), extras]]


def tiny_controlnet(seed: int = 5):
    """A ControlNet (comfy.controlnet.ControlNet, what ControlNetLoader returns) for tiny_model("sd15")."""
    import comfy.cldm.cldm
    import comfy.controlnet

    config = {k: v for k, v in SD15_TINY_UNET.items()
              if k not in ("out_channels", "transformer_depth_output", "use_temporal_attention", "use_temporal_resblock")}
    control_model = comfy.cldm.cldm.ControlNet(hint_channels=3, device=torch.device("cpu"), **config)
    _randomise(control_model, seed)
    return comfy.controlnet.ControlNet(control_model, load_device=torch.device("cpu"), manual_cast_dtype=None)
