"""The generic invariants of StyleAlignedPatch for every registered transformer family, driven by the
registry x the tiny kinds (tests/host/tiny_families/<module>.py): tiny random models from the host's
classes, conditioning made by hand, the host's real sampler. No per-family branch here: a new family gets
these checks by adding its family file and its tiny-family file. Each family's equations are checked
against the independent implementation in its own test file (tests/test_family_<module>_host.py; Flux's:
tests/test_transformer_host.py).
"""

import pytest
import torch

from host.dit_oracle import REFERENCE_TOLERANCE, conds, max_diff
from host.sampling import sample, split_chunk_wrapper, style_aligned
from host.tiny_dit_models import FAMILY_KINDS, dit_noise, host_lacks, tiny_dit
from stylealign_core.transformer.families import registered_families


def family_module(family) -> str:
    return family.__module__.rsplit(".", 1)[1]


# Every tiny kind of every registered family (a family without one fails test_every_family_has_a_tiny_kind).
KINDS = [kind for family in registered_families() for kind in FAMILY_KINDS.get(family_module(family), ())]


@pytest.fixture(scope="module", params=KINDS)
def kind(request, pack):
    lacks = host_lacks(request.param)
    if lacks:
        pytest.skip(lacks)
    return request.param


def test_every_registered_family_has_a_tiny_kind(pack):
    registry = pack.stylealign_core.transformer.registered_families()
    assert [family_module(family) for family in registry] == [family_module(family) for family in registered_families()]
    missing = [family_module(family) for family in registry if not FAMILY_KINDS.get(family_module(family))]
    assert not missing, f"registered families without a tiny model in tests/host/tiny_families/: {missing}"
    unknown = set(FAMILY_KINDS) - {family_module(family) for family in registry}
    assert not unknown, f"tiny families without a registered family of the same module name: {unknown}"


def test_every_kind_is_its_familys_model(pack, kind, model):
    """The kind's tiny model is recognised by the registry as the family its module is named after."""
    family = pack.stylealign_core.transformer.family_for(model.model.diffusion_model)
    assert family is not None and kind in FAMILY_KINDS[family_module(family)]


def test_reference_unchanged_targets_styled_no_leakage(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 4)
    patched = style_aligned(model)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=3)
    aligned = sample(patched, noise, positive, negative, cfg=3.0, steps=3)
    assert aligned.isfinite().all()
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    scale = plain.abs().mean().item()
    for target in range(1, 4):
        assert max_diff(aligned[target], plain[target]) > 0.02 * scale
    changed = noise.clone()
    changed[2] = dit_noise(kind, 1, seed=99)[0]
    second = sample(patched, changed, positive, negative, cfg=3.0, steps=3)
    assert max_diff(aligned[2], second[2]) > 0.1
    for untouched in (0, 1, 3):
        assert max_diff(aligned[untouched], second[untouched]) < 1e-5


def test_cfg1_split_calls_reference_index_model_untouched(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=5)
    state_before = {name: tensor.clone() for name, tensor in model.model.state_dict().items()}
    options_before = repr(model.model_options)

    plain_cfg1 = sample(model, noise, positive, negative, cfg=1.0, steps=2)
    aligned_cfg1 = sample(style_aligned(model, reference_index=2), noise, positive, negative, cfg=1.0, steps=2)
    assert max_diff(aligned_cfg1[2], plain_cfg1[2]) < REFERENCE_TOLERANCE
    assert min(max_diff(aligned_cfg1[i], plain_cfg1[i]) for i in (0, 1)) > 1e-3

    batched = sample(style_aligned(model, reference_index=1), noise, positive, negative, steps=2)
    splitting = model.clone()
    calls = []
    splitting.set_model_unet_function_wrapper(split_chunk_wrapper(calls))
    split = sample(style_aligned(splitting, reference_index=1), noise, positive, negative, steps=2)
    assert calls and set(calls) == {1}
    assert max_diff(batched, split) < 1e-5 * batched.abs().max().item()

    assert torch.equal(sample(model, noise, positive, negative, cfg=1.0, steps=2), plain_cfg1)
    assert repr(model.model_options) == options_before
    assert all(torch.equal(state_before[name], tensor) for name, tensor in model.model.state_dict().items())


def test_bfloat16_has_no_nan_and_keeps_the_reference(kind):
    model = tiny_dit(kind, dtype=torch.bfloat16)
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=11)
    plain = sample(model, noise, positive, negative, steps=2)
    aligned = sample(style_aligned(model), noise, positive, negative, steps=2)
    assert aligned.isfinite().all() and max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    assert sample(style_aligned(model), torch.zeros_like(noise), positive, negative, steps=1).isfinite().all()


def test_video_family_is_refused_at_the_node(pack, error_type):
    with pytest.raises(error_type) as error:
        style_aligned(tiny_dit("wan21"))
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "WAN21" in message and "not supported" in message
