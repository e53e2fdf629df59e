"""The book's own tooling, kept apart from the library a reader imports.

- :mod:`sirrbook.book.build` -- run the chapters with papermill and build the HTML with Jupyter Book
  (``python -m sirr book``, ``make book``);
- :mod:`sirrbook.book.bench` -- inference / training-step timings (``python -m sirr bench``);
- :mod:`sirrbook.book.chapters` -- the computations and figures of chapters 01 and 02;
- :mod:`sirrbook.book.paper_figures` -- the papers' figures redrawn with our models (chapters 08, 09);
- :mod:`sirrbook.book.prose` -- the sentences, captions and markdown the chapters print beside the numbers.

The library proper (``sirr.models``, ``sirr.losses``, ``sirr.data``, ``sirr.metrics``, ``sirr.train``,
``sirrbook.experiments``) never imports this subpackage.
"""

from sirrbook.book.build import (
    PARAMETER_NAMES,
    BookBuildError,
    NotebookExecutionError,
    build_html,
    hide_plumbing,
    list_notebooks,
    run_book,
    run_notebook,
    select_notebooks,
    stage_book,
)

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
    "run_book",
]
