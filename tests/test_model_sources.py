"""Every file a shipped workflow loads has a source: it is in tests/host/model_sources.py, in the README's
Models table (its folder, its repository, the workflow named), and in the workflow's own notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host.model_sources import MODEL_FILES, loaded_files, sources_note, with_sources_note

REPO_ROOT = Path(__file__).resolve().parents[1]
API_WORKFLOWS = sorted((REPO_ROOT / "workflows" / "api").glob("*.json"))


def workflow_files(api_path: Path) -> list[str]:
    return loaded_files(json.loads(api_path.read_text()))


def readme_models_table() -> dict[str, list[str]]:
    """file name -> the row's cells, from the README's "## Models" section."""
    readme = (REPO_ROOT / "README.md").read_text()
    assert "\n## Models\n" in readme, "the README has no Models section"
    section = readme.split("\n## Models\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4:
            rows[cells[0].strip("`")] = cells
    return rows


def test_shipped_workflows_are_found():
    assert len(API_WORKFLOWS) >= 9
    assert set(workflow_files(REPO_ROOT / "workflows/api/stylealigned_sd15_controlnet.json")) == {
        "v1-5-pruned-emaonly.safetensors", "control_v11p_sd15_canny.pth", "example.png"}


@pytest.mark.parametrize("api_path", API_WORKFLOWS, ids=lambda path: path.stem)
def test_every_loaded_file_has_a_source_in_the_readme_and_the_notes(api_path: Path):
    names = workflow_files(api_path)
    assert names, f"{api_path.name} loads no file?"
    missing = [name for name in names if name not in MODEL_FILES]
    assert not missing, f"{api_path.name} loads {missing}: add them to tests/host/model_sources.py and the README"
    table = readme_models_table()
    ui = json.loads((REPO_ROOT / "workflows" / api_path.name).read_text())
    notes = "\n".join(str(value) for node in ui["nodes"] if node["type"] == "Note" for value in node["widgets_values"])
    for name in names:
        file = MODEL_FILES[name]
        assert name in table, f"the README's Models table has no row for {name} ({api_path.stem})"
        _, folder, where, used_by = table[name]
        assert folder.strip("`").rstrip("/") == file.folder, f"{name}: the README says {folder}, the list {file.folder}"
        assert file.repository in where, f"{name}: the README does not name {file.repository}"
        assert f"`{api_path.stem}`" in used_by, f"{name}: the README does not say {api_path.stem} loads it"
        assert f"{file.path}: {file.where}" in notes, f"{api_path.stem}'s notes do not say where {name} comes from"


def test_readme_lists_no_file_the_list_lacks():
    assert set(readme_models_table()) <= set(MODEL_FILES)


def test_loaded_files_and_the_note_section():
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
              "2": {"class_type": "LoadImage", "inputs": {"image": "example.png", "upload": "image"}},
              "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo", "clip": ["1", 1]}},
              "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}}
    assert loaded_files(prompt) == ["sd_xl_base_1.0.safetensors", "example.png"]
    note = sources_note(["example.png"])
    assert note.splitlines()[1] == "- input/example.png: any picture of yours (ComfyUI ships one as input/example.png); pick it in Load Image"
    with pytest.raises(KeyError):
        sources_note(["unknown.safetensors"])
    spec = {"nodes": [{"type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
                      {"type": "Note", "widgets": {"text": "What to choose"}},
                      {"type": "Note", "widgets": {"text": "second"}}]}
    built = with_sources_note(spec)
    assert built["nodes"][1]["widgets"]["text"] == "What to choose\n\n" + sources_note(["sd_xl_base_1.0.safetensors"])
    assert built["nodes"][2]["widgets"]["text"] == "second" and spec["nodes"][1]["widgets"]["text"] == "What to choose"
