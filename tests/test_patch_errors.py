"""Bad input to StyleAlignedPatch: a clear message naming the node, the input and the fix."""

import pytest
import torch

from host.sampling import sample, seeded_noise, style_aligned
from host.tiny_dit_models import tiny_dit
from host.tiny_models import tiny_conditioning, tiny_model


@pytest.fixture(scope="module")
def model(pack):
    return tiny_model("sd15")


def run(model, batch, cfg=3.0):
    return sample(model, seeded_noise(batch), tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2), cfg=cfg)


def test_reference_index_outside_the_batch(model, error_type):
    with pytest.raises(error_type) as error:
        run(style_aligned(model, reference_index=5), batch=3)
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "reference_index is 5" in message and "0..2" in message


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_batch_of_one(model, error_type, cfg):
    with pytest.raises(error_type) as error:
        run(style_aligned(model), batch=1, cfg=cfg)
    assert "StyleAlignedPatch" in str(error.value) and "at least 2" in str(error.value)


def test_unsupported_model_family_is_refused_at_the_node(error_type):
    with pytest.raises(error_type) as error:
        style_aligned(tiny_dit("auraflow"))
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "AuraFlow" in message and "not supported" in message


def test_start_after_end(model, error_type):
    with pytest.raises(error_type, match="start_percent"):
        style_aligned(model, start_percent=0.8, end_percent=0.2)


def test_error_leaves_the_model_usable(model, error_type):
    before = run(model, batch=2)
    with pytest.raises(error_type):
        run(style_aligned(model, reference_index=4), batch=2)
    assert torch.equal(run(model, batch=2), before)

