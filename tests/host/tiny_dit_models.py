"""Tiny random transformer (DiT) models built in process from the host's own classes, on the CPU.

The kinds come from tests/host/tiny_families/<module>.py, one module per family (the same module name as
the family's file in stylealign_core/transformer/families/), found by discovery: adding a family's tiny
models is adding one file. Each kind names its supported_models config class, a small unet_config, and
how to make conditioning of the right shape by hand (these families' text encoders cannot be built
small). UNSUPPORTED_DITS are families the pack does not patch (for the node's error).
"""

from __future__ import annotations

import importlib
import pkgutil

import torch

from . import tiny_families
from .tiny_families import TEXT_TOKENS, TinyDit, guided_conditioning, plain_conditioning  # noqa: F401 (TEXT_TOKENS re-exported)
from .tiny_models import _randomise

# A family the pack does not patch (for the node's error).
AURAFLOW_CONFIG = {
    "cond_seq_dim": 32,
    "in_channels": 4,
    "out_channels": 4,
    "patch_size": 2,
    "dim": 32,
    "n_layers": 2,
    "n_double_layers": 1,
    "n_heads": 2,
    "global_conddim": 32,
    "max_seq": 64,
}

# A video family the pack does not patch (for the node's error; built, never sampled).
WAN21_CONFIG = {
    "image_model": "wan2.1",
    "model_type": "t2v",
    "patch_size": (1, 2, 2),
    "text_len": 8,
    "in_dim": 16,
    "dim": 32,
    "ffn_dim": 64,
    "freq_dim": 32,
    "text_dim": 32,
    "out_dim": 16,
    "num_heads": 2,
    "num_layers": 1,
}

UNSUPPORTED_DITS = {
    "auraflow": TinyDit("AuraFlow", AURAFLOW_CONFIG, 4, guided_conditioning(32, None)),
    "wan21": TinyDit("WAN21_T2V", WAN21_CONFIG, 16, plain_conditioning(32)),
}


def _discover() -> dict[str, dict[str, TinyDit]]:
    """tiny family module name -> its TINY_DITS, in module-name order."""
    found = {}
    for info in sorted(pkgutil.iter_modules(tiny_families.__path__), key=lambda info: info.name):
        found[info.name] = importlib.import_module(f"{tiny_families.__name__}.{info.name}").TINY_DITS
    return found


# tiny family module (= family module name) -> its kinds
FAMILY_KINDS: dict[str, tuple[str, ...]] = {}
TINY_DITS: dict[str, TinyDit] = dict(UNSUPPORTED_DITS)
for _module, _kinds in _discover().items():
    FAMILY_KINDS[_module] = tuple(_kinds)
    for _kind, _spec in _kinds.items():
        if _kind in TINY_DITS:
            raise ValueError(f"tiny DiT kind {_kind!r} of tiny_families/{_module}.py is defined twice")
        TINY_DITS[_kind] = _spec


def host_lacks(kind: str) -> str:
    """Why this host cannot build `kind` ("" when it can): its config class is missing here."""
    import comfy.supported_models

    spec = TINY_DITS[kind]
    if hasattr(comfy.supported_models, spec.config_class):
        return ""
    added = f" (added in ComfyUI {spec.min_host})" if spec.min_host else ""
    return f"this ComfyUI has no {spec.config_class}{added}"


def fit_host_config(kind: str, config: dict) -> dict:
    """`config` as this host's classes accept it (the kind's fit_host; unchanged where it has none)."""
    fit = TINY_DITS[kind].fit_host
    return fit(config) if fit is not None else dict(config)


def host_unet_config(kind: str) -> dict:
    """TINY_DITS[kind].unet_config plus the fields this host's params dataclass requires."""
    return fit_host_config(kind, TINY_DITS[kind].unet_config)


def tiny_dit(kind: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A ModelPatcher around a tiny random model of the family `kind` (a key of TINY_DITS) on the CPU."""
    import comfy.model_patcher
    import comfy.supported_models

    spec = TINY_DITS[kind]
    model_config = getattr(comfy.supported_models, spec.config_class)(host_unet_config(kind))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=torch.device("cpu"))
    _randomise(model.diffusion_model, seed)
    if spec.prepare is not None:
        spec.prepare(model.diffusion_model, seed)
    model.diffusion_model.to(dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def dit_conditioning(kind: str, **kwargs) -> list:
    return TINY_DITS[kind].conditioning(**kwargs)


def dit_noise(kind: str, batch: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, TINY_DITS[kind].latent_channels, size, size, generator=generator)
    return noise.unsqueeze(2) if TINY_DITS[kind].video_latent else noise


class StandInT5Clip:
    """A CLIP object shaped like the host's Flux (T5-XXL + CLIP-L pooled) or Chroma (T5 alone) encoders:
    their text encoders cannot be built small, so each prompt maps to fixed random features of the tiny
    models' widths. Flux.1 pads T5 tokens to 256 (min_length); Chroma does not pad (one token per word
    here) and has no pooled output."""

    def __init__(self, kind: str, context_dim: int = 32, pooled_dim: int = 24, padded_tokens: int = 256):
        self.kind = kind
        self.context_dim = context_dim
        self.pooled_dim = pooled_dim
        self.padded_tokens = padded_tokens

    def tokenize(self, text: str) -> dict:
        return {"t5xxl": text.split()}

    def encode_from_tokens_scheduled(self, tokens: dict) -> list:
        words = tokens["t5xxl"]
        generator = torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(" ".join(words))) % 2**31)
        length = max(self.padded_tokens, len(words)) if self.kind == "flux" else len(words)
        cond = torch.randn(1, length, self.context_dim, generator=generator)
        pooled = torch.randn(1, self.pooled_dim, generator=generator) if self.kind == "flux" else None
        return [[cond, {"pooled_output": pooled}]]
