"""The picture of one or two similarity matrices: coloured cells, labels, a colour bar.

Pure torch: `heatmap_picture` paints the cells, the colour bar and the background into a uint8 (H, W, 3)
tensor and lists the text to write on it (`TextItem`: where, what, how big, which colour); whoever has a
font (the node, with Pillow) writes the text. Cells are coloured by `colour_of` on a fixed 0..1 scale so
that two sets, and two runs, compare by colour; each off-diagonal cell carries its value.
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


def cell_size(image_count: int) -> int:
    """Large cells for a few images, never so small that a value like 0.87 stops being legible."""
    return max(40, min(76, 560 // max(image_count, 1)))


def _fill(pixels: torch.Tensor, box: tuple[int, int, int, int], colour) -> None:
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = torch.tensor(colour, dtype=torch.uint8)


def heatmap_picture(panels: list[Panel]) -> Picture:
    """Panels side by side (one per set, sharing the colour scale), then the colour bar."""
    cell = cell_size(max(panel.matrix.shape[0] for panel in panels))
    top = MARGIN + HEADER_LINES * TITLE_LINE + LABEL_BAND
    widths = [LABEL_COLUMN + panel.matrix.shape[0] * cell for panel in panels]
    grid_height = max(panel.matrix.shape[0] for panel in panels) * cell
    width = max(MIN_WIDTH, MARGIN + sum(widths) + PANEL_GAP * (len(panels) - 1) + PANEL_GAP // 2 + BAR_WIDTH + BAR_LABELS + MARGIN)
    height = top + grid_height + MARGIN + TITLE_LINE
    pixels = torch.tensor(BACKGROUND, dtype=torch.uint8).repeat(height, width, 1)
    picture = Picture(pixels)
    value_size = max(11, min(18, cell // 4))

    left = MARGIN
    for panel, panel_width in zip(panels, widths):
        count = panel.matrix.shape[0]
        grid_left = left + LABEL_COLUMN
        picture.texts.append(TextItem(left, MARGIN + TITLE_LINE / 2, panel.title, 16, INK, "left"))
        for line_number, line in enumerate(panel.lines[: HEADER_LINES - 1], start=1):
            picture.texts.append(TextItem(left, MARGIN + (line_number + 0.5) * TITLE_LINE, line, 14, INK, "left"))
        boxes = []
        for row in range(count):
            row_boxes = []
            label = f"{row} ref" if row == panel.reference_index else str(row)
            ink = REFERENCE_INK if row == panel.reference_index else INK
            picture.texts.append(TextItem(grid_left - 8 - 22, top + (row + 0.5) * cell, label, 14, ink))
            picture.texts.append(TextItem(grid_left + (row + 0.5) * cell, top - LABEL_BAND / 2, label, 14, ink))
            for col in range(count):
                box = (grid_left + col * cell, top + row * cell, grid_left + (col + 1) * cell - 1, top + (row + 1) * cell - 1)
                row_boxes.append(box)
                if row == col:
                    _fill(pixels, box, DIAGONAL)
                    continue
                value = float(panel.matrix[row, col])
                colour = colour_of(value)
                _fill(pixels, box, colour)
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
    picture.texts.append(TextItem(MARGIN, height - MARGIN / 2 - TITLE_LINE / 2,
                                  "cosine similarity of image embeddings (grey: an image with itself)", 13, INK, "left"))
    return picture
