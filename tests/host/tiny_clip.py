"""Tiny random text encoders with the host's real tokenizers and CLIP classes (SD1.x and SDXL layouts).

Hidden sizes match the tiny UNets' context dims (SD1.5: 32; SDXL: 32 + 32 = 64); the SDXL pooled output
is CLIP-G's hidden width (32 here), which the tiny SDXL UNet's size embedding expects.
"""

from __future__ import annotations

import torch

from .tiny_models import _randomise


def _clip_config(hidden: int, projection: int) -> dict:
    return {
        "architectures": ["CLIPTextModel"],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "dropout": 0.0,
        "eos_token_id": 49407,
        "hidden_act": "quick_gelu",
        "hidden_size": hidden,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": hidden * 2,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 77,
        "model_type": "clip_text_model",
        "num_attention_heads": 2,
        "num_hidden_layers": 3,
        "pad_token_id": 1,
        "projection_dim": projection,
        "vocab_size": 49408,
    }


def tiny_clip(kind: str = "sd15", seed: int = 0, width: int = 32):
    """A comfy.sd.CLIP whose encoder is tiny and random; tokenisation is the host's real CLIP BPE. `width`:
    the SD1.5 encoder's hidden size (768 for CLIP-L's real output size, e.g. in memory benchmarks)."""
    import comfy.sd
    import comfy.sd1_clip as sd1_clip
    import comfy.sdxl_clip as sdxl_clip
    from comfy.supported_models_base import ClipTarget

    class TinyClipL(sd1_clip.SDClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            super().__init__(device=device, dtype=dtype, textmodel_json_config=_clip_config(width, width), model_options=model_options, **kwargs)

    class TinySD1Clip(sd1_clip.SD1ClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            super().__init__(device=device, dtype=dtype, model_options=model_options, clip_model=TinyClipL)

    class TinySDXLClip(sdxl_clip.SDXLClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            torch.nn.Module.__init__(self)
            self.clip_l = TinyClipL(layer="hidden", layer_idx=-2, device=device, dtype=dtype, layer_norm_hidden_state=False, model_options=model_options)
            self.clip_g = sd1_clip.SDClipModel(
                device=device, dtype=dtype, layer="hidden", layer_idx=-2, textmodel_json_config=_clip_config(32, 32),
                special_tokens={"start": 49406, "end": 49407, "pad": 0}, layer_norm_hidden_state=False,
                return_projected_pooled=True, model_options={**model_options, "model_name": "clip_g"},
            )
            self.dtypes = {dtype}

    target = {
        "sd15": ClipTarget(sd1_clip.SD1Tokenizer, TinySD1Clip),
        "sdxl": ClipTarget(sdxl_clip.SDXLTokenizer, TinySDXLClip),
    }[kind]
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32})
    _randomise(clip.cond_stage_model, seed)
    return clip
