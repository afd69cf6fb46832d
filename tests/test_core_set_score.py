"""Set scores and their picture (stylealign_core.scoring) against sums written out in the test."""

import itertools
import math

import pytest
import torch

from stylealign_core.scoring.heatmap import COLOUR_STOPS, Panel, colour_of, heatmap_picture, luminance
from stylealign_core.scoring.embedding_cache import EmbeddingCache
from stylealign_core.scoring.similarity import cosine_matrix, pair_mean, pooled_embeddings, reference_mean, score_set


def cosine(a, b):
    a, b = a.double().tolist(), b.double().tolist()
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def embeddings(count=5, width=7, seed=0, dtype=torch.float32):
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_scores_equal_the_written_out_means(dtype):
    rows = embeddings(dtype=dtype)
    score = score_set(rows, reference_index=2)
    assert score.matrix.dtype == torch.float32 and score.matrix.shape == (5, 5)
    for i, j in itertools.product(range(5), repeat=2):
        assert abs(float(score.matrix[i, j]) - cosine(rows[i], rows[j])) < 1e-5
    pairs = [cosine(rows[i], rows[j]) for i, j in itertools.combinations(range(5), 2)]
    assert len(pairs) == 10
    assert abs(score.set_consistency - sum(pairs) / len(pairs)) < 1e-5
    to_reference = [cosine(rows[2], rows[j]) for j in (0, 1, 3, 4)]
    assert abs(score.reference_similarity - sum(to_reference) / 4) < 1e-5


def test_identical_embeddings_score_one_and_zero_embeddings_no_nan():
    same = embeddings(1).repeat(4, 1) * torch.tensor([[1.0], [2.0], [0.5], [3.0]])  # scale does not matter
    score = score_set(same, 0)
    assert abs(score.set_consistency - 1) < 1e-6 and abs(score.reference_similarity - 1) < 1e-6
    with_zero = torch.cat([embeddings(2), torch.zeros(1, 7)])
    matrix = cosine_matrix(with_zero)
    assert torch.isfinite(matrix).all() and float(matrix[2, 0]) == 0.0


def test_means_need_pairs_and_a_reference_inside():
    with pytest.raises(ValueError):
        pair_mean(torch.ones(1, 1))
    with pytest.raises(ValueError):
        reference_mean(torch.ones(3, 3), 3)


def test_token_embeddings_are_averaged():
    tokens = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(pooled_embeddings(tokens), tokens.sum(dim=1) / 6)
    assert pooled_embeddings(tokens[:, 0].half()).dtype == torch.float32
    with pytest.raises(ValueError):
        pooled_embeddings(torch.zeros(3))


class CountingEncoder:
    """Embeds a picture as its per-channel means (any deterministic map will do) and counts what it encodes."""
    def __init__(self):
        self.encoded = 0

    def __call__(self, pictures):
        self.encoded += pictures.shape[0]
        return pictures.mean(dim=(1, 2)).float()


def test_embedding_cache_encodes_each_new_picture_once():
    pictures = torch.rand(4, 5, 6, 3, generator=torch.Generator().manual_seed(2))
    cache, encoder = EmbeddingCache(), CountingEncoder()
    batch = torch.stack([pictures[0], pictures[1], pictures[0], pictures[2], pictures[1]])
    rows = cache.embeddings(encoder, batch, encoder)
    assert encoder.encoded == 3 and torch.equal(rows, batch.mean(dim=(1, 2)))
    # Run again with the reference and one other picture unchanged: only the new picture is encoded.
    again = torch.stack([pictures[0], pictures[3], pictures[2]])
    assert torch.equal(cache.embeddings(encoder, again, encoder), again.mean(dim=(1, 2))) and encoder.encoded == 4
    # Another encoder object (another model) sees nothing of the first one's pictures.
    other = CountingEncoder()
    cache.embeddings(other, again, other)
    assert other.encoded == 3
    # A changed pixel is a new picture.
    changed = again.clone()
    changed[1, 0, 0, 0] += 1e-3
    cache.embeddings(encoder, changed, encoder)
    assert encoder.encoded == 5


