"""The end-to-end book test (CI's expensive one): every chapter at ``smoke`` through papermill, the
Jupyter Book build (warnings are errors), then the built book in headless Chromium.

The notebooks execute ONCE (module fixture); every check reads that build. The build folder is
``$SIRR_BOOK_BUILD_DIR`` or ``<repo>/_build`` (so ``make test`` leaves the book and the screenshot
``_build/screenshots/01.png`` behind); ``SIRR_BOOK_REUSE=1`` checks an existing build without
re-executing (for iterating on the checks). The browser checks use Debian's ``chromium`` through
Playwright (no browser download) and are skipped, with the reason, only when it is absent.
"""

from __future__ import annotations

import functools
import html as htmllib
import http.server
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.book
nbformat = pytest.importorskip("nbformat")
yaml = pytest.importorskip("yaml")

from sirrbook.book import BookBuildError, NotebookExecutionError, list_notebooks, run_book  # noqa: E402
from sirrbook.book.build import _toc_files  # noqa: E402
from sirr.config import REPO_ROOT  # noqa: E402

CHROMIUM = os.environ.get("SIRR_CHROMIUM", "/usr/bin/chromium")
CHAPTER_WITH_WIDGETS = "notebooks/01_laplacian_vs_edge_maps"


@pytest.fixture(scope="module")
def book():
    build = Path(os.environ.get("SIRR_BOOK_BUILD_DIR") or REPO_ROOT / "_build")
    if os.environ.get("SIRR_BOOK_REUSE") == "1" and (build / "html" / "index.html").is_file():
        # for iterating on the checks below: reuse an existing build instead of executing everything
        print(f"\nbook: SIRR_BOOK_REUSE=1, checking the existing build in {build}")
        return {"build": build, "index": build / "html" / "index.html",
                "timings": json.loads((build / "timings.json").read_text())}
    t0 = time.perf_counter()
    try:
        index = run_book(preset="smoke", build_dir=build)
    except (NotebookExecutionError, BookBuildError) as e:  # one line naming the notebook and cell
        pytest.fail(str(e), pytrace=False)
    took = time.perf_counter() - t0
    timings = json.loads((build / "timings.json").read_text())
    print(f"\nbook: notebooks {timings['notebooks_total_s']} s, HTML build {timings['html_build_s']} s, "
          f"total {took:.1f} s; per notebook: {timings['notebooks']}")
    return {"build": build, "index": index, "timings": timings}


def _toc_pages():
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return _toc_files(toc)


