"""The library's progress lines (training notes, data found, results read or stored) go to the ``sirr`` logger;
:func:`show_messages` makes them visible, once, where a reader looks: a notebook's output or the terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["show_messages"]

_HANDLER_NAME = "sirr-messages"


def show_messages(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Print the ``sirr`` loggers' messages at ``level`` and above to ``stream`` (default: standard output),
    one plain line each. Calling it again replaces the earlier handler instead of adding a second one."""
    log = logging.getLogger("sirr")
    for h in list(log.handlers):
        if h.get_name() == _HANDLER_NAME:
            log.removeHandler(h)
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False  # the line is shown once, not again by a root handler
    return handler
