"""Newer-host schema features (ComfyUI 0.33: `advanced` inputs, `search_aliases`) used where the host has
them, and the same code loading on hosts without them (0.3.75), with node ids, input names and defaults
unchanged on both. The host of this process is the default one (or COMFYUI_PATH); the other host in
.cache/ is checked in a child process that loads it in-process the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from host.comfy_env import host_node_classes, load_host
from host.fetch_comfyui import CACHE_DIR, comfyui_path

TESTS_DIR = Path(__file__).resolve().parent
HOSTS = {"0.3.75": CACHE_DIR / "comfyui-0.3.75", "0.33.0": CACHE_DIR / "comfyui-0.33.0"}

# The public contract: the patch node's inputs with their defaults, in the host's order (required, then
# optional); new inputs may be added.
PATCH_INPUTS = [
    ("model", None), ("reference_index", 0), ("share_attention", True), ("adain_queries", True),
    ("adain_keys", True), ("adain_values", False), ("reference_strength", 1.0), ("share_input_blocks", True),
    ("share_middle_block", True), ("share_output_blocks", True), ("shared_layer_fraction", 1.0),
    ("start_percent", 0.0), ("end_percent", 1.0),
    ("transformer_blocks", "auto"), ("shift_reference_positions", True), ("reference_key_scale", 0.0), ("reference", None),
]
PACK_NODE_IDS = {
    "StyleAlignedPatch", "StyleAlignedPromptBatch", "StyleAlignedInvertReference", "StyleAlignedSaveReference",
    "StyleAlignedLoadReference", "StyleAlignedSetScore", "StyleAlignedSplitSet", "StyleAlignedGatherSet",
}

CHILD_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from host.comfy_env import load_host
from test_schema_features_host import pack_node_infos
features = load_host().nodes.schema_features
infos = pack_node_infos()
print(json.dumps({{"advanced": features.INPUTS_HAVE_ADVANCED, "aliases": features.SCHEMA_HAS_SEARCH_ALIASES,
                  "infos": infos}}, default=str))
"""


def pack_node_infos() -> dict:
    return {node_id: cls.GET_NODE_INFO_V1() for node_id, cls in host_node_classes().items()
            if node_id.startswith("StyleAligned")}


def inputs_in_order(info: dict) -> list[tuple[str, dict]]:
    return [*info["input"].get("required", {}).items(), *info["input"].get("optional", {}).items()]


def check_contract_and_features(infos: dict, has_advanced: bool, has_aliases: bool, advanced_names) -> None:
    assert PACK_NODE_IDS <= set(infos)
    patch = inputs_in_order(infos["StyleAlignedPatch"])
    names = [name for name, _ in patch]
    assert [name for name in names if name in dict(PATCH_INPUTS)] == [name for name, _ in PATCH_INPUTS], \
        "an input of StyleAlignedPatch was renamed, removed or moved"
    for name, default in PATCH_INPUTS:
        assert dict(patch)[name][1].get("default") == default, f"{name}'s default changed"
    advanced = {name for name, spec in patch if spec[1].get("advanced")}
    assert advanced == (set(advanced_names) if has_advanced else set())
    assert not advanced & {"model", "reference_index", "reference_strength", "reference"}, "basic inputs folded away"
    for node_id in infos:  # every StyleAligned node the host registered, new ones included
        aliases = infos[node_id].get("search_aliases")
        if has_aliases:
            assert {"consistent style", "shared attention", "batch style"} <= set(aliases), node_id
            assert len(aliases) > 4, f"{node_id} has no search words of its own"
        else:
            assert not aliases, node_id
    if has_aliases:
        assert "style transfer" in infos["StyleAlignedPatch"]["search_aliases"]


def host_version(host: Path) -> str:
    text = (host / "comfyui_version.py").read_text()
    return text.split("__version__ = ")[1].strip().strip("\"'")


def test_this_host(pack):
    features = pack.nodes.schema_features
    version = host_version(comfyui_path())
    if version in HOSTS:  # the two hosts the pack is tested on: the feature detection must find what each has
        assert features.INPUTS_HAVE_ADVANCED == features.SCHEMA_HAS_SEARCH_ALIASES == (version == "0.33.0")
    check_contract_and_features(pack_node_infos(), features.INPUTS_HAVE_ADVANCED, features.SCHEMA_HAS_SEARCH_ALIASES,
                                pack.nodes.patch_node.ADVANCED_INPUTS)


def test_the_other_host_in_a_child_process(pack):
    this = host_version(comfyui_path())
    others = [(version, path) for version, path in HOSTS.items() if version != this]
    present = [(version, path) for version, path in others if (path / "comfy" / "model_patcher.py").is_file()]
    if not present:
        pytest.skip(f"no other host in {CACHE_DIR} (tests/host/setup.sh fetches them)")
    for version, path in present:
        child = subprocess.run([sys.executable, "-c", CHILD_SCRIPT.format(tests=str(TESTS_DIR))], capture_output=True,
                               text=True, env={**os.environ, "COMFYUI_PATH": str(path)}, timeout=600)
        assert child.returncode == 0, child.stderr[-3000:]
        result = json.loads(child.stdout.strip().splitlines()[-1])
        assert result["advanced"] == result["aliases"] == (version == "0.33.0")
        check_contract_and_features(result["infos"], result["advanced"], result["aliases"],
                                    pack.nodes.patch_node.ADVANCED_INPUTS)
        # The same inputs, types and defaults on both hosts.
        as_json = lambda info: json.loads(json.dumps(  # noqa: E731
            [(name, spec[0], spec[1].get("default")) for name, spec in inputs_in_order(info)], default=str))
        for node_id, info in pack_node_infos().items():
            assert as_json(info) == as_json(result["infos"][node_id]), node_id


def test_unknown_input_name_is_refused(pack):
    from comfy_api.latest import io

    schema = io.Schema(node_id="Probe", inputs=[io.Int.Input("steps", default=1)], outputs=[])
    with pytest.raises(ValueError, match="Probe: no inputs named \\['stpes'\\]"):
        pack.nodes.schema_features.with_advanced_inputs(schema, "steps", "stpes")
    marked = pack.nodes.schema_features.with_advanced_inputs(schema, "steps")
    assert bool(getattr(marked.inputs[0], "advanced", None)) == pack.nodes.schema_features.INPUTS_HAVE_ADVANCED
