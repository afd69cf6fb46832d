"""Issue 21's probes, in process on the real host: every bad input is refused before any work with a
StyleAlignedError naming the node, the input and the fix; NaN references never reach sampling; the two
heavy requests are bounded; the reference files stay within the node's own list and sane names."""

import math
import os

import pytest
import torch

from host.comfy_env import host_node_class
from host.sampling import node_output, run_node, style_aligned
from host.tiny_clip import tiny_clip
from host.tiny_clip_vision import tiny_clip_vision
from host.tiny_models import tiny_model

NAN, INF = float("nan"), float("inf")
# The documented bounds (README, errors): token rows of one prompt batch; the heatmap picture's largest size
# with two sets side by side.
TOKEN_BUDGET = 32768
HEATMAP_MAX_WIDTH, HEATMAP_MAX_HEIGHT = 2330, 1168


@pytest.fixture(scope="module")
def model(pack):
    return tiny_model("sd15")


@pytest.fixture(scope="module")
def clip(pack):
    return tiny_clip("sd15")


@pytest.fixture(scope="module")
def image_latent():
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5)) * 3


@pytest.fixture(scope="module")
def reference(model, clip, image_latent):
    return run_node("StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": image_latent},
                    prompt="a toy", steps=6, scheduler="normal")[0]


def refused(error_type, node_id, *inputs, **values):
    with pytest.raises(error_type) as error:
        run_node(node_id, **values)
    message = str(error.value)
    assert message.startswith(f"{node_id}: "), message
    for text in inputs:
        assert text in message, message
    return message


# --- StyleAlignedPatch: numbers and dropdowns -------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("reference_strength", NAN), ("reference_strength", INF), ("shared_layer_fraction", NAN),
    ("start_percent", NAN), ("end_percent", NAN), ("end_percent", -INF), ("reference_key_scale", NAN),
    ("reference_strength", -1.0), ("shared_layer_fraction", 1.5), ("reference_index", -1), ("reference_index", 2.5),
])
def test_patch_refuses_non_finite_or_out_of_range_numbers(model, error_type, name, value):
    message = refused(error_type, "StyleAlignedPatch", name, model=model, **{name: value})
    assert "set it to" in message and (" from " in message or "integer" in message)


def test_patch_refuses_a_dropdown_value_outside_its_options(model, error_type):
    message = refused(error_type, "StyleAlignedPatch", "transformer_blocks", "'bogus'", model=model, transformer_blocks="bogus")
    assert "auto, all, double, single" in message


def test_patch_refuses_a_boolean_that_is_not_one(model, error_type):
    refused(error_type, "StyleAlignedPatch", "adain_values", "true or false", model=model, adain_values="yes")


# --- references: NaN refused at the patch, at inversion, at load -----------------------------------------

def broken_copy(reference, name):
    from dataclasses import replace

    copy = replace(reference, metadata=dict(reference.metadata))
    tensor = getattr(reference, name).clone()
    tensor.view(-1)[3] = NAN
    object.__setattr__(copy, name, tensor)  # after construction, as a node downstream could change it
    return copy


@pytest.mark.parametrize("name", ["noise", "clean_latent"])
def test_patch_refuses_a_reference_holding_nan(model, reference, error_type, name):
    message = refused(error_type, "StyleAlignedPatch", "reference", name, "non-finite", model=model,
                      reference=broken_copy(reference, name))
    assert "Invert the image again" in message


def test_a_reference_without_a_model_family_is_explained(model, reference, error_type):
    from dataclasses import replace

    anonymous = replace(reference, metadata={"prompt": "a toy"})
    message = refused(error_type, "StyleAlignedPatch", "reference", model=model, reference=anonymous)
    assert "None" not in message and "which model" in message


def test_patch_refuses_a_reference_of_another_kind(model, error_type):
    refused(error_type, "StyleAlignedPatch", "reference", "not a StyleAligned reference", model=model,
            reference={"noise": torch.zeros(1)})


def test_invert_refuses_a_nan_latent(model, clip, image_latent, error_type):
    latent = image_latent.clone()
    latent[0, 0, 0, 0] = NAN
    refused(error_type, "StyleAlignedInvertReference", "latent", "non-finite", model=model, clip=clip,
            latent={"samples": latent}, steps=4)


