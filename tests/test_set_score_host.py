"""StyleAlignedSetScore on tiny random image encoders built from the host's ClipVisionModel (CLIP, SigLIP,
DINOv2), against an independent computation: each image encoded alone by the host, cosines summed in
float64 in this file."""

import itertools
import math

import pytest
import torch

from host.sampling import node_output
from host.tiny_clip_vision import tiny_clip_vision

NODE = "StyleAlignedSetScore"


ENCODER_NAMES = {"clip": "CLIP", "siglip": "SigLIP", "dinov2": "DINOv2"}


@pytest.fixture(scope="module", params=list(ENCODER_NAMES))
def encoder(request, pack):
    model = tiny_clip_vision(request.param)
    model.kind = request.param
    return model


@pytest.fixture(scope="module")
def clip_encoder(pack):
    return tiny_clip_vision("clip", seed=3)


def pictures(count, seed, size=(40, 48)):
    return torch.rand(count, *size, 3, generator=torch.Generator().manual_seed(seed))


def independent_similarities(clip_vision, images):
    """Cosine similarity of every pair, each image encoded on its own, in float64."""
    vectors = []
    for image in images:
        with torch.no_grad():
            embeds = clip_vision.encode_image(image[None])["image_embeds"][0].double()
        if embeds.ndim == 2:  # SigLIP in ComfyUI: the final tokens, averaged
            embeds = embeds.sum(dim=0) / embeds.shape[0]
        vectors.append(embeds.tolist())
    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    return [[cos(a, b) for b in vectors] for a in vectors]


def means(similarities, reference):
    count = len(similarities)
    pairs = [similarities[i][j] for i, j in itertools.combinations(range(count), 2)]
    others = [similarities[reference][j] for j in range(count) if j != reference]
    return sum(pairs) / len(pairs), sum(others) / len(others)


def score(**inputs):
    output = node_output(NODE, **inputs)
    consistency, to_reference, heatmap = output.result
    return consistency, to_reference, heatmap, output.ui.as_dict()["text"][0]


@pytest.mark.parametrize("reference_index", [0, 2])
def test_scores_equal_an_independent_computation(encoder, reference_index):
    images = pictures(4, seed=1)
    consistency, to_reference, heatmap, text = score(images=images, clip_vision=encoder, reference_index=reference_index)
    expected_consistency, expected_to_reference = means(independent_similarities(encoder, images), reference_index)
    assert isinstance(consistency, float) and isinstance(to_reference, float)
    assert abs(consistency - expected_consistency) < 1e-4
    assert abs(to_reference - expected_to_reference) < 1e-4
    assert heatmap.ndim == 4 and heatmap.shape[0] == 1 and heatmap.shape[-1] == 3 and heatmap.dtype == torch.float32
    assert f"set_consistency {consistency:.4f}" in text and f"reference_similarity {to_reference:.4f}" in text
    assert f"encoder: {ENCODER_NAMES[encoder.kind]}, " in text


def test_comparison_set_is_scored_the_same_way(clip_encoder):
    images, other = pictures(4, seed=1), pictures(3, seed=2, size=(32, 32))  # another size and image size: allowed
    other[0] = torch.nn.functional.interpolate(images[:1].movedim(-1, 1), size=(32, 32)).movedim(1, -1)[0]
    consistency, to_reference, _, text = score(images=images, clip_vision=clip_encoder, compare_images=other)
    alone, alone_reference, _, _ = score(images=images, clip_vision=clip_encoder)
    assert (consistency, to_reference) == (alone, alone_reference)  # the outputs are the first set's
    other_consistency, other_reference = means(independent_similarities(clip_encoder, other), 0)
    assert f"compare_images: set_consistency {other_consistency:.4f}" in text
    assert f"reference_similarity {other_reference:.4f}" in text.splitlines()[1]
    assert f"set_consistency {consistency - other_consistency:+.4f}" in text.splitlines()[2]


def test_identical_images_score_one(encoder):
    same = pictures(1, seed=4).repeat(3, 1, 1, 1)
    consistency, to_reference, _, _ = score(images=same, clip_vision=encoder)
    assert abs(consistency - 1) < 1e-5 and abs(to_reference - 1) < 1e-5


