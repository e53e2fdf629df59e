"""Run the book: execute the chapters with papermill, then build the HTML with Jupyter Book 1.x.

``run_book`` is what ``make book`` / ``python -m sirr book`` call:

1. every ``notebooks/NN_*.ipynb`` (or the ``only=`` subset) is executed **in order** with papermill
   (kernel ``python3``, working directory ``notebooks/``), with the parameters ``preset``, ``seed``,
   ``device``, ``data_root``, ``results_dir`` and ``retrain`` injected (only those that are not
   ``None``). Executed copies go to ``<build_dir>/src/notebooks/`` -- never over the sources. The
   first failing cell stops the run with :class:`NotebookExecutionError` naming the notebook and the
   cell (``cell N`` = N-th cell of the source notebook, markdown included); the failed copy is kept
   in ``<build_dir>/failed/`` for inspection.
2. Papermill's injected-parameters cell and the ``parameters`` cell are tagged ``remove-cell`` in
   the executed copies (the chapter's first code cell prints the preset, seed, device, versions and
   commit, so readers lose nothing).
3. A staging tree ``<build_dir>/src/`` mirrors the repository (``_config.yml``, ``_toc.yml``,
   ``book/``, ``figures/``, ``lib/`` -- so ``literalinclude ../lib/...`` resolves -- and the executed
   ``notebooks/``), and Jupyter Book builds it with ``execute_notebooks: "off"`` and warnings as
   errors (``--warningiserror --keep-going``) into ``<build_dir>/html/``.

Per-notebook wall times are logged (logger ``sirrbook.book.build``) and written to ``<build_dir>/timings.json``.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

from sirr.atomic import atomic_write_text
from sirrbook.book.gpu_page import GENERATED, PRESETS_GENERATED, preset_table, time_tables
from sirrbook.book.status import STATUS_GENERATED, status_markdown
from sirr.config import REPO_ROOT, get_preset
from sirr.errors import SirrError

log = logging.getLogger(__name__)

__all__ = [
    "NotebookExecutionError",
    "BookBuildError",
    "PARAMETER_NAMES",
    "list_notebooks",
    "select_notebooks",
    "run_notebook",
    "hide_plumbing",
    "stage_book",
    "build_html",
    "rebuild_html",
    "run_book",
]

#: The parameters every chapter's ``parameters`` cell defines, in order.
PARAMETER_NAMES = ("preset", "seed", "device", "data_root", "results_dir", "retrain")
_NOTEBOOK_RE = re.compile(r"^\d\d_.+\.ipynb$")
_HIDE_TAGS = ("injected-parameters", "parameters")


class NotebookExecutionError(SirrError, RuntimeError):
    """A chapter failed: one line naming the notebook, the cell and the exception."""

    def __init__(self, notebook, cell: int | None, ename: str, evalue: str, executed: Path | None = None,
                 source_line: str = ""):
        self.notebook = Path(notebook)
        self.cell = cell
        self.ename = ename
        self.evalue = evalue
        self.executed = executed
        first = (evalue or "").strip().splitlines()
        where = f"cell {cell}" if cell is not None else "a cell"
        code = f" [{source_line.strip()[:60]}]" if source_line.strip() else ""
        msg = f"notebook {self.notebook.name}: {where}{code} raised {ename}: {first[0] if first else ''}"
        if executed is not None:
            msg += f" (executed copy with the traceback: {executed})"
        super().__init__(msg)


class BookBuildError(SirrError, RuntimeError):
    """Jupyter Book reported warnings or errors (they are errors here)."""


# -- finding notebooks --------------------------------------------------------------------------------
def _repo_root(root=None) -> Path:
    if root is not None:
        return Path(root).resolve()
    return REPO_ROOT


def list_notebooks(notebooks_dir) -> list[Path]:
    """The chapters ``NN_*.ipynb`` in ``notebooks_dir``, in numeric order."""
    d = Path(notebooks_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {d}")
    return sorted(p for p in d.iterdir() if _NOTEBOOK_RE.match(p.name))


def select_notebooks(notebooks: Sequence[Path], only: Iterable[str] | None) -> list[Path]:
    """Keep the notebooks named in ``only`` (file names, stems, or the ``NN`` prefix), in book order."""
    if not only:
        return list(notebooks)
    wanted = [str(o) for o in only]
    picked = []
    for o in wanted:
        key = Path(o).name
        hits = [p for p in notebooks if key in (p.name, p.stem, p.stem.split("_", 1)[0])]
        if not hits:
            names = ", ".join(p.stem for p in notebooks)
            raise ValueError(f"--only {o!r}: no such notebook; choose from {names}")
        picked.extend(h for h in hits if h not in picked)
    return [p for p in notebooks if p in picked]


# -- running one notebook ---------------------------------------------------------------------------
@contextlib.contextmanager
def _inline_matplotlib():
    """Kernels inherit the environment: ``MPLBACKEND=Agg`` (set by CI and tests) would hide every
    inline figure in the book, so the kernel is started with the inline backend."""
    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old


def _source_cell_number(source_nb, failed_source: str, cell_index: int) -> tuple[int | None, str]:
    """1-based position of the failed cell in the *source* notebook, and the first line of its code.

    Papermill reports the index in the executed notebook (one injected-parameters cell added after
    the ``parameters`` cell), so the cell is found by its source; among identical cells, the one
    nearest to that index wins."""
    hits = [i for i, c in enumerate(source_nb.cells) if c.cell_type == "code" and c.source == failed_source]
    lines = [ln for ln in (failed_source or "").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    first = lines[0] if lines else ""
    if not hits:
        return None, first
    best = min(hits, key=lambda i: (abs(i - (cell_index - 1)), i))
    return best + 1, first


def run_notebook(src, dst, parameters: dict | None = None, cwd=None, timeout: float | None = None,
                 kernel: str = "python3", failed_dir=None) -> float:
    """Execute ``src`` with papermill into ``dst`` (atomically: written beside it, then renamed).

    ``parameters`` are injected after the ``parameters`` cell (``None`` values are left out, so the
    notebook's defaults apply); a name the ``parameters`` cell does not define is a ``ValueError``.
    ``cwd`` defaults to the source's folder; ``timeout`` is per cell (seconds, ``None`` = no limit). Returns the wall time in seconds. On a failing cell raises
    :class:`NotebookExecutionError`; the partly executed copy is kept in ``failed_dir`` (default:
    beside ``dst``, named ``<stem>.failed.ipynb``) and ``dst`` is not written.
    """
    # nbformat and papermill come with the optional ``book`` extra: imported here so that the rest of
    # this module (TOC, notebook listing) works without them.
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.is_file():
        raise FileNotFoundError(f"notebook {src} does not exist")
    if src == dst:
        raise ValueError(f"refusing to execute {src.name} over its own source; give another output path")
    dst.parent.mkdir(parents=True, exist_ok=True)
    params = {k: v for k, v in (parameters or {}).items() if v is not None}
    if params:  # papermill only warns about unknown names; a misspelled parameter must not be ignored
        declared = list(pm.inspect_notebook(str(src)))
        unknown = [k for k in params if k not in declared]
        if unknown:
            hint = difflib.get_close_matches(unknown[0], declared, n=1)
            raise ValueError(f"unknown parameter {unknown[0]!r} for {src.name}; its parameters cell defines "
                             f"{', '.join(declared) or 'nothing'}" + (f". Did you mean {hint[0]!r}?" if hint else ""))
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}
    # Not sirr.atomic: papermill writes the executed notebook to a *path* (not a file handle), so the
    # temporary beside ``dst`` and the os.replace onto it (or onto the failed copy) are done here.
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=".ipynb", dir=dst.parent)
    os.close(fd)
    t0 = time.perf_counter()
    try:
        with _inline_matplotlib():
            pm.execute_notebook(str(src), tmp, parameters=params, kernel_name=kernel,
                                cwd=str(cwd or src.parent), execution_timeout=timeout, progress_bar=False,
                                log_output=False, request_save_on_cell_execute=False,
                                # the kernel app's own log (e.g. "running over TCP without encryption") is noise here
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as e:
        failed = Path(failed_dir) if failed_dir else dst.parent
        failed.mkdir(parents=True, exist_ok=True)
        kept = failed / f"{dst.stem}.failed.ipynb"
        os.replace(tmp, kept)
        with contextlib.suppress(OSError):
            dst.unlink()  # never leave an older executed copy that the book would show as current
        cell, line = _source_cell_number(nbformat.read(src, as_version=4), e.source, e.cell_index)
        raise NotebookExecutionError(src, cell, e.ename, e.evalue, executed=kept, source_line=line) from None
    except Exception as e:  # a cell timed out, the kernel died or could not start: still one line
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        with contextlib.suppress(OSError):
            dst.unlink()
        raise NotebookExecutionError(src, None, type(e).__name__, str(e)) from e
    except BaseException:  # KeyboardInterrupt
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.replace(tmp, dst)
    return time.perf_counter() - t0


def hide_plumbing(path) -> int:
    """Tag papermill's injected-parameters cell and the ``parameters`` cell ``remove-cell`` (in place,
    atomically). Returns how many cells were tagged."""
    import nbformat  # the optional ``book`` extra (see run_notebook)

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    n = 0
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if any(t in tags for t in _HIDE_TAGS):
            if "remove-cell" not in tags:
                tags.append("remove-cell")
            n += 1
    atomic_write_text(path, nbformat.writes(nb))
    return n


# -- staging and building ---------------------------------------------------------------------------
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", ".DS_Store")


def _toc_files(toc: dict) -> list[str]:
    """Every ``file:`` of a jb-book TOC, in order (root first)."""
    out = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(e["file"])
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return out


def _filter_toc(toc: dict, present) -> tuple[dict, list[str]]:
    """The TOC without chapters whose file is not in ``present`` (a predicate); returns (toc, dropped)."""
    dropped: list[str] = []

    def keep(entries):
        kept = []
        for e in entries or []:
            if "file" in e and not present(e["file"]):
                dropped.append(e["file"])
                continue
            if "sections" in e:
                e = dict(e, sections=keep(e["sections"]))
            kept.append(e)
        return kept

    toc = dict(toc)
    if "parts" in toc:
        toc["parts"] = [dict(p, chapters=keep(p.get("chapters"))) for p in toc["parts"]]
        toc["parts"] = [p for p in toc["parts"] if p["chapters"]]
    if "chapters" in toc:
        toc["chapters"] = keep(toc["chapters"])
    return toc, dropped


def stage_book(root, src_dir) -> list[str]:
    """Copy what the book needs from the repository ``root`` into ``src_dir`` (``notebooks/`` there is
    left alone: it holds the executed copies). Writes a TOC without chapters that have no executed
    copy yet and returns the chapters it left out."""
    import yaml  # PyYAML comes with the optional ``book`` extra (Jupyter Book)

    root, src_dir = Path(root), Path(src_dir)
    src_dir.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml",):
        shutil.copy2(root / name, src_dir / name)
    for name in ("book", "figures", "lib"):
        dst = src_dir / name
        if dst.exists():
            shutil.rmtree(dst)
        if (root / name).is_dir():
            shutil.copytree(root / name, dst, ignore=_IGNORE)
        else:
            dst.mkdir()
    (src_dir / "notebooks").mkdir(exist_ok=True)
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))

    def present(f: str) -> bool:
        base = src_dir / f
        return any(base.with_name(base.name + ext).is_file() for ext in ("", ".md", ".ipynb"))

    # The GPU page's timing tables, from the stored bench reports (sirrbook.book.gpu_page): never typed by hand.
    atomic_write_text(src_dir / GENERATED, time_tables(root / "results"))
    atomic_write_text(src_dir / PRESETS_GENERATED, preset_table())  # from sirr.config.PRESETS
    # The intro's status table, from the stored results (sirrbook.book.status): never typed by hand.
    atomic_write_text(src_dir / STATUS_GENERATED, status_markdown(root / "results"))
    toc, dropped = _filter_toc(toc, present)
    head = "# Staged by sirrbook.book: the repository's _toc.yml without chapters that have no executed copy.\n"
    atomic_write_text(src_dir / "_toc.yml", head + yaml.safe_dump(toc, sort_keys=False))
    return dropped


_BUILD_SNIPPET = """
import json, sys
from jupyter_book.sphinx import build_sphinx
src = sys.argv[1]
# What `jupyter-book build --warningiserror --keep-going` does, with our own output folders.
overrides = {"external_toc_path": src + "/_toc.yml", "latex_individualpages": False}
overrides.update(json.loads(sys.argv[4]))
r = build_sphinx(src, sys.argv[2], doctreedir=sys.argv[3], noconfig=True, path_config=src + "/_config.yml",
                 confoverrides=overrides,
                 builder="html", warningiserror=True, keep_going=True, freshenv=True, quiet=True)
