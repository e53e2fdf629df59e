"""What a run writes as it goes: ``train.log`` (:class:`RunLog`, the notes a run must not hide) and
``metrics.jsonl`` (:class:`MetricsLog`, one JSON object per logged step; :func:`read_metrics` reads it back).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from sirr.atomic import atomic_write_text
from sirr.errors import SirrError

__all__ = ["RunLog", "MetricsLog", "MetricsNotFoundError", "read_metrics"]

log = logging.getLogger("sirr.train.engine")  # the name the training notes have always been logged under


class MetricsNotFoundError(SirrError, FileNotFoundError):
    """No metrics.jsonl in the given run folder."""


class RunLog:
    """Notes a run must not hide (VGG fallback, synthetic-only data, resume): kept in ``notes`` and
    ``train.log`` and echoed through logging (INFO on ``sirr.train.engine``)."""

    def __init__(self, run_dir: Path, enabled: bool = True, echo: bool = True) -> None:
        self.path = Path(run_dir) / "train.log"
        self.enabled = enabled
        self.echo = echo
        self.notes: list[str] = []

    def __call__(self, message: str) -> None:
        self.notes.append(message)
        if not self.enabled:
            return
        if self.echo:
            log.info("[train] %s", message)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")


class MetricsLog:
    """``metrics.jsonl``: one JSON object per logged step, flushed line by line (rank 0 only).

    On resume from step ``k`` the lines of steps > ``k`` (logged after the checkpoint, before the
    interruption) and any torn last line are dropped (the file is rewritten atomically), so the file
    never holds a step twice.
    """

    def __init__(self, path: Path, enabled: bool = True, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._fh = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[str] = []
        if resume_step is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and int(rec.get("step", 0)) <= resume_step:
                    kept.append(line)
        atomic_write_text(self.path, "".join(k + "\n" for k in kept))
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(record, sort_keys=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_metrics(run_dir_or_file: str | os.PathLike):
    """The metrics of a run as a ``pandas.DataFrame`` (columns: step, phase, lr, seconds and the loss names).

    Accepts a run folder (reads its ``metrics.jsonl``) or the file itself; a torn last line (a run
    killed mid-write) is skipped.
    """
    p = Path(run_dir_or_file)
    f = p / "metrics.jsonl" if p.is_dir() else p
    if not f.is_file():
        raise MetricsNotFoundError(f"no metrics file at {str(f)!r}; train first or pass a run folder")
    rows = []
    for line in f.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            rows.append(rec)
    df = pd.DataFrame(rows)
    if "step" in df:
        df = df.sort_values("step", kind="stable").reset_index(drop=True)
    return df
