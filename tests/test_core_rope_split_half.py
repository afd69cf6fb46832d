"""Split-half RoPE (rope.py SPLIT_HALF: pair i is channels (i, i + D/2), the "rotate half" form of Llama/Qwen
decoders, Ideogram 4 and HiDream-O1), held against the formula written independently:
    RoPE(x) = x * cos + rotate_half(x) * sin,  rotate_half(x) = (-x[D/2:], x[:D/2]),
with cos/sin of the D/2 angles repeated over both halves; and the override's AdaIN-before-RoPE and position
shift under that scheme, against the equation done directly."""

import math

import torch

from stylealign_core.batch_layout import BatchLayout
from stylealign_core.share_flags import ShareFlags
from stylealign_core.transformer import CALL_LAYOUT_KEY, CallLayout, SharedAttentionOverride, TransformerSharing
from stylealign_core.transformer.families.flux import FluxFamily
from stylealign_core.transformer.rope import SPLIT_HALF, rotate, rotate_split_half, unrotate_split_half

HEADS, DIM, TEXT, IMAGE = 2, 8, 3, 6
THETA = 10000.0


def angles(positions: torch.Tensor, dim: int = DIM) -> torch.Tensor:
    omega = 1.0 / THETA ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    return positions.double()[:, None] * omega  # (L, D/2)


def table(positions: torch.Tensor) -> torch.Tensor:
    """(1, 1, L, D/2, 2, 2) matrices [[cos, -sin], [sin, cos]], the hosts' table layout."""
    angle = angles(positions)
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([cos, -sin, sin, cos], dim=-1).reshape(1, 1, -1, DIM // 2, 2, 2).float()


def rotate_half_rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The Llama formula, float64."""
    angle = angles(positions)
    cos, sin = torch.cat([angle.cos()] * 2, -1), torch.cat([angle.sin()] * 2, -1)
    x = x.double()
    half = x.shape[-1] // 2
    rotated_half = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated_half * sin


def test_split_half_rotation_is_the_rotate_half_formula():
    x = torch.randn(2, HEADS, 5, DIM, generator=torch.Generator().manual_seed(0))
    positions = torch.arange(5.0) * 3 + 1
    rotated = rotate_split_half(x, table(positions))
    torch.testing.assert_close(rotated.double(), rotate_half_rope(x, positions), atol=1e-5, rtol=0)
    torch.testing.assert_close(unrotate_split_half(rotated, table(positions)), x, atol=1e-5, rtol=0)
    # Not the interleaved pairing: the same table read as (2i, 2i+1) pairs gives another result.
    assert (rotate(x, table(positions)) - rotated).abs().max() > 1e-2


def test_split_half_shift_after_rotation_equals_rotation_at_shifted_positions():
    x = torch.randn(1, HEADS, 4, DIM, generator=torch.Generator().manual_seed(1))
    positions = torch.tensor([0.0, 1.0, 2.0, 3.0])
    shifted = rotate_split_half(rotate_split_half(x, table(positions)), table(torch.tensor([4.0])))
    torch.testing.assert_close(shifted.double(), rotate_half_rope(x, positions + 4), atol=1e-5, rtol=0)


def adain(x, y, eps=1e-5):
    mx, vx = x.mean(-2, keepdim=True), x.var(-2, keepdim=True, unbiased=False)
    my, vy = y.mean(-2, keepdim=True), y.var(-2, keepdim=True, unbiased=False)
    return (x - mx) / (vx + eps).sqrt() * (vy + eps).sqrt() + my


def test_override_adain_before_split_half_rope_and_shift_match_the_equation():
    """q/k arrive rotated with split-half RoPE at their positions: the targets' image q/k are AdaIN-normalised
    on the tokens before RoPE, the reference's image keys appended at positions shifted by IMAGE, times 1.1."""
    generator = torch.Generator().manual_seed(2)
    rows, tokens = 3, TEXT + IMAGE
    plain = [torch.randn(rows, HEADS, tokens, DIM, generator=generator, dtype=torch.float64) for _ in range(3)]
    positions = torch.arange(float(tokens))
    image = slice(TEXT, tokens)
    q, k = (rotate_half_rope(t, positions).float() for t in plain[:2])
    v = plain[2].float()
    layout = CallLayout(
        batch=BatchLayout(chunks=1, images_per_chunk=rows, reference_index=1), image_start=TEXT, image_tokens=IMAGE,
        image_rotations=table(positions[image]), shift_rotation=table(torch.tensor([float(IMAGE)])), rope_scheme=SPLIT_HALF,
    )
    sharing = TransformerSharing(
        shared_blocks=frozenset({("single", 0)}), flags=ShareFlags(True, True, False, True), key_scale=1.1, position_shift=True)
    override = SharedAttentionOverride(FluxFamily(), sharing)

    def backend(q, k, v, heads, skip_reshape=False, skip_output_reshape=False, transformer_options=None, mask=None):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    options = {"block_type": "single", "block_index": 0, CALL_LAYOUT_KEY: layout}
    out = override(backend, q, k, v, HEADS, skip_reshape=True, skip_output_reshape=True, transformer_options=options)
    assert layout.shared_calls == 1

    # The equation, in float64 from the tokens before RoPE.
    q0, k0, v0 = (t.clone() for t in plain)
    for row in (0, 2):
        q0[row, :, image] = adain(plain[0][row, :, image], plain[0][1, :, image])
        k0[row, :, image] = adain(plain[1][row, :, image], plain[1][1, :, image])
    q_rot, k_rot = rotate_half_rope(q0, positions), rotate_half_rope(k0, positions)
    appended = rotate_half_rope(plain[1][1:2, :, image], positions[image] + IMAGE) * 1.1
    expected = torch.empty(rows, HEADS, tokens, DIM, dtype=torch.float64)
    for row in (0, 2):
        keys = torch.cat([k_rot[row:row + 1], appended], dim=2)
        values = torch.cat([v0[row:row + 1], v0[1:2, :, image]], dim=2)
        expected[row] = torch.nn.functional.scaled_dot_product_attention(q_rot[row:row + 1], keys, values)[0]
    expected[1] = torch.nn.functional.scaled_dot_product_attention(q_rot[1:2], k_rot[1:2], v0[1:2])[0]
    torch.testing.assert_close(out.double(), expected, atol=1e-4, rtol=0)
    assert math.isfinite(out.abs().max().item())
