"""``python -m sirrbook ...`` is ``python -m sirr ...`` (:mod:`sirrbook.cli`)."""

import sys

from sirrbook.cli import main

if __name__ == "__main__":
    sys.exit(main())
