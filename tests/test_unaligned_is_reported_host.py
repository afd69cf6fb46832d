"""Never silently unaligned: a sampling run in which StyleAligned's shared blocks were reached but no call
could be shared (a layout the pack does not understand) is an error naming the node and the family; one
in which only some could is one warning. Each failure mode is built here on the real sampler."""

import logging

import pytest
import torch


from host.sampling import sample, seeded_noise, style_aligned
from host.tiny_dit_models import dit_conditioning, dit_noise, tiny_dit
from host.tiny_models import tiny_conditioning, tiny_model

FAMILY_NAMES = {
    "flux": "Flux", "chroma": "Flux", "flux2": "Flux", "qwen_image": "Qwen-Image", "sd3": "SD3 / SD3.5",
    "hidream": "HiDream", "lumina2": "Lumina 2 / Z-Image", "z_image": "Lumina 2 / Z-Image",
}


def one_row_at_a_time(model):
    """A later node's APPLY_MODEL wrapper (inside StyleAligned's) that runs the model on each batch row
    alone: the attention calls then hold rows the pack's layout does not describe."""
    import comfy.patcher_extension

    def wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        rows = x.shape[0]

        def row(value, i):
            return value[i : i + 1] if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == rows else value

        outputs = [
            executor(row(x, i), row(t, i), row(c_concat, i), row(c_crossattn, i), control, transformer_options,
                     **{key: row(value, i) for key, value in kwargs.items()})
            for i in range(rows)
        ]
        return torch.cat(outputs)

    split = model.clone()
    split.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test_one_row_at_a_time", wrapper)
    return split


@pytest.mark.parametrize("kind", sorted(FAMILY_NAMES))
def test_no_shared_call_understood_is_an_error_naming_node_and_family(pack, error_type, kind):
    model = tiny_dit(kind)
    positive, negative = dit_conditioning(kind, seed=1), dit_conditioning(kind, seed=2)
    noise = dit_noise(kind, 3, seed=2)
    # Without the pack the split runs (the failure mode is the layout, not the wrapper).
    assert sample(one_row_at_a_time(model), noise, positive, negative, steps=1).isfinite().all()
    with pytest.raises(error_type) as error:
        sample(one_row_at_a_time(style_aligned(model)), noise, positive, negative, steps=1)
    message = str(error.value)
    assert "StyleAlignedPatch" in message and f"the {FAMILY_NAMES[kind]} model" in message
    assert "rows or token count" in message


def test_unet_rows_it_cannot_read_are_an_error(pack, error_type):
    model = tiny_model("sd15")
    positive, negative = tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2)
    with pytest.raises(error_type) as error:
        sample(one_row_at_a_time(style_aligned(model)), seeded_noise(3), positive, negative, steps=1)
    assert "StyleAlignedPatch" in str(error.value)


def test_some_calls_unreadable_is_one_warning(pack, caplog):
    """SD3's blocks are counted; a block skipped by another node shifts the count so that one call's length
    does not match (it passes through) while the others still share: one warning naming node and family."""
    model = tiny_dit("sd3").clone()
    model.set_model_patch_replace(lambda args, extra: {"img": args["img"], "txt": args["txt"]}, "dit", "double_block", 0)
    positive, negative = dit_conditioning("sd3", seed=1), dit_conditioning("sd3", seed=2)
    with caplog.at_level(logging.WARNING):
        aligned = sample(style_aligned(model), dit_noise("sd3", 3, seed=6), positive, negative, steps=2)
    assert aligned.isfinite().all()
    warnings = [r.getMessage() for r in caplog.records if "left unshared" in r.getMessage()]
    assert len(warnings) == 1 and "StyleAlignedPatch" in warnings[0] and "SD3 / SD3.5" in warnings[0]
