"""Tiny Flux.1, Chroma, Flux.2 and LongCat-Image models (comfy/ldm/flux, comfy/ldm/chroma)."""

from __future__ import annotations

import dataclasses
import importlib

from . import TinyDit, guided_conditioning

FLUX_CONFIG = {
    "image_model": "flux",
    "guidance_embed": True,
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "vec_in_dim": 24,
    "context_in_dim": 32,
    "hidden_size": 48,
    "mlp_ratio": 2.0,
    "num_heads": 3,
    "depth": 1,
    "depth_single_blocks": 2,
    "axes_dim": [4, 6, 6],
    "theta": 10000,
    "qkv_bias": True,
}

CHROMA_CONFIG = {
    "image_model": "chroma",
    "in_channels": 64,
    "out_channels": 64,
    "patch_size": 2,
    "context_in_dim": 32,
    "hidden_size": 48,
    "mlp_ratio": 2.0,
    "num_heads": 3,
    "depth": 1,
    "depth_single_blocks": 2,
    "axes_dim": [4, 6, 6],
    "theta": 10000,
    "qkv_bias": True,
    "in_dim": 64,
    "out_dim": 48,
    "hidden_dim": 32,
    "n_layers": 1,
}

# Flux.2: four RoPE axes (index, row, col, text position), theta 2000, patch 1 on a 128-channel latent,
# global modulation, no pooled vector; the model pads text to 512 tokens.
FLUX2_CONFIG = {
    "image_model": "flux2",
    "guidance_embed": True,
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "vec_in_dim": None,
    "context_in_dim": 32,
    "hidden_size": 48,
    "mlp_ratio": 3.0,
    "num_heads": 3,
    "depth": 1,
    "depth_single_blocks": 2,
    "axes_dim": [4, 4, 4, 4],
    "theta": 2000,
    "qkv_bias": False,
    "ops_bias": False,
    "global_modulation": True,
    "mlp_silu_act": True,
    "default_ref_method": "index",
    "ref_index_scale": 10.0,
}

# LongCat-Image (ComfyUI 0.33+): loads as Flux (no guidance, no pooled vector, text ids on two axes) and
# adds rope_options offsets inside the model call.
LONGCAT_CONFIG = dict(FLUX_CONFIG, guidance_embed=False, vec_in_dim=None, txt_ids_dims=[1, 2])

# Fields newer hosts require and older ones do not know (ComfyUI 0.8+: FluxParams.txt_ids_dims,
# ChromaParams.txt_ids_dims and vec_in_dim). A field is added only where the host's params dataclass
# declares it, so one tiny config builds on both hosts; the values are what the host's own detection gives
# these models (Flux.2 numbers its text tokens on the fourth RoPE axis, as 0.3.75 hard-codes).
HOST_ONLY_FIELDS = ("txt_ids_dims", "vec_in_dim")


def _declared_fields(image_model: str) -> set:
    module, params = ("comfy.ldm.chroma.model", "ChromaParams") if image_model == "chroma" else ("comfy.ldm.flux.model", "FluxParams")
    return {field.name for field in dataclasses.fields(getattr(importlib.import_module(module), params))}


def fit_host(extra: dict):
    """unet_config plus the `extra` fields this host's params declare, less the host-only fields it lacks
    (a config written for a newer host, LongCat-Image's txt_ids_dims, loses what this host does not know)."""

    def fit(config: dict) -> dict:
        declared = _declared_fields(config["image_model"])
        config = dict(config)
        config.update({name: value for name, value in extra.items() if name in declared and name not in config})
        return {key: value for key, value in config.items() if key in declared or key not in HOST_ONLY_FIELDS}

    return fit


TINY_DITS = {
    "flux": TinyDit("Flux", FLUX_CONFIG, 16, guided_conditioning(32, 24), fit_host=fit_host({"txt_ids_dims": []})),
    "chroma": TinyDit("Chroma", CHROMA_CONFIG, 16, guided_conditioning(32, None),
                      fit_host=fit_host({"txt_ids_dims": [], "vec_in_dim": None})),
    "flux2": TinyDit("Flux2", FLUX2_CONFIG, 128, guided_conditioning(32, None), fit_host=fit_host({"txt_ids_dims": [3]})),
    "longcat": TinyDit("LongCatImage", LONGCAT_CONFIG, 16, guided_conditioning(32, None), min_host="0.33", fit_host=fit_host({})),
}
