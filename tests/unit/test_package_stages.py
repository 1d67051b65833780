"""memoryx_deploy is grouped by stage: schema (the stack's shape) < inputs (the user's data, read and
validated) < model (the stack, built and checked across items) < render (what is made from it)
< operate (the running stack); the top-level modules (the CLI, the filters, the public API) may use
them all. A module imports from its own stage or an earlier one, never a later one, and no
import circle exists between modules. The Ansible filter plugins are shims."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "memoryx_deploy"
STAGES = ("schema", "inputs", "model", "render", "operate")
TOP = len(STAGES)  # __init__, __main__, filters


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> int:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 2 and parts[1] in STAGES else TOP


def imports(path: Path) -> set[str]:
    """The memoryx_deploy modules `path` imports (`from memoryx_deploy.x import y` names x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("memoryx_deploy"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("memoryx_deploy")}
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "data" not in p.parts}
GRAPH = {name: {m for m in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of `graph` (module -> the modules it imports), or []."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_every_subpackage_is_a_stage_and_says_what_it_holds() -> None:
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert folders == sorted(STAGES)
    for name in STAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and doc.startswith(f"Stage {STAGES.index(name)}"), name


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_no_later_stage(module: str) -> None:
    later = sorted(m for m in GRAPH[module] if stage(m) > stage(module))
    assert later == [], f"{module} (stage {stage(module)}) imports later stages: {later}"


def test_no_import_circle() -> None:
    assert cycle(GRAPH) == []


def test_the_circle_finder_finds_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []


def test_the_filter_plugins_are_shims() -> None:
    for shim in sorted((ROOT / "plugins" / "filter").glob("*.py")):
        tree = ast.parse(shim.read_text())
        defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        assert defined == ["FilterModule"], shim.name
        assert len(shim.read_text().splitlines()) <= 15, shim.name
