"""The book's own tooling, kept apart from the library a reader imports.

- :mod:`sirrbook.book.build` -- run the chapters with papermill and build the HTML with Jupyter Book
  (``python -m sirr book``, ``make book``);
- :mod:`sirrbook.book.bench` -- inference / training-step timings (``python -m sirr bench``);
- :mod:`sirrbook.book.chapters` -- the computations and figures of chapters 01 and 02;
- :mod:`sirrbook.book.paper_figures` -- the papers' figures redrawn with our models (chapters 08, 09);
- :mod:`sirrbook.book.prose` -- the sentences, captions and markdown the chapters print beside the numbers;
- :mod:`sirrbook.book.status` -- the intro's status table and each chapter's verdict line;
- :mod:`sirrbook.book.stored` -- the committed `cpu` results the chapters show.

The library proper (``sirr.models``, ``sirr.losses``, ``sirr.data``, ``sirr.metrics``, ``sirr.train``,
``sirrbook.experiments``) never imports this subpackage.
"""

from sirrbook.book import build as _build
from sirrbook.book.build import *  # noqa: F401,F403  (the build's public names, listed once in build.__all__)

__all__ = [name for name in _build.__all__ if name != "rebuild_html"]
