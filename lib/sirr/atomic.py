"""The one atomic writer of the package: every file sirr writes goes through :func:`atomic_write`.

The data is written to a temporary file in the destination folder (``.<name>.<random>.tmp``),
flushed and fsynced, then moved onto the real name with ``os.replace`` (atomic on POSIX and
Windows); the folder is fsynced so the rename survives a power cut. A crash mid-write leaves at
most a hidden temporary, never a half file under the real name, and never touches an existing
file until the new one is complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "TEMP_GLOB"]

#: Glob matching the temporaries :func:`atomic_write` leaves behind when a process is killed mid-write.
TEMP_GLOB = ".*.tmp"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows, where folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None],
                 *, before_replace: Callable[[], None] | None = None) -> Path:
    """Call ``write(fh)`` on a binary temporary beside ``path``, then move it onto ``path`` atomically.

    ``before_replace`` runs after the data is on disk and right before the rename (a last check that may
    raise to abandon the write; the temporary is removed and ``path`` is left as it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the mode a plain open() would
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(text.encode(encoding)))
