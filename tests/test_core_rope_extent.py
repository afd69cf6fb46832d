"""rope.column_extent_rotation: the shift by the image width read off a row-major rotation table, for
models whose positions are not integer columns (Kandinsky 5's scaled grid, PixelDiT's stretched one)."""

import math

import torch

from stylealign_core.transformer.rope import column_extent_rotation, rotate


def table_at(positions: torch.Tensor, omegas: torch.Tensor) -> torch.Tensor:
    """(1, 1, N, P, 2, 2) rotation matrices [[cos, -sin], [sin, cos]] at angle position * omega per pair."""
    angle = positions.double()[:, None] * omegas.double()[None, :]
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([cos, -sin, sin, cos], dim=-1).reshape(1, 1, -1, omegas.shape[0], 2, 2).float()


def test_extent_equals_the_rotation_at_the_image_width():
    omegas = torch.tensor([1.0, 0.3, 0.01, 2.9, 7.5])  # fast pairs wrap past pi over one column
    for rows, cols, step in ((3, 4, 0.5), (2, 7, 16 / 6), (1, 64, 1.0)):
        columns = torch.arange(cols, dtype=torch.float64).repeat(rows) * step + 0.25  # any origin
        extent = column_extent_rotation(table_at(columns, omegas), cols)
        expected = table_at(torch.tensor([cols * step], dtype=torch.float64), omegas)
        torch.testing.assert_close(extent, expected, atol=2e-6, rtol=0)
        x = torch.randn(1, 1, 1, 2 * omegas.shape[0])
        torch.testing.assert_close(rotate(x, extent), rotate(x, expected), atol=1e-5, rtol=0)


def test_axes_that_do_not_run_along_columns_are_not_moved():
    # Pairs on the row axis: the same angle for columns 0 and 1 of a row, so no step, no shift.
    rows_only = table_at(torch.zeros(8), torch.tensor([0.7, 1.3]))
    identity = torch.eye(2).expand(1, 1, 1, 2, 2, 2)
    torch.testing.assert_close(column_extent_rotation(rows_only, 4), identity, atol=1e-7, rtol=0)


def test_one_column_image_is_not_shifted():
    table = table_at(torch.tensor([0.0, 1.0]), torch.tensor([math.pi / 3]))
    torch.testing.assert_close(column_extent_rotation(table, 1), torch.eye(2).expand(1, 1, 1, 1, 2, 2))