def test_shared_images_between_the_sets_do_not_change_the_scores(clip_encoder):
    """The reference slot is the same picture in both sets when the patch is bypassed (encoded once)."""
    images, other = pictures(4, seed=5), pictures(4, seed=6)
    other[0] = images[0]
    other[2] = images[3]
    consistency, to_reference, _, text = score(images=images, clip_vision=clip_encoder, compare_images=other)
    expected = means(independent_similarities(clip_encoder, images), 0)
    assert abs(consistency - expected[0]) < 1e-4 and abs(to_reference - expected[1]) < 1e-4
    other_expected = means(independent_similarities(clip_encoder, other), 0)
    assert f"compare_images: set_consistency {other_expected[0]:.4f}" in text


def test_heatmap_cells_follow_the_similarities(clip_encoder, pack):
    """Read the picture the node returns: each off-diagonal cell's fill is the colour map of the independently
    computed similarity, brighter where the images are more alike; the diagonal is neutral."""
    heatmap_module = pack.stylealign_core.scoring.heatmap
    images, other = pictures(5, seed=7), pictures(5, seed=8)
    _, _, heatmap, _ = score(images=images, clip_vision=clip_encoder, compare_images=other, reference_index=1)
    pixels = (heatmap[0] * 255).round().to(torch.uint8)
    for panel, batch in enumerate((images, other)):
        similarities = independent_similarities(clip_encoder, batch)
        # Where the cells are: the core's layout for two 5-image panels (the values do not move the cells).
        layout = heatmap_module.heatmap_picture([heatmap_module.Panel("", (), torch.zeros(5, 5), 1)] * 2)
        assert tuple(layout.pixels.shape) == tuple(pixels.shape)
        cells = layout.cells[panel]
        fills = {}
        for i, j in itertools.product(range(5), repeat=2):
            x0, y0, _, _ = cells[i][j]
            fill = tuple(int(c) for c in pixels[y0 + 2, x0 + 2])
            if i == j:
                assert fill == heatmap_module.DIAGONAL
                continue
            expected = heatmap_module.colour_of(similarities[i][j])
            assert max(abs(a - b) for a, b in zip(fill, expected)) <= 1, (panel, i, j, fill, expected)
            fills[(i, j)] = fill
        order = sorted(fills, key=lambda ij: similarities[ij[0]][ij[1]])
        lums = [heatmap_module.luminance(fills[ij]) for ij in order]
        assert all(b >= a - 1 for a, b in zip(lums, lums[1:]))
        # The value is written in the cell: its middle is not the plain fill.
        x0, y0, x1, y1 = cells[0][2]
        middle = pixels[y0 + (y1 - y0) // 3 : y1 - (y1 - y0) // 3, x0 + 4 : x1 - 4]
        assert (middle != torch.tensor(fills[(0, 2)], dtype=torch.uint8)).any(dim=-1).sum() > 20


@pytest.mark.parametrize("inputs, names", [
    ({"images": 1}, ("images", "1 image")),
    ({"images": 3, "compare_images": 1}, ("compare_images", "1 image")),
    ({"images": 3, "reference_index": 3}, ("reference_index 3", "images (3 images")),
    ({"images": 4, "compare_images": 2, "reference_index": 2}, ("reference_index 2", "compare_images (2 images")),
])
def test_errors_name_the_node_and_the_input(clip_encoder, error_type, inputs, names):
    values = {key: pictures(value, seed=9) if key.endswith("images") else value for key, value in inputs.items()}
    with pytest.raises(error_type) as error:
        score(clip_vision=clip_encoder, **values)
    message = str(error.value)
    assert message.startswith(f"{NODE}: ") and all(name in message for name in names), message


def test_broken_encoder_is_an_error(clip_encoder, error_type):
    class NaNEncoder:
        def encode_image(self, images):
            return {"image_embeds": torch.full((images.shape[0], 8), float("nan"))}
    with pytest.raises(error_type) as error:
        score(images=pictures(2, seed=1), clip_vision=NaNEncoder())
    assert "clip_vision" in str(error.value) and "non-finite" in str(error.value)
