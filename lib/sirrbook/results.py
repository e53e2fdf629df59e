"""The results store: ``results/<preset>/<experiment>/<seed>.json`` with provenance beside every number.

Chapters call :func:`load_or_compute`: when a result for the run's preset, experiment and seed is
already stored (for instance written by a GPU run at the ``demo`` preset and committed), it is read
back instead of retraining, so rebuilding the book is cheap; ``retrain=True`` (a notebook
parameter) recomputes and overwrites. ``experiment`` may contain ``/`` for nesting
(``"ablations/la/no_lstm"``). Each file holds::

    {"experiment": ..., "preset": ..., "seed": ..., "created": ISO-8601 UTC,
     "provenance": sirr.provenance.provenance(run), "config": run.as_dict(),
     "payload": {...}, "images": {"name": "<seed>_<name>.png", ...}}

Writes are atomic (:func:`sirr.atomic.atomic_write`: temporary file in the same folder + ``os.replace``),
so a crash mid-write never leaves a half file under the real name. Small example images are stored beside as
``<seed>_<name>.png`` (8-bit, longer side capped at :data:`IMAGE_MAX_SIDE`).

Checkpoints may be committed only if ≤ 25 MB (:data:`CHECKPOINT_LIMIT_BYTES`);
:func:`register_checkpoint` lists them in ``results/checkpoints.json`` with sha256, preset and commit.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from sirr.atomic import atomic_write_text
from sirr.data.images import as_hwc, read_image, write_image
from sirr.errors import SirrError
from sirr.messages import repo_relative
from sirr.metrics import downsize_max_side
from sirr.provenance import provenance

__all__ = [
    "ResultsError",
    "CheckpointTooLarge",
    "CHECKPOINT_LIMIT_BYTES",
    "IMAGE_MAX_SIDE",
    "result_path",
    "save_result",
    "load_result",
    "load_results",
    "load_or_compute",
    "sha256_file",
    "load_image",
    "register_checkpoint",
    "load_manifest",
    "atomic_write_text",
]

CHECKPOINT_LIMIT_BYTES = 25 * 1024 * 1024
IMAGE_MAX_SIDE = 512

log = logging.getLogger(__name__)


#: Keys :func:`load_result` adds to a payload; dropped again when such a dict is saved.
_RESERVED = ("_provenance", "_path", "_images", "_seed")


class ResultsError(SirrError, ValueError):
    """A malformed experiment name or result file."""


class CheckpointTooLarge(SirrError, ValueError):
    """A checkpoint above the 25 MB limit for committed files."""


_SEG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


def _check_experiment(experiment: str) -> str:
    exp = str(experiment).strip("/")
    parts = exp.split("/")
    if not exp or any(p in ("", ".", "..") or not _SEG.match(p) for p in parts):
        raise ResultsError(
            f"bad experiment name {experiment!r}: use letters, digits, '_', '-', '.', '+', '=' and '/' for nesting"
        )
    return exp


def _results_dir(run) -> Path:
    return Path(run.results_dir) / run.preset.name


def result_path(run, experiment: str, seed: int | None = None) -> Path:
    """``results/<preset>/<experiment>/<seed>.json`` (``seed`` defaults to ``run.seed``)."""
    s = run.seed if seed is None else seed
    if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0:
        raise ResultsError(f"seed must be a non-negative integer, got {s!r}")
    return _results_dir(run) / _check_experiment(experiment) / f"{int(s)}.json"


def _jsonable(x: Any) -> Any:
    """numpy/torch/Path values -> JSON types; ``inf``/``nan`` kept as floats (JSON ``Infinity``/``NaN``)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, pd.DataFrame):
        return _jsonable(x.to_dict(orient="records"))
    if isinstance(x, pd.Series):
        return _jsonable(x.to_dict())
    if isinstance(x, torch.Tensor):
        return _jsonable(x.detach().cpu().numpy())
    return x


def _atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def _small(img) -> np.ndarray:
    a = as_hwc(img)
    if max(a.shape[:2]) > IMAGE_MAX_SIDE:
        a = downsize_max_side(a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0), IMAGE_MAX_SIDE)
    return a


def save_result(run, experiment: str, payload: dict, images: dict | None = None, seed: int | None = None) -> Path:
    """Store ``payload`` (JSON-able; numpy/pandas values converted) with provenance; returns the JSON path.

    ``images`` maps short names to ``HxWx3`` arrays (float [0, 1] or uint8) or ``(1,3,H,W)`` tensors,
    written as ``<seed>_<name>.png`` beside the JSON (longer side ≤ :data:`IMAGE_MAX_SIDE`).
    """
    path = result_path(run, experiment, seed)
    s = int(run.seed if seed is None else seed)
    if not isinstance(payload, dict):
        raise ResultsError(f"payload of {experiment!r} must be a dict, got {type(payload).__name__}")
    payload = {k: v for k, v in payload.items() if k not in _RESERVED}  # a re-saved load_result() dict
    stored_images = {}
    for name, img in (images or {}).items():
        if img is None:
            continue
        safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", str(name))
        fn = f"{s}_{safe}.png"
        write_image(path.parent / fn, _small(img))
        stored_images[str(name)] = fn
    prov = provenance(run)
    prov["seed"] = s
    config = run.as_dict() if hasattr(run, "as_dict") else {}
    rec = {
        "experiment": _check_experiment(experiment),
        "preset": run.preset.name,
        "seed": s,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "provenance": _jsonable(prov),
        "config": _jsonable(config),
        "payload": _jsonable(payload),
        "images": stored_images,
    }
    return _atomic_write_json(path, rec)


