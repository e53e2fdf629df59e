"""Figure helpers (saved with provenance into ``figures/``) and widgets with static fallbacks.

The chapters' own figure code (chapters 01-02, the papers' figures) is in :mod:`sirr.book`.
"""

from sirr.viz.figures import image_grid, save_figure, show_images

__all__ = ["image_grid", "save_figure", "show_images", "explorer"]


def __getattr__(name):  # widgets import ipywidgets lazily: the library works without it
    if name == "explorer":
        from sirr.viz.widgets import explorer

        return explorer
    raise AttributeError(name)