sys.exit(r if isinstance(r, int) else 1)
"""


def build_html(src_dir, out_dir, doctree_dir=None, log_file=None, overrides: dict | None = None) -> Path:
    """Build the staged book in ``src_dir`` with Jupyter Book (warnings are errors) into ``out_dir``.
    ``overrides`` are extra Sphinx settings. Returns ``out_dir/index.html``; raises
    :class:`BookBuildError` listing the warnings."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    doctree_dir = Path(doctree_dir) if doctree_dir else out_dir.parent / ".doctrees"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    proc = subprocess.run([sys.executable, "-c", _BUILD_SNIPPET, str(src_dir), str(out_dir), str(doctree_dir),
                           json.dumps(overrides or {})],
                          capture_output=True, text=True, env=env)
    text = proc.stdout + proc.stderr
    log_path = Path(log_file) if log_file else out_dir.parent / "jupyter-book.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(text, encoding="utf-8")
    index = out_dir / "index.html"
    if proc.returncode != 0 or not index.is_file():
        problems = [ln for ln in text.splitlines() if re.search(r"WARNING|ERROR|Error|Exception", ln)]
        for ln in problems[:40]:
            log.error("%s", ln)
        first = problems[0].strip() if problems else (text.strip().splitlines() or ["no output"])[-1]
        raise BookBuildError(f"Jupyter Book build failed ({len(problems)} warnings/errors, warnings are errors); "
                             f"first: {first[:300]} -- full log: {log_path}")
    return index


