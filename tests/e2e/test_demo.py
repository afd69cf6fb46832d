"""The README's demo command (`python tests/host/demo.py`), run through its main function with the tiny
random checkpoint: it starts its own headless ComfyUI with the pack, runs the shipped SD1.5 set workflow,
writes the images and a contact sheet into the output folder and prints the sheet's path last."""

from __future__ import annotations

import numpy as np
from PIL import Image

from host import demo
from host.api_workflows import load_prompt, nodes_of


def test_demo_main_writes_images_and_contact_sheet(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--tiny"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    sheet_path = out / "contact_sheet.png"
    assert printed[-1] == str(sheet_path), "the contact sheet's path must be the last line printed"
    assert any("noise from random weights" in line for line in printed), "the tiny run must say its pictures are noise"

    # The set: one image per prompt line of the shipped workflow, at the demo's tiny size, slot 0 the reference.
    workflow = load_prompt(demo.WORKFLOW)
    lines = workflow[nodes_of(workflow, "StyleAlignedPromptBatch")[0]]["inputs"]["prompts"].strip().splitlines()
    names = [f"stylealigned_slot{i}{'_reference' if i == 0 else ''}.png" for i in range(len(lines))]
    assert sorted(path.name for path in out.glob("stylealigned_slot*.png")) == sorted(names)
    images = [np.asarray(Image.open(out / name).convert("RGB")) for name in names]
    assert [image.shape for image in images] == [(demo.TINY_SIZE, demo.TINY_SIZE, 3)] * len(lines)
    assert len({image.tobytes() for image in images}) == len(images), "the images of the set are not all different"

    # The contact sheet: the expected grid, each cell holding its image (enlarged), the reference framed.
    layout = demo.sheet_layout(len(images), demo.TINY_SIZE)
    assert (layout.columns, layout.rows, layout.thumb) == (4, 1, 256)
    sheet = np.asarray(Image.open(sheet_path).convert("RGB"))
    assert (sheet.shape[1], sheet.shape[0]) == layout.size == (4 * (256 + 2 * demo.PAD), demo.HEADER_HEIGHT + 256 + 2 * demo.PAD + demo.LABEL_HEIGHT)
    for index, image in enumerate(images):
        left, top, right, bottom = layout.image_box(index)
        enlarged = image.repeat(layout.scale, axis=0).repeat(layout.scale, axis=1)
        assert np.array_equal(sheet[top:bottom, left:right], enlarged), f"cell {index} does not hold slot {index}"
        frame = sheet[top - demo.BORDER:top, left:right]  # the strip just above the image
        if index == 0:
            assert (frame == demo.REFERENCE_COLOR).all(), "the reference is not framed"
        else:
            assert (frame == demo.BACKGROUND).all(), f"slot {index} is framed like the reference"
    # The labels under the reference are drawn in the marker colour, under the others not.
    label_rows = lambda i: sheet[layout.image_box(i)[3] + 4:layout.image_box(i)[3] + 28, layout.image_box(i)[0]:layout.image_box(i)[2]]
    assert (label_rows(0) == demo.REFERENCE_COLOR).all(axis=-1).sum() > 50
    assert (label_rows(1) == demo.REFERENCE_COLOR).all(axis=-1).sum() == 0
    assert (out / "server.log").is_file()
