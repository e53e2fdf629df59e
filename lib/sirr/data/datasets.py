"""Reflection-removal datasets, each read in the exact layout its authors published.

Every dataset is found under the data root (see :func:`sirr.data.root.find_data_root`) at one of a
few conventional sub-paths, and loaded as a :class:`PairDataset`: a sequence of :class:`Sample`
``(name, I, T, R)`` with ``H x W x 3`` float32 arrays in ``[0, 1]`` (``T``/``R`` are ``None`` where the
set has no ground truth). Files are read lazily, in sorted (deterministic) order, so
``max_images=k`` always picks the same ``k`` images.

Layouts (``DATASETS[name].layout``) and where each set is published:

``ceilnet`` -- CEILNet (Fan et al., ICCV 2017), https://github.com/fqnchina/CEILNet :
    ``NAME-input.png|jpg`` (blend I), ``NAME-label1.png`` (transmission T), ``NAME-label2.png``
    (reflection R). Sets ``ceilnet_synthetic`` (``testdata_reflection_synthetic``, 41),
    ``ceilnet_table2`` (``testdata_reflection_synthetic_table2``, 100, CEILNet Table 2 / ERRNet's
    synthetic test set) and ``ceilnet_real`` (``testdata_reflection_real``, 45, inputs only).
``images`` -- a folder of photos without ground truth: ``bsds500/NUMBER-label.png`` (clean
    BSDS500 test photos shipped with CEILNet's denoising data; ``I`` is the clean photo) and
    ``zhang2018/real/N.jpg`` (Zhang et al., CVPR 2018,
    https://github.com/ceciliavision/perceptual-reflection-removal).
``pairs`` -- ``blended/`` + ``transmission_layer/`` (+ optional ``reflection_layer/``), same file
    names: Zhang et al.'s real data as distributed with their repository (Google Drive folder
    https://drive.google.com/drive/folders/1NYGL3wQ2pRkwfLMcV2zxXDV8JRSoVxwA) and as organised by
    ERRNet (``real20`` = the 20 test images listed in ERRNet's ``real_test.txt``, ``real90`` = the
    other 90 training pairs); ERRNet's unaligned pairs (Wei et al., CVPR 2019,
    https://github.com/Vandermode/ERRNet, Google Drive folder
    https://drive.google.com/drive/folders/16KH0wtUxodC3qGLxNz-QkPuAH55freTf:
    ``unaligned_train250/``, ``unaligned_test50/``); and the ERRNet-style processed SIR² folders
    (``SIR2/PostcardDataset/blended`` ...).
``sir2`` -- SIR² (Wan et al., ICCV 2017), https://sir2data.github.io/ (released on request): either
    the processed ``blended/``+``transmission_layer/`` layout above, or the original release's
    folders holding ``m`` (mixture), ``g`` (ground-truth background) and ``r`` (reflection) images,
    paired within each folder: ``SolidObjectDataset/<scene>/{Focus,Thick}/<setting>/{m,g,r}.jpg`` (200),
    ``Wildscene/<scene>/{m,g,r}.jpg`` or ``WildSceneDataset/withgt/<scene>/...`` (101; the papers
    report a 55-scene subset whose list is unpublished) and
    ``Postcard Dataset/Thick/<id>/<thickness>/<id>-<thickness>-{m,g}-<aperture>.png`` (the Thick part
    of the 199); only images with ground truth are loaded. :func:`benchmark_inventory` compares what
    is found with the papers' counts (:attr:`DatasetSpec.paper_count`).
``ibcln`` -- the "Nature" set of IBCLN (Li et al., CVPR 2020), https://github.com/JHL-HUST/IBCLN
    (dataset: https://drive.google.com/file/d/1YWkm80jWsjX6XwLTHOsa8zK3pSRalyCg/view): test pairs
    ``testB/`` (blend I) + ``testA1/`` (transmission T); training pairs ``natural_I/`` + ``natural_T/``
    (200 pairs, LA's real training data). A ``blended/``+``transmission_layer/`` copy is accepted too.
``la_release`` -- the LA release's example layout (https://github.com/zdlarr/Location-aware-SIRR):
    ``test_images/blend/NAME.png`` with optional ``test_images/transmission/NAME.png`` of the same name.

Where under the data root (first match of ``DATASETS[name].paths``): ``ceilnet/<set>/``,
``bsds500/``, ``zhang2018/real/``, ``SIR2/{PostcardDataset,SolidObjectDataset,WildSceneDataset}/``
(also spelled with spaces, ``Wildscene``, ``WildScene``, ``Wild``, ``Postcard``; ``sir2/`` too),
``real20/`` (or Zhang et al.'s whole ``zhang2018/reflection-removal/real/``, split by ERRNet's list),
``real90/`` or ``real89/``, ``nature/test/`` and ``nature/train/``,
``errnet_unaligned/{unaligned_test50,unaligned_train250}/`` and ``la_release/test_images/``.
The Nature sub-folder names are those IBCLN's own data loader reads (``resize_natural_3_dataset.py``).

A dataset that is not there raises :class:`~sirr.data.root.DatasetNotFoundError` naming it, every
path that was tried, and where it is published.
"""