def test_embedding_cache_forgets_the_oldest_pictures_and_dropped_encoders():
    pictures = torch.rand(5, 2, 2, 3, generator=torch.Generator().manual_seed(3))
    cache, encoder = EmbeddingCache(max_pictures_per_encoder=3), CountingEncoder()
    cache.embeddings(encoder, pictures, encoder)  # more than it keeps: all still returned
    assert encoder.encoded == 5
    cache.embeddings(encoder, pictures[2:], encoder)
    assert encoder.encoded == 5
    cache.embeddings(encoder, pictures[:1], encoder)
    assert encoder.encoded == 6
    del encoder
    assert len(cache._by_encoder) == 0


def test_colour_map_rises_in_luminance_and_hits_its_ends():
    values = [i / 100 for i in range(101)]
    lums = [luminance(colour_of(v)) for v in values]
    assert all(b > a for a, b in zip(lums, lums[1:]))
    assert colour_of(0.0) == COLOUR_STOPS[0][1] and colour_of(1.0) == COLOUR_STOPS[-1][1]
    assert colour_of(-0.4) == colour_of(0.0) and colour_of(1.5) == colour_of(1.0)


def cell_colour(pixels, box):
    """The fill of a cell, read near its top-left corner (the value is written in its middle)."""
    x0, y0, _, _ = box
    return tuple(int(c) for c in pixels[y0 + 2, x0 + 2])


@pytest.mark.parametrize("counts", [(2,), (4,), (4, 3), (12,)])
def test_cells_are_coloured_by_their_values(counts):
    panels = []
    for seed, count in enumerate(counts):
        matrix = cosine_matrix(embeddings(count, width=3, seed=seed).abs())
        panels.append(Panel(f"set {seed}", ("a", "b"), matrix, reference_index=count - 1))
    picture = heatmap_picture(panels)
    height, width, channels = picture.pixels.shape
    assert picture.pixels.dtype == torch.uint8 and channels == 3
    lefts = []
    for panel, cells in zip(panels, picture.cells):
        count = panel.matrix.shape[0]
        assert len(cells) == count and all(len(row) == count for row in cells)
        lefts.append(cells[0][0][0])
        off_diagonal = [(i, j) for i, j in itertools.product(range(count), repeat=2) if i != j]
        for i, j in off_diagonal:
            box = cells[i][j]
            assert 0 <= box[0] < box[2] < width and 0 <= box[1] < box[3] < height
            assert cell_colour(picture.pixels, box) == colour_of(float(panel.matrix[i, j]))
        # Brighter cell = more similar, in the matrix's own order.
        by_value = sorted(off_diagonal, key=lambda ij: float(panel.matrix[ij]))
        lums = [luminance(cell_colour(picture.pixels, cells[i][j])) for i, j in by_value]
        assert all(b >= a for a, b in zip(lums, lums[1:]))
        if float(panel.matrix[by_value[-1]]) - float(panel.matrix[by_value[0]]) > 0.05:
            assert lums[-1] > lums[0]
        # Each off-diagonal value is written, centred in its cell, in a colour that contrasts with the fill.
        for i, j in off_diagonal:
            box = cells[i][j]
            texts = [t for t in picture.texts if t.text == f"{float(panel.matrix[i, j]):.2f}"
                     and abs(t.x - (box[0] + box[2]) / 2) < 1 and abs(t.y - (box[1] + box[3]) / 2) < 1]
            assert len(texts) == 1 and abs(luminance(texts[0].colour) - luminance(cell_colour(picture.pixels, box))) > 100
        reference_labels = [t for t in picture.texts if t.text == f"{count - 1} ref"]
        assert len(reference_labels) == 2  # row and column
    assert lefts == sorted(lefts) and len(set(lefts)) == len(panels)  # side by side, left to right
