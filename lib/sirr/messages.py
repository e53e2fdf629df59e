"""The library's progress lines (training notes, data found, results read or stored) go to the ``sirr`` logger;
:func:`show_messages` makes them visible, once, where a reader looks: a notebook's output or the terminal.

Paths inside the repository are shown relative to its root (:func:`repo_relative`): ``results/smoke/la/full/0.json``,
not the absolute path of the machine that ran the chapter (which would end up in the built book)."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import TextIO

from sirr.paths import REPO_ROOT

__all__ = ["show_messages", "repo_relative", "repo_relative_text"]

_HANDLER_NAME = "sirr-messages"

#: The loggers :func:`show_messages` shows: the science (``sirr.*``) and the book's machinery (``sirrbook.*``,
#: named here as a logger, not imported).
LOGGERS = ("sirr", "sirrbook")


def _roots(root: str | os.PathLike | None) -> list[str]:
    """The repository root as written and as resolved (they differ when it is reached through a symlink)."""
    base = Path(root) if root is not None else REPO_ROOT
    out = [str(base)]
    try:
        resolved = str(base.resolve())
    except OSError:
        resolved = out[0]
    if resolved not in out:
        out.append(resolved)
    return [r.rstrip(os.sep) or os.sep for r in out]


def repo_relative(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """``path`` relative to the repository root (``root``, default :data:`sirr.paths.REPO_ROOT`) when it is
    inside it, with ``/`` separators; any other path (outside the repository, or already relative) unchanged.
    The root itself is ``"."``."""
    s = os.fspath(path)
    if not os.path.isabs(s):
        return s
    p = Path(os.path.normpath(s))
    for r in _roots(root):
        try:
            rel = p.relative_to(r)
        except ValueError:
            continue
        return rel.as_posix() if rel.parts else "."
    for r in _parents(root):  # beside the checkout (the data root ../shared/data): relative too
        try:
            return "../" + p.relative_to(r).as_posix()
        except ValueError:
            continue
    return s


def _parents(root: str | os.PathLike | None) -> list[str]:
    """The folders holding the repository root (not the file-system root: that would make every path relative)."""
    return [p for p in {os.path.dirname(r) for r in _roots(root)} if p and p != os.sep]


def repo_relative_text(text: str, root: str | os.PathLike | None = None) -> str:
    """``text`` with every absolute path inside the repository root made relative to it (``<root>/x`` ->
    ``x``, and a path beside it ``<parent>/shared/data`` -> ``../shared/data``); a longer name that merely starts like the root (``<root>2/x``) or a path that only ends like it
    (``/elsewhere<root>/x``) is left alone."""
    for r in sorted(_roots(root), key=len, reverse=True):
        if r != os.sep:  # not preceded by a path character: /home/u/work/main/x is another path
            text = re.sub(r"(?<![\w.~/-])" + re.escape(r + os.sep), "", text)
    for r in sorted(_parents(root), key=len, reverse=True):
        text = re.sub(r"(?<![\w.~/-])" + re.escape(r + os.sep), "../", text)
    return text


class _RepoRelativeFormatter(logging.Formatter):
    """One plain line per message, paths inside the repository shown relative to its root."""

    def format(self, record: logging.LogRecord) -> str:
        return repo_relative_text(super().format(record))


def show_messages(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Print the messages of the :data:`LOGGERS` (the science's ``sirr`` and the book machinery's ``sirrbook``)
    at ``level`` and above to ``stream`` (default: standard output), one plain line each, with paths inside the
    repository relative to its root (:func:`repo_relative_text`). Calling it again replaces the earlier handler
    instead of adding a second one."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_RepoRelativeFormatter("%(message)s"))
    for name in LOGGERS:
        log = logging.getLogger(name)
        for h in list(log.handlers):
            if h.get_name() == _HANDLER_NAME:
                log.removeHandler(h)
        log.addHandler(handler)
        log.setLevel(level)
        log.propagate = False  # the line is shown once, not again by a root handler
    return handler
