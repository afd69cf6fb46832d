"""Shared GroupNorm against an independent implementation of the authors' register_shared_norm: each
image's feature map with its half's reference map concatenated along the height axis, torch's own
group_norm, the image's part kept."""

import pytest
import torch
import torch.nn.functional as F

from stylealign_core import PatchRuntime, batch_layout
from stylealign_core.unet.patch_runtime import CallContext
from stylealign_core.unet.shared_group_norm import SharedGroupNormForward, shared_group_norm
from contextlib import nullcontext


def authors_shared_norm(x, chunks, reference_index, groups, weight, bias, eps):
    images = x.shape[0] // chunks
    reference = torch.stack([x[(row // images) * images + reference_index] for row in range(x.shape[0])])
    joined = torch.cat([x, reference], dim=-2).double()
    out = F.group_norm(joined, groups, weight.double(), bias.double(), eps)
    return out[..., : x.shape[-2], :]


@pytest.mark.parametrize("chunks, images, reference_index, shape", [(2, 3, 0, (8, 4, 4)), (1, 4, 2, (16, 2, 3)), (3, 2, 1, (6, 5, 5))])
def test_shared_group_norm_equals_the_authors(chunks, images, reference_index, shape):
    generator = torch.Generator().manual_seed(images)
    channels, groups = shape[0], 2
    x = torch.randn(chunks * images, *shape, generator=generator) * torch.rand(chunks * images, channels, 1, 1, generator=generator) * 3 + 2
    weight, bias = 1 + 0.1 * torch.randn(channels, generator=generator), 0.1 * torch.randn(channels, generator=generator)
    layout = batch_layout(chunks * images, list(range(chunks)), reference_index)
    got = shared_group_norm(x, layout, groups, 1e-5, weight, bias)
    want = authors_shared_norm(x, chunks, reference_index, groups, weight, bias, 1e-5)
    assert (got.double() - want).abs().max().item() < 1e-4
    # Not the plain GroupNorm for targets; the reference rows are.
    plain = F.group_norm(x, groups, weight, bias, 1e-5)
    references = layout.reference_rows()
    targets = layout.target_rows()
    assert (got[targets] - plain[targets]).abs().max() > 1e-2
    assert (got[references] - plain[references]).abs().max() < 1e-5


def test_forward_patch_keeps_the_reference_exact_and_passes_other_calls_through():
    norm = torch.nn.GroupNorm(2, 4)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 1.1, 0.9, 1.2]))
        norm.bias.copy_(torch.tensor([0.0, 0.1, -0.1, 0.2]))
    runtime = PatchRuntime()
    patch = SharedGroupNormForward(norm.forward, norm, runtime, lambda module, like: nullcontext((module.weight, module.bias)))
    x = torch.randn(6, 4, 3, 3) * 2 + 1
    with torch.no_grad():
        plain = norm(x)
        assert torch.equal(patch(x), plain)  # no StyleAligned model call: unchanged
        layout = batch_layout(6, [1, 0], 1)
        runtime.current_call = CallContext(active=True, layout=layout)
        shared = patch(x)
        assert torch.equal(shared[layout.reference_rows()], plain[layout.reference_rows()])
        assert (shared[layout.target_rows()] - plain[layout.target_rows()]).abs().max() > 1e-2
        assert torch.equal(patch(x[:3]), plain[:3])  # another batch (a nested split): unchanged
        runtime.current_call = CallContext(active=False, layout=layout)
        assert torch.equal(patch(x), plain)


def test_constant_and_one_pixel_maps_are_finite():
    layout = batch_layout(4, [0], 0)
    for x in (torch.ones(4, 4, 1, 1), torch.zeros(4, 4, 3, 3)):
        out = shared_group_norm(x, layout, 2, 1e-6, torch.ones(4), torch.zeros(4))
        assert out.isfinite().all()
