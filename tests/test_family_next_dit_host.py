"""Lumina 2 and Z-Image against the independent implementation (tests/host/dit_oracle.py): three stages
per forward (the text-only context refiner never shared, the image-only noise refiner [image, image
padding], the main layers [caption, caption padding, image, image padding]), caption and image padded to
32 on Z-Image, image ids (caption length + 1, row, col), lambda 1.1, the main layers by default."""

import pytest

from host.dit_oracle import (
    GRID, IMAGE_TOKENS, check_all_blocks, check_image_rope, check_one_forward, grid_ids, independent_attention,
    own_rope, table_cos_sin,
)
from host.tiny_dit_models import TINY_DITS

KEY_SCALE = 1.1
SHARED_PER_FORWARD = 2  # main layers only


@pytest.fixture(scope="module", params=["lumina2", "z_image"])
def kind(request, pack):
    return request.param


def capture_fused_rms_rope(patch, state):
    """Hosts that fuse QK RMSNorm and RoPE (ComfyUI 0.33's Lumina/Z-Image: comfy_kitchen's rms_rope and
    rms_rope1) get the same treatment as a plain apply_rope: the table is recorded and the host still
    normalises, but with the identity rotation, so the independent implementation applies RoPE itself."""
    import comfy.quant_ops
    import torch

    kitchen = getattr(comfy.quant_ops, "ck", None)
    if kitchen is None or not hasattr(kitchen, "rms_rope"):
        return

    def identity_rotation(freqs):
        identity = torch.zeros_like(freqs)
        identity[..., 0, 0] = 1
        identity[..., 1, 1] = 1
        return identity

    fused_pair, fused_one = kitchen.rms_rope, kitchen.rms_rope1

    def rms_rope(xq, xk, freqs, *args, **kwargs):
        state["pe"] = freqs
        return fused_pair(xq, xk, identity_rotation(freqs), *args, **kwargs)

    def rms_rope1(x, freqs, *args, **kwargs):
        state["pe"] = freqs
        return fused_one(x, identity_rotation(freqs), *args, **kwargs)

    patch.setattr(kitchen, "rms_rope", rms_rope)
    patch.setattr(kitchen, "rms_rope1", rms_rope1)


def install_independent(patch, kind, dm, images_per_chunk, reference_index, key_scale, blocks="auto"):
    import comfy.ldm.lumina.model as host

    seen = {"shared": 0, "calls": 0}
    state = {}
    common = dict(images_per_chunk=images_per_chunk, reference_index=reference_index, key_scale=key_scale)
    config = TINY_DITS[kind].unet_config
    refiners, layers = config["n_refiner_layers"], config["n_layers"]
    multiple = config.get("pad_tokens_multiple")

    def capture_rope(xq, xk, freqs):
        state["pe"] = freqs
        return xq, xk

    def attention(q, k, v, heads, mask=None, transformer_options={}, skip_reshape=False, **kwargs):
        index = seen["calls"] % (2 * refiners + layers)
        seen["calls"] += 1
        pe = state["pe"][0, :, 0]
        if index < refiners:  # text-only context refiner: never shared
            return independent_attention(q, k, v, transformer_options, slice(0, 0), rope=table_cos_sin(pe), shared=False, **common)
        if index < 2 * refiners:  # image-only noise refiner: [image, image padding]
            image, shared = slice(0, IMAGE_TOKENS), blocks == "all"
            first = state["caption"] + 1
        else:  # main layers: [caption, caption padding, image, image padding]
            image_padded = IMAGE_TOKENS + (-IMAGE_TOKENS) % multiple if multiple else IMAGE_TOKENS
            start = q.shape[2] - image_padded
            image, shared, first = slice(start, start + IMAGE_TOKENS), True, start + 1
            assert start == state["caption"]
        check_image_rope(pe[image], grid_ids(first, 0, 0), config["axes_dims"], config["rope_theta"])
        shifted = own_rope(grid_ids(first, 0, GRID), config["axes_dims"], config["rope_theta"])
        seen["shared"] += shared
        return independent_attention(q, k, v, transformer_options, image, rope=table_cos_sin(pe), shifted_rope=shifted, shared=shared, **common)

    original_patchify = host.NextDiT.patchify_and_embed

    def patchify(self, x, cap_feats, *args, **kwargs):
        padded_caption = cap_feats.shape[1] + ((-cap_feats.shape[1]) % multiple if multiple else 0)
        state["caption"] = padded_caption
        return original_patchify(self, x, cap_feats, *args, **kwargs)

    patch.setattr(host.NextDiT, "patchify_and_embed", patchify)
    patch.setattr(host, "apply_rope", capture_rope)
    capture_fused_rms_rope(patch, state)
    patch.setattr(host, "optimized_attention_masked", attention)
    return seen


def test_one_forward_matches_independent_implementation(model, kind, monkeypatch):
    check_one_forward(model, kind, monkeypatch, install_independent, KEY_SCALE, SHARED_PER_FORWARD)


def test_all_blocks_match_independent(pack, monkeypatch):
    """transformer_blocks "all": Z-Image's image-only noise refiner (image at 0, padded to 32) shares too."""
    check_all_blocks("z_image", monkeypatch, install_independent, KEY_SCALE, 3)
