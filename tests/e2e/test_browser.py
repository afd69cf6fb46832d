"""The shipped UI workflows in the real front end (headless Chromium, selenium).

Each `workflows/*.json` is loaded with `window.app.loadGraphData` into the page the test server serves
(`host.frontend.FrontEnd`); it must load without missing node types, alerts ("Invalid workflow against
zod schema" included), warning toasts, dialogs or console errors, and its conversion in the page
(`await app.graphToPrompt()`) must equal its API twin in `workflows/api/` (regenerate a twin with
`python tests/host/frontend.py workflows/NAME.json`), and the file itself must be what the front end exports
for the loaded graph (the shipped files are built with `python tests/host/build_workflows.py`). A screenshot
of each loaded graph is kept in `.cache/artifacts/browser/`. Skipped only when Chromium, chromedriver or selenium is not installed.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from host import distributed
from host.api_workflows import API_WORKFLOWS_DIR, SHIPPED_IMAGE_NAME, WORKFLOWS_DIR, ui_twin, write_test_image
from host.frontend import BrowserUnavailable, FrontEnd, find_browser
from host.server import comfy_server

UI_WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.json"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# The folder each loader of the shipped workflows reads its file from (ComfyUI's folder names).
LOADER_FOLDERS = {
    "CheckpointLoaderSimple": "checkpoints", "ControlNetLoader": "controlnet", "CLIPVisionLoader": "clip_vision",
    "UNETLoader": "diffusion_models", "VAELoader": "vae", "CLIPLoader": "text_encoders", "DualCLIPLoader": "text_encoders",
    "LoraLoader": "loras", "LoraLoaderModelOnly": "loras", "StyleModelLoader": "style_models",
}
MODEL_FILE = re.compile(r"\.(safetensors|sft|ckpt|pt|pth|bin|gguf)$")


def shipped_model_files() -> dict[str, set[str]]:
    """{folder: file names} of every model file a shipped UI workflow names."""
    files: dict[str, set[str]] = {}
    for path in UI_WORKFLOWS:
        for node in json.loads(path.read_text())["nodes"]:
            for value in node.get("widgets_values") or []:
                if isinstance(value, str) and MODEL_FILE.search(value):
                    assert node["type"] in LOADER_FOLDERS, f"{path.name}: add {node['type']}'s model folder to LOADER_FOLDERS"
                    files.setdefault(LOADER_FOLDERS[node["type"]], set()).add(value)
    return files


@pytest.fixture(scope="module")
def browser_comfy(tmp_path_factory, artifacts_dir):
    """A server whose folders list every file the shipped workflows name, as a user who has the models sees
    it: front end 1.49 (ComfyUI 0.33) marks a loader whose file the server does not list with an error. The
    files are empty placeholders: this server only serves the front end, nothing is sampled on it."""
    base = tmp_path_factory.mktemp("comfy-browser-base")
    placeholder = tmp_path_factory.mktemp("placeholder") / "placeholder.safetensors"
    placeholder.write_bytes(b"")
    image = write_test_image(tmp_path_factory.mktemp("browser-inputs") / SHIPPED_IMAGE_NAME)
    models = {folder: {name: placeholder for name in names} for folder, names in shipped_model_files().items()}
    if distributed.find_tarball() is not None:  # the distributed workflow's nodes come from ComfyUI-Distributed
        distributed.install(base)
    try:
        with comfy_server(base, models=models, inputs={SHIPPED_IMAGE_NAME: image}) as server:
            yield server
    finally:
        if (base / "server.log").is_file():
            shutil.copyfile(base / "server.log", artifacts_dir / "e2e-browser-server.log")


@pytest.fixture(scope="module")
def page(request):
    try:
        find_browser()
    except BrowserUnavailable as reason:
        pytest.skip(f"browser test needs Chromium and chromedriver: {reason}")
    comfy = request.getfixturevalue("browser_comfy")  # only once a browser is known to be there
    with FrontEnd(comfy.url) as front_end:
        yield front_end


@pytest.fixture(scope="module")
def screenshots_dir(artifacts_dir) -> Path:
    path = artifacts_dir / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_ui_workflows_are_shipped():
    assert UI_WORKFLOWS, "no workflows/*.json"


@pytest.mark.parametrize("ui_path", UI_WORKFLOWS, ids=[path.stem for path in UI_WORKFLOWS])
def test_ui_workflow_avoids_known_schema_traps(ui_path: Path):
    """What the front end's zod schema rejects and hand edits or other tools tend to write."""
    workflow = json.loads(ui_path.read_text())
    assert workflow.get("version") == 0.4 or workflow.get("version") == 1
    assert "floatingLinks" not in workflow or isinstance(workflow["floatingLinks"], list)
    assert "reroutes" not in (workflow.get("extra") or {})
    assert "definitions" not in workflow or isinstance(workflow["definitions"], dict)
    slot_indices = [(node["id"], out["name"]) for node in workflow["nodes"] for out in node.get("outputs", []) if "slot_index" in out]
    assert slot_indices == [], f"outputs with slot_index: {slot_indices}"
    assert any(node["type"] in ("Note", "MarkdownNote") for node in workflow["nodes"]), "no note for the user"
    # The saved view: below 0.6 the front end draws nodes without their text ("low quality" rendering).
    assert workflow.get("extra", {}).get("ds", {}).get("scale", 1) >= 0.6


