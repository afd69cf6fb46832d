"""Refused families (stylealign_core/transformer/refused/*.py's REFUSED): found by discovery, never among
the registered families, recognised by the host module, refused with the node and the cause."""

from stylealign_core.transformer.families import registered_families
from stylealign_core.transformer.refused import RefusedFamily, refused_families, refused_family_for


def model_of_module(module: str):
    return type("HostModel", (), {"__module__": module})()


def test_refused_families_are_discovered_and_not_registered():
    refused = refused_families()
    assert refused and all(issubclass(family, RefusedFamily) and family.name and family.cause for family in refused)
    assert not set(refused) & set(registered_families())
    registered_modules = {module for family in registered_families() for module in family.host_modules}
    assert not registered_modules & {module for family in refused for module in family.host_modules}


def test_recognised_by_module_and_refused_with_node_and_cause():
    family = refused_families()[0]
    assert refused_family_for(model_of_module(family.host_modules[0])) is family
    assert refused_family_for(model_of_module("some.other.model")) is None
    message = family.refusal("StyleAlignedPatch")
    assert message.startswith(f"StyleAlignedPatch: {family.name} is not supported: ") and message.endswith(family.cause)
