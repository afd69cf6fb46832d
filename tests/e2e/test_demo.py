"""The README's demo command (`python tests/host/demo.py`), run through its main function with the tiny
random checkpoint: it starts its own headless ComfyUI with the pack, runs the shipped SD1.5 set workflow with
StyleAligned and with it bypassed, writes both sets and a contact sheet into the output folder (every file
named "random-weights") and prints the sheet's path last. The differences are computed here from the saved
images, independently of what the demo prints."""

from __future__ import annotations

import numpy as np
from PIL import Image

from host import demo
from host.api_workflows import load_prompt, nodes_of


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_demo_main_writes_both_sets_and_a_contact_sheet_that_shows_the_effect(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--tiny"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    sheet_path = out / f"contact_sheet_{demo.RANDOM_WEIGHTS_TAG}.png"
    assert printed[-1] == str(sheet_path), "the contact sheet's path must be the last line printed"
    assert any("noise from random weights" in line for line in printed), "the tiny run must say its pictures are noise"

    # Both sets: one image per prompt line of the shipped workflow, at the demo's tiny size, slot 0 the
    # reference; every picture made from random weights says so in its name.
    workflow = load_prompt(demo.WORKFLOW)
    count = len(workflow[nodes_of(workflow, "StyleAlignedPromptBatch")[0]]["inputs"]["prompts"].strip().splitlines())
    names = {row: [f"{row}_random-weights_slot{i}{'_reference' if i == 0 else ''}.png" for i in range(count)]
             for row in ("stylealigned", "bypassed")}
    assert sorted(path.name for path in out.glob("*.png")) == sorted([*names["stylealigned"], *names["bypassed"], sheet_path.name])
    styled = [load(out / name) for name in names["stylealigned"]]
    bypassed = [load(out / name) for name in names["bypassed"]]
    assert [image.shape for image in styled + bypassed] == [(demo.TINY_SIZE, demo.TINY_SIZE, 3)] * (2 * count)
    assert len({image.tobytes() for image in styled}) == count, "the images of the set are not all different"

    # The effect, measured on the saved images: the reference as without the node (within 1/255), every
    # target changed by it.
    delta = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(styled, bypassed)]
    assert delta[0].max() <= 1, f"the reference differs from its bypassed twin by {delta[0].max()}/255"
    for slot in range(1, count):
        assert delta[slot].max() > 0 and delta[slot].mean() > 0, f"target {slot} equals its bypassed twin"
    # What the demo prints agrees with this.
    assert f"[demo] slot 0 (reference) unchanged: max diff {delta[0].max()}/255" in printed
    for slot in range(1, count):
        assert f"[demo] slot {slot} (target) differs: mean {delta[slot].mean():.1f}, max {delta[slot].max()} /255" in printed

    # The contact sheet: three labelled rows (with StyleAligned, bypassed, the amplified difference), each
    # cell holding its image enlarged, the reference framed in every row.
    layout = demo.sheet_layout(count, demo.TINY_SIZE)
    assert (layout.columns, layout.rows, layout.thumb) == (4, 3, 256)
    sheet = load(sheet_path)
    cell_height = demo.ROW_TITLE_HEIGHT + 256 + 2 * demo.PAD + demo.LABEL_HEIGHT
    assert (sheet.shape[1], sheet.shape[0]) == layout.size == (4 * (256 + 2 * demo.PAD), demo.HEADER_HEIGHT + 3 * cell_height)
    amplified = [np.clip(d * demo.DIFFERENCE_GAIN, 0, 255).astype(np.uint8) for d in delta]
    rows = [styled, bypassed, amplified]
    for row, images in enumerate(rows):
        title_x, title_y = layout.row_title_origin(row)
        title_band = sheet[title_y:title_y + 20, title_x:layout.size[0] - demo.PAD]
        assert (title_band == demo.ROW_TITLE_COLOR).all(axis=-1).sum() > 100, f"row {row} has no title"
        for index, image in enumerate(images):
            left, top, right, bottom = layout.image_box(index, row)
            enlarged = image.repeat(layout.scale, axis=0).repeat(layout.scale, axis=1)
            assert np.array_equal(sheet[top:bottom, left:right], enlarged), f"row {row} cell {index} does not hold slot {index}"
            frame = sheet[top - demo.BORDER:top, left:right]  # the strip just above the image
            if index == 0:
                assert (frame == demo.REFERENCE_COLOR).all(), f"the reference is not framed in row {row}"
            else:
                assert (frame == demo.BACKGROUND).all(), f"slot {index} is framed like the reference in row {row}"
            # The labels: the slot line (the reference's in the marker colour), then the prompt line; under the
            # StyleAligned row a third line, the difference from the twin (in the text colour: nothing changed
            # where nothing should).
            band = lambda start, end: sheet[bottom + start:bottom + end, left:right]  # noqa: E731
            reference_marked = (band(4, 28) == demo.REFERENCE_COLOR).all(axis=-1).sum()
            assert (reference_marked > 50) == (index == 0), f"row {row} slot {index}: reference label"
            difference_line = band(46, 64)
            ink = (difference_line != demo.BACKGROUND).any(axis=-1).sum()
            assert (ink > 50) == (row == 0), f"row {row} slot {index}: difference line"
            if row == 0:
                assert (difference_line == demo.WARNING_COLOR).all(axis=-1).sum() == 0
    assert (out / "server.log").is_file()
