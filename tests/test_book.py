"""sirrbook.book: papermill runner (failure reporting, parameters, hidden plumbing), staging and TOC filtering.

These use tiny stub notebooks in a temporary repository (each kernel start costs a few seconds);
the real chapters are executed once, by the book test in tests/test_browser.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill")

from sirrbook.book import (  # noqa: E402
    NotebookExecutionError,
    hide_plumbing,
    run_book,
    run_notebook,
    select_notebooks,
    stage_book,
)
from sirrbook.book.build import _filter_toc, _toc_files  # noqa: E402
import sirr.config  # noqa: E402

PARAMS = ('preset = "smoke"  # smoke (CPU, CI) | demo (one GPU) | paper (the papers\' schedules)\n'
          "seed = 0\ndevice = None\ndata_root = None\nresults_dir = None\nretrain = False")


def write_nb(path: Path, *code: str) -> Path:
    """A notebook: markdown title (cell 1), parameters (cell 2), then the given code cells (3, 4, ...)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(PARAMS)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), p] + [nbformat.v4.new_code_cell(c) for c in code]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    return root


def test_failing_cell_is_named_and_the_run_stops(repo, tmp_path):
    write_nb(repo / "notebooks" / "01_ok.ipynb", "print(dict(preset=preset, seed=seed, device=device))")
    write_nb(repo / "notebooks" / "02_broken.ipynb", "x = 1 / 0", "print('never')")
    write_nb(repo / "notebooks" / "03_after.ipynb", "print('after')")
    build = tmp_path / "build"
    with pytest.raises(NotebookExecutionError,
                       match=r"^notebook 02_broken\.ipynb: cell 3 \[x = 1 / 0\] raised ZeroDivisionError: division by zero"
                       ) as exc:
        run_book(preset="demo", seed=3, device=None, root=repo, build_dir=build, html=False)
    err = exc.value
    assert (err.cell, err.ename) == (3, "ZeroDivisionError")
    assert "\n" not in str(err)
    # the first chapter ran, the failing one left no executed copy (only the failed one), the third never ran
    executed = build / "src" / "notebooks"
    assert (executed / "01_ok.ipynb").is_file()
    assert not (executed / "02_broken.ipynb").exists() and err.executed == build / "failed" / "02_broken.failed.ipynb"
    assert err.executed.is_file() and not (executed / "03_after.ipynb").exists()
    assert json.loads((build / "timings.json").read_text())["notebooks"].keys() == {"01_ok"}

    # parameters: only the non-None ones are injected; the plumbing cells are tagged for removal
    nb = nbformat.read(executed / "01_ok.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert 'preset = "demo"' in injected[0].source and "seed = 3" in injected[0].source
    assert "device" not in injected[0].source  # None -> the notebook's default
    hidden = [c for c in nb.cells if "remove-cell" in c.metadata.get("tags", [])]
    assert len(hidden) == 2
    assert "{'preset': 'demo', 'seed': 3, 'device': None}" in nb.cells[-1].outputs[0]["text"]
    # the sources are untouched (no outputs, no execution counts)
    src = nbformat.read(repo / "notebooks" / "01_ok.ipynb", as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in src.cells if c.cell_type == "code")


def test_cell_timeout_is_one_line_and_removes_a_stale_copy(repo):
    nb = write_nb(repo / "notebooks" / "01_slow.ipynb", "import time; time.sleep(30)")
    stale = repo / "out" / "01_slow.ipynb"
    stale.parent.mkdir()
    stale.write_text("{}")
    with pytest.raises(NotebookExecutionError, match=r"^notebook 01_slow\.ipynb: a cell raised CellTimeoutError") as exc:
        run_notebook(nb, stale, timeout=2)
    assert "\n" not in str(exc.value) and not stale.exists()


def test_run_notebook_refuses_its_own_source_and_missing_files(repo):
    nb = write_nb(repo / "notebooks" / "01_x.ipynb", "pass")
    with pytest.raises(ValueError, match="over its own source"):
        run_notebook(nb, nb)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_notebook(repo / "notebooks" / "nope.ipynb", repo / "out.ipynb")


def test_misspelled_parameter_is_refused_before_running(repo):
    nb = write_nb(repo / "notebooks" / "01_x.ipynb", "pass")
    with pytest.raises(ValueError, match=r"unknown parameter 'sed' for 01_x\.ipynb.*Did you mean 'seed'\?"):
        run_notebook(nb, repo / "out.ipynb", {"sed": 1})
    assert not (repo / "out.ipynb").exists()


def test_unknown_preset_fails_before_any_kernel(repo, tmp_path):
    from sirr.config import ConfigError

    write_nb(repo / "notebooks" / "01_x.ipynb", "pass")
    with pytest.raises(ConfigError, match="unknown preset 'smok'"):
        run_book(preset="smok", root=repo, build_dir=tmp_path / "b", html=False)


def test_hide_plumbing_tags_both_cells(tmp_path):
    path = write_nb(tmp_path / "01_x.ipynb", "pass")
    nb = nbformat.read(path, as_version=4)
    inj = nbformat.v4.new_code_cell("seed = 1")
    inj.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, inj)
    nbformat.write(nb, path)
    assert hide_plumbing(path) == 2
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert tags[1] == ["parameters", "remove-cell"] and tags[2] == ["injected-parameters", "remove-cell"]
    assert tags[3] == []
    assert hide_plumbing(path) == 2  # idempotent
    assert nbformat.read(path, as_version=4).cells[1].metadata["tags"].count("remove-cell") == 1


