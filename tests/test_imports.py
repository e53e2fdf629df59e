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
    ("sirr.train", "sirr.cli"),
    ("sirr.methods", "sirr.cli"),
    ("sirr.experiments", "sirr.book"),
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


LIBRARY = ("sirr.models", "sirr.losses", "sirr.data", "sirr.metrics", "sirr.train", "sirr.experiments")


def _all_imports() -> dict[str, set[str]]:
    """``module -> sirr modules it imports anywhere`` (module level *and* inside functions, relative
    imports resolved): a lazy import is still a dependency."""
    mods = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[:len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for n in names:
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n.startswith("sirr") and n != mod:
                    graph[mod].add(n)
    return graph


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += graph.get(m, ())
    return seen


def _book_importers(graph: dict[str, set[str]]) -> list[str]:
    """Library modules (:data:`LIBRARY`) that import ``sirr.book`` (or anything in it), directly or not."""
    lib = [m for m in graph if any(m == p or m.startswith(p + ".") for p in LIBRARY)]
    return sorted(m for m in lib
                  if any(n == "sirr.book" or n.startswith("sirr.book.") for n in _reaches(graph, m) - {m}))


def test_the_book_check_finds_an_upward_import():
    graph = {"sirr.train.engine": {"sirr.methods"}, "sirr.methods": {"sirr.book.prose"}, "sirr.book.prose": set(),
             "sirr.models.x": set()}
    assert _book_importers(graph) == ["sirr.train.engine"]
    assert _book_importers({"sirr.models.x": set(), "sirr.book": set()}) == []


def test_the_library_never_imports_the_book_tooling():
    """models / losses / data / metrics / train / experiments are the library a reader imports; the
    book's tooling (``sirr.book``: build, bench, chapter helpers, prose) sits above them."""
    graph = _all_imports()
    assert all(any(m == p or m.startswith(p + ".") for m in graph) for p in LIBRARY)
    offenders = _book_importers(graph)
    assert not offenders, f"library modules importing sirr.book: {offenders}"


def test_the_train_cli_lives_above_the_training_package():
    """``python -m sirr train`` is :mod:`sirr.cli`: nothing in ``sirr.train`` imports it or ``sirr.methods``."""
    graph = _all_imports()
    for m in graph:
        if m == "sirr.train" or m.startswith("sirr.train."):
            assert "sirr.cli" not in graph[m], f"{m} imports sirr.cli"
            assert "sirr.methods" not in graph[m], f"{m} imports sirr.methods"
