"""ERNIE-Image (ComfyUI 0.33+) is refused at the node with the cause (transformer/refused/ernie.py), and
the premises of that refusal hold on this host: its attention calls carry no transformer_options, so the
attention override could not see them, and its RoPE matrices are not rotations. Skips on hosts without
ERNIE-Image (0.3.75)."""

import pytest
import torch

from host.sampling import sample, style_aligned
from host.tiny_models import _randomise

ERNIE_CONFIG = {
    "image_model": "ernie",
    "hidden_size": 32,
    "num_attention_heads": 2,
    "num_layers": 2,
    "ffn_hidden_size": 32,
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "text_in_dim": 24,
    "rope_axes_dim": (4, 6, 6),
}


@pytest.fixture(scope="module")
def model(pack):
    import comfy.model_patcher
    import comfy.supported_models

    if not hasattr(comfy.supported_models, "ErnieImage"):
        pytest.skip("this ComfyUI has no ERNIE-Image (added after 0.3.75)")
    model_config = comfy.supported_models.ErnieImage(dict(ERNIE_CONFIG))
    model_config.set_inference_dtype(torch.float32, None)
    base = model_config.get_model({}, device=torch.device("cpu"))
    _randomise(base.diffusion_model, 0)
    return comfy.model_patcher.ModelPatcher(base, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def conds():
    generator = torch.Generator().manual_seed(1)
    return ([[torch.randn(1, 5, ERNIE_CONFIG["text_in_dim"], generator=generator), {}]] for _ in range(2))


def test_refused_at_the_node_naming_the_family_and_the_cause(model, error_type):
    with pytest.raises(error_type) as error:
        style_aligned(model)
    message = str(error.value)
    assert message.startswith("StyleAlignedPatch: ERNIE-Image is not supported")
    assert "transformer_options" in message and "Bypass StyleAlignedPatch" in message


def test_premise_attention_calls_carry_no_transformer_options(model, monkeypatch):
    """If a later host passes transformer_options to ERNIE's attention, the override would see its calls:
    this fails, and ERNIE-Image can then be a family like the others."""
    import comfy.ldm.ernie.model as host

    calls = []
    backend = host.optimized_attention

    def recording(*args, **kwargs):
        calls.append(sorted(kwargs))
        return backend(*args, **kwargs)

    monkeypatch.setattr(host, "optimized_attention", recording)
    positive, negative = conds()
    out = sample(model, torch.randn(2, 128, 4, 4, generator=torch.Generator().manual_seed(2)), positive, negative, cfg=3.0, steps=1)
    assert out.isfinite().all()
    assert calls and len(calls) == ERNIE_CONFIG["num_layers"]
    assert all("transformer_options" not in kwargs for kwargs in calls)


def test_premise_rope_matrices_are_not_rotations(model):
    """ErnieImageEmbedND3 turns the two channels of a pair by different angles: M M^T != I, so the pack's
    undo (R^T) and shift (R(d) R(p)) maths do not apply. If a host makes them rotations, this fails."""
    embed = model.model.diffusion_model.pos_embed
    matrices = embed(torch.tensor([[[3.0, 2.0, 5.0]]]))[0, 0, 0].double()  # (D/2, 2, 2)
    assert (matrices @ matrices.transpose(-1, -2) - torch.eye(2, dtype=torch.float64)).abs().max() > 0.1