from __future__ import annotations

import hashlib

import difflib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from skimage.transform import resize

from sirr.data.images import IMAGE_EXTENSIONS, read_image
from sirr.data.root import DatasetNotFoundError
from sirr.data.root import find_data_root as _find_data_root
from sirr.data.samples import sample_photos
from sirr.errors import SirrError

log = logging.getLogger(__name__)


def find_data_root(data_root=None):
    """:func:`sirr.data.root.find_data_root`, with ``None`` meaning "the default" (``$SIRR_DATA`` or ``../shared/data``).

    (``sirr.data.root.find_data_root(None)`` currently treats ``str(None) == "None"`` as the explicit
    ``"none"``; passing ``""`` asks for the default search.)
    """
    if isinstance(data_root, Path) or (data_root is not None and data_root != ""):
        return _find_data_root(data_root)
    return _find_data_root("")

__all__ = [
    "SCENE_SUBSET_PER_SCENE",
    "scene_of",
    "evaluation_subset",
    "DatasetSpec",
    "UnknownDatasetError",
    "DATASETS",
    "TEST_SETS",
    "TRAINING_SETS",
    "REAL20_NAMES",
    "Sample",
    "PairDataset",
    "load_dataset",
    "find_dataset",
    "available_datasets",
    "test_ground_truths",
    "test_source_ids",
    "sample_photos",
    "real_training_pairs",
]

#: The 20 test images of Zhang et al.'s real data, as listed in ERRNet's ``real_test.txt``.
REAL20_NAMES = ("3", "4", "9", "12", "15", "22", "23", "25", "29", "39", "46", "47", "58", "86", "87", "89",
                "93", "103", "107", "110")


class UnknownDatasetError(SirrError, ValueError):
    """A dataset name that is not a key of :data:`DATASETS` (the message suggests the closest)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives under the data root, how it is laid out, and where it is published."""

    name: str
    title: str
    layout: str  # "ceilnet" | "images" | "pairs" | "sir2" | "ibcln" | "la_release"
    paths: tuple[str, ...]  # candidate sub-paths of the data root, first match wins
    url: str
    has_ground_truth: bool
    split: str = "test"  # "test" | "train" | "photos"
    count: int | None = None  # images in the published set (None: unknown / varies)
    pattern: str | None = None  # file-name filter for "images" layouts
    subset: str | None = None  # "real20" | "real90": filter a full Zhang folder
    note: str = ""
    #: images the papers evaluate on (LA Table 1: Postcard 199, Object 200, Wild 55, Zhang et al. 20,
    #: Li et al. 20); ``None`` where neither paper reports on the set.
    paper_count: int | None = None
    #: why the papers' count differs from ``count``, said after "the papers' N-<unit> subset"
    paper_note: str = ""
    unit: str = "image"  # what one item is ("pair", "triplet", "scene"), for sentences
    #: the names of the published set, where they are fixed (real20: ERRNet's list)
    names: tuple[str, ...] | None = None
    #: what the set was made from (a training pool must leave those photos out)
    made_from: str = ""
    #: item names that are ids of the source photos (CEILNet: PASCAL VOC ids ``YYYY_NNNNNN``)
    source_id_pattern: str | None = None