def test_select_notebooks_by_name_stem_or_number():
    nbs = [Path(f"notebooks/{n}.ipynb") for n in ("01_a", "02_b", "03_c")]
    assert select_notebooks(nbs, None) == nbs
    assert select_notebooks(nbs, ["03", "01_a.ipynb"]) == [nbs[0], nbs[2]]  # book order, not argument order
    assert select_notebooks(nbs, ["02_b"]) == [nbs[1]]
    with pytest.raises(ValueError, match="no such notebook; choose from 01_a, 02_b, 03_c"):
        select_notebooks(nbs, ["04"])


def test_stage_book_mirrors_the_repo_and_drops_missing_chapters(tmp_path):
    root = tmp_path / "repo"
    (root / "book").mkdir(parents=True)
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "lib" / "sirr").mkdir(parents=True)
    (root / "lib" / "sirr" / "x.py").write_text("def f():\n    pass\n")
    (root / "_config.yml").write_text("title: t\n")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n      - file: notebooks/01_a\n"
        "      - file: notebooks/02_b\n")
    src = tmp_path / "build" / "src"
    (src / "notebooks").mkdir(parents=True)
    (src / "notebooks" / "01_a.ipynb").write_text("{}")
    dropped = stage_book(root, src)
    assert dropped == ["notebooks/02_b"]
    assert (src / "lib" / "sirr" / "x.py").is_file() and (src / "book" / "intro.md").is_file()
    assert (src / "figures").is_dir() and (src / "_config.yml").is_file()
    import yaml

    assert _toc_files(yaml.safe_load((src / "_toc.yml").read_text())) == ["book/intro", "notebooks/01_a"]
    # the GPU page's timing tables are generated into the staged copy; without reports they say so
    generated = (src / "book" / "_generated" / "gpu_times.md").read_text()
    assert "No GPU bench report is stored" in generated
    status = (src / "book" / "_generated" / "status.md").read_text()  # the intro's table, with nothing stored
    assert status.count("**not run**") >= 5 and "**reproduced**" in status  # the parameter count needs no run


def test_status_rows_follow_the_stored_results(tmp_path):
    import dataclasses

    from sirrbook.book.status import STATUSES, status_rows
    from sirr.config import RunConfig, get_preset
    from sirrbook.results import save_result

    run = RunConfig(preset=get_preset("cpu"), results_dir=tmp_path)
    before = {r["claim or number"]: r for r in status_rows(tmp_path)}
    assert all(r["status"].split(" (")[0] in STATUSES for r in before.values())
    d = {"mean": 0.7, "low": 0.2, "high": 1.1, "verdict": "better", "n": 2}
    save_result(dataclasses.replace(run, seed=0), "la/full",
                {"steps": 650, "scores": {"real20": {"per_image": {"psnr_la": [19.0, 21.0]}}},
                 "vs_identity": {"real20": {"psnr_la": d}}}, seed=0)
    rows = {r["claim or number"]: r for r in status_rows(tmp_path)}
    la = next(r for k, r in rows.items() if k.startswith("LA Table 1"))
    assert la["status"] == "not reached at this compute" and la["ours"].startswith("20.00 dB")
    assert rows["removes reflections: better than the input on real20"]["status"] == "agrees at CPU scale"


