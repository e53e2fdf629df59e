"""Matplotlib figures that carry their provenance: every saved PNG gets a JSON sidecar and a caption naming its run."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from sirr.atomic import atomic_write_bytes, atomic_write_text
from sirr.paths import REPO_ROOT
from sirr.provenance import git_commit, provenance
from sirrbook.viz.style import CMAP_GRAY, wrap_title

__all__ = [
    "save_figure",
    "image_grid",
    "show_images",
    "FIGURES_DIR",
    "DEFAULT_DPI",
    "SMOKE_STAMP_TEXT",
    "caption_for",
    "add_smoke_stamp",
    "figure_number",
    "figure_html",
    "caption_html",
    "reset_figure_numbers",
    "FigurePath",
    "pipeline_check_html",
    "show_scores",
    "split_caption",
]

FIGURES_DIR = REPO_ROOT / "figures"


def _as_image(x) -> np.ndarray:
    """Tensor (3,H,W)/(1,3,H,W)/(1,H,W) or array (H,W[,3]) -> float array for imshow, clipped to [0, 1]."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu()
        if x.ndim == 4:
            x = x[0]
        x = x.permute(1, 2, 0).numpy() if x.ndim == 3 else x.numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    return np.clip(x, 0.0, 1.0)


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int | None = None,
               size: float = 2.6, cmap: str = CMAP_GRAY, suptitle: str | None = None):
    """A row/grid of images with titles (wrapped to the panel width); grey maps use ``cmap``.
    Returns the matplotlib figure (constrained layout, so titles never overlap)."""
    n = len(images)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    first = _as_image(images[0])
    aspect = first.shape[0] / max(first.shape[1], 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * aspect * nrows + (0.6 if suptitle else 0.4)),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = _as_image(images[i])
            ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            if titles:
                ax.set_title(wrap_title(titles[i], max(12, int(size * 13))), fontsize=9)
    if suptitle:
        fig.suptitle(wrap_title(suptitle, max(30, int(size * ncols * 10))), fontsize=10)
    return fig


def show_images(images: Sequence, titles: Sequence[str] | None = None, **kw):
    """Display an :func:`image_grid` inline and return the figure."""
    fig = image_grid(images, titles, **kw)
    plt.show()
    return fig


def caption_for(run, text: str = "", weights: str | None = None) -> str:
    """Caption naming the run a figure came from: ``text [preset P, seed S, weights W, device D, commit C]``
    (the weights only when given; a note when the perceptual-loss VGG-19 is the random fallback)."""
    bits = []
    if run is not None:
        bits += [f"preset {run.preset.name}", f"seed {run.seed}"]
    if weights:
        bits.append(f"weights: {weights}")
    if run is not None:
        bits += [f"device {run.device}", f"commit {git_commit()}"]
        if run.preset.vgg_weights == "random":
            bits.append("VGG-19 with RANDOM weights (offline fallback)")
    if not bits:
        return text
    return (text + " " if text else "") + "[" + ", ".join(bits) + "]"


# ------------------------------------------------------------------ the smoke stamp

#: Drawn across figures that show weights of the ``smoke`` preset (a few optimiser steps).
SMOKE_STAMP_TEXT = "smoke weights (a few steps):\nplumbing check, not a result"
_STAMP_GID = "sirr-smoke-stamp"


def is_smoke(run) -> bool:
    """Whether ``run`` is a run of the ``smoke`` preset."""
    return run is not None and getattr(getattr(run, "preset", None), "name", None) == "smoke"


def add_smoke_stamp(fig, text: str = SMOKE_STAMP_TEXT):
    """Draw ``text`` diagonally across ``fig`` (red, bold, on a translucent white box), sized to fit
    inside the figure; idempotent (a second call returns the existing stamp). Returns the Text artist."""
    for t in fig.texts:
        if t.get_gid() == _STAMP_GID:
            return t
    w, h = fig.get_size_inches()
    angle = float(np.degrees(np.arctan2(h, w)))
    base = 20.0
    t = fig.text(0.5, 0.5, text, rotation=angle, rotation_mode="anchor", ha="center", va="center",
                 multialignment="center", fontsize=base, fontweight="bold", color="#c0002a", alpha=0.6,
                 zorder=1000, gid=_STAMP_GID,
                 bbox=dict(boxstyle="round,pad=0.4", facecolor="white", edgecolor="#c0002a", alpha=0.35, lw=2))
    t.set_in_layout(False)  # constrained layout and bbox_inches="tight" ignore it
    try:
        renderer = fig.canvas.get_renderer()
        box = t.get_window_extent(renderer)
        scale = min(0.75 * fig.bbox.width / max(box.width, 1.0), 0.75 * fig.bbox.height / max(box.height, 1.0))
        t.set_fontsize(float(np.clip(base * scale, 6.0, 40.0)))
    except Exception:  # a canvas without a renderer: keep the base size
        pass
    return t


