"""Structure of the chapters and of the book's configuration (cheap: nothing is executed).

- every chapter: nbformat-valid, kernel ``python3``, a markdown title first, exactly one cell tagged
  ``parameters`` with exactly the six parameters (valid preset name, documented defaults), then a
  hidden code cell that opens the chapter (resolves the run, prints the provenance header); committed without outputs;
- the TOC lists every notebook in numeric order and nothing else; every TOC file exists;
- the Jupyter Book config never executes notebooks and serves the widget JavaScript from the book.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
yaml = pytest.importorskip("yaml")

from sirrbook.book import PARAMETER_NAMES, list_notebooks  # noqa: E402
from sirrbook.book.build import _toc_files  # noqa: E402
from sirr.config import PRESETS, REPO_ROOT  # noqa: E402

NOTEBOOKS = list_notebooks(REPO_ROOT / "notebooks") if (REPO_ROOT / "notebooks").is_dir() else []
EXPECTED_DEFAULTS = {"seed": 0, "device": None, "data_root": None, "results_dir": None, "retrain": False}


def _read(path):
    return nbformat.read(path, as_version=4)


def _toc():
    return yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))


def test_there_are_chapters():
    assert NOTEBOOKS, f"no NN_*.ipynb chapters in {REPO_ROOT / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_parameters_cell(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec name must be python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# "), \
        "the first cell must be a markdown title"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters' (need exactly one)"
    cell = nb.cells[tagged[0]]
    assert cell.cell_type == "code"
    tree = ast.parse(cell.source)
    assigned = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            f"{path.name}: the parameters cell may only assign the parameters, found {ast.dump(node)[:60]}"
        assigned[node.targets[0].id] = ast.literal_eval(node.value)
    assert tuple(assigned) == PARAMETER_NAMES, f"{path.name}: parameters are {tuple(assigned)}"
    assert assigned["preset"] in PRESETS, f"{path.name}: unknown preset {assigned['preset']!r}"
    assert {k: assigned[k] for k in EXPECTED_DEFAULTS} == EXPECTED_DEFAULTS
    # papermill reads the cell with its own line parser (an "=" inside a comment once hid `preset` from it)
    papermill = pytest.importorskip("papermill")
    assert tuple(papermill.inspect_notebook(str(path))) == PARAMETER_NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_code_cell_after_parameters_opens_the_chapter_and_is_hidden(path):
    nb = _read(path)
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nxt = next(c for c in nb.cells[i + 1:] if c.cell_type == "code")
    src = nxt.source
    assert re.search(r"run = open_chapter\(\s*preset\s*,", src), \
        f"{path.name}: the cell after parameters must call run = open_chapter(preset, ...)"
    for name in PARAMETER_NAMES[1:]:
        assert re.search(rf"\b{name}\s*=\s*{name}\b", src), f"{path.name}: open_chapter(...) must receive {name}={name}"
    assert "hide-input" in nxt.metadata.get("tags", []), f"{path.name}: tag the setup cell hide-input"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_verdict_cells_show_their_verdict_not_their_code(path):
    nb = _read(path)
    for i, c in enumerate(nb.cells, 1):
        tags = c.metadata.get("tags", [])
        if "verdict" in tags:
            assert c.cell_type == "code" and "hide-input" in tags, f"{path.name}: cell {i} (verdict) must be hide-input"


def test_open_chapter_resolves_prints_the_header_and_seeds(capsys, tmp_path):
    import torch

    from sirrbook.book.setup import open_chapter

    run = open_chapter("smoke", seed=3, device="cpu", data_root="none", results_dir=tmp_path)
    assert (run.preset.name, run.seed, str(run.device)) == ("smoke", 3, "cpu")
    assert "preset 'smoke' | seed 3 | device cpu" in capsys.readouterr().out
    a = torch.rand(2)
    open_chapter("smoke", seed=3, device="cpu", data_root="none", results_dir=tmp_path)
    assert torch.equal(a, torch.rand(2))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_sources_have_no_outputs(path):
    nb = _read(path)
    for i, c in enumerate(nb.cells, 1):
        if c.cell_type == "code":
            assert not c.outputs, f"{path.name}: cell {i} has outputs (commit notebooks without outputs)"
            assert c.execution_count is None, f"{path.name}: cell {i} has an execution count"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in the source"


def test_toc_lists_every_notebook_in_numeric_order_and_nothing_else():
    files = _toc_files(_toc())
    chapters = [f for f in files if f.startswith("notebooks/")]
    on_disk = [f"notebooks/{p.stem}" for p in NOTEBOOKS]
    assert chapters == sorted(chapters, key=lambda f: Path(f).name), "TOC chapters are not in numeric order"
    assert chapters == on_disk, f"TOC {chapters} != notebooks/ {on_disk}"


def test_toc_files_exist_and_intro_then_running():
    files = _toc_files(_toc())
    assert files[:2] == ["book/intro", "book/running"]
    for f in files:
        base = REPO_ROOT / f
        assert any(base.with_name(base.name + ext).is_file() for ext in (".md", ".ipynb")), f"TOC file {f} missing"


def test_config_never_executes_and_serves_widget_js_from_the_book():
    cfg = yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["only_build_toc_files"] is True
    assert cfg["author"] == "the sirr book contributors"
    assert {"amsmath", "dollarmath", "colon_fence"} <= set(cfg["parse"]["myst_enable_extensions"])
    sph = cfg["sphinx"]["config"]
    static = [REPO_ROOT / p for p in sph["html_static_path"]]
    js = list(sph["nb_ipywidgets_js"])
    assert js and all("://" not in j for j in js), "widget JS must be served by the book, not a CDN"
    assert "html_js_files" not in sph, "widget JS belongs only on pages with widget state (nb_ipywidgets_js)"
    for name in js + [sph["mathjax_path"]]:
        assert any((d / name).is_file() for d in static), f"{name} is not in {sph['html_static_path']}"


def test_vendored_files_match_their_recorded_checksums():
    static = REPO_ROOT / "book" / "_static"
    readme = (static / "README.md").read_text(encoding="utf-8")
    recorded = dict((m.group(2), m.group(1)) for m in re.finditer(r"`([0-9a-f]{64})`\s+`([^`]+)`", readme))
    assert {"embed-amd.js", "require.js", "mathjax/tex-chtml-full.js"} <= set(recorded)
    for rel, digest in recorded.items():
        assert hashlib.sha256((static / rel).read_bytes()).hexdigest() == digest, f"{rel} differs from README.md"


def test_bad_inputs_table_names_tests_that_exist():
    """Every ``test_x.py::test_y`` (or ``::test_y`` after one) in running.md's bad-input table exists."""
    text = (REPO_ROOT / "book" / "running.md").read_text(encoding="utf-8")
    table = text[text.index("(bad-inputs)="):]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and "test_" in ln]
    assert len(rows) >= 20, "the bad-input table lost rows"
    missing = []
    for row in rows:
        current = None
        for m in re.finditer(r"`(test_\w+\.py)?(?:::(test_\w+))?`", row):
            current = m.group(1) or current
            if m.group(2):
                src = (REPO_ROOT / "tests" / current).read_text(encoding="utf-8")
                if not re.search(rf"^def {m.group(2)}\(", src, re.M):
                    missing.append(f"{current}::{m.group(2)}")
            elif m.group(1):
                assert (REPO_ROOT / "tests" / current).is_file(), current
    assert not missing, f"running.md names tests that do not exist: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_a_summary_and_exercises(path):
    """A book that teaches: each chapter's last two sections are a summary and 3-5 numbered exercises."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]
    heads = [("".join(c["source"]).lstrip().splitlines() or [""])[0] for c in cells]
    assert heads[-2].startswith("## Summary") and heads[-1].startswith("## Exercises"), heads[-3:]
    exercises = "".join(cells[-1]["source"])
    numbered = re.findall(r"^(?:\*\*)?\d+\. ", exercises, flags=re.MULTILINE)  # "1. " or "**1. Title.**"
    assert 3 <= len(numbered) <= 5, f"{path.name}: {len(numbered)} exercises"


def _listings() -> list[tuple[str, str, str]]:
    """(chapter, file, object) of every ``literalinclude`` with ``:pyobject:`` in the chapters."""
    out = []
    for path in NOTEBOOKS:
        text = "".join(c.source for c in _read(path).cells)
        out += [(path.stem, f, o) for f, o in re.findall(r"literalinclude\} \.\./(\S+)\n:pyobject: (\S+)", text)]
    return out


def test_every_code_listing_fits_80_columns():
    """A chapter's listing (literalinclude :pyobject:) is read without scrolling: decorators to last line <= 80 columns."""
    listings = _listings()
    shown = {o for _, _, o in listings}
    assert {"LocationAware.forward", "la_step", "LocationAwareLoss.forward", "UNet.forward", "ts_step",
            "synthesize_la", "laplacian_map"} <= shown
    for chapter, file, name in listings:
        source = (REPO_ROOT / file).read_text()
        body, node = ast.parse(source).body, None
        for part in name.split("."):
            node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
            assert node is not None, f"{chapter}: {file} has no {name} (the listing would be empty)"
            body = node.body
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        wide = [line for line in source.splitlines()[first - 1:node.end_lineno] if len(line) > 80]
        assert not wide, f"{chapter}: {name} has {len(wide)} lines over 80 columns, e.g. {wide[0]!r}"
