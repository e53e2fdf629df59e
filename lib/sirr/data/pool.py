"""The training pool: the natural photos training mixtures are synthesised from, minus every test photo.

TS synthesises its training mixtures from PASCAL VOC 2012 photos (TS Sec. IV-B); LA from the image set of
CEILNet [4] (LA Sec. 5), which CEILNet's release draws from VOC 2012 too. We add the whole BSDS500 and the Sun-Hays 80 scenes, all read in their published layouts under the
data root:

* ``VOCdevkit/VOC2012/JPEGImages/<VOC id>.jpg`` (a user's full 17k-photo VOC too: files are listed,
  not decoded; each photo is decoded when training first draws it);
* ``BSR/BSDS500/data/images/{train,val,test}/<id>.jpg`` (Berkeley's BSR tarball);
* ``sun_hays80/*.jpg``;
* ``bsds500/<id>-label.png`` (19 BSDS500 test photos as CEILNet ships them): the same photos as
  BSR's, so they count once (used only when BSR is absent).

**No test photo is ever a training photo.** The pool leaves out every photo that a test set in use
(every benchmark of :data:`sirr.data.datasets.TEST_SETS` found under the data root) was made from:

1. *by VOC id*: CEILNet names its synthetic triples by the VOC id of their transmission photo;
2. *by content*: every remaining pool photo is compared with every test ground truth
   (:mod:`sirr.data.fingerprint`: a 1/8-scale grey fingerprint ranks candidates, and the best
   candidates are verified by exact normalised cross-correlation at full resolution), which catches
   renamed copies, crops (CEILNet's 224x224 transmissions are crops of VOC photos), resizes and
   re-encodes.

The decision is cached per data root in ``$SIRR_CACHE`` (default ``~/.cache/sirr``), keyed by the
names, sizes and modification times of every file involved, so only the first build pays for the
content check. Without a data root (or with ``data_root="none"``) the pool is the photos that ship
inside installed packages (:func:`sirr.data.samples.sample_photos`), and it says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sirr.atomic import atomic_write_text
from sirr.data import fingerprint as fp
from sirr.data.datasets import TEST_SETS, sample_photos, test_ground_truths, test_source_ids
from sirr.data.images import IMAGE_EXTENSIONS, read_image_uint8
from sirr.data.root import find_data_root

__all__ = ["PoolPhoto", "Exclusion", "PhotoPool", "build_pool", "natural_photos", "POOL_SOURCES", "cache_dir"]

log = logging.getLogger(__name__)

#: Where each source lives under the data root (first existing folder wins) and its file pattern.
POOL_SOURCES: dict[str, tuple[tuple[str, ...], str]] = {
    "voc": (("VOCdevkit/VOC2012/JPEGImages", "VOC2012/JPEGImages", "VOCdevkit/VOC2012"), "*.jpg"),
    "bsds500": (("BSR/BSDS500/data/images",), "*/*.jpg"),
    "sun_hays80": (("sun_hays80", "sun_hays", "SunHays80"), "*.jpg"),
    "bsds500_ceilnet": (("bsds500",), "*-label.png"),
}
_TITLES = {"voc": "VOC 2012", "bsds500": "BSDS500", "sun_hays80": "Sun-Hays", "bsds500_ceilnet": "BSDS500 (CEILNet copy)",
           "sample": "sample photos"}
_CACHE_VERSION = 1


@dataclass(frozen=True)
class PoolPhoto:
    """One training photo: ``name`` (``<source>/<id>``), where it is, and which collection it is from."""

    name: str
    path: Path
    source: str


@dataclass(frozen=True)
class Exclusion:
    """A photo left out of the pool, and why (``reason``: ``"voc-id"``, ``"content"`` or ``"duplicate"``)."""

    name: str
    reason: str
    test_set: str
    test_image: str
    score: float | None = None


def cache_dir() -> Path:
    """``$SIRR_CACHE``, else ``$XDG_CACHE_HOME/sirr``, else ``~/.cache/sirr``."""
    env = os.environ.get("SIRR_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sirr"


class PhotoPool(Sequence):
    """The training pool as a sequence of ``(name, uint8 HxWx3)``, decoded when an item is read.

    ``photos`` lists what is in it, ``excluded`` what was left out and why; :meth:`summary` says both
    in one line and :attr:`fingerprint` identifies the exact set of photos (for manifests).
    """

    def __init__(self, photos: list[PoolPhoto], excluded: list[Exclusion], root: Path | None,
                 arrays: list[np.ndarray] | None = None, tests: dict[str, int] | None = None):
        self.photos = photos
        self.excluded = excluded
        self.root = root
        self.tests = tests or {}
        self._arrays = arrays

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        p = self.photos[i]
        return p.name, (self._arrays[i] if self._arrays is not None else read_image_uint8(p.path))

    @property
    def lazy(self) -> bool:
        """True when photos are read from disk on access (a synthesizer then decodes only what it draws)."""
        return self._arrays is None

    def subset(self, n: int | None) -> PhotoPool:
        """The first ``n`` photos (all when ``n`` is None), same exclusions."""
        if n is None:
            return self
        if int(n) < 0:
            raise ValueError(f"max_images must be >= 0, got {n}")
        arrays = self._arrays[: int(n)] if self._arrays is not None else None
        return PhotoPool(self.photos[: int(n)], self.excluded, self.root, arrays, self.tests)

    def select(self, indices: Sequence[int]) -> PhotoPool:
        """The photos at ``indices`` (in that order), same exclusions (e.g. a held-out validation part)."""
        idx = [int(i) for i in indices]
        arrays = [self._arrays[i] for i in idx] if self._arrays is not None else None
        return PhotoPool([self.photos[i] for i in idx], self.excluded, self.root, arrays, self.tests)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(p.source for p in self.photos))

    @property
    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the sorted photo names: the same pool gives the same value anywhere."""
        return hashlib.sha256("\n".join(sorted(p.name for p in self.photos)).encode()).hexdigest()[:16]

    def excluded_by(self, reason: str) -> list[Exclusion]:
        return [e for e in self.excluded if e.reason == reason]

    def summary(self) -> str:
        parts = " + ".join(f"{n} {_TITLES.get(s, s)}" for s, n in self.counts.items())
        where = f"under {self.root}" if self.root else "(no data root: photos that ship inside installed packages)"
        line = f"training pool: {len(self)} photos ({parts}) {where}"
        if self.root is not None:
            ids, content, dup = (len(self.excluded_by(r)) for r in ("voc-id", "content", "duplicate"))
            line += (f"; left out {ids + content} that test sets were made from ({ids} by VOC id, {content} by content, "
                     f"checked against {sum(self.tests.values())} test ground truths of {len(self.tests)} sets)")
            if dup:
                line += f"; {dup} duplicates counted once"
        return line

    def describe(self) -> dict:
        """A JSON-friendly record for manifests and results."""
        return {"size": len(self), "counts": self.counts, "fingerprint": self.fingerprint,
                "root": str(self.root) if self.root else None,
                "excluded": {r: len(self.excluded_by(r)) for r in ("voc-id", "content", "duplicate")},
                "test_sets": self.tests}

    def __repr__(self) -> str:
        return f"PhotoPool({len(self)} photos, fingerprint {self.fingerprint})"


