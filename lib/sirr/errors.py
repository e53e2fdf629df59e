"""The one base class of every error the library raises on purpose.

Each error also derives from the built-in exception a caller would expect (``ValueError`` for a bad name or
file, ``FileNotFoundError`` for a missing one, ``RuntimeError`` for a missing dependency), so
``except ValueError`` keeps working; ``except SirrError`` catches every one of them, from :mod:`sirr` and from
the book's machinery (:mod:`sirrbook`) alike.
"""

from __future__ import annotations

__all__ = ["SirrError"]


class SirrError(Exception):
    """Base of every error raised on purpose by :mod:`sirr` and :mod:`sirrbook` (one clear line a user can act on)."""
