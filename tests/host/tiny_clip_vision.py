"""Tiny random image encoders built in process from the host's own class, comfy.clip_vision.ClipVisionModel
(what CLIPVisionLoader returns), one per kind the loader knows: CLIP (ViT with a projection), SigLIP (no
class token, no projection: its image_embeds are the final tokens) and DINOv2 (class token after the final
norm). Only the sizes are small; the host's preprocessing and forward pass are used as they are."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .comfy_env import load_host
from .tiny_models import _randomise

TINY_VISION_CONFIGS = {
    "clip": {
        "model_type": "clip_vision_model", "hidden_act": "quick_gelu", "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 2, "num_hidden_layers": 2, "num_channels": 3, "patch_size": 8, "image_size": 32,
        "projection_dim": 24, "layer_norm_eps": 1e-5,
    },
    "siglip": {
        "model_type": "siglip_vision_model", "hidden_act": "gelu_pytorch_tanh", "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 2, "num_hidden_layers": 2, "num_channels": 3, "patch_size": 8, "image_size": 32,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    },
    # The host's DINOv2 embeddings are fixed to 518-pixel inputs in 14-pixel patches; only the width is small
    # (two layers: the host takes the penultimate layer's output too).
    "dinov2": {
        "model_type": "dinov2", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 2, "layer_norm_eps": 1e-6,
        "use_swiglu_ffn": False, "image_size": 518, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
    },
}


def tiny_clip_vision(kind: str = "clip", seed: int = 0, **config_changes):
    """A comfy.clip_vision.ClipVisionModel with a tiny config of `kind` (and `config_changes`, e.g. more
    layers) and random float32 weights on the CPU."""
    load_host()
    import torch

    import comfy.clip_vision

    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder) / f"tiny_{kind}.json"
        config_path.write_text(json.dumps({**TINY_VISION_CONFIGS[kind], **config_changes}))
        model = comfy.clip_vision.ClipVisionModel(str(config_path))
    model.model.to(torch.float32)
    _randomise(model.model, seed)
    return model
