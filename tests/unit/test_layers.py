"""The package's layers hold (docs/architecture.md), read from the code with `ast`, nothing run:

- no import cycle between the project's modules, lazy imports included;
- plan/ (imported when Snakemake builds the DAG) imports nothing from saes/, results/, steps/,
  tools/ or demo/, and neither it nor any project module it imports at module level imports
  torch, SAE Bench, SAE Lens, TransformerLens or matplotlib at module level: `snakemake -n` stays
  torch-free;
- hub.py imports nothing from saes/ (saes/ imports it);
- a project module imported inside a function says why on that line or the one above;
- every module is under 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "workflow_scripts"
HEAVY = ("torch", "sae_bench", "sae_lens", "transformer_lens", "matplotlib", "seaborn")
PLAN_MAY_NOT_IMPORT = ("saes", "results", "steps", "tools", "demo")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(root.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) of every import in the file; `from a import b`
    yields a.b when a.b is a module of the package, else a."""
    known = set(modules())
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                name = candidate if candidate in known else node.module
                found.append((name, node.lineno, id(node) in top_level))
    return found


def project_graph(module_level_only: bool = False) -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        graph[name] = {
            target
            for target, _, top in imports(path)
            if target in known and target != name and (top or not module_level_only)
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert cycles(project_graph()) == []


def test_cycle_detection_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def layer(name: str) -> str:
    return name.split(".")[1] if name.count(".") else ""


def test_plan_imports_no_later_layer():
    bad = [
        (name, target)
        for name, path in modules().items()
        if layer(name) == "plan"
        for target, _, _ in imports(path)
        if target.startswith("workflow_scripts.") and layer(target) in PLAN_MAY_NOT_IMPORT
    ]
    assert bad == []


def heavy_reached(start: str, graph: dict[str, set[str]]) -> list[str]:
    """Heavy libraries imported at module level by `start` or a module it imports at module
    level, as 'module: library'."""
    seen, todo, found = set(), [start], []
    known = modules()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for target, _, top in imports(known[name]):
            if top and target.split(".")[0] in HEAVY:
                found.append(f"{name}: {target}")
        todo += graph[name]
    return found


@pytest.mark.parametrize("name", [n for n in modules() if layer(n) == "plan"])
def test_plan_is_torch_free_at_module_level(name):
    assert heavy_reached(name, project_graph(module_level_only=True)) == []


def test_the_torch_free_check_sees_through_module_level_imports():
    graph = project_graph(module_level_only=True)
    assert any(r.endswith(": torch") for r in heavy_reached("workflow_scripts.saes.loading", graph))


def test_hub_imports_nothing_from_saes():
    assert [t for t, _, _ in imports(PACKAGE / "hub.py") if layer(t) == "saes"] == []


def test_lazy_project_imports_say_why():
    silent = []
    for path in modules().values():
        lines = path.read_text().splitlines()
        for target, line, top in imports(path):
            if top or not target.startswith("workflow_scripts"):
                continue
            here, above = lines[line - 1], lines[line - 2] if line > 1 else ""
            if "#" not in here and not above.strip().startswith("#"):
                silent.append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    assert silent == []


def test_every_module_is_under_400_lines():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) >= MAX_LINES
    }
    assert long == {}
