"""The product's import graph: no cycle, and no module importing one of a layer above it.

Layers, lowest first (a module may import its own layer and those below):
    maths      stylealign_core.maths.*: tensor maths on plain arguments
    shared     the core's other top-level modules and subpackages (options, share flags, batch layout,
               held reference, the "patch never ran" guard, override chain, real_image, prompts, sets,
               scoring): what both routes use
    route      stylealign_core.unet.* and stylealign_core.transformer.*; the two routes never import each
               other, and a family (transformer/families/*) imports only transformer/ and below
    core       stylealign_core (the package's facade, re-exporting both routes)
    nodes      nodes.* (host glue; may import anything of the core)
Read with `ast` from the source (TYPE_CHECKING imports count too). `python tests/test_import_graph.py`
prints the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stylealign_core", "nodes")
LAYERS = ("maths", "shared", "route", "core", "nodes")


def product_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def is_package(module: str, modules: dict[str, Path]) -> bool:
    return modules[module].name == "__init__.py"


def imports_of(module: str, modules: dict[str, Path]) -> set[str]:
    """The product modules `module` imports (relative imports resolved; `from . import x` names module x)."""
    tree = ast.parse(modules[module].read_text(encoding="utf-8"))
    package = module if is_package(module, modules) else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target in modules:
                found.add(target)
            for alias in node.names:  # `from .pkg import submodule`
                if f"{target}.{alias.name}" in modules:
                    found.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    return {module: imports_of(module, modules) for module in modules}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "nodes":
        return "nodes"
    if len(parts) == 1:
        return "core"
    if parts[1] == "maths":
        return "maths"
    if parts[1] in ("unet", "transformer"):
        return "route"
    return "shared"


def route_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "stylealign_core" and len(parts) > 1 and parts[1] in ("unet", "transformer") else None


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in graph.items():
        for target in sorted(targets):
            if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)):
                found.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)}), a layer above it")
            elif route_of(module) and route_of(target) and route_of(module) != route_of(target):
                found.append(f"{module} imports {target}: the two routes never import each other")
            elif ".transformer.families." in f"{module}." and layer_of(target) == "route" and route_of(target) != "transformer":
                found.append(f"{module} (a family) imports {target}: families import only transformer/ and below")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (one per back edge)."""
    found, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_no_module_imports_a_layer_above_it():
    graph = import_graph()
    assert "stylealign_core.unet.model_call" in graph and "nodes.patch_set" in graph  # the walk found the product
    assert violations(graph) == []


def test_no_import_cycle():
    assert [cycle for cycle in cycles(import_graph()) ] == []


def test_the_checks_catch_what_they_look_for():
    """The checks themselves fail on a graph that breaks the rules (so a green run means something)."""
    graph = {
        "stylealign_core.maths.adain": {"stylealign_core.options"},
        "stylealign_core.options": {"stylealign_core.batch_layout"},
        "stylealign_core.batch_layout": {"stylealign_core.options"},
        "stylealign_core.unet.attn1_patch": {"stylealign_core.transformer.rope"},
        "stylealign_core.transformer.rope": set(),
        "stylealign_core.transformer.families.flux": {"stylealign_core.unet.layer_selection"},
        "stylealign_core.unet.layer_selection": set(),
    }
    assert len(violations(graph)) == 3
    assert cycles(graph) == [["stylealign_core.batch_layout", "stylealign_core.options", "stylealign_core.batch_layout"]]


def test_core_source_names_no_host_module():
    """The static half of the rule that stylealign_core imports no ComfyUI module (test_core_without_comfy.py
    checks it at run time)."""
    host_roots = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "latent_preview", "node_helpers", "server", "nodes"}
    modules = product_modules()
    offending = []
    for module, path in modules.items():
        if not module.startswith("stylealign_core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else [])
            offending += [f"{module}: {name}" for name in names if name.split(".")[0] in host_roots]
    assert offending == []


if __name__ == "__main__":
    graph = import_graph()
    for layer in reversed(LAYERS):
        print(f"[{layer}]")
        for module in sorted(m for m in graph if layer_of(m) == layer):
            print(f"  {module} -> {', '.join(sorted(graph[module])) or '(nothing of the product)'}")
    print("violations:", violations(graph) or "none")
    print("cycles:", cycles(graph) or "none")