_ZHANG_URL = ("https://github.com/ceciliavision/perceptual-reflection-removal (data: "
              "https://drive.google.com/drive/folders/1NYGL3wQ2pRkwfLMcV2zxXDV8JRSoVxwA)")
_ERRNET_URL = ("https://github.com/Vandermode/ERRNet (unaligned data: "
               "https://drive.google.com/drive/folders/16KH0wtUxodC3qGLxNz-QkPuAH55freTf)")
_SIR2_URL = "https://sir2data.github.io/ (SIR^2 benchmark, Wan et al. ICCV 2017; released on request)"
_IBCLN_URL = ("https://github.com/JHL-HUST/IBCLN (Nature data: "
              "https://drive.google.com/file/d/1YWkm80jWsjX6XwLTHOsa8zK3pSRalyCg/view)")
_CEIL_URL = "https://github.com/fqnchina/CEILNet"


def _sir2_paths(*names: str) -> tuple[str, ...]:
    """``SIR2/<name>`` and ``sir2/<name>`` for each name, also written without spaces (official spellings vary)."""
    out: list[str] = []
    for top in ("SIR2", "sir2"):
        for n in names:
            for v in (n, n.replace(" ", "")):
                if f"{top}/{v}" not in out:
                    out.append(f"{top}/{v}")
    return tuple(out)


#: a PASCAL VOC image id, e.g. ``2007_003525`` (CEILNet names its synthetic triples by them)
_VOC_ID = r"^\d{4}_\d{6}$"


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec("ceilnet_synthetic", "CEILNet synthetic test triples", "ceilnet",
                ("ceilnet/testdata_reflection_synthetic", "testdata_reflection_synthetic"),
                _CEIL_URL, True, count=41, unit="triple",
                made_from="PASCAL VOC 2012 photos (triples named by VOC id) and photos whose source is not "
                          "named (triples named smooth-N)",
                source_id_pattern=_VOC_ID),
    DatasetSpec("ceilnet_table2", "CEILNet Table 2 synthetic test set", "ceilnet",
                ("ceilnet/testdata_reflection_synthetic_table2", "testdata_reflection_synthetic_table2",
                 "testdata_CEILNET_table2"), _CEIL_URL, True, count=100, unit="triple",
                made_from="PASCAL VOC 2012 photos (triples named by VOC id)", source_id_pattern=_VOC_ID),
    DatasetSpec("ceilnet_real", "CEILNet real photos (no ground truth)", "ceilnet",
                ("ceilnet/testdata_reflection_real", "testdata_reflection_real"), _CEIL_URL, False, count=45),
    DatasetSpec("bsds500", "BSDS500 clean photos (CEILNet denoising test data)", "images",
                ("bsds500",), _CEIL_URL + " (BSDS500: https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/"
                "grouping/resources.html)", False, split="photos", count=19, pattern="*-label.png"),
    DatasetSpec("zhang2018_real", "Zhang et al. 2018 real photos (no ground truth)", "images",
                ("zhang2018/real",), _ZHANG_URL, False, count=4),
    DatasetSpec("sir2_postcard", "SIR^2 Postcard", "sir2",
                _sir2_paths("PostcardDataset", "Postcard Dataset", "Postcard"), _SIR2_URL, True,
                count=199, paper_count=199, unit="pair", made_from="real captures through glass (SIR^2)"),
    DatasetSpec("sir2_solidobject", "SIR^2 Solid Object", "sir2",
                _sir2_paths("SolidObjectDataset", "Solid Object Dataset", "SolidObject", "Solid Object"),
                _SIR2_URL, True, count=200, paper_count=200, unit="triplet",
                made_from="real captures through glass (SIR^2)"),
    DatasetSpec("sir2_wild", "SIR^2 Wild scenes (with ground truth)", "sir2",
                _sir2_paths("WildSceneDataset", "Wild Scene Dataset", "WildScene", "Wild Scene", "Wildscene",
                            "Wild scene", "Wild"), _SIR2_URL, True,
                count=101, paper_count=55, unit="scene", paper_note=", whose list is unpublished",
                made_from="real captures through glass (SIR^2)"),
    DatasetSpec("real20", "Zhang et al. real test pairs (real20)", "pairs",
                ("real20", "zhang2018/real20", "real20_420", "zhang2018/reflection-removal/real",
                 "zhang2018/real_full", "reflection-removal/real"), _ZHANG_URL, True, count=20, subset="real20",
                paper_count=20, unit="pair", names=REAL20_NAMES, made_from="real captures through glass"),
    DatasetSpec("nature", "IBCLN Nature test pairs", "ibcln",
                ("nature/test", "Nature/test", "nature", "Nature", "ibcln/nature/test", "nature20"),
                _IBCLN_URL, True, count=20, paper_count=20, unit="pair", made_from="real captures through glass"),
    DatasetSpec("errnet_unaligned", "ERRNet unaligned test pairs (not pixel-aligned)", "pairs",
                ("errnet_unaligned/unaligned_test50", "unaligned/unaligned_test50", "unaligned_test50",
                 "errnet/unaligned_test50", "ERRNet/unaligned_test50"), _ERRNET_URL, True, count=50,
                note="pairs are not pixel-aligned: PSNR/SSIM on them are indicative only"),
    DatasetSpec("la_release", "LA release example images", "la_release",
                ("la_release/test_images", "Location-aware-SIRR/test_images", "test_images"),
                "https://github.com/zdlarr/Location-aware-SIRR (folder test_images/)", True, count=10,
                note="transmission/ may hold fewer images than blend/; those load with T=None"),
    # -- real training pairs (LA Sec. 5: 200 Nature + 90 Zhang + 250 ERRNet unaligned) --
    DatasetSpec("zhang2018_real90", "Zhang et al. real training pairs (90; 89 in some copies)", "pairs",
                ("real90", "real89", "zhang2018/real90", "zhang2018/real89", "zhang2018/reflection-removal/real",
                 "zhang2018/real_full", "reflection-removal/real"), _ZHANG_URL, True, split="train", count=90,
                subset="real90"),
    DatasetSpec("nature_train", "IBCLN Nature training pairs", "ibcln",
                ("nature/train", "Nature/train", "nature", "Nature", "ibcln/nature/train"), _IBCLN_URL, True,
                split="train", count=200),
    DatasetSpec("errnet_unaligned_train", "ERRNet unaligned training pairs (not pixel-aligned)", "pairs",
                ("errnet_unaligned/unaligned_train250", "unaligned/unaligned_train250", "unaligned_train250",
                 "errnet/unaligned_train250", "ERRNet/unaligned_train250", "Dataset/DSLR/unaligned_train250"),
                _ERRNET_URL, True, split="train", count=250),
]}

