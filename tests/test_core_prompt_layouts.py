"""stack_prompt_conditionings batches the encoder's other outputs by their shape, whatever the family."""

import pytest
import torch

from stylealign_core import StyleAlignedError, stack_prompt_conditionings


def test_rows_of_any_rank_are_stacked_and_a_second_token_axis_gets_its_own_length():
    """Per-layer features (1, layers, T, C): rows stacked; their token axis (2) lengthened on its own (3 and 6
    tokens: whole repetition to 6), independent of the conditioning's tokens (4 and 4)."""
    cond = [torch.randn(1, 4, 2), torch.randn(1, 4, 2)]
    layers = [torch.randn(1, 2, 3, 5), torch.randn(1, 2, 6, 5)]
    stacked, extras = stack_prompt_conditionings([(c, {"features": f}) for c, f in zip(cond, layers)], "Node")
    assert stacked.shape == (2, 4, 2) and extras["features"].shape == (2, 2, 6, 5)
    assert torch.equal(extras["features"][0:1], layers[0].repeat(1, 1, 2, 1)) and torch.equal(extras["features"][1:2], layers[1])


def test_a_missing_attention_mask_is_all_ones():
    """The hosts' encoders drop an all-ones mask: one prompt without it has every token counted."""
    short, long = torch.randn(1, 2, 3), torch.randn(1, 3, 3)
    _, extras = stack_prompt_conditionings([(short, {}), (long, {"attention_mask": torch.tensor([[1, 1, 0]])})], "Node")
    assert extras["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 0]]


def test_token_ids_of_other_lengths_are_refused_and_of_one_length_stacked():
    ids = [torch.tensor([[5, 6, 7]]), torch.tensor([[5, 8, 9, 7]])]
    entries = [(i.float().unsqueeze(-1), {"ids": i}) for i in ids]
    with pytest.raises(StyleAlignedError, match=r"3/4 tokens in the text encoder's 'ids' output \(token ids\)"):
        stack_prompt_conditionings(entries, "Node")
    same = [torch.tensor([[5, 6, 7]]), torch.tensor([[5, 8, 7]])]
    _, extras = stack_prompt_conditionings([(i.float().unsqueeze(-1), {"ids": i}) for i in same], "Node")
    assert extras["ids"].tolist() == [[5, 6, 7], [5, 8, 7]]


@pytest.mark.parametrize("values,match", [
    ((torch.ones(1, 2, 3), torch.ones(1, 3, 4)), "'x' output differs between prompts, so"),  # two axes differ
    ((torch.ones(3), torch.ones(4)), "no batch axis"),  # one prompt's 1-D list
    ((torch.ones(1, 3), None), "gives 'x' for line\\(s\\) 1 but not for line\\(s\\) 2"),
    ((1, 2), "'x' output differs"),
])
def test_outputs_that_cannot_be_batched_are_refused(values, match):
    cond = torch.randn(1, 3, 2)
    entries = [(cond, {"x": value}) if value is not None else (cond, {}) for value in values]
    with pytest.raises(StyleAlignedError, match=match):
        stack_prompt_conditionings(entries, "Node")


def test_same_values_without_a_row_axis_are_kept():
    cond = torch.randn(1, 3, 2)
    _, extras = stack_prompt_conditionings([(cond, {"n": 3, "ids": torch.arange(4)}), (cond, {"n": 3, "ids": torch.arange(4)})], "Node")
    assert extras["n"] == 3 and torch.equal(extras["ids"], torch.arange(4))
