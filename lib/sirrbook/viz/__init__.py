"""Figure helpers (saved with provenance into ``figures/`` and, in a notebook, shown once with a numbered
caption), the colour map of each quantity (:mod:`sirrbook.viz.style`), and widgets with static fallbacks.

The chapters' own figure code (chapters 01-02, the papers' figures) is in :mod:`sirrbook.book`.
"""

from sirrbook.viz.figures import image_grid, save_figure, show_images
from sirrbook.viz.style import CMAP_CONFIDENCE, CMAP_ERROR, CMAP_GRAY, CMAP_RCMAP

__all__ = ["image_grid", "save_figure", "show_images", "explorer",
           "CMAP_RCMAP", "CMAP_CONFIDENCE", "CMAP_ERROR", "CMAP_GRAY"]


def __getattr__(name):  # widgets import ipywidgets lazily: the library works without it
    if name == "explorer":
        from sirrbook.viz.widgets import explorer

        return explorer
    raise AttributeError(name)
