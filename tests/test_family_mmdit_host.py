"""SD3 / SD3.5 (MMDiT-X) against the independent implementation (tests/host/dit_oracle.py): [context,
image] per joint call plus MMDiT-X's image-only call, no RoPE, lambda 1.0 on every block; a block skipped
by another node shifts the call count safely."""

import pytest

from host.dit_oracle import IMAGE_TOKENS, REFERENCE_TOLERANCE, check_one_forward, conds, independent_attention, max_diff
from host.sampling import sample, style_aligned
from host.tiny_dit_models import TINY_DITS, dit_noise, tiny_dit

KEY_SCALE = 1.0
SHARED_PER_FORWARD = 3  # two joint calls + MMDiT-X's image-only call in block 1


@pytest.fixture(scope="module")
def kind(pack):
    return "sd3"


def install_independent(patch, kind, dm, images_per_chunk, reference_index, key_scale, blocks="auto"):
    import comfy.ldm.modules.diffusionmodules.mmdit as host

    seen = {"shared": 0, "calls": 0}
    common = dict(images_per_chunk=images_per_chunk, reference_index=reference_index, key_scale=key_scale)
    image_only_blocks = set(TINY_DITS[kind].unet_config["x_block_self_attn_layers"])
    depth = TINY_DITS[kind].unet_config["depth"]
    order = [call for block in range(depth) for call in ([(block, False)] + ([(block, True)] if block in image_only_blocks else []))]

    def attention(q, k, v, heads, transformer_options={}, **kwargs):
        block, image_only = order[seen["calls"] % len(order)]
        seen["calls"] += 1
        q, k, v = (t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
        # Joint call: [context, image]; MMDiT-X's second call: the image alone.
        image = slice(0, IMAGE_TOKENS) if image_only else slice(q.shape[2] - IMAGE_TOKENS, q.shape[2])
        seen["shared"] += 1
        return independent_attention(q, k, v, transformer_options, image, **common)

    patch.setattr(host, "optimized_attention", attention)
    return seen


def test_one_forward_matches_independent_implementation(model, kind, monkeypatch):
    check_one_forward(model, kind, monkeypatch, install_independent, KEY_SCALE, SHARED_PER_FORWARD)


def test_skipped_block_shifts_the_count_safely(pack):
    """SD3's blocks are recognised by counting attention calls. A node that skips a block (skip-layer
    guidance replaces blocks through patches_replace) shifts the count: calls whose length does not match
    the plan (here MMDiT-X's image-only call read as a joint one) pass through, nothing fails and the
    reference stays as without the pack."""
    model = tiny_dit("sd3").clone()

    def skip_block(args, extra):
        return {"img": args["img"], "txt": args["txt"]}

    model.set_model_patch_replace(skip_block, "dit", "double_block", 0)
    positive, negative = conds("sd3")
    noise = dit_noise("sd3", 3, seed=6)
    patched = style_aligned(model)
    plain = sample(model, noise, positive, negative, steps=2)
    aligned = sample(patched, noise, positive, negative, steps=2)
    assert aligned.isfinite().all()
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    assert max_diff(aligned[1:], plain[1:]) > 1e-3  # block 1's joint call (read as block 0's) still shares