def test_every_api_twin_has_its_ui_workflow():
    for api_path in sorted(API_WORKFLOWS_DIR.glob("*.json")):
        assert ui_twin(api_path).is_file(), f"{api_path} has no UI workflow {ui_twin(api_path)}"


def test_front_end_starts_with_the_pack(page):
    # The server is fresh for this session, so the front end showed its first-run Templates dialog: closed.
    assert page.templates_dialog_closed
    assert page.open_dialogs() == []
    assert page.driver.execute_script("return 'StyleAlignedPatch' in LiteGraph.registered_node_types")


def same_graph(shipped: dict, exported: dict) -> list[str]:
    """What differs between two exports of one graph in what it computes: node ids and types, links, and
    every node's widget values where the shipped file has some."""
    differences = []
    nodes, again = ({node["id"]: node for node in graph["nodes"]} for graph in (shipped, exported))
    if nodes.keys() != again.keys():
        differences.append(f"node ids {sorted(nodes)} -> {sorted(again)}")
    for node_id in nodes.keys() & again.keys():
        before, after = nodes[node_id], again[node_id]
        if before["type"] != after["type"]:
            differences.append(f"node {node_id}: type {before['type']} -> {after['type']}")
        if before.get("widgets_values") and before["widgets_values"] != after.get("widgets_values"):
            differences.append(f"node {node_id} ({before['type']}): widgets_values {before['widgets_values']} -> {after.get('widgets_values')}")
    if shipped["links"] != exported["links"]:
        differences.append("links differ")
    return differences


@pytest.mark.parametrize("ui_path", UI_WORKFLOWS, ids=[path.stem for path in UI_WORKFLOWS])
def test_ui_workflow_loads_cleanly_and_matches_its_api_twin(page, screenshots_dir, ui_path: Path):
    workflow = json.loads(ui_path.read_text())
    needs = sorted({node["type"] for node in workflow["nodes"] if node["type"].startswith("Distributed")})
    if needs and not page.driver.execute_script(f"return {json.dumps(needs)}.every(t => t in LiteGraph.registered_node_types)"):
        reason = distributed.missing_reason() if distributed.find_tarball() is None else "the server did not register them"
        pytest.skip(f"{ui_path.name} uses ComfyUI-Distributed's nodes {needs}: {reason}")
    result = page.load_workflow(workflow, name=ui_path.stem, screenshot=screenshots_dir / f"{ui_path.stem}.png")
    assert result.problems() == [], f"{ui_path.name} does not load cleanly"
    assert result.node_count == len(workflow["nodes"])
    assert result.link_count == len(workflow["links"])
    assert result.screenshot.read_bytes()[:8] == PNG_MAGIC and result.screenshot.stat().st_size > 10_000

    # The file is what the front end that built it writes for this graph (load + export gives it back
    # unchanged), so it carries every input the nodes have now (e.g. StyleAlignedPatch's optional reference).
    # A newer front end (1.49 on ComfyUI 0.33) exports in its own richer format (named widget values, sizes):
    # there the same nodes, links and widget values must come back.
    rebuild = (f"rebuild it with: python tests/host/build_workflows.py {ui_path.stem} (or re-export a hand-edited file "
               f"with: python tests/host/frontend.py --resave {ui_path})")
    saved_by = workflow.get("extra", {}).get("frontendVersion")
    if result.converted_workflow.get("extra", {}).get("frontendVersion") == saved_by:
        assert result.converted_workflow == workflow, f"{ui_path.name} is not what the front end exports for it; {rebuild}"
    else:
        assert same_graph(workflow, result.converted_workflow) == [], f"{ui_path.name} changes on loading; {rebuild}"

    assert result.api_prompt, result.notes
    (screenshots_dir / f"{ui_path.stem}.api.json").write_text(json.dumps(result.api_prompt, indent=2) + "\n")
    api_path = API_WORKFLOWS_DIR / ui_path.name
    assert api_path.is_file(), f"no API twin {api_path}; write it with: python tests/host/frontend.py {ui_path}"
    api_twin = json.loads(api_path.read_text())
    if result.converted_workflow.get("extra", {}).get("frontendVersion") != saved_by:
        # Another host names some core nodes differently (0.33: DualCLIPLoader is "Load CLIP (Dual)"): the
        # display titles in `_meta` are informational; what runs must be the same.
        result.api_prompt, api_twin = ({nid: {k: v for k, v in node.items() if k != "_meta"} for nid, node in prompt.items()}
                                       for prompt in (result.api_prompt, api_twin))
    assert result.api_prompt == api_twin, (
        f"{api_path} differs from the front end's conversion of {ui_path} "
        f"(see {screenshots_dir / (ui_path.stem + '.api.json')}); regenerate with: python tests/host/frontend.py {ui_path}")


def test_checker_reports_schema_alert_and_missing_nodes(page, screenshots_dir):
    """The clean loads above mean something only if the same checks do catch a broken workflow."""
    broken = copy.deepcopy(json.loads(UI_WORKFLOWS[0].read_text()))
    broken["floatingLinks"] = None
    broken["nodes"][0]["type"] = "StyleAlignedNoSuchNode"
    result = page.load_workflow(broken, name="broken", screenshot=screenshots_dir / "_broken.png")
    problems = "\n".join(result.problems())
    assert "Invalid workflow against zod schema" in problems
    assert "missing node types: ['StyleAlignedNoSuchNode']" in problems
    # And the next load starts clean again (the "missing nodes" dialog is closed first).
    assert page.load_workflow(UI_WORKFLOWS[0]).problems() == []
