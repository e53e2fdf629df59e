"""sirrbook: the book's machinery, beside the science in :mod:`sirr`.

- :mod:`sirrbook.experiments` and :mod:`sirrbook.results` -- the papers' tables as named, cached runs, and the
  results store they write (with :mod:`sirrbook.weights`, the committed weights);
- :mod:`sirrbook.book` -- the book build (papermill + Jupyter Book), the bench, chapter helpers and prose;
- :mod:`sirrbook.viz` -- figures, tables and widgets;
- :mod:`sirrbook.inference` and :mod:`sirrbook.remove` -- the inference paths and ``python -m sirr remove``;
- :mod:`sirrbook.cli` (``python -m sirr``) and :mod:`sirrbook.train_cli` (``python -m sirr train``).

Everything here may import :mod:`sirr`; nothing in :mod:`sirr` imports this package (tested).
"""

import importlib

_SUBMODULES = {"book", "cli", "experiments", "inference", "remove", "results", "train_cli", "viz", "weights"}


def __getattr__(name: str):
    """``sirrbook.experiments``, ``sirrbook.viz``, ... imported on first use."""
    if name in _SUBMODULES:
        return importlib.import_module(f"sirrbook.{name}")
    raise AttributeError(f"module 'sirrbook' has no attribute {name!r}")
