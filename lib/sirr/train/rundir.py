"""Where a run lives: ``runs/<preset>/<method>/<variant>/<data>/seed<seed>`` -- named without reading the data.

``<data>`` is ``nodata`` for a run on the photos that ship inside installed packages, else ``data-`` and 8 hex
digits of the data root's resolved path: runs on two data roots never share a folder, and naming a folder never
scans photos or runs the leak check. What the run actually trained on (the pool's size, counts and fingerprint)
is recorded inside the run, in every checkpoint's ``pool`` entry, and a resume refuses a ``last.pt`` whose pool
fingerprint differs from the pool it is given (:meth:`sirr.train.engine.Session.load_last`).

Folders of the older scheme, which named the data by the pool's fingerprint (``<8 hex digits>`` instead of
``data-...``), are still found: when the new folder does not exist and exactly one such folder does, it is used.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sirr.paths import REPO_ROOT

__all__ = ["variant_name", "data_tag", "default_run_dir"]


def variant_name(**options: Any) -> str:
    """A folder-safe name for non-default options, e.g. ``use_lstm-False`` (``full`` when none)."""
    parts = []
    for k, v in sorted(options.items()):
        if v is None or v == {}:
            continue
        if isinstance(v, dict):
            parts.extend(f"{kk}-{vv}" for kk, vv in sorted(v.items()))
        else:
            parts.append(f"{k}-{v}")
    if not parts:
        return "full"
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(parts))[:120]


def data_tag(run: Any) -> str:
    """``"nodata"`` without a data root, else ``data-`` and 8 hex digits of the data root's resolved path (the path,
    not the photos: nothing is read)."""
    if run.data_root is None:
        return "nodata"
    return "data-" + hashlib.sha256(str(Path(run.data_root).resolve()).encode()).hexdigest()[:8]


_LEGACY = re.compile(r"[0-9a-f]{8}")


def default_run_dir(run: Any, method: str, variant: str = "full", *, runs_dir: str | Path | None = None) -> Path:
    """``<repo>/runs/<preset>/<method>/<variant>/<data tag>/seed<seed>`` (:func:`data_tag`): the one run-folder
    scheme (``runs/`` is git-ignored). Reads no data; a folder of the older fingerprint scheme is reused when it
    is the only one (module docstring)."""
    base = Path(runs_dir or REPO_ROOT / "runs") / run.preset.name / method / variant
    here = base / data_tag(run) / f"seed{run.seed}"
    if run.data_root is not None and not here.exists() and base.is_dir():
        legacy = [d / f"seed{run.seed}" for d in base.iterdir()
                  if _LEGACY.fullmatch(d.name) and (d / f"seed{run.seed}").is_dir()]
        if len(legacy) == 1:
            return legacy[0]
    return here
