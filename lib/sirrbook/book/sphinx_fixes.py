"""A small Sphinx extension loaded by the book's ``_config.yml`` (``sphinx: extra_extensions``).

**Inline scripts were written twice into every page.** Sphinx 7.4 (the series Jupyter Book 1.x requires)
keeps an extension's inline script (``app.add_js_file(None, body=...)``) added after the HTML builder
started under the file name ``None``, and adds it again from its registry as ``''`` when it prepares
writing; ``None != ''``, so every page got both copies. sphinx-thebe adds
``const THEBE_JS_URL = ...`` that way (and sphinx-togglebutton ``var togglebuttonSelector = ...``),
so every page logged ``Uncaught SyntaxError: Identifier 'THEBE_JS_URL' has already been declared``.
Fixed upstream in Sphinx 8.2 (sphinx-doc/sphinx#13402), which Jupyter Book 1.x cannot use; here
each page's script list is de-duplicated (same file name, ``None`` and ``''`` alike, same
priority and attributes, body included) before the page is written, keeping the first copy and the order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["script_key", "dedupe_scripts", "setup"]


def script_key(script: Any) -> tuple:
    """What makes two ``<script>`` entries the same: file name (``None`` = ``''``), priority, attributes."""
    filename = getattr(script, "filename", script)
    attrs = getattr(script, "attributes", {}) or {}
    return (filename or "", getattr(script, "priority", 500), tuple(sorted((k, str(v)) for k, v in attrs.items())))


def dedupe_scripts(scripts: Iterable[Any]) -> list:
    """``scripts`` without repeats (:func:`script_key`), first occurrence kept, order kept."""
    seen: set[tuple] = set()
    out = []
    for s in scripts:
        k = script_key(s)
        if k not in seen:
            seen.add(k)
            out.append(s)
    return out


def _dedupe_page_scripts(app, pagename, templatename, context, doctree) -> None:
    if context.get("script_files"):
        # a new list for this page only: the builder's own list is restored after every page anyway
        context["script_files"] = dedupe_scripts(context["script_files"])


def setup(app) -> dict:
    # after every other handler (myst-nb adds the widget scripts of a page in html-page-context)
    app.connect("html-page-context", _dedupe_page_scripts, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