#: Benchmark test sets in the order of LA Table 1, then the synthetic sets.
TEST_SETS = ("sir2_postcard", "sir2_solidobject", "sir2_wild", "real20", "nature", "ceilnet_synthetic",
             "ceilnet_table2", "errnet_unaligned", "la_release")
#: Real training pairs named in LA Sec. 5.
TRAINING_SETS = ("nature_train", "zhang2018_real90", "errnet_unaligned_train")

# (input dir, transmission dir, reflection dir or None) tried in order for folder-pair layouts
_PAIR_DIRS = {
    "pairs": [("blended", "transmission_layer", "reflection_layer")],
    "sir2": [("blended", "transmission_layer", "reflection_layer")],
    "ibcln": [("testB", "testA1", None), ("natural_I", "natural_T", None),
              ("blended", "transmission_layer", "reflection_layer"), ("I", "T", None)],
    "la_release": [("blend", "transmission", None)],
}
_IBCLN_SPLIT_DIRS = {"test": [("testB", "testA1", None), ("blended", "transmission_layer", None), ("I", "T", None)],
                     "train": [("natural_I", "natural_T", None), ("trainB", "trainA1", None),
                               ("blended", "transmission_layer", None), ("I", "T", None)]}


class Sample(NamedTuple):
    """One test image: ``I`` the photo with reflection; ``T`` transmission and ``R`` reflection or ``None``.

    Also indexable by key (``sample["input"]``, ``["transmission"]``, ``["reflection"]``, ``["name"]``).
    """

    name: str
    I: np.ndarray
    T: np.ndarray | None = None
    R: np.ndarray | None = None

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return getattr(self, _SAMPLE_KEYS.get(key, key))
        return tuple.__getitem__(self, key)


