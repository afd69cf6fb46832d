"""The picture of one or two similarity matrices: coloured cells, labels, a colour bar.

Pure torch: `heatmap_picture` paints the cells, the colour bar and the background into a uint8 (H, W, 3)
tensor and lists the text to write on it (`TextItem`: where, what, how big, which colour); whoever has a
font (the node, with Pillow) writes the text. Cells are coloured by `colour_of` on a fixed 0..1 scale so
that two sets, and two runs, compare by colour; each off-diagonal cell carries its value.

The picture's size is bounded whatever the set's size (our choice of bounds): each panel's grid is at most
MAX_GRID_SIDE pixels square, so cells shrink as the set grows; values are written while a cell is at least
VALUE_MIN_CELL pixels, labels thin out to stay legible, and past MAX_GROUPS images per side a summary is
drawn instead: each cell the mean similarity between two groups of consecutive images. The scores
themselves always cover every pair (they come from the full matrix, not from the picture).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# Our own sequential colour map (dark indigo -> teal -> yellow): luminance rises with the value, so the
# order of the similarities reads as dark-to-light also in greyscale.
COLOUR_STOPS = (
    (0.00, (40, 30, 90)),
    (0.25, (50, 90, 150)),
    (0.50, (40, 150, 140)),
    (0.75, (140, 200, 90)),
    (1.00, (250, 230, 80)),
)
SCALE_LOW, SCALE_HIGH = 0.0, 1.0  # cosine similarities below 0 take the lowest colour
BACKGROUND = (250, 250, 250)
DIAGONAL = (215, 215, 215)  # each image with itself: not part of any mean
INK = (20, 20, 20)
REFERENCE_INK = (215, 95, 0)
LIGHT_INK, DARK_INK = (255, 255, 255), (0, 0, 0)

MARGIN = 16
TITLE_LINE = 22
HEADER_LINES = 3
MIN_WIDTH = 440
LABEL_BAND = 24
LABEL_COLUMN = 64
PANEL_GAP = 40
BAR_WIDTH = 18
BAR_LABELS = 44
MAX_GRID_SIDE = 1024     # pixels per panel grid, our bound
MIN_CELL = 4             # smallest cell, in pixels
MAX_GROUPS = MAX_GRID_SIDE // MIN_CELL  # cells per side before images are grouped
VALUE_MIN_CELL = 32      # a value such as 0.87 stays legible down to this cell size
ROW_LABEL_PITCH = 18     # least pixels between two row labels
COLUMN_LABEL_PITCH = 36  # least pixels between two column labels (up to four digits side by side)


@dataclass(frozen=True)
class TextItem:
    x: float            # centre of the text (anchor "middle") or its left end (anchor "left")
    y: float            # vertical middle
    text: str
    size: int           # font height in pixels
    colour: tuple[int, int, int]
    anchor: str = "middle"


@dataclass(frozen=True)
class Panel:
    title: str
    lines: tuple[str, ...]  # under the title, e.g. the two scores
    matrix: torch.Tensor
    reference_index: int


@dataclass
class Picture:
    pixels: torch.Tensor                      # (H, W, 3) uint8
    texts: list[TextItem] = field(default_factory=list)
    cells: list[list[list[tuple[int, int, int, int]]]] = field(default_factory=list)  # [panel][row][col] -> x0, y0, x1, y1


def colour_of(value: float) -> tuple[int, int, int]:
    """The colour of a similarity on the fixed 0..1 scale, piecewise linear between COLOUR_STOPS."""
    t = min(max((float(value) - SCALE_LOW) / (SCALE_HIGH - SCALE_LOW), 0.0), 1.0)
    for (t0, c0), (t1, c1) in zip(COLOUR_STOPS, COLOUR_STOPS[1:]):
        if t <= t1:
            w = (t - t0) / (t1 - t0)
            return tuple(int(round(a + (b - a) * w)) for a, b in zip(c0, c1))
    return COLOUR_STOPS[-1][1]


def luminance(colour: tuple[int, int, int]) -> float:
    r, g, b = colour
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ink_on(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return DARK_INK if luminance(colour) > 140 else LIGHT_INK


def group_size(image_count: int) -> int:
    """Images per cell side: 1 up to MAX_GROUPS images, then as few as keep the grid within MAX_GROUPS cells."""
    return max(1, -(-image_count // MAX_GROUPS))


def cell_size(cell_count: int) -> int:
    """Large cells for a few images (values legible from 40 px), shrinking so the grid stays within
    MAX_GRID_SIDE pixels."""
    count = max(cell_count, 1)
    return max(MIN_CELL, min(max(40, min(76, 560 // count)), MAX_GRID_SIDE // count))


def grouped_matrix(matrix: torch.Tensor, size: int) -> torch.Tensor:
    """(groups, groups) mean similarity between groups of `size` consecutive images, each image's similarity
    with itself left out (a group of one image with itself has no pairs: its mean is NaN, drawn grey)."""
    count = matrix.shape[0]
    groups = -(-count // size)
    padded = torch.zeros(groups * size, groups * size, dtype=torch.float64)
    padded[:count, :count] = matrix.double()
    padded[range(count), range(count)] = 0.0
    sums = padded.reshape(groups, size, groups, size).sum(dim=(1, 3))
    members = torch.tensor([min(size, count - g * size) for g in range(groups)], dtype=torch.float64)
    pairs = members[:, None] * members[None, :] - torch.diag(members)
    return (sums / pairs).float()


def _label_shown(index: int, step: int, reference: int) -> bool:
    """Every step-th label, and the reference's, without crowding the reference's."""
    if index == reference:
        return True
    return index % step == 0 and abs(index - reference) >= step


def _fill(pixels: torch.Tensor, box: tuple[int, int, int, int], colour) -> None:
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = torch.tensor(colour, dtype=torch.uint8)


def heatmap_picture(panels: list[Panel]) -> Picture:
    """Panels side by side (one per set, sharing the colour scale), then the colour bar. At most
    MAX_GRID_SIDE grid pixels per panel whatever the set's size (see the module docstring)."""
    group = group_size(max(panel.matrix.shape[0] for panel in panels))
    matrices = [panel.matrix if group == 1 else grouped_matrix(panel.matrix, group) for panel in panels]
    cells_per_side = [matrix.shape[0] for matrix in matrices]
    cell = cell_size(max(cells_per_side))
    top = MARGIN + HEADER_LINES * TITLE_LINE + LABEL_BAND
    widths = [LABEL_COLUMN + count * cell for count in cells_per_side]
    grid_height = max(cells_per_side) * cell
    width = max(MIN_WIDTH, MARGIN + sum(widths) + PANEL_GAP * (len(panels) - 1) + PANEL_GAP // 2 + BAR_WIDTH + BAR_LABELS + MARGIN)
    height = top + grid_height + MARGIN + TITLE_LINE
    pixels = torch.tensor(BACKGROUND, dtype=torch.uint8).repeat(height, width, 1)
    picture = Picture(pixels)
    value_size = max(11, min(18, cell // 4))
    label_size = 14 if cell >= 16 else 11
    row_step, column_step = -(-ROW_LABEL_PITCH // cell), -(-COLUMN_LABEL_PITCH // cell)

    left = MARGIN
    for panel, matrix, panel_width in zip(panels, matrices, widths):
        count = matrix.shape[0]
        reference = panel.reference_index // group
        grid_left = left + LABEL_COLUMN
        picture.texts.append(TextItem(left, MARGIN + TITLE_LINE / 2, panel.title, 16, INK, "left"))
        for line_number, line in enumerate(panel.lines[: HEADER_LINES - 1], start=1):
            picture.texts.append(TextItem(left, MARGIN + (line_number + 0.5) * TITLE_LINE, line, 14, INK, "left"))
        boxes = []
        for row in range(count):
            row_boxes = []
            label = f"{panel.reference_index} ref" if row == reference else str(row * group)
            ink = REFERENCE_INK if row == reference else INK
            if _label_shown(row, row_step, reference):
                picture.texts.append(TextItem(grid_left - 8 - 22, top + (row + 0.5) * cell, label, label_size, ink))
            if _label_shown(row, column_step, reference):
                picture.texts.append(TextItem(grid_left + (row + 0.5) * cell, top - LABEL_BAND / 2, label, label_size, ink))
            for col in range(count):
                box = (grid_left + col * cell, top + row * cell, grid_left + (col + 1) * cell - 1, top + (row + 1) * cell - 1)
                row_boxes.append(box)
                value = float(matrix[row, col])
                if row == col:
                    _fill(pixels, box, DIAGONAL)
                    continue
                colour = colour_of(value)
                _fill(pixels, box, colour)
                if cell >= VALUE_MIN_CELL:
                    picture.texts.append(TextItem((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, f"{value:.2f}", value_size, ink_on(colour)))
            boxes.append(row_boxes)
        picture.cells.append(boxes)
        left += panel_width + PANEL_GAP

    # Colour bar: top = 1, bottom = 0, with three ticks.
    bar_left = left - PANEL_GAP + PANEL_GAP // 2
    for y in range(grid_height):
        value = SCALE_HIGH - (SCALE_HIGH - SCALE_LOW) * (y + 0.5) / grid_height
        _fill(pixels, (bar_left, top + y, bar_left + BAR_WIDTH, top + y + 1), colour_of(value))
    for value in (SCALE_HIGH, (SCALE_LOW + SCALE_HIGH) / 2, SCALE_LOW):
        y = top + (SCALE_HIGH - value) / (SCALE_HIGH - SCALE_LOW) * (grid_height - 1)
        picture.texts.append(TextItem(bar_left + BAR_WIDTH + 6, y, f"{value:.1f}", 13, INK, "left"))
    caption = ("cosine similarity of image embeddings (grey: an image with itself)" if group == 1 else
               f"mean cosine similarity between groups of {group} images (labels: a group's first image; grey: a group with itself)")
    picture.texts.append(TextItem(MARGIN, height - MARGIN / 2 - TITLE_LINE / 2, caption, 13, INK, "left"))
    return picture