def _read(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"result file {repo_relative(path)!r} is not valid JSON ({e}); delete it or rerun with retrain=True") from None
    if not isinstance(rec, dict) or "payload" not in rec:
        raise ResultsError(f"result file {repo_relative(path)!r} has no 'payload'; delete it or rerun with retrain=True")
    rec["path"] = str(path)
    return rec


def load_result(run, experiment: str, seed: int | None = None, *, full: bool = False) -> dict | None:
    """The stored payload (or, with ``full=True``, the whole record incl. provenance), ``None`` if absent.

    The payload comes back with two extra keys: ``_provenance`` (preset, seed, device, versions,
    commit, created) and ``_path``, so a chapter can print where a number came from.
    """
    rec = _read(result_path(run, experiment, seed))
    if rec is None:
        return None
    if full:
        return rec
    out = dict(rec["payload"])
    out["_provenance"] = {**rec.get("provenance", {}), "created": rec.get("created")}
    out["_path"] = rec["path"]
    out["_images"] = {k: str(Path(rec["path"]).parent / v) for k, v in rec.get("images", {}).items()}
    return out


def load_results(run, experiment: str, *, full: bool = False) -> list[dict]:
    """Every stored seed of ``experiment`` at the run's preset, sorted by seed (for mean ± std)."""
    d = _results_dir(run) / _check_experiment(experiment)
    if not d.is_dir():
        return []
    seeds = sorted(int(p.stem) for p in d.glob("*.json") if p.stem.isdigit())
    out = []
    for s in seeds:
        r = load_result(run, experiment, s, full=full)
        if r is not None:
            if not full:
                r["_seed"] = s
            out.append(r)
    return out


def load_image(record: dict, name: str) -> np.ndarray:
    """An image stored beside a result (``record`` from :func:`load_result`) as float32 HxWx3."""
    paths = record.get("_images") or {}
    if name not in paths:
        raise KeyError(f"result has no image {name!r}; stored: {sorted(paths)}")
    return read_image(paths[name])


def load_or_compute(run, experiment: str, compute: Callable[[], dict], seed: int | None = None,
                    images: dict | Callable[[], dict | None] | None = None, verbose: bool = True) -> dict:
    """Read the stored result unless ``run.retrain`` or it is missing; otherwise ``compute()``, store, return it.

    ``images`` (a dict, or a callable returning one after ``compute`` ran) are saved beside the JSON.
    The returned dict is what :func:`load_result` gives (payload plus ``_provenance``/``_path``), in
    both cases, so a chapter shows the same thing whether it computed or read the number.
    """
    path = result_path(run, experiment, seed)
    if not getattr(run, "retrain", False):
        try:
            rec = load_result(run, experiment, seed)
        except ResultsError as e:
            if verbose:
                log.warning("%s; recomputing", e)
            rec = None
        if rec is not None:
            if verbose:
                p = rec["_provenance"]
                log.info("read stored result %s (preset %s, seed %s, device %s, commit %s, %s)", repo_relative(path),
                         p.get("preset"), p.get("seed"), p.get("device"), p.get("commit"), p.get("created"))
            return rec
    payload = compute()
    if not isinstance(payload, dict):
        raise ResultsError(f"compute() for {experiment!r} must return a dict, got {type(payload).__name__}")
    imgs = images() if callable(images) else images
    save_result(run, experiment, payload, images=imgs, seed=seed)
    if verbose:
        log.info("computed and stored %s", repo_relative(path))
    return load_result(run, experiment, seed)


# ---------------------------------------------------------------------------------------------
# checkpoints


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest_path(run) -> Path:
    return Path(getattr(run, "results_dir", run)) / "checkpoints.json"


def load_manifest(run) -> dict:
    """``results/checkpoints.json`` as a dict ``{"checkpoints": {name: entry}}`` (empty when absent); ``run`` is a
    run configuration or the results folder itself."""
    p = _manifest_path(run)
    if not p.exists():
        return {"checkpoints": {}}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ResultsError(f"checkpoint manifest {str(p)!r} is not valid JSON ({e})") from None


def register_checkpoint(path: str | os.PathLike, run, name: str, *, limit_bytes: int = CHECKPOINT_LIMIT_BYTES,
                        extra: dict | None = None) -> dict:
    """List a checkpoint (≤ 25 MB) in ``results/checkpoints.json`` with sha256, size, preset, seed and commit
    (and ``extra``: what the weights are, e.g. steps, samples seen, pool fingerprint, VGG source).

    Raises :class:`CheckpointTooLarge` above ``limit_bytes`` (store fp16 weights only, or keep the file
    out of git) and ``FileNotFoundError`` when ``path`` does not exist. Returns the manifest entry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {repo_relative(path)!r} does not exist")
    size = path.stat().st_size
    if size > limit_bytes:
        raise CheckpointTooLarge(
            f"checkpoint {repo_relative(path)!r} is {size / 2**20:.1f} MB, above the {limit_bytes / 2**20:.0f} MB limit for "
            f"committed checkpoints; save fp16 weights only (model.half().state_dict()) or keep it out of git"
        )
    prov = provenance(run)
    try:
        rel = str(path.resolve().relative_to(Path(run.results_dir).resolve().parent))
    except ValueError:
        rel = str(path)
    entry = {
        "path": rel,
        "sha256": sha256_file(path),
        "bytes": size,
        "preset": run.preset.name,
        "seed": run.seed,
        "commit": prov.get("commit"),
        "device": prov.get("device"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **_jsonable(extra or {}),
    }
    manifest = load_manifest(run)
    manifest.setdefault("checkpoints", {})[str(name)] = entry
    _atomic_write_json(_manifest_path(run), manifest)
    return entry

