"""``python -m sirr {info,book,bench,train,publish,claims,remove} ...``: the command line lives in :mod:`sirrbook.cli`.

The science package never imports the book's machinery when it is imported; this entry point is the one
exception, and it imports the command line only when it runs (tested in ``tests/test_imports.py``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from sirrbook.cli import main as cli_main  # lazy: importing sirr never imports sirrbook

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