def test_invert_names_the_step_that_went_non_finite(model, clip, image_latent, error_type):
    import comfy.samplers

    from host.comfy_env import load_host

    pack = load_host()
    steps = 8
    sigmas = pack.stylealign_core.inversion_sigmas(
        comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", steps))
    threshold = float(sigmas[4])

    def nan_above_threshold(apply_model, args):
        out = apply_model(args["input"], args["timestep"], **args["c"])
        return out * NAN if float(args["timestep"].max()) >= threshold else out

    broken = model.clone()
    broken.set_model_unet_function_wrapper(nan_above_threshold)
    message = refused(error_type, "StyleAlignedInvertReference", "non-finite", f"at step 5 of {len(sigmas) - 1}",
                      model=broken, clip=clip, latent={"samples": image_latent}, steps=steps)
    assert f"sigma {threshold:.4g}" in message


@pytest.mark.parametrize("values, names", [
    ({"scheduler": "bogus"}, ("scheduler", "'bogus'", "normal")),
    ({"steps": 1}, ("steps", "from 2 to 1000")),
    ({"prompt": None}, ("prompt", "text")),
])
def test_invert_refuses_bad_widgets(model, clip, image_latent, error_type, values, names):
    refused(error_type, "StyleAlignedInvertReference", *names, model=model, clip=clip, latent={"samples": image_latent}, **values)


# --- reference files ----------------------------------------------------------------------------------

@pytest.fixture
def output_dir(tmp_path, pack):
    import folder_paths

    previous = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(tmp_path))
    pack.nodes.reference_file_nodes.register_reference_folder()
    (tmp_path / "stylealign").mkdir()
    try:
        yield tmp_path
    finally:
        folder_paths.set_output_directory(previous)


def save(reference, prefix):
    return host_node_class("StyleAlignedSaveReference").execute(reference=reference, filename_prefix=prefix)


def written(output_dir):
    return sorted(str(path.relative_to(output_dir)) for path in output_dir.rglob("*.safetensors"))


def test_load_accepts_only_names_from_its_own_list(output_dir, reference, error_type):
    save(reference, "stylealign/good")
    torch.save({"clean_latent": torch.zeros(1)}, output_dir / "stylealign" / "model.ckpt")
    (output_dir / "elsewhere.safetensors").write_bytes(b"x")
    import folder_paths

    listed = host_node_class("StyleAlignedLoadReference").define_schema().inputs[0].options
    assert listed == ["good_00001_.safetensors"]
    for name in ("model.ckpt", "../elsewhere.safetensors", "nothing.safetensors"):
        message = refused(error_type, "StyleAlignedLoadReference", "reference_name", "not one of", reference_name=name)
        assert "good_00001_.safetensors" in message and "cannot be read" not in message
    assert folder_paths.get_full_path("stylealign", "model.ckpt")  # the host would have found and opened it
    assert run_node("StyleAlignedLoadReference", reference_name="good_00001_.safetensors")[0].metadata == reference.metadata


def test_load_refuses_a_reference_file_holding_nan(output_dir, reference, error_type, pack):
    path = output_dir / "stylealign" / "nan_00001_.safetensors"
    pack.stylealign_core.save_reference(broken_copy(reference, "noise"), path)
    message = refused(error_type, "StyleAlignedLoadReference", "reference_name", "non-finite", "noise",
                      reference_name=path.name)
    assert "Invert the image again" in message


@pytest.mark.parametrize("prefix, expected", [
    ("", "reference_00001_.safetensors"),
    ("stylealign/", "stylealign/reference_00001_.safetensors"),
    ("stylealign/.hidden", "stylealign/hidden_00001_.safetensors"),
    ("stylealign/a\nb\tc\x00d", "stylealign/a_b_c_d_00001_.safetensors"),
    (".secret/x", "secret/x_00001_.safetensors"),
])
def test_save_writes_visible_names_without_control_characters(output_dir, reference, prefix, expected):
    output = save(reference, prefix)
    assert written(output_dir) == [expected]
    assert expected in "".join(output.ui.as_dict()["text"])


def test_save_shortens_an_overlong_name(output_dir, reference):
    save(reference, "stylealign/" + "x" * 400)
    (name,) = written(output_dir)
    assert name.startswith("stylealign/xxx") and len(os.path.basename(name).encode()) <= 255


@pytest.mark.parametrize("prefix, words", [
    ("../outside", "leaves the output folder"),
    ("/tmp/absolute", "absolute path"),
    ("stylealign/a_file/x", "cannot"),
])
def test_save_errors_are_the_packs_own_words(output_dir, reference, error_type, prefix, words):
    (output_dir / "stylealign" / "a_file").write_bytes(b"not a folder")
    message = refused(error_type, "StyleAlignedSaveReference", "filename_prefix", words, reference=reference,
                      filename_prefix=prefix)
    assert "Saving image outside" not in message and "Errno" not in message and "too long" not in message
    assert written(output_dir) == []


# --- StyleAlignedPromptBatch: bounded memory ----------------------------------------------------------

