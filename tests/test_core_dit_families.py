"""Issue 10's family modules alone (pure torch): call plans (stages, padding, MMDiT-X), the odd tensor
formats (SD3's v, a mask slot passed by position), and calls whose length the plan does not expect."""

import torch

from stylealign_core.batch_layout import BatchLayout
from stylealign_core.share_flags import ShareFlags
from stylealign_core.transformer import CALL_LAYOUT_KEY, CallLayout, SharedAttentionOverride, TransformerSharing
from stylealign_core.transformer.block_selection import select_shared_blocks
from stylealign_core.transformer.families import hidream, mmdit, next_dit
from stylealign_core.transformer.families.flux import FluxFamily

HEADS, DIM = 2, 4


def test_next_dit_plan_pads_caption_and_image_and_skips_the_text_refiner():
    plan = next_dit.call_plan(2, 2, 3, caption_tokens=7, image_tokens=16, multiple=32)
    assert plan[:2] == ((None, 0, 32), (None, 0, 32))  # text-only refiner: never shared
    assert plan[2:4] == ((("noise_refiner", 0), 0, 32), (("noise_refiner", 1), 0, 32))  # [image, padding]
    assert plan[4:] == tuple(((("main", i), 32, 64)) for i in range(3))  # [caption, pad, image, pad]
    # Lumina 2 pads nothing.
    assert next_dit.call_plan(1, 1, 1, 7, 16, None)[1:] == ((("noise_refiner", 0), 0, 16), (("main", 0), 7, 23))
    family = next_dit.NextDiTFamily()
    assert select_shared_blocks(family, {"noise_refiner": 2, "main": 3}, "auto", 1.0) == {("main", i) for i in range(3)}
    assert len(select_shared_blocks(family, {"noise_refiner": 2, "main": 3}, "all", 1.0)) == 5


def test_mmdit_plan_adds_the_image_only_call_of_mmdit_x_blocks():
    plan = mmdit.call_plan([True, False, True], context_tokens=10, image_tokens=16)
    assert plan == (
        (("joint", 0), 10, 26), (("joint", 0), 0, 16),
        (("joint", 1), 10, 26),
        (("joint", 2), 10, 26), (("joint", 2), 0, 16),
    )
    assert hidream.call_plan(1, 2, 40) == ((("double", 0), 0, 40), (("single", 0), 0, 40), (("single", 1), 0, 40))


def test_sd3_heads_first_reads_v_as_the_backend_does():
    q, k = torch.randn(2, 5, HEADS * DIM), torch.randn(2, 5, HEADS * DIM)
    v = torch.randn(2, 5, HEADS, DIM)  # split_qkv leaves v per head
    q_, k_, v_, heads = mmdit.MMDiTFamily().heads_first((q, k, v), {"heads": HEADS})
    assert heads == HEADS and q_.shape == k_.shape == v_.shape == (2, HEADS, 5, DIM)
    assert torch.equal(v_, v.transpose(1, 2)) and torch.equal(q_, q.view(2, 5, HEADS, DIM).transpose(1, 2))
    assert mmdit.MMDiTFamily().heads_first((q, k, v), {"heads": HEADS, "skip_reshape": True}) is None


def test_an_empty_mask_slot_by_position_is_read_a_real_one_passes():
    q = torch.randn(2, HEADS, 5, DIM)
    family = FluxFamily()
    assert family.heads_first((q, q, q, HEADS, None), {"skip_reshape": True})[3] == HEADS
    assert family.heads_first((q, q, q, HEADS, torch.zeros(5, 5)), {"skip_reshape": True}) is None


def plain_backend(calls):
    def backend(q, k, v, heads, mask=None, skip_reshape=False, transformer_options=None, **kwargs):
        if not skip_reshape:  # as the host's backends: (B, L, H*D), v possibly (B, L, H, D)
            q, k, v = (t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
        calls.append(k.shape[2])
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)

    return backend


def test_planned_calls_use_their_own_image_start_and_a_length_mismatch_passes_through():
    family = mmdit.MMDiTFamily()
    sharing = TransformerSharing(shared_blocks=frozenset({("joint", 0)}), flags=ShareFlags(True, True, False, True),
                                 key_scale=1.0, position_shift=False)
    override = SharedAttentionOverride(family, sharing)
    batch = BatchLayout(chunks=1, images_per_chunk=2, reference_index=0)
    layout = CallLayout(batch=batch, image_start=3, image_tokens=4, call_plan=mmdit.call_plan([True], 3, 4))
    options = {CALL_LAYOUT_KEY: layout}
    calls = []
    backend = plain_backend(calls)
    joint = torch.randn(2, 7, HEADS * DIM)
    image_only = torch.randn(2, 4, HEADS * DIM)
    override(backend, joint, joint, joint.view(2, 7, HEADS, DIM), heads=HEADS, transformer_options=options)
    # The image-only call: image at 0; the reference's 4 image tokens appended for the target.
    override(backend, image_only, image_only, image_only.view(2, 4, HEADS, DIM), heads=HEADS, transformer_options=options)
    assert calls == [7 + 4, 7, 4 + 4, 4] and layout.shared_calls == 2
    # A call the plan does not have (past its end) or of another length passes through whole.
    calls.clear()
    layout.attention_calls = 1
    override(backend, joint, joint, joint.view(2, 7, HEADS, DIM), heads=HEADS, transformer_options=options)
    assert calls == [7] and layout.shared_calls == 2