def rebuild_html(root=None, build_dir=None) -> Path:
    """Stage the repository and build the HTML from the executed copies already in
    ``<build_dir>/src/notebooks/`` (nothing is executed): for changes to the pages in ``book/``, the
    configuration or the CSS. Chapters without an executed copy are left out, with a warning.
    Returns ``<build_dir>/html/index.html``; raises :class:`BookBuildError` when Jupyter Book warns."""
    root = _repo_root(root)
    build = Path(build_dir).resolve() if build_dir else root / "_build"
    src_dir = build / "src"
    dropped = stage_book(root, src_dir)
    for f in dropped:
        log.warning("book: %s has no executed copy yet; left out of this build (run it without --only)", f)
    # A partial build (--only) may leave chapters out; links to them are then not errors.
    overrides = {"suppress_warnings": ["myst.header", "myst.xref_missing", "ref.doc", "ref.ref"]} if dropped else {}
    return build_html(src_dir, build / "html", doctree_dir=build / ".doctrees", log_file=build / "jupyter-book.log",
                      overrides=overrides)


# -- the whole book -----------------------------------------------------------------------------------
def _fmt_s(s: float) -> str:
    return f"{s:6.1f} s"


def run_book(preset: str | None = "smoke", seed: int | None = 0, device: str | None = None, data_root=None,
             results_dir=None, build_dir=None, only: Iterable[str] | None = None, html: bool = True,
             retrain: bool | None = False, *, root=None, timeout: float | None = None,
             kernel: str = "python3") -> Path:
    """Execute the chapters in order with papermill and (``html=True``) build the HTML book.

    Parameters are those of every chapter's ``parameters`` cell (``None`` = the notebook's default).
    ``build_dir`` defaults to ``<root>/_build``; ``only`` picks chapters by file name, stem or
    ``NN`` prefix; ``root`` is the repository (default: the checkout ``sirr`` is installed from);
    ``timeout`` is per cell in seconds. Returns ``<build_dir>/html/index.html`` (or the executed
    notebooks' folder when ``html=False``). Raises :class:`NotebookExecutionError` at the first
    failing cell and :class:`BookBuildError` when Jupyter Book warns.
    """
    if preset is not None:
        get_preset(preset)  # an unknown preset fails here, in one line, before any kernel starts
    root = _repo_root(root)
    build = Path(build_dir).resolve() if build_dir else root / "_build"
    src_dir = build / "src"
    exec_dir = src_dir / "notebooks"
    exec_dir.mkdir(parents=True, exist_ok=True)
    notebooks = select_notebooks(list_notebooks(root / "notebooks"), only)
    if not notebooks:
        raise FileNotFoundError(f"no chapters (NN_*.ipynb) in {root / 'notebooks'}")
    params = {"preset": preset, "seed": seed, "device": device, "data_root": data_root,
              "results_dir": results_dir, "retrain": retrain}
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items() if v is not None)
    log.info("book: executing %d notebook(s) with papermill (%s) into %s", len(notebooks), shown, exec_dir)

    timings_path = build / "timings.json"
    timings = {"preset": preset, "seed": seed, "device": device, "notebooks": {}, "html_build_s": None}
    t_all = time.perf_counter()
    for nb in notebooks:
        log.info("book: %s ...", nb.name)
        try:
            dt = run_notebook(nb, exec_dir / nb.name, params, cwd=nb.parent, timeout=timeout, kernel=kernel,
                              failed_dir=build / "failed")
        except NotebookExecutionError:
            log.error("book: %s FAILED", nb.name)
            raise
        hide_plumbing(exec_dir / nb.name)
        timings["notebooks"][nb.stem] = round(dt, 2)
        log.info("book: %s %s", nb.name, _fmt_s(dt))
        atomic_write_text(timings_path, json.dumps(timings, indent=2))
    timings["notebooks_total_s"] = round(time.perf_counter() - t_all, 2)
    if not html:
        atomic_write_text(timings_path, json.dumps(timings, indent=2))
        log.info("book: notebooks %s; executed copies in %s", _fmt_s(timings["notebooks_total_s"]), exec_dir)
        return exec_dir

    t0 = time.perf_counter()
    index = rebuild_html(root=root, build_dir=build)
    timings["html_build_s"] = round(time.perf_counter() - t0, 2)
    timings["total_s"] = round(time.perf_counter() - t_all, 2)
    atomic_write_text(timings_path, json.dumps(timings, indent=2))
    log.info("book: notebooks %s, HTML build %s; timings in %s", _fmt_s(timings["notebooks_total_s"]),
             _fmt_s(timings["html_build_s"]), timings_path)
    return index
