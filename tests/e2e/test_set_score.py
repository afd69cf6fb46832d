"""StyleAlignedSetScore on the real server: the shipped set-score workflow's graph, exact properties of the
scores and of the picture, and the errors.

The server's CLIP Vision Loader reads a stand-in (tests/host/tiny_clip_vision_file.py): a full-size CLIP
ViT-L/14 vision tower with random weights, the smallest file the host's loader accepts; the shipped workflow
names a DINOv2-large file. With random weights the scores say nothing about style, so what is checked here
is what holds for any encoder: 1 for copies of one picture, the relation between the two scores of a set
[A, B, A], both sets reported and drawn side by side, errors that name the node and the input. The shipped
workflow itself runs in test_server.py (test_shipped_api_workflow_runs) and loads in test_browser.py. Each
prompt here holds at most two distinct pictures (the node encodes each distinct picture once), so the
ViT-L on the CPU costs seconds.
"""

from __future__ import annotations

import io
import itertools
import re

import numpy as np
import pytest
import torch
from PIL import Image

from host.api_workflows import API_WORKFLOWS_DIR, SHIPPED_IMAGE_NAME, adapt_for_tiny_models, load_prompt, nodes_of
from host.server import ComfyServer, ExecutionFailed
from host.tiny_checkpoint import TINY_CHECKPOINT_NAME
from host.tiny_clip_vision_file import RANDOM_CLIP_VISION_NAME
from stylealign_core.scoring.heatmap import DIAGONAL, Panel, colour_of, heatmap_picture

NODE = "StyleAlignedSetScore"
WORKFLOW = "stylealigned_sd15_set_score"
RUN_TIMEOUT = 300
SCORE_LINE = re.compile(r"^(images|compare_images): set_consistency (-?\d\.\d{4}) \(mean over (\d+) pairs of (\d+) images\), "
                        r"reference_similarity (-?\d\.\d{4}) \(to image (\d+)\)$")


def the_only(prompt: dict, class_type: str) -> str:
    (node_id,) = nodes_of(prompt, class_type)
    return node_id


def preview_images(server: ComfyServer, entry: dict, node_id: str) -> list[np.ndarray]:
    images = []
    for ref in server.output_images(entry, node_id=node_id, kind="temp"):
        with Image.open(io.BytesIO(server.view(ref))) as png:
            images.append(np.asarray(png.convert("RGB")).copy())
    return images


def score_lines(text: str) -> dict[str, tuple[float, int, int, float, int]]:
    """{set name: (set_consistency, pairs, images, reference_similarity, reference slot)} from the node's report."""
    found = {}
    for line in text.splitlines():
        match = SCORE_LINE.match(line)
        if match:
            name, consistency, pairs, count, to_reference, reference = match.groups()
            found[name] = (float(consistency), int(pairs), int(count), float(to_reference), int(reference))
    return found


def score_prompt(batches: dict, reference_index: int = 0) -> dict:
    """A = the test picture (node 1), B = its inverse (node 2); `batches` builds node 8, the scored set."""
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": SHIPPED_IMAGE_NAME}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": RANDOM_CLIP_VISION_NAME}},
        **batches,
        "9": {"class_type": NODE, "inputs": {"images": ["8", 0], "clip_vision": ["3", 0], "reference_index": reference_index}},
    }
    return prompt


def image_batch(first: str, second: str) -> dict:
    return {"class_type": "ImageBatch", "inputs": {"image1": [first, 0], "image2": [second, 0]}}


