"""The import graph of the two packages: no cycles, the training path only calls downward, and the science
(``sirr``) never imports the book's machinery (``sirrbook``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sirr

PKG = Path(sirr.__file__).parent
LIB = PKG.parent
MACHINERY = LIB / "sirrbook"


def _sources() -> list[Path]:
    """Every module of both packages (``lib/sirr`` and ``lib/sirrbook``)."""
    return sorted(PKG.rglob("*.py")) + sorted(MACHINERY.rglob("*.py"))


def _module_name(path: Path) -> str:
    rel = path.relative_to(LIB).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _top_level_imports() -> dict[str, set[str]]:
    """``module -> sirr modules it imports when it is imported`` (module-level statements only:
    imports inside functions run later and cannot make an import cycle)."""
    mods = {_module_name(p): p for p in _sources()}
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


def test_no_import_cycle_inside_sirr_and_sirrbook():
    cycle = _cycle(_top_level_imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("low, high", [
    ("sirr.train.engine", "sirr.methods"),
    ("sirr.train.location_aware", "sirr.methods"),
    ("sirr.train.two_stage", "sirr.methods"),
    ("sirr.models.location_aware", "sirr.train.engine"),
    ("sirr.losses.location_aware", "sirr.train.engine"),
    ("sirr.data.pool", "sirr.train.engine"),
    ("sirr.train", "sirrbook.train_cli"),
    ("sirr.methods", "sirrbook.train_cli"),
    ("sirrbook.experiments", "sirrbook.book"),
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


LIBRARY = ("sirr.models", "sirr.losses", "sirr.data", "sirr.metrics", "sirr.train", "sirrbook.experiments")


def _all_imports() -> dict[str, set[str]]:
    """``module -> sirr modules it imports anywhere`` (module level *and* inside functions, relative
    imports resolved): a lazy import is still a dependency."""
    mods = {_module_name(p): p for p in _sources()}
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
    """Library modules (:data:`LIBRARY`) that import ``sirrbook.book`` (or anything in it), directly or not."""
    lib = [m for m in graph if any(m == p or m.startswith(p + ".") for p in LIBRARY)]
    return sorted(m for m in lib
                  if any(n == "sirrbook.book" or n.startswith("sirrbook.book.") for n in _reaches(graph, m) - {m}))


def test_the_book_check_finds_an_upward_import():
    graph = {"sirr.train.engine": {"sirr.methods"}, "sirr.methods": {"sirrbook.book.prose"}, "sirrbook.book.prose": set(),
             "sirr.models.x": set()}
    assert _book_importers(graph) == ["sirr.train.engine"]
    assert _book_importers({"sirr.models.x": set(), "sirrbook.book": set()}) == []


def test_the_library_never_imports_the_book_build_tooling():
    """models / losses / data / metrics / train / experiments are the library a reader imports; the
    book's tooling (``sirrbook.book``: build, bench, chapter helpers, prose) sits above them."""
    graph = _all_imports()
    assert all(any(m == p or m.startswith(p + ".") for m in graph) for p in LIBRARY)
    offenders = _book_importers(graph)
    assert not offenders, f"library modules importing sirrbook.book: {offenders}"


def test_the_train_cli_lives_above_the_training_package():
    """``python -m sirr train`` is :mod:`sirrbook.train_cli`: nothing in ``sirr.train`` imports it or ``sirr.methods``."""
    graph = _all_imports()
    for m in graph:
        if m == "sirr.train" or m.startswith("sirr.train."):
            assert "sirrbook.train_cli" not in graph[m], f"{m} imports sirrbook.train_cli"
            assert "sirr.methods" not in graph[m], f"{m} imports sirr.methods"


# ------------------------------------------------------------------------------------------------
# The science (sirr) never imports the machinery (sirrbook)
# ------------------------------------------------------------------------------------------------

#: The one place ``sirr`` may name ``sirrbook``: ``python -m sirr`` imports the command line when it runs
#: (inside :func:`sirr.__main__.main`, never at import time).
ALLOWED_LAZY = {"sirr/__main__.py"}


def _machinery_imports(path: Path, rel: str) -> list[str]:
    """``line: statement`` of every import of ``sirrbook`` in ``path`` (any form: ``import``, ``from ... import``,
    ``importlib.import_module("sirrbook...")``, ``__import__``), except lazy ones inside a function of a file in
    :data:`ALLOWED_LAZY`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lazy_ok: set[int] = set()
    if rel in ALLOWED_LAZY:
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy_ok.update(id(n) for n in ast.walk(fn))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if fname in ("import_module", "__import__"):
                names = [node.args[0].value]
        if any(n == "sirrbook" or n.startswith("sirrbook.") for n in names) and id(node) not in lazy_ok:
            found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return found


def _science_importing_machinery() -> list[str]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        out += _machinery_imports(path, path.relative_to(LIB).as_posix())
    return out


def test_the_machinery_check_finds_every_form_of_import(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import importlib\nimport sirrbook.viz\nfrom sirrbook import experiments\n"
                   "importlib.import_module('sirrbook.results')\n"
                   "def f():\n    from sirrbook.cli import main\n")
    assert [s.split(":")[1] for s in _machinery_imports(src, "sirr/x.py")] == ["2", "3", "4", "6"]
    assert [s.split(":")[1] for s in _machinery_imports(src, "sirr/__main__.py")] == ["2", "3", "4"]


def test_the_science_never_imports_the_machinery():
    """No module of ``sirr`` imports ``sirrbook`` (at import time or lazily), except the entry point
    ``python -m sirr`` (:data:`ALLOWED_LAZY`), which imports the command line only when it runs."""
    assert MACHINERY.is_dir() and (PKG / "methods.py").is_file()
    offenders = _science_importing_machinery()
    assert not offenders, "sirr imports the machinery:\n" + "\n".join(offenders)


def test_importing_sirr_leaves_sirrbook_unimported():
    """Importing the whole science (every module of ``sirr``) in a fresh interpreter loads no ``sirrbook`` module."""
    import subprocess
    import sys

    mods = sorted(_module_name(p) for p in PKG.rglob("*.py") if p.name != "__main__.py")
    code = ("import importlib, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m == 'sirrbook' or m.startswith('sirrbook.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
