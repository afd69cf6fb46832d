"""HunyuanImage 2.1: one forward of the patched tiny model equals an independent implementation of the
equations; HunyuanVideo (same module, 3D patch) is not taken for it.

The independent implementation (host/dit_oracle.py) knows HunyuanImage 2.1 from its architecture, not
from the pack: Flux's double and single blocks (flux/layers.py, which hand q/k before RoPE and the model's
RoPE table to flux/math.py attention); a 2D patch of 1; image ids (row, col) on two RoPE axes (theta 256),
text ids 0; the joint sequence [text, ByT5 glyph text, image] (ComfyUI 0.33) or [image, text, glyph text]
(0.3.75, whose double blocks are built with flipped_img_txt). It replaces that attention function with the
published order in the shared blocks: AdaIN of the targets' image q/k to the reference's, RoPE, the
reference's image keys rotated at columns shifted by the image width (own RoPE maths) times lambda and its
image values appended, the reference masked to its own tokens; other blocks and the text refiner unchanged.
"""

import pytest
import torch

from host.dit_oracle import check_all_blocks, check_image_rope, check_one_forward, independent_attention, max_diff, own_rope, table_cos_sin
from host.sampling import sample, style_aligned
from host.tiny_dit_models import TEXT_TOKENS, TINY_DITS, dit_conditioning, dit_noise, host_lacks
from host.tiny_families.hunyuan_image import GLYPH_TOKENS, fit_host

KIND = "hunyuan_image"
GRID = 8  # 8x8 latent at patch 1
LAMBDA = 1.1  # the family's "auto" (ours)


@pytest.fixture(scope="module")
def kind(pack):
    if host_lacks(KIND):
        pytest.skip(host_lacks(KIND))
    return KIND


def image_ids(col_offset=0.0):
    ids = torch.zeros(GRID * GRID, 2)
    ids[:, 0] = torch.arange(GRID).repeat_interleave(GRID).float()
    ids[:, 1] = torch.arange(GRID).repeat(GRID).float() + col_offset
    return ids


def installer(glyph_tokens=GLYPH_TOKENS):
    def install_independent(patch, kind, dm, images_per_chunk, reference_index, key_scale, blocks="auto"):
        import comfy.ldm.flux.layers

        original = comfy.ldm.flux.layers.attention
        shared_blocks = ("single",) if blocks == "auto" else ("double", "single")
        axes, theta = dm.params.axes_dim, dm.params.theta
        image_first = bool(getattr(dm.double_blocks[0], "flipped_img_txt", False))
        start = 0 if image_first else TEXT_TOKENS + glyph_tokens
        image = slice(start, start + GRID * GRID)
        seen = {"shared": 0, "tokens": set()}

        def attention(q, k, v, pe, mask=None, transformer_options={}):
            if transformer_options.get("block_type") not in shared_blocks:
                return original(q, k, v, pe=pe, mask=mask, transformer_options=transformer_options)
            assert mask is None
            table = pe[0, 0]
            check_image_rope(table[image], image_ids(), axes, theta)
            seen["shared"] += 1
            seen["tokens"].add(q.shape[2])
            return independent_attention(
                q, k, v, transformer_options, image, images_per_chunk, reference_index, key_scale,
                rope=table_cos_sin(table), shifted_rope=own_rope(image_ids(col_offset=GRID), axes, theta),
            )

        patch.setattr(comfy.ldm.flux.layers, "attention", attention)
        return seen

    return install_independent


def test_one_forward_matches_independent_implementation(model, monkeypatch):
    """The single-stream blocks (the default); ByT5 glyph tokens between the text and the image on 0.33."""
    check_one_forward(model, KIND, monkeypatch, installer(), LAMBDA, len(model.model.diffusion_model.single_blocks))


def test_all_blocks_reference_index_1_match_independent(model, monkeypatch):
    dm = model.model.diffusion_model
    check_all_blocks(KIND, monkeypatch, installer(), LAMBDA, len(dm.double_blocks) + len(dm.single_blocks))


def test_without_glyph_text_at_cfg1_matches_independent(model, monkeypatch):
    positive, negative = (dit_conditioning(KIND, seed=seed, glyph_tokens=0) for seed in (1, 2))
    noise = dit_noise(KIND, 3, seed=3)
    patched = sample(style_aligned(model, reference_index=2), noise, positive, negative, cfg=1.0, steps=1)
    seen = installer(glyph_tokens=0)(monkeypatch, KIND, model.model.diffusion_model, 3, 2, LAMBDA)
    independent = sample(model, noise, positive, negative, cfg=1.0, steps=1)
    monkeypatch.undo()
    assert seen["tokens"] == {TEXT_TOKENS + GRID * GRID}
    assert max_diff(patched, independent) < 1e-4


def test_video_models_of_the_same_module_are_not_taken_for_it(pack, error_type):
    """HunyuanVideo's 3D patch: the node's "not supported" error, never HunyuanImage's layout."""
    import comfy.model_patcher
    import comfy.supported_models

    config = fit_host(dict(TINY_DITS[KIND].unet_config, patch_size=[1, 1, 1], in_channels=16, out_channels=16))
    video = comfy.supported_models.HunyuanVideo(config).get_model({}, device=torch.device("cpu"))
    patcher = comfy.model_patcher.ModelPatcher(video, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    assert pack.stylealign_core.transformer.family_for(video.diffusion_model) is None
    with pytest.raises(error_type) as error:
        style_aligned(patcher)
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "not supported" in message and "HunyuanVideo" in message
    assert "HunyuanImage 2.1" in message  # the list of what is supported
