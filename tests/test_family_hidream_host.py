"""HiDream against the independent implementation (tests/host/dit_oracle.py): image FIRST, RoPE on the
first half of each head, the single-stream blocks by default and every block with "all", lambda 1.1;
HiDream E1 editing is refused."""

import pytest

from host.dit_oracle import (
    GRID, IMAGE_TOKENS, check_all_blocks, check_image_rope, check_one_forward, conds, grid_ids,
    independent_attention, own_rope, table_cos_sin,
)
from host.sampling import sample, style_aligned
from host.tiny_dit_models import TINY_DITS, dit_noise, tiny_dit

KEY_SCALE = 1.1
SHARED_PER_FORWARD = 2  # the single-stream blocks


@pytest.fixture(scope="module")
def kind(pack):
    return "hidream"


def install_independent(patch, kind, dm, images_per_chunk, reference_index, key_scale, blocks="auto"):
    import comfy.ldm.hidream.model as host

    seen = {"shared": 0, "calls": 0}
    state = {}
    common = dict(images_per_chunk=images_per_chunk, reference_index=reference_index, key_scale=key_scale)
    config = TINY_DITS[kind].unet_config
    single_from = config["num_layers"]

    def capture_rope(xq, xk, freqs):
        state["pe"] = freqs
        return xq, xk

    def attention(query, key, value, transformer_options={}):
        index = seen["calls"] % (config["num_layers"] + config["num_single_layers"])
        seen["calls"] += 1
        shared = index >= single_from if blocks == "auto" else True
        pe = state["pe"][0, :, 0]
        image = slice(0, IMAGE_TOKENS)  # image FIRST
        check_image_rope(pe[image], grid_ids(0, 0, 0), config["axes_dims_rope"], 10000)
        shifted = own_rope(grid_ids(0, 0, GRID), config["axes_dims_rope"], 10000)
        seen["shared"] += shared
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))
        return independent_attention(q, k, v, transformer_options, image, rope=table_cos_sin(pe), shifted_rope=shifted, shared=shared, **common)

    patch.setattr(host, "apply_rope", capture_rope)
    patch.setattr(host, "attention", attention)
    return seen


def test_one_forward_matches_independent_implementation(model, kind, monkeypatch):
    check_one_forward(model, kind, monkeypatch, install_independent, KEY_SCALE, SHARED_PER_FORWARD)


def test_all_blocks_match_independent(pack, monkeypatch):
    """transformer_blocks "all": HiDream's double blocks ([image, text]) share too."""
    check_all_blocks("hidream", monkeypatch, install_independent, KEY_SCALE, 3)


def test_hidream_e1_editing_is_refused(pack, error_type):
    """HiDream E1 puts the edited image beside the latent: the image tokens are not one range."""
    model = tiny_dit("hidream")
    positive, negative = conds("hidream")
    edit = dit_noise("hidream", 1, seed=7)
    positive = [[c, dict(extras, concat_latent_image=edit)] for c, extras in positive]
    with pytest.raises(error_type) as error:
        sample(style_aligned(model), dit_noise("hidream", 2), positive, negative, cfg=1.0, steps=1)
    assert "StyleAlignedPatch" in str(error.value) and "HiDream E1" in str(error.value)