def test_status_row_of_the_brightness_study_follows_its_interval(tmp_path):
    from sirr.config import RunConfig, get_preset
    from sirrbook.book.status import BEYOND_BRIGHTNESS, status_rows
    from sirrbook.results import save_result

    assert {r["claim or number"]: r for r in status_rows(tmp_path)}[BEYOND_BRIGHTNESS]["status"] == "not run"
    rng = np.random.default_rng(0)
    ident = list(rng.uniform(18, 24, 12))
    worse = [v - 0.5 + (0.05 if k % 2 else -0.05) for k, v in enumerate(ident)]  # brightness-matched: 0.5 dB below
    s = {"truth_ratio": [0.9] * 12, "output_ratio": [0.9] * 12, "psnr_identity": ident, "psnr_gain": ident,
         "psnr_model": ident, "psnr_identity_matched": ident, "psnr_model_matched": worse,
         "ssim_identity": [0.8] * 12, "ssim_gain": [0.8] * 12, "ssim_model": [0.8] * 12,
         "image": [f"i{k}" for k in range(12)]}
    save_result(RunConfig(preset=get_preset("cpu"), results_dir=tmp_path), "brightness/la",
                {"method": "la", "gain": {"gain": 0.9, "photos": 4}, "sets": {"real20": s}}, seed=0)
    row = {r["claim or number"]: r for r in status_rows(tmp_path)}[BEYOND_BRIGHTNESS]
    assert row["status"] == "disagrees at CPU scale" and row["ours"].startswith("-0.50 dB [")
    assert "over 12 photos" in row["ours"] and row["where"] == "06_evaluation"


def test_gpu_time_tables_come_from_the_stored_reports(tmp_path):
    from sirrbook.book.gpu_page import time_tables

    bench = tmp_path / "bench"
    bench.mkdir()
    report = {"device": "cuda (Test GPU)", "device_slug": "cuda-test", "repeats": 5, "iterations": 3,
              "provenance": {"commit": "abc"},
              "inference": [{"size": "400x540", "path": "fp32 eager", "median_s": 0.1}],
              "fastest": {"400x540": {"path": "fp32 eager", "median_s": 0.1}},
              "train_step": {"size": "256x256", "batch": 2, "median_s": 0.5, "amp": "bf16 autocast"}}
    (bench / "cuda-test.json").write_text(json.dumps(report))
    md = time_tables(tmp_path)
    assert "0.500 s" in md and "0.100 s" in md and "cuda-test.json" in md
    # chapter 3 at demo: (steps + fine-tuning) x the measured step, a lower bound
    demo = sirr.config.PRESETS["demo"].la
    minutes = round((demo.steps + demo.fine_tune_steps) * 0.5 / 60)
    assert f"{demo.steps + demo.fine_tune_steps:,} steps ≈ **{minutes} min**" in md


def test_gpu_page_preset_table_is_read_from_the_presets(monkeypatch):
    import dataclasses

    from sirrbook.book import gpu_page

    md = gpu_page.preset_table()
    cpu = sirr.config.PRESETS["cpu"]
    assert f"{cpu.la.steps:,} steps at lr 2e-4, then {cpu.la.fine_tune_steps:,} fine-tuning steps at lr 1e-4" in md
    assert md.count("\n- **`") == len(sirr.config.PRESETS)  # each preset's description under the table
    longer = dataclasses.replace(cpu, la=dataclasses.replace(cpu.la, steps=1234, fine_tune_steps=0))
    monkeypatch.setitem(sirr.config.PRESETS, "cpu", longer)
    md = gpu_page.preset_table()
    assert "1,234 steps at lr 2e-4; batch 2" in md and "then 400 fine-tuning" not in md


def test_filter_toc_keeps_order_and_drops_empty_parts():
    toc = {"root": "r", "parts": [{"caption": "A", "chapters": [{"file": "a"}, {"file": "b"}]},
                                  {"caption": "B", "chapters": [{"file": "c"}]}]}
    out, dropped = _filter_toc(toc, lambda f: f != "c")
    assert dropped == ["c"] and _toc_files(out) == ["r", "a", "b"] and len(out["parts"]) == 1


# -- what the built book shows ------------------------------------------------------------------------------
def test_repo_relative_paths(tmp_path):
    """Paths inside the repository are printed relative to its root; others are left as they are."""
    from sirr.messages import repo_relative, repo_relative_text
    from sirr.paths import REPO_ROOT

    assert repo_relative(REPO_ROOT / "results" / "smoke" / "la" / "full" / "0.json") == "results/smoke/la/full/0.json"
    assert repo_relative(str(REPO_ROOT / "runs" / "x" / ".." / "final.pt")) == "runs/final.pt"
    assert repo_relative(REPO_ROOT) == "."
    assert repo_relative("results/a.json") == "results/a.json"  # already relative: unchanged
    root = tmp_path / "w" / "repo"
    assert repo_relative(root / "figures" / "f.png", root=root) == "figures/f.png"
    # beside the checkout (the data root ../shared/data): relative to the root too; elsewhere: unchanged
    assert repo_relative(tmp_path / "w" / "shared" / "data", root=root) == "../shared/data"
    assert repo_relative(tmp_path / "w" / "repo2" / "a.json", root=root) == "../repo2/a.json"  # starts alike
    assert repo_relative(tmp_path / "a.json", root=root) == str(tmp_path / "a.json")
    assert repo_relative(f"{REPO_ROOT}2/a.json") == f"../{REPO_ROOT.name}2/a.json"

    text = (f"read stored result {root}/results/a.json; checkpoint '{root}/runs/b.pt'; "
            f"PosixPath('{root}/figures/f.png'); data under {tmp_path}/w/shared/data; elsewhere {tmp_path}/c "
            f"and {root}2/d and /x{root}/e")
    assert repo_relative_text(text, root=root) == (
        "read stored result results/a.json; checkpoint 'runs/b.pt'; PosixPath('figures/f.png'); "
        f"data under ../shared/data; elsewhere {tmp_path}/c and ../repo2/d and /x{root}/e")


