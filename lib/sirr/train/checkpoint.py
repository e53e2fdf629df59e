"""Checkpoints that load with ``torch.load(weights_only=True)``, written atomically.

Checkpoints contain only tensors and primitive containers (:func:`plain`; RNG states converted to tensors and
lists by :func:`sirr.train.determinism.capture_rng`) so that :func:`load_checkpoint` can refuse pickled code
with one line. Writes go through :func:`sirr.atomic.atomic_write` (a temporary file in the same folder, fsynced
and renamed with ``os.replace``): a crash mid-write never leaves a half file under the real name.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from sirr.atomic import atomic_write
from sirr.errors import SirrError

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "CheckpointNotFoundError",
           "atomic_torch_save", "plain", "load_checkpoint", "selected_checkpoint"]

CHECKPOINT_FORMAT = "sirr-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(SirrError, ValueError):
    """A checkpoint that cannot be used here: pickled code, another model's, unreadable, incompatible."""


class CheckpointNotFoundError(SirrError, FileNotFoundError):
    """No checkpoint file at the given path."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`sirr.atomic.atomic_write` (temporary beside ``path``, fsync, ``os.replace``)."""
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def plain(obj: Any) -> Any:
    """Dataclasses, paths and tuples as JSON-/``weights_only``-friendly primitives (dicts, lists, str, numbers)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None, map_location: Any = "cpu") -> dict[str, Any]:
    """Read one of our checkpoints with ``torch.load(weights_only=True)``.

    ``kind`` ("la" or "ts") refuses another model's checkpoint. Raises :class:`CheckpointNotFoundError`
    for a missing file and :class:`CheckpointError` (one line) for pickled code, an unreadable or
    truncated file, or a file that is not a sirr training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"checkpoint {str(path)!r} does not exist; train first (python -m sirr train ...) or pass the "
            "path of a final.pt / last.pt"
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: refusing to load pickled code (torch.load weights_only=True failed: {first}); "
            "only checkpoints of plain tensors are accepted"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {first}") from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        hint = ""
        if isinstance(obj, dict) and any(isinstance(v, torch.Tensor) for v in obj.values()):
            hint = " (a bare state dict; for the LA authors' released model.pth use LocationAware.from_release)"
        raise CheckpointError(f"{path} is not a sirr training checkpoint{hint}")
    got = obj.get("kind")
    if kind is not None and got != kind:
        raise CheckpointError(
            f"{path} is a {str(got).upper()} checkpoint, not {kind.upper()}: it holds the other method's "
            f"weights; pass a {kind.upper()} checkpoint"
        )
    return obj


def selected_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The model of record of a finished run: ``best.pt`` (the best validation score, chosen on validation only)
    when the run had a validation set, else ``final.pt``; ``None`` while the run is unfinished or truncated."""
    d = Path(run_dir)
    if not (d / "final.pt").is_file():
        return None
    return d / "best.pt" if (d / "best.pt").is_file() else d / "final.pt"