# ------------------------------------------------------------------ numbering and HTML

_NUMBERS: dict[str, tuple[int | None, int]] = {}  # figure name -> (chapter, k)
_COUNTS: dict[int | None, int] = {}  # chapter -> figures numbered so far


def reset_figure_numbers() -> None:
    """Forget every figure number given in this process (the next figure of each chapter is number 1)."""
    _NUMBERS.clear()
    _COUNTS.clear()


def chapter_of(name: str) -> int | None:
    """The chapter a figure belongs to: its name's two leading digits (``"04_loss"`` -> 4), else None."""
    m = re.match(r"(\d{2})(?:_|$)", name)
    return int(m.group(1)) if m else None


def figure_number(name: str) -> str:
    """``"C.K"``: chapter C (from the name) and K, the K-th distinct figure of chapter C in this process;
    saving the same name again keeps its number. Without a chapter prefix just ``"K"``."""
    if name not in _NUMBERS:
        chapter = chapter_of(name)
        _COUNTS[chapter] = _COUNTS.get(chapter, 0) + 1
        _NUMBERS[name] = (chapter, _COUNTS[chapter])
    chapter, k = _NUMBERS[name]
    return f"{chapter}.{k}" if chapter is not None else str(k)


def caption_html(text: str) -> str:
    """``text`` escaped for HTML, with ```code``` spans rendered as ``<code>``."""
    escaped = html.escape(text, quote=False)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _png_width(png: bytes) -> int | None:
    if png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR":
        return int.from_bytes(png[16:20], "big")
    return None


def split_caption(caption: str) -> tuple[str, str]:
    """``(text, provenance)``: a caption of :func:`caption_for` split before its trailing ``[...]`` bracket."""
    m = re.match(r"(?s)^(.*?)\s*\[([^\[\]]*)\]\s*$", caption)
    return (m.group(1), m.group(2)) if m else (caption, "")


def figure_html(png: bytes, name: str, number: str, caption: str, dpi: float = 150, details: str | None = None) -> str:
    """One ``<figure class="sirr-figure" id="fig-<name>">``: the PNG as a data URI (alt text = the caption's text,
    shown at the figure's size in inches at 96 CSS px per inch, never wider than the column) and
    ``<figcaption><strong>Figure N.</strong> text <details>provenance</details></figcaption>``: the provenance
    bracket (and ``details``) collapsed into one line."""
    text, prov = split_caption(caption)
    caption = text
    hidden = " ".join(x for x in (details, prov and f"[{prov}]") if x)
    more = (f'<details class="sirr-provenance"><summary>where this comes from</summary>{caption_html(hidden)}'
            "</details>") if hidden else ""
    fig_id = "fig-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)
    px = _png_width(png)
    width = f' width="{round(px * 96 / dpi)}"' if px else ""
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(re.sub(r"\s+", " ", caption).strip(), quote=True)
    return (f'<figure class="sirr-figure" id="{fig_id}" style="margin:1em 0 1.5em 0">'
            f'<img src="data:image/png;base64,{data}" alt="{alt}"{width} '
            f'style="max-width:100%;height:auto;display:block;margin:0 auto">'
            f'<figcaption style="font-size:0.9em;margin-top:0.5em;line-height:1.4">'
            f"<strong>Figure {number}.</strong> {caption_html(caption)}{more}</figcaption></figure>")


def _ipython_active() -> bool:
    """True inside IPython / a Jupyter kernel (papermill included); never imports IPython itself."""
    ipy = sys.modules.get("IPython")
    if ipy is None:
        return False
    try:
        return ipy.get_ipython() is not None
    except Exception:
        return False


def _display_html(html_text: str, plain: str) -> None:
    """Publish one display output: ``text/html`` (what the book renders) with a ``text/plain`` fallback."""
    from IPython.display import display

    display({"text/html": html_text, "text/plain": plain}, raw=True)