# -- the build ------------------------------------------------------------------------------------------
def test_book_builds_every_toc_page_from_executed_copies(book):
    html = book["build"] / "html"
    assert book["index"] == html / "index.html" and book["index"].is_file()
    for page in _toc_pages():
        assert (html / f"{page}.html").is_file(), f"{page} missing from the built book"
    executed = book["build"] / "src" / "notebooks"
    for src in list_notebooks(REPO_ROOT / "notebooks"):
        nb = nbformat.read(executed / src.name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert any(c.outputs for c in code), f"{src.name}: executed copy has no outputs"
        hidden = [c for c in nb.cells if "remove-cell" in c.metadata.get("tags", [])]
        assert {t for c in hidden for t in c.metadata["tags"]} >= {"parameters", "injected-parameters"}
        # the sources stay output-free
        assert all(not c.get("outputs") for c in nbformat.read(src, as_version=4).cells if c.cell_type == "code")
        assert src.stem in book["timings"]["notebooks"]


def test_plumbing_is_hidden_and_the_header_is_shown(book):
    page = (book["build"] / "html" / f"{CHAPTER_WITH_WIDGETS}.html").read_text(encoding="utf-8")
    assert "injected-parameters" not in page and 'preset = "smoke"  # smoke' not in page
    # the first code cell's provenance header (sirr.provenance.header) is what readers see instead
    assert "preset 'smoke' | seed 0 | device" in page.replace("&#39;", "'") and "| commit " in page


def test_widget_js_only_on_pages_with_widget_state(book):
    html = book["build"] / "html"
    intro = (html / "book" / "intro.html").read_text(encoding="utf-8")
    ch01 = (html / f"{CHAPTER_WITH_WIDGETS}.html").read_text(encoding="utf-8")
    assert "embed-amd.js" not in intro and "require.js" not in intro
    assert "_static/embed-amd.js" in ch01 and "application/vnd.jupyter.widget-state+json" in ch01
    assert "cdn.jsdelivr.net" not in ch01 and "cdnjs.cloudflare.com" not in ch01


def _built_pages(book):
    html = book["build"] / "html"
    return {page: (html / f"{page}.html").read_text(encoding="utf-8") for page in _toc_pages()}


def test_no_script_is_written_twice_into_a_page(book):
    """sirrbook.book.sphinx_fixes: Sphinx 7.4 wrote extensions' inline scripts twice into every page's head."""
    problems = []
    for page, text in _built_pages(book).items():
        head = text.split("</head>", 1)[0]  # (a widget shown twice may legitimately repeat a view script below)
        scripts = re.findall(r"<script\b[^>]*>.*?</script>", head, flags=re.DOTALL)
        dup = sorted({s for s in scripts if scripts.count(s) > 1})
        problems += [f"{page}: written {scripts.count(s)} times: {s[:120]}" for s in dup]
    assert not problems, "\n".join(problems)


def test_every_figure_in_a_chapter_is_numbered_and_captioned(book):
    """sirrbook.viz.save_figure shows each figure as <figure class="sirr-figure"> with "Figure C.K." and its caption:
    an image in a chapter's output without one is a figure the reader cannot cite."""
    problems = []
    for page, text in _built_pages(book).items():
        if not page.startswith("notebooks/"):
            continue
        chapter = int(Path(page).name[:2])
        images = len(re.findall(r'<img src="data:image/', text))
        captions = [(c, k, t) for c, k, t in re.findall(
            r"<figcaption[^>]*><strong>Figure (\d+)\.(\d+)\.</strong>(.*?)</figcaption>", text, flags=re.DOTALL)
            if len(re.sub(r"<[^>]+>", "", t).strip()) >= 20]  # a caption, not just a number
        for c, k, t in captions:  # the visible text; provenance and details sit in a collapsed <details>
            words = len(re.sub(r"<[^>]+>", " ", t.split("<details", 1)[0]).split())
            if words > 60:
                problems.append(f"{page}: Figure {c}.{k} has a caption of {words} words (at most 60)")
        if images != len(captions):
            problems.append(f"{page}: {images} images, {len(captions)} numbered captions")
        numbers = [(int(c), int(k)) for c, k, _ in captions]
        if numbers != [(chapter, k) for k in range(1, len(numbers) + 1)]:
            problems.append(f"{page}: figure numbers {numbers}")
    assert not problems, "\n".join(problems)


def test_no_page_shows_a_figure_of_smoke_weights(book):
    """A figure drawn from smoke weights becomes a collapsed pipeline-check line (sirrbook.viz.save_figure): every
    numbered figure of the built book is data, a non-learned operator, or a stored trained result."""
    shown = set()
    for page, text in _built_pages(book).items():
        shown |= {(page, name) for name in re.findall(r'<figure class="sirr-figure" id="fig-([^"]+)"', text)}
    assert shown, "no numbered figure found in the built book"
    smoke = [f"{page}: {name}" for page, name in sorted(shown)
             if json.loads((REPO_ROOT / "figures" / f"{name}.json").read_text()).get("smoke_stamp")]
    assert not smoke, "figures of smoke weights shown to readers:\n" + "\n".join(smoke)


def test_no_absolute_path_of_the_build_machine(book):
    """Paths inside the repository are printed relative to its root (sirr.messages.repo_relative): the
    built book must not show where the machine that built it keeps the checkout."""
    root = re.escape(str(REPO_ROOT).rstrip("/"))
    pat = re.compile(rf"(?<![\w.~/-]){root}(?=[/\"'<\s&)]|$)")
    hits = []
    for f in sorted((book["build"] / "html").rglob("*.html")):
        text = f.read_text(encoding="utf-8")
        for m in pat.finditer(text):
            context = re.sub(r"<[^>]+>|\s+", " ", text[max(0, m.start() - 100):m.end() + 60])
            hits.append(f"{f.relative_to(book['build'] / 'html')}: ...{htmllib.unescape(context).strip()}...")
    assert not hits, f"{len(hits)} absolute path(s) of the repository root {REPO_ROOT} in the built HTML:\n" + \
        "\n".join(hits)


# -- the browser -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser_session(book):
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"browser check needs Debian's chromium ({CHROMIUM} absent): apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser check needs playwright (requirements.txt)")
    root = book["build"] / "html"
    not_found: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet, but remember what was missing
            pass

        def send_error(self, code, message=None, explain=None):
            if code == 404:
                not_found.append(self.path)
            super().send_error(code, message, explain)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    pw = sync_api.sync_playwright().start()
    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
    yield {"browser": browser, "base": base, "not_found": not_found, "build": book["build"]}
    browser.close()
    pw.stop()
    server.shutdown()


