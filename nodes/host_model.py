"""Reading facts off a ComfyUI model: its self-attention layers, sigma schedule, family and latent space.

Host glue only; the maths lives in stylealign_core.
"""

from __future__ import annotations

import torch

from ..stylealign_core import LayerKey, NoiseScaling, StyleAlignedError

# The block kinds, in execution order, under which ComfyUI's UNet tags transformer_options["block"].
UNET_BLOCK_GROUPS = (("input", "input_blocks"), ("middle", "middle_block"), ("output", "output_blocks"))


def _transformer_block_count(module) -> int:
    """Self-attention transformer blocks inside one UNet block (SpatialTransformer.transformer_blocks)."""
    return sum(len(child.transformer_blocks) for child in module.modules() if hasattr(child, "transformer_blocks"))


def self_attention_layers(model, node_name: str) -> list[LayerKey]:
    """The UNet's self-attention layers in execution order, named as the attn1 patch sees them.

    Only called for UNets (transformer_family routed every other model away or refused it). Raises
    StyleAlignedError when the UNet has no transformer blocks.
    """
    diffusion_model = model.get_model_object("diffusion_model")
    layers: list[LayerKey] = []
    middle = diffusion_model.middle_block
    grouped = {
        "input": list(enumerate(diffusion_model.input_blocks)),
        "middle": [(0, middle)] if middle is not None else [],
        "output": list(enumerate(diffusion_model.output_blocks)),
    }
    for kind, _ in UNET_BLOCK_GROUPS:
        for block_id, block in grouped[kind]:
            layers.extend((kind, block_id, index) for index in range(_transformer_block_count(block)))
    if not layers:
        raise StyleAlignedError(
            f"{node_name}: the model's UNet has no transformer blocks, so there is no self-attention to share."
        )
    return layers


def percent_to_sigma(model, percent: float) -> float:
    return float(model.get_model_object("model_sampling").percent_to_sigma(percent))


def model_family(model) -> str:
    """What a reference must match: model class, latent space and prediction type (e.g. "BaseModel/SD15/EPS")."""
    base_model = model.model
    return f"{type(base_model).__name__}/{type(base_model.latent_format).__name__}/{base_model.model_type.name}"


def noise_scaling(model) -> NoiseScaling:
    model_sampling = model.get_model_object("model_sampling")
    return NoiseScaling(lambda sigma, noise, latent: model_sampling.noise_scaling(sigma, noise, latent))


def to_model_latent(model, latent: torch.Tensor) -> torch.Tensor:
    """VAE latent (as VAEEncode gives it) -> the model's latent space (what the sampler works in)."""
    return model.model.process_latent_in(latent.float())