def test_shipped_workflow_compares_the_set_with_and_without_the_patch():
    """The graph: the score's images are the StyleAligned set, its compare_images the same sampler settings
    on the unpatched model; the heatmap is previewed."""
    prompt = adapt_for_tiny_models(load_prompt(API_WORKFLOWS_DIR / f"{WORKFLOW}.json"), TINY_CHECKPOINT_NAME,
                                   clip_vision_name=RANDOM_CLIP_VISION_NAME)
    score_id = the_only(prompt, NODE)
    score = prompt[score_id]["inputs"]
    decoded = [prompt[score[name][0]] for name in ("images", "compare_images")]
    assert [node["class_type"] for node in decoded] == ["VAEDecode", "VAEDecode"]
    patched, plain = (prompt[node["inputs"]["samples"][0]]["inputs"] for node in decoded)
    assert prompt[patched["model"][0]]["class_type"] == "StyleAlignedPatch"
    assert prompt[plain["model"][0]]["class_type"] == "CheckpointLoaderSimple"
    assert {k: v for k, v in patched.items() if k != "model"} == {k: v for k, v in plain.items() if k != "model"}
    assert prompt[score["clip_vision"][0]]["inputs"] == {"clip_name": RANDOM_CLIP_VISION_NAME}
    assert score["reference_index"] == prompt[the_only(prompt, "StyleAlignedPatch")]["inputs"]["reference_index"]
    assert [score_id, 2] in [prompt[nid]["inputs"]["images"] for nid in nodes_of(prompt, "PreviewImage")]


def test_copies_of_one_picture_score_one(comfy):
    prompt = score_prompt({"8": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}}})
    scores = score_lines(comfy.run(prompt, timeout=RUN_TIMEOUT)["outputs"]["9"]["text"][0])
    assert scores == {"images": (1.0, 3, 3, 1.0, 0)}


def test_two_sets_side_by_side(comfy):
    """images [A, B, A], compare_images [B, A, B], reference 0. With s the similarity of A and B, for any
    encoder: reference_similarity r = (s + 1) / 2 and set_consistency (2s + 1) / 3 = (4r − 1) / 3, the same for
    both sets; the picture shows two 3×3 panels whose cells (0, 2) and (2, 0) have the colour of 1, the other
    off-diagonal cells the colour of s, the diagonal neutral."""
    prompt = score_prompt({
        "20": image_batch("1", "2"), "8": image_batch("20", "1"),    # [A, B, A]
        "30": image_batch("2", "1"), "31": image_batch("30", "2"),   # [B, A, B]
    })
    prompt["9"]["inputs"]["compare_images"] = ["31", 0]
    prompt["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["9", 2]}}
    entry = comfy.run(prompt, timeout=RUN_TIMEOUT)

    (text,) = entry["outputs"]["9"]["text"]
    scores = score_lines(text)
    assert set(scores) == {"images", "compare_images"}, text
    consistency, pairs, count, to_reference, reference = scores["images"]
    assert (pairs, count, reference) == (3, 3, 0)
    assert abs(consistency - (4 * to_reference - 1) / 3) < 2e-4
    assert abs(scores["compare_images"][0] - consistency) < 2e-4 and abs(scores["compare_images"][3] - to_reference) < 2e-4
    assert "images - compare_images: set_consistency " in text

    (heatmap,) = preview_images(comfy, entry, "10")
    layout = heatmap_picture([Panel("", (), torch.zeros(3, 3), 0)] * 2)
    assert heatmap.shape == tuple(layout.pixels.shape)
    similarity = 2 * to_reference - 1
    for cells in layout.cells:
        for i, j in itertools.product(range(3), repeat=2):
            x0, y0, _, _ = cells[i][j]
            fill = heatmap[y0 + 2, x0 + 2].astype(int)
            expected = DIAGONAL if i == j else colour_of(1.0 if {i, j} == {0, 2} else similarity)
            assert np.abs(fill - np.array(expected)).max() <= 2, (i, j, fill, expected)


@pytest.mark.parametrize("batches, reference_index, words", [
    ({"8": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}}, 0, ("images holds 1 image",)),
    ({"8": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}}}, 2,
     ("reference_index 2 is outside images (2 images",)),
], ids=["one_image", "reference_outside"])
def test_errors_fail_the_prompt_not_the_server(comfy, batches, reference_index, words):
    with pytest.raises(ExecutionFailed) as failure:
        comfy.run(score_prompt(batches, reference_index), timeout=RUN_TIMEOUT)
    message = str(failure.value)
    assert f"{NODE}: {NODE}: " in message and all(word in message for word in words), message
    assert comfy.alive()
