"""Every text that lists the supported model families names every family of the one registry (the UNet
route's UNET_MODELS and the registered transformer families): the node's description and tooltips
are built from it; pyproject.toml's description and the README's table are static and checked here."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from host.comfy_env import host_node_class
from test_core_family_registry import names

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def family_names(pack):
    return pack.nodes.family_names


@pytest.fixture(scope="module")
def patch_schema(pack):
    return host_node_class("StyleAlignedPatch").define_schema()


def tooltip(schema, input_name: str) -> str:
    return next(item.tooltip for item in schema.inputs if item.id == input_name)


def test_every_registered_transformer_family_names_its_models(pack, family_names):
    registry = pack.stylealign_core.transformer.registered_families()
    assert registry, "the registry is empty"
    for family in registry:
        assert family.models, f"{family.__module__}: {family.__name__}.models is empty: the texts would miss it"
    # Flux and Chroma (two host modules) share one family class, which is listed once.
    models = family_names.transformer_models()
    assert len(models) == len(set(models))
    assert {"Flux.1", "Chroma", "Qwen-Image", "Z-Image"} <= set(models)
    assert family_names.supported_models()[:3] == ("SD1.x", "SD2.x", "SDXL")


def test_word_list(family_names):
    assert family_names.word_list(["a"]) == "a"
    assert family_names.word_list(["a", "b"]) == "a and b"
    assert family_names.word_list(("a", "b", "c")) == "a, b and c"


def test_patch_node_description_and_model_tooltip_name_every_family(family_names, patch_schema):
    for model in family_names.supported_models():
        assert names(patch_schema.description, model), f"the patch node's description misses {model}"
        assert names(tooltip(patch_schema, "model"), model), f"the model input's tooltip misses {model}"


@pytest.mark.parametrize("input_name", ["transformer_blocks", "reference_key_scale"])
def test_per_family_default_tooltips_name_every_transformer_family(family_names, patch_schema, input_name):
    text = tooltip(patch_schema, input_name)
    for family in family_names.transformer_families():
        for model in family.models:
            assert names(text, model), f"{input_name}'s tooltip misses {model}"
        # The family's own default value is given right after its names.
        if input_name == "reference_key_scale":
            assert f"{' / '.join(family.models)} {family.default_key_scale:g}" in text
    assert "ours, untested on real weights" in text


def test_unsupported_family_error_names_every_family(family_names, pack, error_type):
    class UnknownTransformer(torch.nn.Module):  # no UNet blocks, a module no family covers
        pass

    model = SimpleNamespace(get_model_object=lambda name: UnknownTransformer(), model=SimpleNamespace())
    with pytest.raises(error_type) as raised:
        pack.nodes.transformer_model.transformer_family(model, "StyleAlignedPatch")
    message = str(raised.value)
    assert message.startswith("StyleAlignedPatch: the model family") and "UnknownTransformer" in message
    missing = [model for model in family_names.supported_models() if not names(message, model)]
    assert not missing, f"the unsupported-family error misses {missing}"


def test_pyproject_description_names_every_family(family_names):
    # The [project] table's description line (tomllib is Python 3.11+; the pack supports 3.10).
    description = re.search(r'^description = "(.*)"$', (REPO_ROOT / "pyproject.toml").read_text(), re.M).group(1)
    missing = [model for model in family_names.supported_models() if not names(description, model)]
    assert not missing, f"pyproject.toml's description misses {missing}"


def test_readme_supported_models_table_names_every_family(family_names):
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Supported models and their defaults", 1)[1].split("\n## ", 1)[0]
    first_cells = " ".join(line.split("|")[1] for line in section.splitlines() if line.startswith("| "))
    missing = [model for model in family_names.supported_models() if not names(first_cells, model)]
    assert not missing, f"the README's supported-models table misses {missing}"
