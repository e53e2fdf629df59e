"""Where the book's data lives: a data root given by parameter, ``$SIRR_DATA``, or ``../shared/data``.

With no data root at all, chapters fall back to natural photos that ship inside installed
packages (see :func:`sirr.data.samples.sample_photos`) and say so in their output.
"""

from __future__ import annotations

import os
from pathlib import Path

from sirr.errors import SirrError
from sirr.paths import REPO_ROOT

__all__ = ["DataRootError", "DatasetNotFoundError", "find_data_root", "ENV_VAR"]

ENV_VAR = "SIRR_DATA"


class DataRootError(SirrError, FileNotFoundError):
    """An explicitly given data root that does not exist."""


class DatasetNotFoundError(SirrError, FileNotFoundError):
    """A dataset that is not under the data root: the message names it, where it was looked for and where it is published."""

    def __init__(self, dataset: str, looked_in, published: str, hint: str = ""):
        self.dataset = dataset
        self.looked_in = [str(p) for p in (looked_in if isinstance(looked_in, (list, tuple)) else [looked_in])]
        self.published = published
        where = ", ".join(self.looked_in) if self.looked_in else "(no data root: pass data_root=... or set $SIRR_DATA)"
        msg = f"dataset {dataset!r} not found; looked in {where}; it is published at {published}"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


def _default_candidates() -> list[Path]:

    cands = [REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    out: list[Path] = []
    for c in cands:
        c = c.resolve()
        if c not in out:
            out.append(c)
    return out


def find_data_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """Resolve the data root: the argument, else ``$SIRR_DATA``, else ``../shared/data`` if it exists, else ``None``.

    An explicit argument or environment value that is not a directory raises :class:`DataRootError`
    (a typo should not silently fall back to sample photos). The value ``"none"`` (argument or
    ``$SIRR_DATA``) asks for no data root at all: the chapters then use the sample photos that ship
    inside installed packages, and say so.
    """
    if data_root not in (None, "") and str(data_root).lower() == "none":
        return None
    if data_root in (None, "") and os.environ.get(ENV_VAR, "").lower() == "none":
        return None
    if data_root not in (None, ""):
        p = Path(data_root).expanduser()
        if not p.is_dir():
            raise DataRootError(f"data root {str(p)!r} (from the data_root parameter) is not a directory")
        return p.resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise DataRootError(f"data root {str(p)!r} (from ${ENV_VAR}) is not a directory")
        return p.resolve()
    for c in _default_candidates():
        if c.is_dir():
            return c
    return None