class CountingClip:
    """The tiny CLIP, counting how many texts reach the encoder."""

    def __init__(self, clip):
        self.clip, self.encoded = clip, 0

    def tokenize(self, text):
        return self.clip.tokenize(text)

    def encode_from_tokens_scheduled(self, tokens):
        self.encoded += 1
        return self.clip.encode_from_tokens_scheduled(tokens)


def test_prompt_batch_refuses_many_lines_and_a_huge_one_before_encoding(clip, error_type):
    counting = CountingClip(clip)
    prompts = "\n".join([f"a toy number {i}" for i in range(40)] + ["a long tale of toys " * 1000])  # ~20 KB
    message = refused(error_type, "StyleAlignedPromptBatch", "prompts", "41 lines", "line 41", str(TOKEN_BUDGET),
                      clip=counting, prompts=prompts, style="")
    assert counting.encoded == 0


@pytest.mark.parametrize("chunks, accepted", [(212, True), (213, False)])
def test_prompt_batch_token_budget_is_exact(clip, error_type, chunks, accepted):
    """Two lines, the second `chunks` CLIP windows long (75 one-token words each): 2 x 77 x chunks token rows."""
    prompts = "a toy\n" + " ".join(["a"] * (75 * chunks))
    assert (2 * 77 * chunks <= TOKEN_BUDGET) == accepted
    if accepted:
        conditioning, count, _ = run_node("StyleAlignedPromptBatch", clip=clip, prompts=prompts, style="")
        assert count == 2 and tuple(conditioning[0][0].shape[:2]) == (2, 77 * chunks)
    else:
        refused(error_type, "StyleAlignedPromptBatch", "prompts", f"2 lines x {77 * chunks} tokens", clip=clip,
                prompts=prompts, style="")


@pytest.mark.parametrize("values, names", [
    ({"prompts": 5}, ("prompts", "text")),
    ({"latent": {"samples": "x"}}, ("latent", "not a latent batch")),
])
def test_prompt_batch_refuses_bad_inputs(clip, error_type, values, names):
    refused(error_type, "StyleAlignedPromptBatch", *names, clip=clip, **{"prompts": "a\nb", "style": "", **values})


# --- StyleAlignedSetScore -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vision(pack):
    return tiny_clip_vision("clip", seed=3)


def pictures(count, seed=1):
    return torch.rand(count, 16, 16, 3, generator=torch.Generator().manual_seed(seed))


def test_set_score_blames_nan_images_on_the_images_not_the_encoder(vision, error_type):
    images = pictures(3)
    images[1, 2, 2, 0] = NAN
    message = refused(error_type, "StyleAlignedSetScore", "images", "non-finite", images=images, clip_vision=vision)
    assert "vision model" in message and "may be damaged" not in message


def test_set_score_refuses_bad_numbers(vision, error_type):
    refused(error_type, "StyleAlignedSetScore", "reference_index", images=pictures(3), clip_vision=vision, reference_index=NAN)


@pytest.mark.parametrize("count", [40, 300])
def test_set_score_heatmap_is_bounded_and_scores_cover_every_pair(vision, pack, count):
    images = pictures(count, seed=count)
    output = node_output("StyleAlignedSetScore", images=images, clip_vision=vision, compare_images=images.flip(0))
    consistency, to_reference, picture = output.result
    height, width = picture.shape[1:3]
    assert width <= HEATMAP_MAX_WIDTH and height <= HEATMAP_MAX_HEIGHT, (width, height)
    # The scores still cover every pair: an independent float64 computation over the whole set.
    with torch.no_grad():
        embeds = torch.cat([vision.encode_image(images[i : i + 1])["image_embeds"] for i in range(count)]).double()
    unit = embeds / embeds.norm(dim=1, keepdim=True)
    similarity = unit @ unit.T
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    assert abs(consistency - sum(float(similarity[i, j]) for i, j in pairs) / len(pairs)) < 1e-4
    assert abs(to_reference - float(similarity[0, 1:].mean())) < 1e-4


def test_the_documented_bounds_are_the_packs(pack):
    heatmap = pack.stylealign_core.scoring.heatmap
    assert pack.stylealign_core.prompts.conditioning_batch.MAX_BATCH_TOKENS == TOKEN_BUDGET
    width = heatmap.MARGIN * 2 + 2 * (heatmap.LABEL_COLUMN + heatmap.MAX_GRID_SIDE) + heatmap.PANEL_GAP \
        + heatmap.PANEL_GAP // 2 + heatmap.BAR_WIDTH + heatmap.BAR_LABELS
    height = heatmap.MARGIN * 2 + (heatmap.HEADER_LINES + 1) * heatmap.TITLE_LINE + heatmap.LABEL_BAND + heatmap.MAX_GRID_SIDE
    assert (width, height) == (HEATMAP_MAX_WIDTH, HEATMAP_MAX_HEIGHT)