def test_messages_and_result_lines_show_repo_relative_paths(tmp_path):
    """What the chapters print through the ``sirr`` logger (sirr.messages.show_messages), the stored-result
    lines (sirrbook.book.prose.result_line) and the results store's own messages carry no absolute repo path."""
    import io
    import logging

    from sirrbook.book.prose import result_line
    from sirr.messages import LOGGERS, show_messages
    from sirr.paths import REPO_ROOT

    out = io.StringIO()
    handler = show_messages(out)
    try:
        logging.getLogger("sirr.train.engine").info("[train] checkpoint %s; metrics %s", REPO_ROOT / "runs" / "a.pt",
                                                    f"{REPO_ROOT}/runs/metrics.jsonl")
        logging.getLogger("sirrbook.results").info("stored %s", REPO_ROOT / "results" / "x.json")
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).propagate = True
    assert out.getvalue() == "[train] checkpoint runs/a.pt; metrics runs/metrics.jsonl\nstored results/x.json\n"

    rec = {"method": "la", "variant": "full", "_provenance": {"seed": 0, "preset": "smoke"}, "steps": 6,
           "_path": str(REPO_ROOT / "results" / "smoke" / "la" / "full" / "0.json")}
    assert result_line(rec).endswith(" -> results/smoke/la/full/0.json")
    elsewhere = tmp_path / "0.json"  # beside the checkout (a clone under /tmp) it reads ../..., like ../shared/data
    beside = REPO_ROOT.parent in elsewhere.parents and REPO_ROOT.parent != Path(elsewhere.anchor)
    shown = f"../{elsewhere.relative_to(REPO_ROOT.parent).as_posix()}" if beside else str(elsewhere)
    assert result_line({**rec, "_path": str(elsewhere)}).endswith(f" -> {shown}")


def test_duplicate_inline_scripts_are_written_once():
    """sirrbook.book.sphinx_fixes: Sphinx 7.4 kept an extension's inline script as file name None and again as ''."""
    pytest.importorskip("sphinx")
    from sirrbook.book.sphinx_fixes import dedupe_scripts
    from sphinx.builders.html._assets import _JavaScript

    thebe = 'const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"'
    scripts = [_JavaScript("_static/doctools.js", priority=200), _JavaScript(None, body=thebe),
               _JavaScript("_static/sphinx-thebe.js", **{"async": "async"}), _JavaScript("", body=thebe),
               _JavaScript("_static/doctools.js", priority=200), _JavaScript("", body="var other = 1;")]
    kept = dedupe_scripts(scripts)
    assert kept == [scripts[0], scripts[1], scripts[2], scripts[5]]
    # the same file at another priority or with other attributes is another script
    assert len(dedupe_scripts([_JavaScript("a.js"), _JavaScript("a.js", priority=800),
                               _JavaScript("a.js", defer="defer")])) == 3


def test_config_loads_the_script_fix():
    yaml = pytest.importorskip("yaml")
    from sirr.config import REPO_ROOT

    cfg = yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert "sirrbook.book.sphinx_fixes" in cfg["sphinx"]["extra_extensions"]


def test_a_failed_html_build_raises_book_build_error_and_logs_its_warnings(tmp_path, monkeypatch, caplog):
    """The build's warnings go to the module logger and the error names the log file (the parameter for that file
    once shadowed the logger, so a failed build raised AttributeError instead)."""
    import subprocess
    import logging

    from sirrbook.book import build as build_mod

    fake = subprocess.CompletedProcess(args=[], returncode=1, stdout="x.md:3: WARNING: undefined label\n", stderr="")
    monkeypatch.setattr(build_mod.subprocess, "run", lambda *a, **k: fake)
    caplog.set_level(logging.ERROR, logger="sirrbook.book.build")
    with pytest.raises(build_mod.BookBuildError, match=r"1 warnings/errors.*undefined label.*full log: .*jb\.log"):
        build_mod.build_html(tmp_path / "src", tmp_path / "html", log_file=tmp_path / "jb.log")
    assert "undefined label" in caplog.text and "undefined label" in (tmp_path / "jb.log").read_text()