_SAMPLE_KEYS = {"input": "I", "blend": "I", "transmission": "T", "target": "T", "reflection": "R"}


@dataclass(frozen=True)
class _Item:
    name: str
    I: Path
    T: Path | None = None
    R: Path | None = None


@dataclass
class PairDataset(Sequence):
    """A sequence of :class:`Sample` read lazily from disk (sorted by name)."""

    name: str
    root: Path
    items: list[_Item]
    has_ground_truth: bool
    spec: DatasetSpec | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"{self.name}: index {i} out of range for {len(self)} images")
        it = self.items[i]
        I = read_image(it.I)
        T = read_image(it.T) if it.T is not None else None
        R = read_image(it.R) if it.R is not None else None
        if T is not None and T.shape != I.shape:
            T = _resize_to(T, I.shape[:2])
        if R is not None and R.shape != I.shape:
            R = _resize_to(R, I.shape[:2])
        return Sample(it.name, I, T, R)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    @property
    def names(self) -> list[str]:
        return [it.name for it in self.items]

    @property
    def paths(self) -> list[Path]:
        return [it.I for it in self.items]

    def __repr__(self) -> str:
        return f"PairDataset({self.name!r}, {len(self)} images, ground truth={self.has_ground_truth}, root={str(self.root)!r})"


def _resize_to(img: np.ndarray, hw) -> np.ndarray:
    """Some published pairs differ by a pixel or two in size; bring T/R to the blend's size."""
    return resize(img, (hw[0], hw[1], img.shape[2]), order=1, anti_aliasing=True,
                  preserve_range=True).astype(np.float32)


