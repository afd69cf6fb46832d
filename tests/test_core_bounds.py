"""Issue 21's bounds in the core: the heatmap picture's size whatever the set, the prompt batch's token
budget, NaN references and inversions refused."""

import itertools
import math

import pytest
import torch

from stylealign_core import StyleAlignedError, invert
from stylealign_core.prompts.conditioning_batch import (
    MAX_BATCH_TOKENS,
    check_token_budget,
    common_token_length,
    stack_prompt_conditionings,
)
from stylealign_core.real_image.inversion import NonFiniteInversion
from stylealign_core.real_image.noise_scaling import NoiseScaling
from stylealign_core.real_image.reference_trajectory import ReferenceTrajectory
from stylealign_core.scoring import heatmap
from stylealign_core.scoring.similarity import cosine_matrix


def random_matrix(count, seed=0):
    rows = torch.randn(count, 6, generator=torch.Generator().manual_seed(seed)).abs()
    return cosine_matrix(rows)


def max_picture_size(panel_count):
    width = heatmap.MARGIN * 2 + panel_count * (heatmap.LABEL_COLUMN + heatmap.MAX_GRID_SIDE) \
        + heatmap.PANEL_GAP * (panel_count - 1) + heatmap.PANEL_GAP // 2 + heatmap.BAR_WIDTH + heatmap.BAR_LABELS
    height = heatmap.MARGIN * 2 + (heatmap.HEADER_LINES + 1) * heatmap.TITLE_LINE + heatmap.LABEL_BAND + heatmap.MAX_GRID_SIDE
    return width, height


@pytest.mark.parametrize("count", [2, 25, 26, 33, 160, 256, 257, 700])
def test_heatmap_picture_never_exceeds_its_bound(count):
    panels = [heatmap.Panel("set", ("a", "b"), random_matrix(count, seed), reference_index=count // 2) for seed in (0, 1)]
    picture = heatmap.heatmap_picture(panels)
    height, width, _ = picture.pixels.shape
    max_width, max_height = max_picture_size(2)
    assert width <= max_width and height <= max_height
    side = len(picture.cells[0])
    assert side == min(count, -(-count // heatmap.group_size(count)))
    assert side <= heatmap.MAX_GROUPS
    cell = picture.cells[0][0][1][0] - picture.cells[0][0][0][0]
    assert heatmap.MIN_CELL <= cell and side * cell <= heatmap.MAX_GRID_SIDE
    values = [t for t in picture.texts if len(t.text) == 4 and t.text[1] == "."]
    assert bool(values) == (cell >= heatmap.VALUE_MIN_CELL)
    # Labels thin out: no two row labels closer than the pitch; the reference is always labelled.
    row_labels = sorted(t.y for t in picture.texts if t.x == picture.cells[0][0][0][0] - 8 - 22)
    assert all(b - a >= heatmap.ROW_LABEL_PITCH - 1 for a, b in zip(row_labels, row_labels[1:]))
    assert sum(t.text == f"{count // 2} ref" for t in picture.texts) == 4  # row and column, both panels


def test_small_sets_keep_their_legible_cells():
    assert heatmap.cell_size(4) == 76 and heatmap.cell_size(14) == 40 and heatmap.cell_size(25) == 40
    assert heatmap.cell_size(26) == 1024 // 26


def test_grouped_cells_are_the_mean_over_their_pairs():
    count, size = 11, 3
    matrix = random_matrix(count, seed=4)
    grouped = heatmap.grouped_matrix(matrix, size)
    groups = [list(range(start, min(count, start + size))) for start in range(0, count, size)]
    for (a, rows), (b, cols) in itertools.product(enumerate(groups), repeat=2):
        pairs = [(i, j) for i in rows for j in cols if i != j]
        expected = sum(float(matrix[i, j]) for i, j in pairs) / len(pairs) if pairs else math.nan
        if pairs:
            assert abs(float(grouped[a, b]) - expected) < 1e-6
        else:
            assert math.isnan(float(grouped[a, b]))


def test_grouped_heatmap_colours_each_cell_by_its_group_mean():
    count = 600
    matrix = random_matrix(count, seed=9)
    picture = heatmap.heatmap_picture([heatmap.Panel("set", (), matrix, 0)])
    size = heatmap.group_size(count)
    grouped = heatmap.grouped_matrix(matrix, size)
    for a, b in [(0, 1), (5, 100), (149, 3)]:
        x0, y0, _, _ = picture.cells[0][a][b]
        assert tuple(int(c) for c in picture.pixels[y0 + 1, x0 + 1]) == heatmap.colour_of(float(grouped[a, b]))
    assert any("groups of 3 images" in t.text for t in picture.texts)


def test_token_budget():
    check_token_budget([77] * (MAX_BATCH_TOKENS // 77), "Node")
    with pytest.raises(StyleAlignedError) as error:
        check_token_budget([77] * 40 + [4620], "Node")
    message = str(error.value)
    assert message.startswith("Node: prompts") and "41 lines x 4620 tokens = 189420" in message and "line 41" in message
    assert f"at most {MAX_BATCH_TOKENS // 4620} lines" in message


def test_whole_repetition_gives_way_to_the_budget():
    """lcm(77, 154, 231) = 462 <= 4 x 231 would repeat whole, but not past the budget."""
    assert common_token_length([77, 154, 231]) == (462, True)
    many = [77, 154, 231] * (MAX_BATCH_TOKENS // (3 * 300))
    assert len(many) * 462 > MAX_BATCH_TOKENS >= len(many) * 231
    assert common_token_length(many) == (231, False)


def test_stacking_equals_repeating_each_line():
    short, long = torch.randn(1, 2, 3), torch.randn(1, 5, 3)
    cond, extras = stack_prompt_conditionings(
        [(short, {"attention_mask": torch.ones(1, 2)}), (long, {"attention_mask": torch.zeros(1, 5)})], "Node")
    assert cond.shape == (2, 10, 3)
    assert torch.equal(cond[0], short[0].repeat(5, 1)) and torch.equal(cond[1], long[0].repeat(2, 1))
    assert extras["attention_mask"].shape == (2, 10) and extras["attention_mask"][0].eq(1).all()
    with pytest.raises(StyleAlignedError, match="line 2"):
        stack_prompt_conditionings([(short, {}), (torch.zeros(1, MAX_BATCH_TOKENS, 1), {})], "Node")


def trajectory(**broken):
    tensors = {"clean_latent": torch.zeros(1, 4, 2, 2), "sigmas": torch.tensor([0.5, 1.0], dtype=torch.float64),
               "noise": torch.zeros(2, 4, 2, 2)}
    for name in broken:
        tensors[name].view(-1)[0] = math.nan
    return ReferenceTrajectory(**tensors)


@pytest.mark.parametrize("name", ["clean_latent", "noise"])
def test_a_reference_with_nan_is_refused(name):
    with pytest.raises(ValueError, match=f"{name} hold non-finite"):
        trajectory(**{name: True})
    assert trajectory().non_finite_tensors() == []


def test_inversion_names_the_first_non_finite_step():
    scaling = NoiseScaling(lambda sigma, noise, latent: latent + sigma * noise)
    sigmas = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.5, 0.0])

    def denoise(latent, sigma):
        return latent * (math.nan if sigma >= 2.0 else 0.5)

    with pytest.raises(NonFiniteInversion, match=r"at step 3 of 4 \(sigma 2 -> 5\)"):
        invert(denoise, torch.ones(1, 4, 2, 2), sigmas, scaling)
