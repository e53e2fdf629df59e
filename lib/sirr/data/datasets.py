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
    per-scene folders holding ``m`` (mixture), ``g`` (ground-truth background) and ``r``
    (reflection) images, e.g. ``WildSceneDataset/withgt/<scene>/m.jpg`` and
    ``SolidObjectDataset/<...>/<scene>/m.jpg``; only images with ground truth are loaded.
``ibcln`` -- the "Nature" set of IBCLN (Li et al., CVPR 2020), https://github.com/JHL-HUST/IBCLN
    (dataset: https://drive.google.com/file/d/1YWkm80jWsjX6XwLTHOsa8zK3pSRalyCg/view): test pairs
    ``testB/`` (blend I) + ``testA1/`` (transmission T); training pairs ``natural_I/`` + ``natural_T/``
    (200 pairs, LA's real training data). A ``blended/``+``transmission_layer/`` copy is accepted too.
``la_release`` -- the LA release's example layout (https://github.com/zdlarr/Location-aware-SIRR):
    ``test_images/blend/NAME.png`` with optional ``test_images/transmission/NAME.png`` of the same name.

Where under the data root (first match of ``DATASETS[name].paths``): ``ceilnet/<set>/``,
``bsds500/``, ``zhang2018/real/``, ``SIR2/{PostcardDataset,SolidObjectDataset,WildSceneDataset}/``,
``real20/`` (or Zhang et al.'s whole ``zhang2018/reflection-removal/real/``, split by ERRNet's list),
``real90/`` or ``real89/``, ``nature/test/`` and ``nature/train/``,
``errnet_unaligned/{unaligned_test50,unaligned_train250}/`` and ``la_release/test_images/``.
The Nature sub-folder names are those IBCLN's own data loader reads (``resize_natural_3_dataset.py``).

A dataset that is not there raises :class:`~sirr.data.root.DatasetNotFoundError` naming it, every
path that was tried, and where it is published.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from sirr.data.images import IMAGE_EXTENSIONS, read_image, to_uint8
from sirr.data.root import DatasetNotFoundError
from sirr.data.root import find_data_root as _find_data_root


def find_data_root(data_root=None):
    """:func:`sirr.data.root.find_data_root`, with ``None`` meaning "the default" (``$SIRR_DATA`` or ``../shared/data``).

    (``sirr.data.root.find_data_root(None)`` currently treats ``str(None) == "None"`` as the explicit
    ``"none"``; passing ``""`` asks for the default search.)
    """
    if isinstance(data_root, Path) or (data_root is not None and data_root != ""):
        return _find_data_root(data_root)
    return _find_data_root("")

__all__ = [
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
    "sample_photos",
    "natural_photos",
    "real_reflection_photos",
    "real_training_pairs",
]

#: The 20 test images of Zhang et al.'s real data, as listed in ERRNet's ``real_test.txt``.
REAL20_NAMES = ("3", "4", "9", "12", "15", "22", "23", "25", "29", "39", "46", "47", "58", "86", "87", "89",
                "93", "103", "107", "110")


class UnknownDatasetError(ValueError):
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


_ZHANG_URL = ("https://github.com/ceciliavision/perceptual-reflection-removal (data: "
              "https://drive.google.com/drive/folders/1NYGL3wQ2pRkwfLMcV2zxXDV8JRSoVxwA)")
_ERRNET_URL = ("https://github.com/Vandermode/ERRNet (unaligned data: "
               "https://drive.google.com/drive/folders/16KH0wtUxodC3qGLxNz-QkPuAH55freTf)")
_SIR2_URL = "https://sir2data.github.io/ (SIR^2 benchmark, Wan et al. ICCV 2017; released on request)"
_IBCLN_URL = ("https://github.com/JHL-HUST/IBCLN (Nature data: "
              "https://drive.google.com/file/d/1YWkm80jWsjX6XwLTHOsa8zK3pSRalyCg/view)")
_CEIL_URL = "https://github.com/fqnchina/CEILNet"


def _sir2_paths(*names: str) -> tuple[str, ...]:
    out = []
    for top in ("SIR2", "sir2"):
        for n in names:
            out.append(f"{top}/{n}")
    return tuple(out)


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec("ceilnet_synthetic", "CEILNet synthetic test triples", "ceilnet",
                ("ceilnet/testdata_reflection_synthetic", "testdata_reflection_synthetic"),
                _CEIL_URL, True, count=41),
    DatasetSpec("ceilnet_table2", "CEILNet Table 2 synthetic test set", "ceilnet",
                ("ceilnet/testdata_reflection_synthetic_table2", "testdata_reflection_synthetic_table2",
                 "testdata_CEILNET_table2"), _CEIL_URL, True, count=100),
    DatasetSpec("ceilnet_real", "CEILNet real photos (no ground truth)", "ceilnet",
                ("ceilnet/testdata_reflection_real", "testdata_reflection_real"), _CEIL_URL, False, count=45),
    DatasetSpec("bsds500", "BSDS500 clean photos (CEILNet denoising test data)", "images",
                ("bsds500",), _CEIL_URL + " (BSDS500: https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/"
                "grouping/resources.html)", False, split="photos", count=19, pattern="*-label.png"),
    DatasetSpec("zhang2018_real", "Zhang et al. 2018 real photos (no ground truth)", "images",
                ("zhang2018/real",), _ZHANG_URL, False, count=4),
    DatasetSpec("sir2_postcard", "SIR^2 Postcard", "sir2",
                _sir2_paths("PostcardDataset", "Postcard Dataset", "Postcard"), _SIR2_URL, True,
                count=199),
    DatasetSpec("sir2_solidobject", "SIR^2 Solid Object", "sir2",
                _sir2_paths("SolidObjectDataset", "SolidObject"), _SIR2_URL, True,
                count=200),
    DatasetSpec("sir2_wild", "SIR^2 Wild scenes (with ground truth)", "sir2",
                _sir2_paths("WildSceneDataset", "Wild"), _SIR2_URL, True, count=55),
    DatasetSpec("real20", "Zhang et al. real test pairs (real20)", "pairs",
                ("real20", "zhang2018/real20", "real20_420", "zhang2018/reflection-removal/real",
                 "zhang2018/real_full", "reflection-removal/real"), _ZHANG_URL, True, count=20, subset="real20"),
    DatasetSpec("nature", "IBCLN Nature test pairs", "ibcln",
                ("nature/test", "Nature/test", "nature", "Nature", "ibcln/nature/test", "nature20"),
                _IBCLN_URL, True, count=20),
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
    from skimage.transform import resize

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


_M_RE = re.compile(r"^(?P<pre>.*?)(?<![A-Za-z])m(?![A-Za-z])(?P<post>.*)$")


def _read_sir2_original(d: Path) -> list[_Item]:
    """Original SIR² release: folders holding ``m`` (mixture), ``g`` (background) and ``r`` (reflection)."""
    items = []
    for p in sorted(d.rglob("*"), key=lambda q: _natkey(str(q))):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        m = _M_RE.match(p.stem)
        if not m:
            continue
        siblings = {q.stem: q for q in p.parent.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS}
        g = siblings.get(f"{m['pre']}g{m['post']}")
        if g is None:
            continue  # without ground truth (e.g. WildSceneDataset/withoutgt): not loaded
        r = siblings.get(f"{m['pre']}r{m['post']}")
        rel = p.parent.relative_to(d)
        name = "_".join([*rel.parts, p.stem]) if rel.parts else p.stem
        items.append(_Item(name, p, g, r))
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
        import difflib

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
    "sir2": "blended/ + transmission_layer/, or the original per-scene folders with m.* (mixture) and g.* (background)",
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


# ---------------------------------------------------------------------------------------------
# photos that ship inside installed packages (the no-data fallback)

_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def sample_photos() -> list[tuple[str, np.ndarray]]:
    """Natural colour photos shipped inside installed packages, as ``(name, uint8 HxWx3)``.

    scikit-image (astronaut, coffee, chelsea, rocket), scikit-learn (china, flower) and matplotlib
    (grace_hopper) -- 7 photos, no network needed. Packages that are missing are skipped.
    """
    out: list[tuple[str, np.ndarray]] = []
    try:
        import skimage.data as skd

        for n in _SKIMAGE_PHOTOS:
            try:
                a = np.asarray(getattr(skd, n)())
            except Exception:  # noqa: BLE001 - a data file missing from this install
                continue
            if a.ndim == 3 and a.shape[2] >= 3:
                out.append((f"skimage_{n}", np.ascontiguousarray(a[..., :3], dtype=np.uint8)))
    except ImportError:  # pragma: no cover
        pass
    try:
        from sklearn.datasets import load_sample_images

        s = load_sample_images()
        for fn, a in zip(s.filenames, s.images):
            out.append((f"sklearn_{Path(fn).stem}", np.ascontiguousarray(a, dtype=np.uint8)))
    except Exception:  # noqa: BLE001  # pragma: no cover
        pass
    try:
        import matplotlib.cbook as cbook

        p = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        out.append(("matplotlib_grace_hopper", to_uint8(read_image(p))))
    except Exception:  # noqa: BLE001  # pragma: no cover
        pass
    return out


def natural_photos(data_root=None, verbose: bool = True, max_images: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Clean natural photos for synthesising training mixtures, as ``(name, uint8 HxWx3)``.

    The transmissions (``-label1``) of both CEILNet synthetic sets plus the BSDS500 photos (about 160,
    in that order, each sorted by name); without a data root (or without those sets) the photos of
    :func:`sample_photos`, and it prints which it used.
    """
    root = find_data_root(data_root)
    sources: list[tuple[str, Path]] = []
    used = []
    if root is not None:
        for name in ("ceilnet_synthetic", "ceilnet_table2", "bsds500"):
            try:
                _, items = find_dataset(name, root)
            except DatasetNotFoundError:
                continue
            used.append(name)
            sources += [(f"{name}/{it.name}", it.T if name != "bsds500" else it.I) for it in items
                        if (it.T if name != "bsds500" else it.I) is not None]
    if max_images is not None:
        sources = sources[: int(max_images)]
    if sources:
        if verbose:
            print(f"natural photos: {len(sources)} from {', '.join(used)} under {root}")
        return [(n, to_uint8(read_image(p))) for n, p in sources]
    photos = sample_photos()
    if max_images is not None:
        photos = photos[: int(max_images)]
    if verbose:
        why = "no data root" if root is None else f"no CEILNet/BSDS500 photos under {root}"
        print(f"{why}: using {len(photos)} sample photos from scikit-image/scikit-learn/matplotlib")
    return photos


def real_training_pairs(data_root=None, max_images: int | None = None, verbose: bool = True) -> PairDataset:
    """The real ``(I, T)`` training pairs of LA Sec. 5 that are present, as one lazily read :class:`PairDataset`.

    Concatenates :data:`TRAINING_SETS` (IBCLN Nature 200, Zhang et al. 90, ERRNet unaligned 250) in
    that order; sample names are prefixed with the dataset name. Empty (and it prints so) when none
    is under the data root. ``max_images`` caps the total.
    """
    root = find_data_root(data_root)
    items: list[_Item] = []
    used = []
    if root is not None:
        for name in TRAINING_SETS:
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
            print(f"real training pairs: {len(items)} from {', '.join(used)} under {root}")
        else:
            where = "no data root" if root is None else f"none under {root}"
            print(f"real training pairs: {where} (published: " + "; ".join(DATASETS[n].url for n in TRAINING_SETS)
                  + "); training uses synthetic pairs only")
    return PairDataset(name="real_training_pairs", root=root or Path("."), items=items, has_ground_truth=bool(items))


def real_reflection_photos(data_root=None, n: int | None = None, verbose: bool = True,
                           max_side: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Real photos taken through glass, as ``(name, float32 HxWx3)``: CEILNet real + Zhang et al. 2018 real.

    Without them, LA-synthesised blends (LA Eq. 6 recipe, fixed seed) of the sample photos, printed as such.
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
                out.append((f"{name}/{it.name}", _cap(read_image(it.I), max_side)))
    if out:
        if verbose:
            print(f"real reflection photos: {len(out)} from {', '.join(used)} under {root}")
        return out[:n] if n is not None else out
    out = _synthetic_fallback(n if n is not None else 4, max_side)
    if verbose:
        why = "no data root" if root is None else f"no real reflection photos under {root}"
        print(f"{why}: using {len(out)} LA-synthesised blends of sample photos "
              "from scikit-image/scikit-learn/matplotlib (not real reflections)")
    return out


def _cap(img: np.ndarray, max_side: int | None) -> np.ndarray:
    if not max_side or max(img.shape[:2]) <= max_side:
        return img
    s = max_side / max(img.shape[:2])
    return _resize_to(img, (max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s))))


def _synthetic_fallback(n: int, max_side: int | None) -> list[tuple[str, np.ndarray]]:
    import torch

    from sirr.data.synthesis import synthesize_la

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
