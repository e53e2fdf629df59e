"""The benchmark test sets in their published folder layouts: tiny synthetic copies, then the shared data."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from sirr.data import datasets as D  # module access: its test_* functions are not pytest tests
from sirr.data.root import find_data_root
from sirrbook.photos import benchmark_inventory

VOC = re.compile(r"^\d{4}_\d{6}$")


def _img(path, value, size=(8, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def _v(a):
    return int(round(float(a.mean()) * 255))


# ----------------------------------------------------------------------------- tiny copies of each layout


def _triplet(folder, base, ext=".jpg", names=("m", "g", "r")):
    for k, n in enumerate(names):
        _img(folder / f"{n}{ext}", base + k)


def test_solidobject_layout(tmp_path):
    for scene in ("3", "10"):
        for part, settings in (("Focus", ("11", "32")), ("Thick", ("3", "10"))):
            for s in settings:
                _triplet(tmp_path / "SIR2/SolidObjectDataset" / scene / part / s, 10)
    (tmp_path / "SIR2/SolidObjectDataset/readme.txt").write_text("readme")
    ds = D.load_dataset("sir2_solidobject", tmp_path)
    assert len(ds) == 8 and len(set(ds.names)) == 8
    assert ds.names[:2] == ["3_Focus_11_m", "3_Focus_32_m"] and ds.names[-1] == "10_Thick_10_m"
    s = ds[0]
    assert (_v(s.I), _v(s.T), _v(s.R)) == (10, 11, 12)


@pytest.mark.parametrize("folder", ["SIR2/Wildscene", "SIR2/WildScene", "sir2/WildSceneDataset",
                                    "SIR2/Wild Scene Dataset", "SIR2/WildSceneDataset/withgt", "SIR2/Wild"])
def test_wild_spellings(tmp_path, folder):
    for scene, v in (("3", 20), ("23s", 30), ("100", 40)):
        _triplet(tmp_path / folder / scene, v)
    ds = D.load_dataset("sir2_wild", tmp_path)
    prefix = "withgt_" if folder.endswith("withgt") else ""
    assert ds.names == [f"{prefix}3_m", f"{prefix}23s_m", f"{prefix}100_m"]
    assert (_v(ds[1].I), _v(ds[1].T), _v(ds[1].R)) == (30, 31, 32)


def test_wild_official_withgt_and_withoutgt(tmp_path):
    _triplet(tmp_path / "SIR2/WildSceneDataset/withgt/7", 50)
    _img(tmp_path / "SIR2/WildSceneDataset/withoutgt/8/m.jpg", 60)  # no ground truth: not loaded
    ds = D.load_dataset("sir2_wild", tmp_path)
    assert ds.names == ["withgt_7_m"] and ds.root.name == "WildSceneDataset"


@pytest.mark.parametrize("folder", ["SIR2/Postcard Dataset", "SIR2/PostcardDataset", "SIR2/Postcard",
                                    "sir2/Postcard Dataset"])
def test_postcard_pairing_with_varied_names(tmp_path, folder):
    t = tmp_path / folder / "Thick"
    # one pair per folder, the apertures of m and g differ: they pair whatever the rest of the name
    _img(t / "ab/3/ab-3-m-32.png", 10)
    _img(t / "ab/3/ab-3-g-11.png", 11)
    _img(t / "ab/10/ab-10-g-3.png", 21)
    _img(t / "ab/10/ab-10-m-3.png", 20)
    # two pairs in one folder: by the name with m and g swapped ...
    _img(t / "em/5/em-5-m-32.png", 30)
    _img(t / "em/5/em-5-g-32.png", 31)
    _img(t / "em/5/em-5-m-11.png", 40)
    _img(t / "em/5/em-5-g-11.png", 41)
    # ... or, the apertures differing, by the name up to the role letter
    _img(t / "hi/x/hi-3-m-32.png", 50)
    _img(t / "hi/x/hi-5-m-32.png", 60)
    _img(t / "hi/x/hi-3-g-11.png", 51)
    _img(t / "hi/x/hi-5-g-27.png", 61)
    _img(t / "hi/y/hi-y-m-32.png", 70)  # a mixture without background: not loaded
    _img(t / "hb/3/hb-3-m-32rs1.jpg", 80)  # as in the shared copy: another extension and a suffix
    _img(t / "hb/3/hb-3-g-32rs1.jpg", 81)
    ds = D.load_dataset("sir2_postcard", tmp_path)
    got = {s.name: (_v(s.I), _v(s.T), s.R) for s in ds}
    assert got == {
        "Thick_ab_3_ab-3-m-32": (10, 11, None), "Thick_ab_10_ab-10-m-3": (20, 21, None),
        "Thick_em_5_em-5-m-11": (40, 41, None), "Thick_em_5_em-5-m-32": (30, 31, None),
        "Thick_hi_x_hi-3-m-32": (50, 51, None), "Thick_hi_x_hi-5-m-32": (60, 61, None),
        "Thick_hb_3_hb-3-m-32rs1": (80, 81, None),
    }
    assert ds.names[:2] == ["Thick_ab_3_ab-3-m-32", "Thick_ab_10_ab-10-m-3"]  # natural order
    inv = {r["name"]: r for r in benchmark_inventory(tmp_path)}["sir2_postcard"]
    assert inv["found"] == 7 and inv["missing"] == "192 of 199 missing: only the Thick part is here"


def test_sir2_role_letter_is_the_last_standalone_one(tmp_path):
    # an id that is itself a role letter ("m"), and upper-case role letters
    _img(tmp_path / "SIR2/Postcard/Thick/m/3/m-3-M-32.png", 10)
    _img(tmp_path / "SIR2/Postcard/Thick/m/3/m-3-G-32.png", 11)
    _img(tmp_path / "SIR2/Postcard/Thick/m/3/m-3-R-32.png", 12)
    _img(tmp_path / "SIR2/Postcard/Thick/m/5/m-5-m-32.png", 20)
    _img(tmp_path / "SIR2/Postcard/Thick/m/5/m-5-g-32.png", 21)
    ds = D.load_dataset("sir2_postcard", tmp_path)
    assert ds.names == ["Thick_m_3_m-3-M-32", "Thick_m_5_m-5-m-32"]
    assert (_v(ds[0].T), _v(ds[0].R)) == (11, 12) and _v(ds[1].T) == 21 and ds[1].R is None


def test_real20_pairs_and_inventory(tmp_path):
    for n in D.REAL20_NAMES:
        if n != "3":
            _img(tmp_path / f"zhang2018/real20/blended/{n}.jpg", 10)
            _img(tmp_path / f"zhang2018/real20/transmission_layer/{n}.jpg", 11)
    ds = D.load_dataset("real20", tmp_path)
    assert len(ds) == 19 and "3" not in ds.names and ds.names[:2] == ["4", "9"]
    inv = {r["name"]: r for r in benchmark_inventory(tmp_path)}
    assert inv["real20"]["missing"] == "1 of 20 missing (pair 3 absent in this copy)"
    assert inv["real20"]["folder"].endswith("zhang2018/real20")
    gts = D.test_ground_truths("real20", tmp_path)
    assert len(gts) == 19 and all(p.parent.name == "transmission_layer" for p in gts)
    assert D.test_source_ids("real20", tmp_path) == set()


def test_inventory_without_data(tmp_path):
    inv = benchmark_inventory(tmp_path)
    assert [r["name"] for r in inv] == list(D.TEST_SETS)
    for r in inv:
        assert set(r) == {"name", "title", "found", "paper_count", "folder", "missing"}
        assert r["found"] == 0 and r["folder"] is None and r["missing"] == f"not found under {tmp_path.resolve()}"
    assert all(r["missing"] == "not found: no data root" for r in benchmark_inventory("none"))
    assert D.test_ground_truths("sir2_wild", tmp_path) == [] and D.test_source_ids("ceilnet_table2", "none") == set()
    with pytest.raises(D.UnknownDatasetError):
        D.test_ground_truths("sir2_wlid", tmp_path)


def test_inventory_more_than_the_papers_subset(tmp_path):
    for k in range(57):
        _triplet(tmp_path / "SIR2/Wildscene" / str(k), 10)
    r = {r["name"]: r for r in benchmark_inventory(tmp_path)}["sir2_wild"]
    assert (r["found"], r["paper_count"]) == (57, 55)
    assert r["missing"] == "2 more than the papers' 55-scene subset, whose list is unpublished: all 57 are scored"


def test_ceilnet_source_ids(tmp_path):
    d = tmp_path / "ceilnet/testdata_reflection_synthetic_table2"
    for n in ("2007_003525", "2012_000001", "smooth-3"):
        _img(d / f"{n}-input.png", 10)
        _img(d / f"{n}-label1.png", 11)
        _img(d / f"{n}-label2.png", 12)
    assert D.test_source_ids("ceilnet_table2", tmp_path) == {"2007_003525", "2012_000001"}
    assert sorted(p.name for p in D.test_ground_truths("ceilnet_table2", tmp_path)) == [
        "2007_003525-label1.png", "2012_000001-label1.png", "smooth-3-label1.png"]


def test_specs_paper_counts():
    assert {n: D.DATASETS[n].paper_count for n in ("sir2_postcard", "sir2_solidobject", "sir2_wild", "real20",
                                                  "nature")} == {"sir2_postcard": 199, "sir2_solidobject": 200,
                                                                 "sir2_wild": 55, "real20": 20, "nature": 20}
    assert {n: D.DATASETS[n].count for n in ("sir2_postcard", "sir2_solidobject", "sir2_wild", "real20")} == {
        "sir2_postcard": 199, "sir2_solidobject": 200, "sir2_wild": 101, "real20": 20}
    assert getattr(D.test_ground_truths, "__test__", True) is False


# ----------------------------------------------------------------------------- the shared data, as published


@pytest.fixture(scope="module")
def shared():
    r = find_data_root()
    if r is None or not (r / "SIR2").is_dir():
        pytest.skip("no shared data root (../shared/data or $SIRR_DATA)")
    return r


@pytest.mark.parametrize("name,count,folder,has_r", [
    ("real20", 19, "zhang2018/real20", False),
    ("sir2_solidobject", 200, "SIR2/SolidObjectDataset", True),
    ("sir2_postcard", 60, "SIR2/Postcard Dataset", False),
    ("sir2_wild", 101, "SIR2/Wildscene", True),
    ("ceilnet_synthetic", 41, "ceilnet/testdata_reflection_synthetic", True),
    ("ceilnet_table2", 100, "ceilnet/testdata_reflection_synthetic_table2", True),
])
def test_shared_counts_and_first_sample(shared, name, count, folder, has_r):
    ds = D.load_dataset(name, shared)
    assert len(ds) == count and ds.root == shared / folder and ds.has_ground_truth
    assert len(set(ds.names)) == count
    assert ds.names == D.load_dataset(name, shared).names  # stable
    s = ds[0]
    assert s.I.shape == s.T.shape and s.I.ndim == 3 and s.I.shape[2] == 3
    assert (s.R is not None) is has_r
    for a in (s.I, s.T):
        assert a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    gts = D.test_ground_truths(name, shared)
    assert len(gts) == count and all(p.is_file() for p in gts)
    assert not set(gts) & set(ds.paths)


def test_shared_ground_truth_names(shared):
    assert {p.stem for p in D.test_ground_truths("sir2_wild", shared)} == {"g"}
    pc = D.load_dataset("sir2_postcard", shared)
    for it in pc.items:  # <id>/<thickness>/<id>-<thickness>-g-<aperture>[suffix], e.g. hb-3-g-32rs1.jpg
        m = re.fullmatch(r"([a-z]+)-(\d+)-g-\d+\w*", it.T.stem)
        assert m and (m[1], m[2]) == (it.T.parent.parent.name, it.T.parent.name) and it.T.parent == it.I.parent
        assert it.I.name == it.T.name.replace("-g-", "-m-")
    assert all(p.stem.endswith("-label1") for p in D.test_ground_truths("ceilnet_table2", shared))
    assert {p.parent.name for p in D.test_ground_truths("real20", shared)} == {"transmission_layer"}


def test_shared_inventory(shared):
    inv = {r["name"]: r for r in benchmark_inventory(shared)}
    assert list(inv) == list(D.TEST_SETS)
    got = {n: (r["found"], r["paper_count"], r["missing"]) for n, r in inv.items()}
    assert got["real20"] == (19, 20, "1 of 20 missing (pair 3 absent in this copy)")
    assert got["sir2_solidobject"] == (200, 200, "")
    assert got["sir2_postcard"] == (60, 199, "139 of 199 missing: only the Thick part is here")
    assert got["sir2_wild"] == (101, 55, "46 more than the papers' 55-scene subset, whose list is unpublished: "
                                         "all 101 are scored")
    assert got["ceilnet_synthetic"] == (41, None, "") and got["ceilnet_table2"] == (100, None, "")
    for n in ("nature", "errnet_unaligned", "la_release"):  # not in the shared data
        assert inv[n]["found"] == 0 and inv[n]["folder"] is None
        assert inv[n]["missing"] == f"not found under {shared}"


def test_shared_source_ids(shared):
    syn = D.test_source_ids("ceilnet_synthetic", shared)
    t2 = D.test_source_ids("ceilnet_table2", shared)
    # table2 is named by VOC id throughout; 18 of the 41 synthetic triples are (the other 23 are smooth-N)
    assert len(t2) == 100 and len(syn) == 18 and syn <= t2
    assert all(VOC.match(i) for i in syn | t2)
    n_smooth = sum(n.startswith("smooth-") for n in D.load_dataset("ceilnet_synthetic", shared).names)
    assert n_smooth == 41 - 18
    for n in ("real20", "sir2_wild", "sir2_postcard", "sir2_solidobject"):
        assert D.test_source_ids(n, shared) == set()
    voc = shared / "VOCdevkit/VOC2012/JPEGImages"
    if voc.is_dir():  # README: 50 of the 100 VOC photos here are sources of the two sets
        assert len({p.stem for p in voc.glob("*.jpg")} & (syn | t2)) == 50
