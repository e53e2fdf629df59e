"""The photos the book shows beside its numbers, and what of each test set is here.

:func:`real_reflection_photos` gives real photos taken through glass (CEILNet real, Zhang et al. 2018 real)
for the chapters' example grids and ``sirr remove --demo``; without a data root, LA-synthesised blends of the
photos that ship inside installed packages, logged as such. :func:`benchmark_inventory` compares each test
set found under the data root with the count the papers evaluate on (``python -m sirr info``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sirr.data.datasets import DATASETS, TEST_SETS, DatasetSpec, find_data_root, find_dataset
from sirr.data.images import read_image
from sirr.data.root import DatasetNotFoundError
from sirr.data.samples import sample_photos
from sirr.data.synthesis import synthesize_la
from sirr.metrics import downsize_max_side

if TYPE_CHECKING:  # the item type of a dataset listing, for the annotation only
    from sirr.data.datasets import _Item

log = logging.getLogger(__name__)

__all__ = ["real_reflection_photos", "benchmark_inventory"]


def real_reflection_photos(data_root=None, n: int | None = None, verbose: bool = True,
                           max_side: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Real photos taken through glass, as ``(name, float32 HxWx3)``: CEILNet real + Zhang et al. 2018 real.

    Without them, LA-synthesised blends (LA Eq. 6 recipe, fixed seed) of the sample photos, logged as such.
    ``max_side`` shrinks each photo (antialiased) so its longer side is at most that many pixels.
    """
    root = find_data_root(data_root)
    out: list[tuple[str, np.ndarray]] = []
    used = []
    if root is not None:
        for name in ("ceilnet_real", "zhang2018_real"):
            try:
                _, items = find_dataset(name, root)
            except DatasetNotFoundError:
                continue
            used.append(name)
            for it in items:
                if n is not None and len(out) >= n:
                    break
                out.append((f"{name}/{it.name}", downsize_max_side(read_image(it.I), max_side)))
    if out:
        if verbose:
            log.info("real reflection photos: %d from %s under %s", len(out), ", ".join(used), root)
        return out[:n] if n is not None else out
    out = _synthetic_fallback(n if n is not None else 4, max_side)
    if verbose:
        why = "no data root" if root is None else f"no real reflection photos under {root}"
        log.warning("%s: using %d LA-synthesised blends of sample photos "
                    "from scikit-image/scikit-learn/matplotlib (not real reflections)", why, len(out))
    return out


def _synthetic_fallback(n: int, max_side: int | None) -> list[tuple[str, np.ndarray]]:
    photos = sample_photos()
    side = max_side or 256
    out = []
    g = torch.Generator().manual_seed(0)
    for k in range(n):
        tn, t = photos[(2 * k) % len(photos)]
        rn, r = photos[(2 * k + 1) % len(photos)]
        h = min(t.shape[0], r.shape[0], side)
        w = min(t.shape[1], r.shape[1], side)
        T = torch.from_numpy(t[:h, :w].astype(np.float32) / 255).permute(2, 0, 1)[None]
        R = torch.from_numpy(r[:h, :w].astype(np.float32) / 255).permute(2, 0, 1)[None]
        res = synthesize_la(T, R, g)
        I = res["I"] if isinstance(res, dict) else res[0]
        out.append((f"synthetic_{tn}+{rn}", I[0].permute(1, 2, 0).clamp(0, 1).numpy().astype(np.float32)))
    return out


def _missing_sentence(spec: DatasetSpec, folder: Path, items: list[_Item]) -> str:
    """How the copy found differs from the count the papers evaluate on ("" when it does not)."""
    found = len(items)
    ref = spec.paper_count if spec.paper_count is not None else spec.count
    if ref is None or found == ref:
        return ""
    unit = spec.unit
    if found > ref:
        if spec.paper_count is not None and spec.count is not None and spec.paper_count < spec.count:
            return (f"{found - ref} more than the papers' {ref}-{unit} subset{spec.paper_note}: "
                    f"all {found} are scored")
        return f"{found - ref} more than the published {ref}"
    out = f"{ref - found} of {ref} missing"
    names = [it.name for it in items]
    if spec.names is not None and set(names) <= set(spec.names):
        absent = [n for n in spec.names if n not in set(names)]
        if absent:
            word = unit if len(absent) == 1 else unit + "s"
            return out + f" ({word} {', '.join(absent)} absent in this copy)"
    # every item under one non-numeric sub-folder (e.g. Postcard's Thick/): only that part is here
    firsts = set()
    for it in items:
        rel = it.I.parent.relative_to(folder).parts if it.I.is_relative_to(folder) else ()
        firsts.add(rel[0] if len(rel) >= 2 else None)
    if len(firsts) == 1:
        (part,) = firsts
        if part and not part.isdigit() and part.lower() not in ("withgt", "blended"):
            return out + f": only the {part} part is here"
    return out


def benchmark_inventory(data_root=None) -> list[dict]:
    """What of each test set in :data:`TEST_SETS` is under the data root, against the papers' counts.

    One dict per set, in :data:`TEST_SETS` order: ``name``, ``title``, ``found`` (items with the set's
    layout; 0 when absent), ``paper_count`` (what LA Table 1 evaluates on; ``None`` where the papers do
    not report on the set), ``folder`` (``str`` or ``None``) and ``missing``: a short sentence, empty when
    the copy matches, e.g. ``"1 of 20 missing (pair 3 absent in this copy)"``,
    ``"139 of 199 missing: only the Thick part is here"``,
    ``"46 more than the papers' 55-scene subset, whose list is unpublished: all 101 are scored"`` or
    ``"not found under <root>"``.
    """
    try:
        root = find_data_root(data_root)
    except FileNotFoundError:
        root = None
    out = []
    for name in TEST_SETS:
        spec = DATASETS[name]
        row = {"name": name, "title": spec.title, "found": 0, "paper_count": spec.paper_count, "folder": None,
               "missing": f"not found under {root}" if root is not None else "not found: no data root"}
        if root is not None:
            try:
                d, items = find_dataset(name, root)
            except DatasetNotFoundError:
                pass
            else:
                row.update(found=len(items), folder=str(d), missing=_missing_sentence(spec, d, items))
        out.append(row)
    return out
