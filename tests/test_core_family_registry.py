"""The transformer-family registry alone (pure torch, no host): every module of
stylealign_core/transformer/families is found and declares the whole interface, the registry recognises
models by their class's module, and no product module outside a family's own file names that family
(its name, its models, its host modules): adding a family is adding one file."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest

from stylealign_core.transformer import families as families_package
from stylealign_core.transformer.family import TransformerFamily
from stylealign_core.transformer.families import family_for, registered_families

REPO_ROOT = Path(__file__).resolve().parents[1]
PRODUCT_DIRS = ("nodes", "stylealign_core")


def names(text: str, model: str) -> bool:
    """`model` appears as a name of its own ("SD3" is not found inside "SD3.5", "Flux.1" not in "Flux.10",
    a name followed by a letter or digit ("FluxFamily") is another word)."""
    return re.search(rf"(?<![\w.]){re.escape(model)}(?!\w|\.\d)", text) is not None


def family_file(family) -> Path:
    return Path(sys.modules[family.__module__].__file__).resolve()


def product_files() -> list[Path]:
    files = [REPO_ROOT / "__init__.py"]
    for folder in PRODUCT_DIRS:
        files += sorted((REPO_ROOT / folder).rglob("*.py"))
    return [path.resolve() for path in files]


def test_name_check_is_exact():
    assert names("SD3 and SD3.5", "SD3") and names("SD3.5 only", "SD3.5") and names("a Flux-style table", "Flux")
    assert not names("SD3.5 only", "SD3") and not names("Flux.10", "Flux.1") and not names("xSDXL", "SDXL")
    assert not names("class FluxFamily", "Flux")


def test_every_family_module_is_registered_in_module_order():
    modules = sorted(info.name for info in pkgutil.iter_modules(families_package.__path__))
    registered = registered_families()
    assert [family.__module__.rsplit(".", 1)[1] for family in registered] == modules
    for module in modules:
        exported = importlib.import_module(f"{families_package.__name__}.{module}").FAMILY
        assert isinstance(exported, type) and issubclass(exported, TransformerFamily), module


@pytest.mark.parametrize("family", registered_families(), ids=lambda family: family.__module__.rsplit(".", 1)[1])
def test_family_declares_the_whole_interface(family):
    assert family.name and family.name != TransformerFamily.name
    assert family.models and all(isinstance(model, str) and model for model in family.models)
    assert family.host_modules and all(module.startswith("comfy.") for module in family.host_modules)
    assert family.groups and set(family.default_groups) <= set(family.groups)
    assert family.default_key_scale > 0
    assert family.width_axis is None or isinstance(family.width_axis, int)
    assert isinstance(family.uses_pre_rope_hook, bool) and isinstance(family.defaults_from, str)
    # The host half and the block recognition are the family's own (not the base's NotImplementedError).
    for member in ("block_key", "block_counts", "call_layout"):
        assert getattr(family, member) is not getattr(TransformerFamily, member), f"{family.__name__} lacks {member}"


def test_host_modules_and_models_belong_to_one_family_each():
    modules = [module for family in registered_families() for module in family.host_modules]
    models = [model for family in registered_families() for model in family.models]
    assert len(modules) == len(set(modules)) and len(models) == len(set(models))


def test_family_for_recognises_a_model_by_its_class_module():
    for family in registered_families():
        for module in family.host_modules:
            diffusion_model = type("HostModel", (), {"__module__": module})()
            assert family_for(diffusion_model) is family
    assert family_for(type("Unknown", (), {"__module__": "comfy.ldm.unknown.model"})()) is None


def test_no_product_module_outside_its_own_file_names_a_family():
    """Family names, model names and host module strings live only in the family's file: the node texts,
    errors and tooltips read the registry."""
    files = {path: path.read_text() for path in product_files()}
    found = []
    for family in registered_families():
        own = family_file(family)
        words = tuple(dict.fromkeys((family.name,) + tuple(family.models)))
        for path, text in files.items():
            if path == own:
                continue
            found += [f"{path.relative_to(REPO_ROOT)} names {word!r}" for word in words if names(text, word)]
            found += [f"{path.relative_to(REPO_ROOT)} names {module!r}" for module in family.host_modules if module in text]
    assert not found, "\n".join(found)


def test_the_naming_check_sees_each_family_in_its_own_file():
    """The check above is not vacuous: every family's strings are found in its own file."""
    for family in registered_families():
        text = family_file(family).read_text()
        assert all(names(text, word) for word in (family.name,) + tuple(family.models))
        assert all(module in text for module in family.host_modules)