def _console_error(msg) -> str:
    loc = msg.location or {}
    where = f" ({loc.get('url', '')}:{loc.get('lineNumber', '?')})" if loc.get("url") else ""
    return f"console.error: {msg.text}{where}"


def _visit(session, page_path: str):
    """Open one page; return (page, requests, failed local responses, errors). ``errors`` holds every
    uncaught JavaScript exception and every ``console.error`` message (a failed resource load too)."""
    page = session["browser"].new_page(viewport={"width": 1300, "height": 900})
    requests, failed, errors = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    page.on("pageerror", lambda e: errors.append(f"uncaught exception: {e}"))
    page.on("console", lambda m: m.type == "error" and errors.append(_console_error(m)))
    page.goto(session["base"] + page_path + ".html", wait_until="load")
    page.wait_for_load_state("networkidle")
    # every <img> finished (loaded or failed)
    page.evaluate("""() => Promise.all(Array.from(document.images).map(i => i.complete ? 0 :
                      new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })))""")
    return page, requests, failed, errors


def _leaves_localhost(url: str, base: str) -> bool:
    if url.startswith(("data:", "blob:" + base.rstrip("/"), "about:")):
        return False
    return urlparse(url).hostname not in ("127.0.0.1", "localhost")


_OVERFLOW_JS = """() => {
  const art = document.querySelector('article.bd-article') || document.body;
  const right = art.getBoundingClientRect().right + 1;
  const out = [];
  // text outputs wrap: nothing wider than its box
  for (const el of art.querySelectorAll('div.cell_output pre'))
    if (el.scrollWidth > el.clientWidth + 1) out.push('output runs past its box: ' + el.innerText.slice(0, 80));
  // code and tables wider than the column scroll inside a box that fits the column
  for (const el of art.querySelectorAll('pre, table')) {
    if (el.getBoundingClientRect().right <= right) continue;
    let a = el, ok = false;
    while (a && a !== art) {
      const o = getComputedStyle(a).overflowX;
      if ((o === 'auto' || o === 'scroll') && a.getBoundingClientRect().right <= right) { ok = true; break; }
      a = a.parentElement;
    }
    if (!ok) out.push(el.tagName.toLowerCase() + ' cut at the column edge: ' + el.innerText.slice(0, 80));
  }
  // a result table scrolls only when it cannot fit: laid out at its narrowest (every cell wrapped), it is
  // still wider than the column
  const col = art.getBoundingClientRect().width;
  for (const t of art.querySelectorAll('div.cell_output table.dataframe')) {
    if (t.scrollWidth <= col + 1) continue;
    const saved = t.style.width;
    t.style.width = 'min-content';
    const narrowest = t.scrollWidth;
    t.style.width = saved;
    if (narrowest <= col + 1) out.push('table wider than the column although it could wrap to fit: ' + t.innerText.slice(0, 80));
  }
  return out;
}"""