class FigurePath(type(Path())):
    """The saved PNG's path (a :class:`pathlib.Path`); when its figure was already displayed with a caption,
    IPython shows nothing for it, so a cell ending in ``save_figure(...)`` prints no local path."""

    _sirr_displayed = False

    def _ipython_display_(self):
        if not self._sirr_displayed:
            from IPython.display import display

            display({"text/plain": repr(Path(self))}, raw=True)


# ------------------------------------------------------------------ save_figure

#: Default resolution of saved figures: a 6.4-inch figure is 960 px, sharp in an ~800 px column.
DEFAULT_DPI = 150


def save_figure(fig, name: str, run=None, caption: str = "", figures_dir: str | os.PathLike | None = None,
                dpi: int = DEFAULT_DPI, *, weights: str | None = None, trained: bool = False,
                display: bool | None = None, details: str | None = None) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` with ``<name>.json`` (caption + provenance), each written
    atomically, and inside IPython show it once as a numbered, captioned HTML figure.

    - ``caption`` is completed by :func:`caption_for` (preset, seed, ``weights``, device, commit); the same
      text goes to the sidecar and under the figure, where the provenance bracket and ``details`` (a longer
      note: the training scale, a verdict's numbers) sit in one collapsed ``<details>`` line, so the visible
      caption stays short.
    - ``weights`` describes the trained weights the figure shows (``trained=True`` says the figure shows
      trained weights without describing them). Such a figure of a ``smoke`` run gets
      :data:`SMOKE_STAMP_TEXT` drawn across it (:func:`add_smoke_stamp`) before it is saved; figures of
      data only (neither given) are never stamped.
    - ``display``: None (default) displays when running inside IPython/Jupyter, True/False force it.
      Displaying publishes one ``text/html`` output, ``<figure class="sirr-figure" id="fig-<name>">``
      holding the saved PNG as a data URI and ``<figcaption><strong>Figure C.K.</strong> caption``
      (C from the name's two leading digits, K counting that chapter's figures, :func:`figure_number`),
      then closes ``fig`` so a following ``plt.show()`` does not draw it again.

    Returns the PNG's path.
    """
    out_dir = Path(figures_dir) if figures_dir else FIGURES_DIR
    stamped = bool(weights or trained) and is_smoke(run)
    if stamped:
        add_smoke_stamp(fig)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, bbox_inches="tight", format="png")
    data = buf.getvalue()
    png = FigurePath(atomic_write_bytes(out_dir / f"{name}.png", data))
    text = caption_for(run, caption, weights)
    meta = {"figure": png.name, "caption": text, "details": details, "weights": weights, "trained": bool(weights or trained),
            "smoke_stamp": stamped, "dpi": dpi, **provenance(run)}
    atomic_write_text(out_dir / f"{name}.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if _ipython_active() if display is None else display:
        if stamped:  # smoke weights: a pipeline check, never a figure of the reader's book (one collapsed line)
            _display_html(pipeline_check_html(name), f"pipeline check: {name} drawn from smoke weights (not shown)")
        else:
            number = figure_number(name)
            _display_html(figure_html(data, name, number, text, dpi, details), f"Figure {number}. {text}")
        plt.close(fig)
        png._sirr_displayed = True
    return png


def show_scores(table, run, what: str) -> None:
    """Display ``table`` (scores of a model trained at ``run``'s preset); at ``smoke`` only one collapsed
    pipeline-check line says it was computed (smoke scores are never a table of the reader's book)."""
    from IPython.display import display

    if is_smoke(run):
        _display_html(pipeline_check_html(what, "table"), f"pipeline check: {what} computed from smoke weights (not shown)")
    else:
        display(table)


def pipeline_check_html(name: str, kind: str = "figure") -> str:
    """The one collapsed line a chapter shows instead of a figure drawn from ``smoke`` weights."""
    where = "the figure is written to <code>figures/</code> for CI only" if kind == "figure" else "the numbers are stored for CI only"
    return (f'<details class="sirr-pipeline-check"><summary>pipeline check: the {kind} <code>{html.escape(name)}</code> '
            f"comes from <code>smoke</code> weights and is not shown</summary>A few training steps make no reflection "
            f"remover; {where}. The stored <code>cpu</code> results are the evidence this book shows.</details>")
