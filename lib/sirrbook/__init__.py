"""sirrbook: the book's machinery, beside the science in :mod:`sirr`.

- :mod:`sirrbook.experiments` and :mod:`sirrbook.results` -- the papers' tables as named, cached runs, and the
  results store they write (with :mod:`sirrbook.weights`, the committed weights);
- :mod:`sirrbook.evaluation` -- scoring a model on the test sets, and the paired intervals behind every verdict;
- :mod:`sirrbook.photos` -- the real photos the chapters show, and what of each test set is here;
- :mod:`sirrbook.book` -- the book build (papermill + Jupyter Book), the bench, chapter helpers and prose;
- :mod:`sirrbook.viz` -- figures, tables and widgets;
- :mod:`sirrbook.inference` and :mod:`sirrbook.remove` -- the inference paths and ``python -m sirr remove``;
- :mod:`sirrbook.cli` (``python -m sirr``) and :mod:`sirrbook.train_cli` (``python -m sirr train``).

Everything here may import :mod:`sirr`; nothing in :mod:`sirr` imports this package (tested).
"""

import importlib

_SUBMODULES = {"book", "cli", "evaluation", "experiments", "inference", "photos", "remove", "results", "train_cli", "viz",
               "weights"}


def __getattr__(name: str):
    """``sirrbook.experiments``, ``sirrbook.viz``, ... imported on first use."""
    if name in _SUBMODULES:
        return importlib.import_module(f"sirrbook.{name}")
    raise AttributeError(f"module 'sirrbook' has no attribute {name!r}")