@pytest.fixture(scope="module")
def page_visits(browser_session):
    """Every TOC page opened once at 1300 px: what the page checks below need, and a full-page screenshot
    per page in ``<build>/screenshots/`` (the page-by-page look at the book)."""
    t0 = time.perf_counter()
    shots = browser_session["build"] / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    out = {}
    for path in _toc_pages():
        page, requests, failed, errors = _visit(browser_session, path)
        page.wait_for_timeout(300)  # late errors (widget rendering, MathJax) still land on this page
        out[path] = {
            "title": page.title(),
            "broken": page.evaluate("() => Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
                                    ".map(i => i.currentSrc || i.src)"),
            "failed": failed, "requests": requests, "errors": list(errors),
            "overflow": page.evaluate(_OVERFLOW_JS),
        }
        page.screenshot(path=str(shots / f"{path.replace('/', '_')}.png"), full_page=True)
        page.close()
    print(f"\nbrowser: {len(out)} pages checked in {time.perf_counter() - t0:.1f} s; screenshots in {shots}")
    return out


def test_every_toc_page_loads_with_images_and_no_missing_assets(browser_session, page_visits):
    problems = []
    for path, v in page_visits.items():
        if not v["title"]:
            problems.append(f"{path}: no title")
        problems += [f"{path}: image with zero natural size: {src[:120]}" for src in v["broken"]]
        problems += [f"{path}: {f}" for f in v["failed"]]
        problems += [f"{path}: request leaves localhost: {u}" for u in v["requests"]
                     if _leaves_localhost(u, browser_session["base"])]
    problems += [f"local 404: {p}" for p in browser_session["not_found"]]
    assert not problems, "\n".join(problems)


def test_no_page_logs_a_javascript_error(page_visits):
    """Any uncaught exception or console.error on any page fails, with the messages (a duplicated inline
    script once made every page log "Identifier 'THEBE_JS_URL' has already been declared")."""
    problems = [f"{path}: {e}" for path, v in page_visits.items() for e in v["errors"]]
    assert not problems, f"{len(problems)} JavaScript error(s):\n" + "\n".join(problems)


def test_wide_code_scrolls_and_outputs_wrap(page_visits):
    problems = [f"{path}: {p}" for path, v in page_visits.items() for p in v["overflow"]]
    assert not problems, "\n".join(problems)


def test_chapter_01_widgets_render_as_controls_offline(browser_session):
    page, requests, failed, _ = _visit(browser_session, CHAPTER_WITH_WIDGETS)
    page.wait_for_selector(".jupyter-widgets", timeout=20_000)
    assert page.locator(".widget-dropdown, .widget-hslider, .widget-slider").count() > 0, "no widget controls rendered"
    assert page.locator(".widget-dropdown select, .widget-slider").count() > 0
    # the static renders (Image widgets) and the live view's figure are real images
    imgs = page.evaluate("() => Array.from(document.querySelectorAll('.jupyter-widgets img')).map(i => i.naturalWidth)")
    assert imgs and all(w > 0 for w in imgs), f"widget images: {imgs}"
    outside = [u for u in requests if _leaves_localhost(u, browser_session["base"])]
    assert not outside, f"requests leaving localhost: {outside}"
    assert not [f for f in failed if not f.endswith("/favicon.ico")], failed
    shots = browser_session["build"] / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "01.png"), full_page=True)
    assert (shots / "01.png").stat().st_size > 10_000
    page.close()
