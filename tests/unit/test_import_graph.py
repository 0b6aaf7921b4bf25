"""The code's structure: no import cycles, no private names across modules, layers that only look down."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipelines", "models", "data_checks", "flows", "kerasflow")
# A package may import only from those below it.
LAYERS = {"models": set(), "data_checks": set(), "pipelines": {"models", "data_checks"},
          "flows": {"pipelines", "models", "data_checks"}, "kerasflow": {"flows", "pipelines"}}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import in the file, lazy and TYPE_CHECKING ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [alias.name for alias in node.names]
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in MODULES]
            found += [(m, []) for m in submodules]
            found.append((node.module, [n for n in names if f"{node.module}.{n}" not in MODULES]))
    return found


def _graph() -> dict[str, set[str]]:
    return {module: {target for target, _ in _imports(path) if target in MODULES and target != module}
            for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_every_package():
    graph = _graph()
    assert {"pipelines.train", "pipelines.retrain", "pipelines.search.run", "flows.cli", "models.hypermodel",
            "data_checks.drift"} <= set(graph)
    assert "pipelines.runs" in graph["pipelines.train"] and "pipelines.runs" in graph["pipelines.retrain"]


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_cross_modules_and_layers_only_look_down(module):
    package = module.split(".")[0]
    for target, names in _imports(MODULES[module]):
        top = target.split(".")[0]
        if top in LAYERS and top != package:
            assert top in LAYERS[package], f"{module} imports {target}: {package} may not use {top}"
        if target in MODULES and target != module:
            assert not [n for n in names if n.startswith("_")], f"{module} imports private names from {target}"


def test_pipelines_never_import_prefect_and_flows_do_not_borrow_from_each_other():
    for module, path in MODULES.items():
        targets = {target for target, _ in _imports(path)}
        if module.startswith("pipelines"):
            assert not {t for t in targets if t.split(".")[0] == "prefect"}, module
    assert "flows.train" not in _graph()["flows.retrain"]