def _sample_pool() -> PhotoPool:
    """The no-data pool: the photos that ship inside installed packages, held in memory."""
    photos = sample_photos()
    return PhotoPool([PoolPhoto(n, Path(n), "sample") for n, _ in photos], [], None, [a for _, a in photos])


def _list_source(root: Path, source: str) -> list[PoolPhoto]:
    folders, pattern = POOL_SOURCES[source]
    for rel in folders:
        d = root / rel
        if not d.is_dir():
            continue
        files = sorted(p for p in d.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not p.name.startswith("."))
        if files:
            return [PoolPhoto(f"{source}/{p.relative_to(d).with_suffix('').as_posix().removesuffix('-label')}",
                              p, source) for p in files]
    return []


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256(f"v{_CACHE_VERSION}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _content_matches(pool: list[PoolPhoto], tests: list[tuple[str, Path]]) -> list[Exclusion]:
    """Pool photos whose content matches a test ground truth (see :mod:`sirr.data.fingerprint`)."""
    if not pool or not tests:
        return []
    fps = [fp.fingerprint(p.path) for p in pool]
    fts = [fp.fingerprint(t) for _, t in tests]
    whole, crop = fp.match_scores(fts, fps)
    coarse = np.maximum(whole, crop)
    full: dict[Path, np.ndarray] = {}

    def grey(path: Path) -> np.ndarray:
        if path not in full:
            full[path] = fp.grey_at(path, fp.VERIFY_SCALE, draft=False)
        return full[path]

    found: dict[str, Exclusion] = {}
    for i, (set_name, tpath) in enumerate(tests):
        order = np.argsort(-coarse[i])[: fp.CANDIDATES_PER_TEST]
        for j in order:
            if coarse[i, j] < fp.CANDIDATE_THRESHOLD or pool[j].name in found:
                continue
            if fp.verify(fts[i].thumb, fps[j].thumb) < fp.REFINE_THRESHOLD:
                continue
            score = fp.verify(grey(tpath), grey(pool[j].path))
            if score >= fp.VERIFY_THRESHOLD:
                found[pool[j].name] = Exclusion(pool[j].name, "content", set_name, tpath.name, round(score, 4))
    return list(found.values())


def build_pool(data_root=None, *, check_content: bool = True, verbose: bool = True,
               use_cache: bool = True) -> PhotoPool:
    """The leak-free training pool under ``data_root`` (see the module docstring).

    ``data_root``: a folder, ``"none"`` (no data: the packaged sample photos), or ``None`` for the
    default search (``$SIRR_DATA``, ``../shared/data``). ``check_content=False`` skips the content
    check (ids only; for quick experiments, and said in the summary).
    """
    root = find_data_root(data_root)
    if root is None:
        pool = _sample_pool()
        _say(verbose, pool.summary())
        return pool
    listed = {s: _list_source(root, s) for s in POOL_SOURCES}
    excluded: list[Exclusion] = []
    bsr_ids = {Path(p.name).name for p in listed["bsds500"]}
    for p in listed.pop("bsds500_ceilnet"):
        if Path(p.name).name in bsr_ids:
            excluded.append(Exclusion(p.name, "duplicate", "", f"bsds500/{Path(p.name).name}"))
        else:
            listed.setdefault("bsds500", []).append(p)
    candidates = [p for s in ("voc", "bsds500", "sun_hays80") for p in listed.get(s, [])]
    if not candidates:
        pool = _sample_pool()
        _say(verbose, f"no VOC, BSDS500 or Sun-Hays photos under {root}: " + pool.summary())
        return pool
    tests: list[tuple[str, Path]] = []
    ids: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name in TEST_SETS:
        gts = test_ground_truths(name, root)
        if gts:
            counts[name] = len(gts)
            tests += [(name, g) for g in gts]
        for i in sorted(test_source_ids(name, root)):
            ids.setdefault(i, name)
    kept = []
    for p in candidates:
        vid = Path(p.name).name
        if p.source == "voc" and vid in ids:
            excluded.append(Exclusion(p.name, "voc-id", ids[vid], vid))
        else:
            kept.append(p)
    if check_content:
        kept, content = _checked(root, kept, tests, use_cache)
        excluded += content
    pool = PhotoPool(kept, excluded, root, tests=counts)
    _say(verbose, pool.summary() + ("" if check_content else " (content check SKIPPED: ids only)"))
    return pool


def _checked(root: Path, kept: list[PoolPhoto], tests: list[tuple[str, Path]],
             use_cache: bool) -> tuple[list[PoolPhoto], list[Exclusion]]:
    """``kept`` minus content matches, through the on-disk cache."""
    key = _digest([p.path for p in kept] + [t for _, t in tests])
    cache = cache_dir() / f"pool-{key}.json"
    content: list[Exclusion] | None = None
    if use_cache and cache.is_file():
        try:
            content = [Exclusion(**e) for e in json.loads(cache.read_text())["content"]]
        except (OSError, ValueError, TypeError, KeyError):
            log.warning("ignoring unreadable pool cache %s", cache)
    if content is None:
        log.info("checking %d pool photos against %d test ground truths by content (cached afterwards in %s)",
                    len(kept), len(tests), cache)
        content = _content_matches(kept, tests)
        if use_cache:
            try:
                atomic_write_text(cache, json.dumps({"root": str(root), "content": [asdict(e) for e in content]}))
            except OSError as exc:  # a read-only home: the check is simply redone next time
                log.warning("could not write the pool cache %s: %s", cache, exc)
    drop = {e.name for e in content}
    return [p for p in kept if p.name not in drop], content


def _say(verbose: bool, line: str) -> None:
    log.log(logging.INFO if verbose else logging.DEBUG, line)


def natural_photos(data_root=None, verbose: bool = True, max_images: int | None = None) -> PhotoPool:
    """The training pool (:func:`build_pool`), optionally its first ``max_images`` photos."""
    return build_pool(data_root, verbose=verbose).subset(max_images)
