"""Dataset loaders on tiny fake copies of each published layout, plus the shared data when present."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from sirr.data.datasets import (
    DATASETS,
    REAL20_NAMES,
    PairDataset,
    Sample,
    UnknownDatasetError,
    available_datasets,
    find_data_root,
    load_dataset,
    real_training_pairs,
    sample_photos,
)
from sirr.data.root import DatasetNotFoundError
from sirrbook.photos import real_reflection_photos


def _img(path, value, size=(8, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((*size, 3), value, np.uint8)
    Image.fromarray(a).save(path, **({"quality": 100} if path.suffix == ".jpg" else {}))


def _v(sample_img):
    return int(round(float(sample_img.mean()) * 255))


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "data"
    # CEILNet triples (one with a .jpg input), and a real set without labels
    for name, v in (("b2", 20), ("a10", 30), ("a9", 40)):
        _img(r / "ceilnet/testdata_reflection_synthetic" / f"{name}-input.png", v)
        _img(r / "ceilnet/testdata_reflection_synthetic" / f"{name}-label1.png", v + 1)
        _img(r / "ceilnet/testdata_reflection_synthetic" / f"{name}-label2.png", v + 2)
    _img(r / "ceilnet/testdata_reflection_synthetic_table2/x-input.jpg", 50)
    _img(r / "ceilnet/testdata_reflection_synthetic_table2/x-label1.png", 51)
    _img(r / "ceilnet/testdata_reflection_real/19-input.png", 60)
    _img(r / "ceilnet/testdata_reflection_real/q-1-input.jpg", 61)
    # photos without ground truth
    _img(r / "bsds500/2018-label.png", 70)
    _img(r / "bsds500/10081-label.png", 71)
    (r / "bsds500/readme.txt").write_text("not an image")
    _img(r / "zhang2018/real/19.jpg", 80)
    # SIR² processed (ERRNet style) and original release (m/g/r per scene)
    _img(r / "SIR2/PostcardDataset/blended/1.png", 90)
    _img(r / "SIR2/PostcardDataset/transmission_layer/1.png", 91)
    _img(r / "SIR2/PostcardDataset/blended/2.png", 92)  # no transmission: skipped
    _img(r / "SIR2/WildSceneDataset/withgt/3/m.jpg", 100)
    _img(r / "SIR2/WildSceneDataset/withgt/3/g.jpg", 101)
    _img(r / "SIR2/WildSceneDataset/withgt/3/r.jpg", 102)
    _img(r / "SIR2/WildSceneDataset/withoutgt/4/m.jpg", 103)  # no g: not loaded
    _img(r / "SIR2/SolidObjectDataset/Focus/F11/1/m.jpg", 110)
    _img(r / "SIR2/SolidObjectDataset/Focus/F11/1/g.jpg", 111)
    # Zhang et al. full real folder (real20 + training pairs)
    for n, v in (("3", 120), ("5", 121), ("110", 122), ("7", 123)):
        _img(r / f"zhang2018/reflection-removal/real/blended/{n}.jpg", v)
        _img(r / f"zhang2018/reflection-removal/real/transmission_layer/{n}.jpg", v)
    # IBCLN Nature: test (testB = I, testA1 = T) and train (natural_I / natural_T)
    _img(r / "nature/test/testB/1.png", 130)
    _img(r / "nature/test/testA1/1.png", 131)
    _img(r / "nature/train/natural_I/5.png", 132)
    _img(r / "nature/train/natural_T/5.png", 133)
    # ERRNet unaligned
    _img(r / "errnet_unaligned/unaligned_test50/blended/a.jpg", 140)
    _img(r / "errnet_unaligned/unaligned_test50/transmission_layer/a.jpg", 141)
    _img(r / "errnet_unaligned/unaligned_train250/blended/b.jpg", 142)
    _img(r / "errnet_unaligned/unaligned_train250/transmission_layer/b.jpg", 143)
    # LA release example layout: transmission for some only
    _img(r / "la_release/test_images/blend/000001.png", 150)
    _img(r / "la_release/test_images/blend/000004.png", 151)
    _img(r / "la_release/test_images/transmission/000001.png", 152)
    return r


def test_every_layout_is_found(root):
    assert set(available_datasets(root)) == set(DATASETS)


def test_ceilnet_triples_sorted_naturally(root):
    ds = load_dataset("ceilnet_synthetic", root)
    assert isinstance(ds, PairDataset) and ds.has_ground_truth
    assert ds.names == ["a9", "a10", "b2"]
    s = ds[0]
    assert isinstance(s, Sample) and s.name == "a9"
    assert (_v(s.I), _v(s.T), _v(s.R)) == (40, 41, 42)
    assert s.I.dtype == np.float32 and s.I.shape == (8, 12, 3)
    assert _v(load_dataset("ceilnet_table2", root)[0].T) == 51  # .jpg input, .png labels


def test_max_images_deterministic(root):
    a = load_dataset("ceilnet_synthetic", root, max_images=2)
    b = load_dataset("ceilnet_synthetic", root, max_images=2)
    assert len(a) == 2 and a.names == b.names == ["a9", "a10"]
    assert len(load_dataset("ceilnet_synthetic", root, max_images=0)) == 0
    with pytest.raises(ValueError, match="max_images"):
        load_dataset("ceilnet_synthetic", root, max_images=-1)


def test_sets_without_ground_truth(root):
    real = load_dataset("ceilnet_real", root)
    assert not real.has_ground_truth and real.names == ["19", "q-1"]
    assert real[1].T is None and real[1].R is None
    bsds = load_dataset("bsds500", root)
    assert bsds.names == ["2018", "10081"] and _v(bsds[0].I) == 70
    assert _v(load_dataset("zhang2018_real", root)[0].I) == 80


def test_sir2_processed_and_original_layouts(root):
    pc = load_dataset("sir2_postcard", root)
    assert pc.names == ["1"] and _v(pc[0].T) == 91
    wild = load_dataset("sir2_wild", root)
    assert len(wild) == 1 and wild.names == ["withgt_3_m"]
    s = wild[0]
    assert (_v(s.I), _v(s.T), _v(s.R)) == (100, 101, 102)
    so = load_dataset("sir2_solidobject", root)
    assert len(so) == 1 and _v(so[0].T) == 111 and so[0].R is None


def test_real20_and_training_split_of_zhang(root):
    r20 = load_dataset("real20", root)
    assert r20.names == ["3", "110"]  # only names in ERRNet's real_test.txt
    assert set(r20.names) <= set(REAL20_NAMES)
    r90 = load_dataset("zhang2018_real90", root)
    assert r90.names == ["5", "7"]


def test_real20_folder_taken_whole(root):
    _img(root / "real20/blended/42.png", 10)
    _img(root / "real20/transmission_layer/42.png", 11)
    assert load_dataset("real20", root).names == ["42"]


def test_nature_ibcln_layout(root):
    te = load_dataset("nature", root)
    assert te.names == ["1"] and (_v(te[0].I), _v(te[0].T)) == (130, 131)
    tr = load_dataset("nature_train", root)
    assert tr.names == ["5"] and (_v(tr[0].I), _v(tr[0].T)) == (132, 133)


def test_errnet_unaligned_and_la_release(root):
    assert load_dataset("errnet_unaligned", root).names == ["a"]
    assert load_dataset("errnet_unaligned_train", root).names == ["b"]
    la = load_dataset("la_release", root)
    assert la.names == ["000001", "000004"] and la.has_ground_truth
    assert la[0].T is not None and la[1].T is None


def test_sample_keys_and_slicing(root):
    ds = load_dataset("ceilnet_synthetic", root)
    s = ds[-1]
    assert s["name"] == "b2" and s["input"] is s.I and s["transmission"] is s.T and s["reflection"] is s.R
    name, I, T, R = s
    assert name == "b2" and T is s.T
    assert [x.name for x in ds[0:2]] == ["a9", "a10"]
    with pytest.raises(IndexError):
        ds[3]


def test_transmission_of_other_size_is_resized(root):
    _img(root / "nature/test/testB/2.png", 10, size=(8, 12))
    _img(root / "nature/test/testA1/2.png", 10, size=(9, 13))
    s = load_dataset("nature", root)[1]
    assert s.T.shape == s.I.shape


def test_missing_dataset_message(root):
    with pytest.raises(DatasetNotFoundError, match=r"'sir2_postcard'.*SIR2/PostcardDataset.*sir2data\.github\.io") as e:
        load_dataset("sir2_postcard", root / "ceilnet")
    assert "\n" not in str(e.value)


def test_misplaced_dataset_is_not_found(tmp_path):
    # blend files directly in the folder, without blended/ + transmission_layer/
    _img(tmp_path / "real20/3.jpg", 1)
    with pytest.raises(DatasetNotFoundError, match=r"real20.*exists but does not hold it.*blended/ and transmission_layer/"):
        load_dataset("real20", tmp_path)


def test_no_data_root(monkeypatch):
    with pytest.raises(DatasetNotFoundError, match="no data root"):
        load_dataset("ceilnet_synthetic", "none")
    assert available_datasets("none") == []


def test_unknown_dataset_suggests():
    with pytest.raises(UnknownDatasetError, match="Did you mean 'sir2_wild'"):
        load_dataset("sir2_wlid", "none")


def test_specs_name_a_url():
    for spec in DATASETS.values():
        assert spec.url.startswith("https://"), spec.name
        assert spec.layout in ("ceilnet", "images", "pairs", "sir2", "ibcln", "la_release")


def test_sample_photos():
    photos = sample_photos()
    assert len(photos) >= 6
    names = [n for n, _ in photos]
    assert len(set(names)) == len(names)
    for _, a in photos:
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and min(a.shape[:2]) >= 256
        assert np.abs(a[..., 0].astype(int) - a[..., 2]).mean() > 2  # colour, not grey


def test_real_reflection_photos(root, caplog):
    caplog.set_level(logging.INFO)
    photos = real_reflection_photos(root, n=2)
    assert [n for n, _ in photos] == ["ceilnet_real/19", "ceilnet_real/q-1"]
    fb = real_reflection_photos("none", n=2, max_side=64)
    assert "LA-synthesised blends" in caplog.text and len(fb) == 2
    assert all(a.dtype == np.float32 and max(a.shape[:2]) <= 64 and 0 <= a.min() and a.max() <= 1 for _, a in fb)


def test_real_training_pairs(root, caplog):
    caplog.set_level(logging.INFO)
    pairs = real_training_pairs(root)
    assert pairs.names == ["nature_train/5", "zhang2018_real90/5", "zhang2018_real90/7", "errnet_unaligned_train/b"]
    s = pairs[0]
    assert (_v(s.I), _v(s.T)) == (132, 133)
    assert len(real_training_pairs(root, max_images=2, verbose=False)) == 2
    assert "real training pairs: 4" in caplog.text
    caplog.clear()
    empty = real_training_pairs("none")
    assert len(empty) == 0 and "no data root" in caplog.text


# ----------------------------------------------------------------------------- the shared data, as published


@pytest.fixture(scope="module")
def shared_root():
    r = find_data_root(None)
    if r is None or not (r / "ceilnet").is_dir():
        pytest.skip("no shared data root (../shared/data or $SIRR_DATA)")
    return r


@pytest.mark.parametrize("name,count,gt", [
    ("ceilnet_synthetic", 41, True), ("ceilnet_table2", 100, True), ("ceilnet_real", 45, False),
    ("bsds500", 19, False), ("zhang2018_real", 4, False),
])
def test_shared_data_counts(shared_root, name, count, gt):
    ds = load_dataset(name, shared_root)
    assert len(ds) == count == DATASETS[name].count
    assert ds.has_ground_truth is gt
    s = ds[0]
    assert s.I.ndim == 3 and s.I.shape[2] == 3 and 0 <= s.I.min() and s.I.max() <= 1
    if gt:
        assert s.T.shape == s.I.shape and s.R.shape == s.I.shape




def test_scene_subset_covers_every_scene_and_ignores_listing_order(tmp_path):
    from sirr.data.datasets import PairDataset, _Item, evaluation_subset, scene_of

    names = [f"{sc}_{kind}_{k}_m" for sc in range(1, 6) for kind in ("Focus", "Thick") for k in (3, 5, 10)]
    items = [_Item(n, tmp_path / f"{n}.png", None, None) for n in names]
    ds = PairDataset(name="sir2_solidobject", root=tmp_path, items=items, has_ground_truth=True)
    sub = evaluation_subset(ds, "scenes")
    scenes = [scene_of(ds.name, n) for n in sub.names]
    assert sorted(set(scenes)) == ["1", "2", "3", "4", "5"] and len(sub) == 10  # two per scene
    assert all({n.split("_")[1] for n in sub.names if n.startswith(f"{s}_")} == {"Focus", "Thick"} for s in "12345")
    rev = PairDataset(name="sir2_solidobject", root=tmp_path, items=items[::-1], has_ground_truth=True)
    assert sorted(evaluation_subset(rev, "scenes").names) == sorted(sub.names)
    assert sub.names != names[: len(sub)]  # not the first N
    assert evaluation_subset(ds, "all") is ds
    other = PairDataset(name="real20", root=tmp_path, items=items, has_ground_truth=True)
    assert evaluation_subset(other, "scenes") is other  # small sets are scored whole
    with pytest.raises(ValueError, match="'all' or 'scenes'"):
        evaluation_subset(other, "first20")