def _natkey(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _images_in(folder: Path, pattern: str | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    it = folder.glob(pattern) if pattern else folder.iterdir()
    return sorted((p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not p.name.startswith(".")), key=lambda p: _natkey(p.name))


def _by_stem(files: list[Path]) -> dict[str, Path]:
    return {p.stem: p for p in files}


def _read_ceilnet(d: Path) -> list[_Item]:
    items = []
    files = _images_in(d)
    by_name = {p.name: p for p in files}
    for p in files:
        m = re.match(r"^(.*)-input$", p.stem)
        if not m:
            continue
        base = m.group(1)

        def find(label):
            for ext in (p.suffix, ".png", ".jpg", ".jpeg"):
                q = by_name.get(f"{base}-{label}{ext}")
                if q is not None:
                    return q
            return None

        items.append(_Item(base, p, find("label1"), find("label2")))
    return items


def _read_pairs(d: Path, dirs, require_t: bool = True) -> list[_Item] | None:
    for di, dt, dr in dirs:
        idir = d / di
        if not idir.is_dir():
            continue
        ts = _by_stem(_images_in(d / dt))
        rs = _by_stem(_images_in(d / dr)) if dr else {}
        items = []
        for p in _images_in(idir):
            t = ts.get(p.stem)
            if t is None and require_t:
                continue
            items.append(_Item(p.stem, p, t, rs.get(p.stem)))
        return items
    return None


#: the role letter of a SIR² file: ``m`` (mixture), ``g`` (background), ``r`` (reflection), standing alone
#: between non-letters (``m.jpg``, ``ab-3-m-32.png``); the last such letter of the name counts
_ROLE_RE = re.compile(r"(?<![A-Za-z])([mgrMGR])(?![A-Za-z])")


def _sir2_role(stem: str) -> tuple[str, int] | None:
    """``(role, position)`` of the role letter in a SIR² file name, or ``None``."""
    last = None
    for m in _ROLE_RE.finditer(stem):
        last = m
    return (last.group(1).lower(), last.start(1)) if last else None


def _sir2_partner(p: Path, pos: int, role: str, pool: list[Path], n_m: int, roles: dict) -> Path | None:
    """The ``role`` image (``g`` or ``r``) that goes with mixture ``p`` among ``pool`` (same folder).

    One mixture and one candidate in the folder: they pair, whatever the rest of their names. Otherwise
    the candidate named like ``p`` with the role letter swapped; else the only one whose name agrees with
    ``p`` up to the role letter (e.g. ``bh-3-m-32`` and ``bh-3-g-3``); else none.
    """
    if not pool:
        return None
    if n_m == 1 and len(pool) == 1:
        return pool[0]
    letter = role.upper() if p.stem[pos].isupper() else role
    want = (p.stem[:pos] + letter + p.stem[pos + 1:]).lower()
    for q in pool:
        if q.stem.lower() == want:
            return q
    pre = p.stem[:pos].lower()
    same = [q for q in pool if q.stem[: roles[q][1]].lower() == pre]
    return same[0] if len(same) == 1 else None


def _sir2_folder(folder: Path, d: Path) -> list[_Item]:
    """The ``(m, g, r)`` items of one folder of the original SIR² release (only mixtures with a ``g``)."""
    roles: dict[Path, tuple[str, int]] = {}
    by_role: dict[str, list[Path]] = {"m": [], "g": [], "r": []}
    for q in _images_in(folder):
        ri = _sir2_role(q.stem)
        if ri is not None:
            roles[q] = ri
            by_role[ri[0]].append(q)
    ms = by_role["m"]
    rel = folder.relative_to(d).parts
    items = []
    for p in ms:
        pos = roles[p][1]
        g = _sir2_partner(p, pos, "g", by_role["g"], len(ms), roles)
        if g is None:
            continue  # without ground truth (e.g. WildSceneDataset/withoutgt): not loaded
        r = _sir2_partner(p, pos, "r", by_role["r"], len(ms), roles)
        items.append(_Item("_".join([*rel, p.stem]), p, g, r))
    return items


def _read_sir2_original(d: Path) -> list[_Item]:
    """Original SIR² release: folders holding ``m`` (mixture), ``g`` (background) and ``r`` (reflection) images.

    Every folder under ``d`` is read on its own (SolidObject ``<scene>/{Focus,Thick}/<setting>/{m,g,r}.jpg``,
    Wild ``[withgt/]<scene>/{m,g,r}.jpg``, Postcard ``Thick/<id>/<thickness>/<id>-<thickness>-{m,g}-<aperture>.png``);
    ``m`` and ``g`` (and ``r``) are paired within the folder (see :func:`_sir2_partner`). Names join the
    folder's path below ``d`` and the mixture's file name (``Thick_ab_3_ab-3-m-32``): unique and stable.
    """
    folders = {q.parent for q in d.rglob("*") if q.suffix.lower() in IMAGE_EXTENSIONS and q.is_file()}
    items = []
    for folder in sorted(folders, key=lambda f: [_natkey(x) for x in f.relative_to(d).parts]):
        items += _sir2_folder(folder, d)
    return items


def _items_for(spec: DatasetSpec, d: Path) -> list[_Item] | None:
    """Items found in candidate folder ``d`` for ``spec``; ``None`` when ``d`` does not have the layout."""
    if spec.layout == "ceilnet":
        items = _read_ceilnet(d)
        return items or None
    if spec.layout == "images":
        files = _images_in(d, spec.pattern)
        if not files:
            return None
        if spec.pattern and spec.pattern.startswith("*-"):
            suffix = spec.pattern[1:].rsplit(".", 1)[0]
            return [_Item(p.stem[: -len(suffix)] if p.stem.endswith(suffix) else p.stem, p) for p in files]
        return [_Item(p.stem, p) for p in files]
    if spec.layout == "pairs":
        items = _read_pairs(d, _PAIR_DIRS["pairs"])
        if items is None:
            return None
        if spec.subset and d.name in ("real", "real_full"):  # Zhang et al.'s whole real folder: split it
            keep = set(REAL20_NAMES)
            items = [it for it in items if (it.name in keep) == (spec.subset == "real20")]
        return items or None
    if spec.layout == "sir2":
        items = _read_pairs(d, _PAIR_DIRS["sir2"])
        if items is None:
            items = _read_sir2_original(d)
        return items or None
    if spec.layout == "ibcln":
        return _read_pairs(d, _IBCLN_SPLIT_DIRS["train" if spec.split == "train" else "test"]) or None
    if spec.layout == "la_release":
        return _read_pairs(d, _PAIR_DIRS["la_release"], require_t=False) or None
    raise ValueError(f"unknown layout {spec.layout!r}")


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownDatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}.{hint}") from None


def find_dataset(name: str, data_root=None) -> tuple[Path, list[_Item]]:
    """``(folder, items)`` of dataset ``name`` under the data root, or :class:`DatasetNotFoundError`."""
    spec = _spec(name)
    root = find_data_root(data_root)
    if root is None:
        raise DatasetNotFoundError(name, [], spec.url)
    looked = []
    for rel in spec.paths:
        d = root / rel
        looked.append(str(d))
        if not d.is_dir():
            continue
        items = _items_for(spec, d)
        if items:
            return d, items
    existing = [p for p in looked if Path(p).is_dir()]
    hint = f"expected layout {spec.layout!r}: {_LAYOUT_HINT[spec.layout]}"
    if existing:
        hint = f"{existing[0]} exists but does not hold it; " + hint
    raise DatasetNotFoundError(name, looked, spec.url, hint=hint)


_LAYOUT_HINT = {
    "ceilnet": "NAME-input.png|jpg with NAME-label1.png (transmission) and NAME-label2.png (reflection)",
    "images": "image files directly in the folder",
    "pairs": "blended/ and transmission_layer/ sub-folders with matching file names",
    "sir2": "blended/ + transmission_layer/, or the original release's folders each holding m (mixture), "
            "g (background) and optionally r (reflection) images, e.g. <scene>/m.jpg or <id>-3-m-32.png",
    "ibcln": "testB/ (blends) + testA1/ (transmissions) for the test set, natural_I/ + natural_T/ for training",
    "la_release": "blend/ (and optionally transmission/) with matching file names",
}


def load_dataset(name: str, data_root=None, max_images: int | None = None) -> PairDataset:
    """Load dataset ``name`` (a key of :data:`DATASETS`) from the data root, first ``max_images`` in sorted order."""
    spec = _spec(name)
    d, items = find_dataset(name, data_root)
    if max_images is not None:
        if int(max_images) < 0:
            raise ValueError(f"max_images must be >= 0, got {max_images}")
        items = items[: int(max_images)]
    has_gt = spec.has_ground_truth and any(it.T is not None for it in items)
    return PairDataset(name=name, root=d, items=items, has_ground_truth=has_gt, spec=spec)


#: Images per scene in the ``"scenes"`` evaluation subset (:func:`evaluation_subset`); sets not listed are scored
#: whole. SolidObject has 20 scenes of 10 settings each: two per scene (one Focus, one Thick) cover every scene.
SCENE_SUBSET_PER_SCENE = {"sir2_solidobject": 2}


def scene_of(dataset: str, name: str) -> str:
    """The scene an image of a SIR² set belongs to (its name's scene folder); other sets: every image is a scene."""
    parts = name.split("_")
    if dataset == "sir2_postcard" and len(parts) > 1:  # Thick_<postcard>_<thickness>_...
        return parts[1]
    if dataset in ("sir2_solidobject", "sir2_wild"):  # <scene>_{Focus,Thick}_<setting>_m / <scene>_m
        return parts[0]
    return name


def evaluation_subset(ds: PairDataset, mode: str = "all") -> PairDataset:
    """The images of ``ds`` an evaluation scores: all of them (``mode="all"``) or the declared ``"scenes"`` subset.

    The subset keeps :data:`SCENE_SUBSET_PER_SCENE` images of every scene (the sets not listed there whole): within
    a scene, one per sub-setting group first (SolidObject: Focus, then Thick), each chosen by the lowest sha256 of
    its name, so the choice is fixed, covers every scene and does not depend on listing order (never "the first N").
    """
    if mode not in ("all", "scenes"):
        raise ValueError(f"evaluation subset must be 'all' or 'scenes', got {mode!r}")
    if mode == "all" or ds.name not in SCENE_SUBSET_PER_SCENE:
        return ds
    k = SCENE_SUBSET_PER_SCENE[ds.name]
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(ds.items):
        groups.setdefault(scene_of(ds.name, it.name), []).append(i)

    def rank(i: int) -> str:
        return hashlib.sha256(ds.items[i].name.encode()).hexdigest()

    keep: list[int] = []
    for idx in groups.values():
        by_setting: dict[str, list[int]] = {}
        for i in sorted(idx, key=rank):
            parts = ds.items[i].name.split("_")
            by_setting.setdefault(parts[1] if len(parts) > 2 else "", []).append(i)
        chosen: list[int] = []
        while len(chosen) < min(k, len(idx)):  # round-robin over the settings, lowest hash first
            for lst in by_setting.values():
                if lst and len(chosen) < k:
                    chosen.append(lst.pop(0))
        keep.extend(chosen)
    items = [ds.items[i] for i in sorted(keep)]
    return PairDataset(name=ds.name, root=ds.root, items=items, has_ground_truth=ds.has_ground_truth, spec=ds.spec)


def available_datasets(data_root=None) -> list[str]:
    """Names of the datasets present under the data root (empty without a data root)."""
    try:
        root = find_data_root(data_root)
    except FileNotFoundError:
        return []
    if root is None:
        return []
    out = []
    for name in DATASETS:
        try:
            find_dataset(name, root)
        except DatasetNotFoundError:
            continue
        out.append(name)
    return out


def test_ground_truths(name: str, data_root=None) -> list[Path]:
    """The ground-truth files of test set ``name`` (``T``: SIR² ``g``, CEILNet ``-label1``, ``transmission_layer``).

    These are the clean photos the set was made from or captured as: a training pool leaves them (and
    photos with the same content) out. Empty when the set is not under the data root or has no ground
    truth; an unknown ``name`` raises :class:`UnknownDatasetError`.
    """
    _spec(name)
    try:
        _, items = find_dataset(name, data_root)
    except DatasetNotFoundError:
        return []
    return [it.T for it in items if it.T is not None]


def test_source_ids(name: str, data_root=None) -> set[str]:
    """Ids of the source photos of test set ``name``: the PASCAL VOC ids (``2007_003525``) that CEILNet's
    synthetic sets are named by (their item names matching ``^\\d{4}_\\d{6}$``); empty for other sets, and
    when the set is not under the data root. Items named otherwise (CEILNet's ``smooth-N``) are not
    ids: use :func:`test_ground_truths` to match those by content.
    """
    spec = _spec(name)
    if not spec.source_id_pattern:
        return set()
    try:
        _, items = find_dataset(name, data_root)
    except DatasetNotFoundError:
        return set()
    pat = re.compile(spec.source_id_pattern)
    return {it.name for it in items if pat.match(it.name)}


# not pytest tests, although their names start with "test_" (test modules import them)
test_ground_truths.__test__ = False  # type: ignore[attr-defined]
test_source_ids.__test__ = False  # type: ignore[attr-defined]


def real_training_pairs(data_root=None, max_images: int | None = None, verbose: bool = True,
                        sets: Sequence[str] = TRAINING_SETS) -> PairDataset:
    """The real ``(I, T)`` training pairs of LA Sec. 5 that are present, as one lazily read :class:`PairDataset`.

    Concatenates ``sets`` (default :data:`TRAINING_SETS`: IBCLN Nature 200, Zhang et al. 90, ERRNet
    unaligned 250) in that order; sample names are prefixed with the dataset name. Empty (and it logs so) when none
    is under the data root. ``max_images`` caps the total.
    """
    root = find_data_root(data_root)
    items: list[_Item] = []
    used = []
    if root is not None:
        for name in sets:
            try:
                _, its = find_dataset(name, root)
            except DatasetNotFoundError:
                continue
            used.append(f"{name} ({len(its)})")
            items += [_Item(f"{name}/{it.name}", it.I, it.T, it.R) for it in its if it.T is not None]
    if max_images is not None:
        items = items[: int(max_images)]
    if verbose:
        if items:
            log.info("real training pairs: %d from %s under %s", len(items), ", ".join(used), root)
        else:
            where = "no data root" if root is None else f"none under {root}"
            log.info("real training pairs (%s): %s (published: %s)", ", ".join(sets), where,
                     "; ".join(DATASETS[n].url for n in sets))
    return PairDataset(name="real_training_pairs", root=root or Path("."), items=items, has_ground_truth=bool(items))
