"""One colour map per quantity, shared by every chapter, and small helpers for readable panels.

Use these constants wherever such a map is drawn (``imshow(..., cmap=CMAP_RCMAP)``) and put a colour
bar beside it (:func:`map_panel`), so a reader learns one colour scale per quantity for the whole book:

- :data:`CMAP_RCMAP` -- the LA reflection confidence map Ĉ (LA Eq. 5), in [0, 1];
- :data:`CMAP_CONFIDENCE` -- the TS reflection-gradient confidence C_rf (TS Eq. 5), >= 0, unbounded;
- :data:`CMAP_ERROR` -- absolute differences / residual magnitudes (|T̂ − I|, |I − B_ini|, errors);
- :data:`CMAP_GRAY` -- any other single-channel image (edge and Laplacian maps, masks).
"""

from __future__ import annotations

import re
import textwrap

from matplotlib.transforms import Bbox

__all__ = [
    "CMAP_RCMAP",
    "CMAP_CONFIDENCE",
    "CMAP_ERROR",
    "CMAP_GRAY",
    "wrap_title",
    "map_panel",
]

#: LA RCMap Ĉ_i (LA Eq. 5): black = no reflection, bright = reflection.
CMAP_RCMAP = "magma"
#: TS confidence map C_rf (TS Eq. 5).
CMAP_CONFIDENCE = "viridis"
#: Absolute errors and residual magnitudes.
CMAP_ERROR = "cividis"
#: Plain grey-level images.
CMAP_GRAY = "gray"

_MATH = re.compile(r"\$[^$]*\$")
_NBSP = "\x00"


def wrap_title(text: str | None, width: int = 28) -> str:
    """``text`` wrapped at ``width`` characters with :func:`textwrap.fill`, never breaking inside ``$…$``
    (mathtext must stay on one line); existing line breaks are kept."""
    if not text:
        return text or ""
    protected = _MATH.sub(lambda m: m.group(0).replace(" ", _NBSP), text)
    lines = [textwrap.fill(part, width, break_long_words=False, break_on_hyphens=False) if part else part
             for part in protected.split("\n")]
    return "\n".join(lines).replace(_NBSP, " ")


class _BesideImage:
    """Axes locator for a colour bar: as tall as its image's drawn (aspect-shrunk) box and just right of it.

    The colour bar is an ordinary ``fig.colorbar(ax=...)`` axes (in ``fig.axes``, with room reserved by
    constrained or tight layout); only where it is drawn changes, so it never looks taller than the image.
    """

    def __init__(self, image_ax):
        self.image_ax = image_ax

    def __call__(self, cax, renderer):
        ax = self.image_ax
        ax.apply_aspect()
        img = ax.get_position(original=False)
        slot = cax.get_position(original=True)
        gap = 6.0 / max(ax.figure.bbox.width, 1.0)
        x0 = min(slot.x0, img.x1 + gap)
        return Bbox.from_bounds(x0, img.y0, slot.width, img.height)


def map_panel(ax, array, cmap: str, title: str | None = None, vmin: float | None = None,
              vmax: float | None = None, label: str | None = None, width: int = 28, fontsize: float = 9,
              extend: str = "neither"):
    """``imshow`` a single-channel map with ``cmap`` and a colour bar beside it; axis off, title wrapped.

    Returns the colour bar. ``label`` names the colour bar's quantity (optional).
    """
    im = ax.imshow(array, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    fig = ax.figure
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, extend=extend)
    cbar.ax.set_axes_locator(_BesideImage(ax))
    cbar.ax.tick_params(labelsize=7)
    if label:
        cbar.set_label(label, fontsize=7)
    if title is not None:
        ax.set_title(wrap_title(title, width), fontsize=fontsize)
    ax.axis("off")
    return cbar
