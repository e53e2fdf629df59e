"""The library's import graph: no cycles, and the training path only calls downward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sirr

PKG = Path(sirr.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _top_level_imports() -> dict[str, set[str]]:
    """``module -> sirr modules it imports when it is imported`` (module-level statements only:
    imports inside functions run later and cannot make an import cycle)."""
    mods = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for n in names:
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n.startswith("sirr") and n != mod:
                    graph[mod].add(n)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_checker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_sirr():
    cycle = _cycle(_top_level_imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("low, high", [
    ("sirr.train.engine", "sirr.methods"),
    ("sirr.train.location_aware", "sirr.methods"),
    ("sirr.train.two_stage", "sirr.methods"),
    ("sirr.models.location_aware", "sirr.train.engine"),
    ("sirr.losses.location_aware", "sirr.train.engine"),
    ("sirr.data.pool", "sirr.train.engine"),
])
def test_the_training_path_only_calls_downward(low, high):
    """CLI -> method -> engine -> models / losses / data: nothing below imports what is above it."""
    graph = _top_level_imports()
    seen, todo = set(), [low]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += graph.get(m, ())
    assert high not in seen, f"{low} imports {high} (directly or through another module)"
