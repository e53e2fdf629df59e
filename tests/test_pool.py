"""The leak-free training pool: sources, duplicates, exclusion by VOC id and by content, laziness,
``data_root="none"`` everywhere, and LA's fine-tuning switch."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

import sirr.data.pool as pool_mod
from sirr.config import resolve
from sirr.data import fingerprint as fp
from sirr.data.datasets import TEST_SETS, test_ground_truths
from sirr.data.pool import build_pool, natural_photos
from sirr.data.root import find_data_root
from sirr.data.synthesis import ReflectionSynthesizer


def _texture(seed: int, h: int, w: int) -> np.ndarray:
    """A colour photo-like texture (smoothed noise) that no other seed resembles."""
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.random((h, w, 3)), (10, 10, 0))  # photo-like: most energy below 1/8 of the rate
    a = (a - a.min()) / (a.max() - a.min())
    return (a * 255).astype(np.uint8)


def _save(path, a, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, **kw)


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """VOC (3 photos), BSR (one per split), Sun-Hays (1), CEILNet's BSDS copy (a duplicate) and one
    CEILNet test set whose triples are a VOC-id crop (2007_000002) and a renamed crop (2007_000003)."""
    monkeypatch.setenv("SIRR_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    voc = {i: _texture(i, 256, 320) for i in (1, 2, 3)}
    for i, a in voc.items():
        _save(root / f"VOCdevkit/VOC2012/JPEGImages/2007_00000{i}.jpg", a, quality=95)
    for k, split in enumerate(("train", "val", "test")):
        _save(root / f"BSR/BSDS500/data/images/{split}/{100 + k}.jpg", _texture(10 + k, 240, 320), quality=95)
    _save(root / "bsds500/102-label.png", _texture(12, 240, 320))  # the BSR test photo again
    _save(root / "sun_hays80/abbey_sun_x.jpg", _texture(20, 300, 400), quality=95)
    ceil = root / "ceilnet/testdata_reflection_synthetic_table2"
    for name, src in (("2007_000002", voc[2]), ("smooth-1", voc[3])):
        crop = src[37:237, 51:251]  # 200x200 at an odd offset, as CEILNet's 224x224 transmissions are
        for label in ("input", "label1", "label2"):
            _save(ceil / f"{name}-{label}.png", crop)
    return root


def test_pool_sources_duplicates_and_both_exclusions(fake_root, caplog):
    caplog.set_level(logging.INFO)
    pool = build_pool(fake_root)
    names = [p.name for p in pool.photos]
    assert names == ["voc/2007_000001", "bsds500/test/102", "bsds500/train/100", "bsds500/val/101",
                     "sun_hays80/abbey_sun_x"]
    why = {e.name: (e.reason, e.test_set) for e in pool.excluded}
    assert why["voc/2007_000002"] == ("voc-id", "ceilnet_table2")
    assert why["voc/2007_000003"] == ("content", "ceilnet_table2")  # named smooth-1: only content finds it
    assert why["bsds500_ceilnet/102"][0] == "duplicate"
    assert pool.counts == {"voc": 1, "bsds500": 3, "sun_hays80": 1}
    out = caplog.text
    assert "training pool: 5 photos" in out and "1 by VOC id, 1 by content" in out
    # the decision is cached: a second build does not fingerprint anything
    calls = []
    real = fp.fingerprint
    pool_mod.fp.fingerprint = lambda p: calls.append(p) or real(p)
    try:
        again = build_pool(fake_root, verbose=False)
    finally:
        pool_mod.fp.fingerprint = real
    assert calls == [] and again.fingerprint == pool.fingerprint


def test_content_check_catches_resize_and_reencode_but_not_strangers():
    a = _texture(1, 256, 320)
    b = _texture(2, 256, 320)
    small = np.asarray(Image.fromarray(a).resize((200, 160), Image.BILINEAR))
    grey = lambda x: x.astype(np.float32).mean(2) / 255  # noqa: E731
    assert fp.verify(grey(small), grey(a)) >= fp.VERIFY_THRESHOLD  # a resize (whole frame)
    assert fp.verify(grey(a[10:230, 20:260]), grey(a)) >= fp.VERIFY_THRESHOLD  # a crop
    assert fp.verify(grey(b[10:230, 20:260]), grey(a)) < 0.5  # another photo


def test_pool_is_lazy(fake_root, monkeypatch):
    pool = build_pool(fake_root, verbose=False)
    reads = []
    real = pool_mod.read_image_uint8
    monkeypatch.setattr(pool_mod, "read_image_uint8", lambda p: reads.append(p) or real(p))
    synth = ReflectionSynthesizer(pool, recipe="la", size=64, seed=0, max_retries=0)  # no redraws
    assert reads == []  # building a synthesizer decodes nothing
    synth.batch(1)
    assert 1 <= len(set(reads)) <= 2 < len(pool)  # the one pair drawn (T and R), not the pool's 5 photos
    name, photo = pool[0]
    assert name == "voc/2007_000001" and photo.dtype == np.uint8 and photo.shape == (256, 320, 3)


def test_data_root_none_means_no_data_everywhere(caplog):
    caplog.set_level(logging.INFO)
    run = resolve("smoke", data_root="none")
    assert run.data_root is None and run.data_root_arg == "none"
    photos = natural_photos(run.data_root_arg)
    assert photos.root is None and all(p.source == "sample" for p in photos.photos) and len(photos) >= 6
    assert "no data root" in caplog.text
    from sirr.train.data import synthetic_training_data
    from sirr.train.location_aware import ALIGNED_REAL_SETS, _real_training_pairs

    assert _real_training_pairs(run, ALIGNED_REAL_SETS) == []
    lines = []
    held = resolve("smoke", data_root="none", validation__photos=2)
    data = synthetic_training_data(held, "la", 32, "cpu", 0, 10, lines.append)  # a trainer's default photos
    assert data.pool_record["root"] is None and data.pool_record["size"] == len(photos) - 2
    assert len(data.validation) == 2 and data.validation_photos and any("held out" in x for x in lines)


def test_la_fine_tuning_adds_unaligned_pairs_only_at_the_switch(tmp_path, monkeypatch):
    from sirr.train import location_aware as la

    sizes = []
    real_batch = la.RealPairSampler.batch
    monkeypatch.setattr(la.RealPairSampler, "batch", lambda self, n: sizes.append(len(self)) or real_batch(self, n))
    pair = lambda v: (np.full((80, 80, 3), v, np.float32), np.full((80, 80, 3), v / 2, np.float32))  # noqa: E731
    run = resolve("smoke", data_root="none", la__synthetic_fraction=0.0, la__log_every=1)
    la.train_location_aware(run, tmp_path / "run", steps=2, fine_tune_steps=2, photos=natural_photos("none"),
                            real_pairs=[pair(0.2), pair(0.4)], fine_tune_pairs=[pair(0.8)], progress=False)
    assert sizes == [2, 2, 3, 3]


shared = find_data_root()
needs_shared = pytest.mark.skipif(shared is None or not (shared / "VOCdevkit").is_dir(),
                                  reason="needs ../shared/data with VOC, BSR and Sun-Hays")


@needs_shared
def test_shared_pool_is_630_photos_without_a_test_photo(monkeypatch):
    pool = build_pool(shared, verbose=False)
    assert len(pool) == 630 and pool.counts == {"voc": 50, "bsds500": 500, "sun_hays80": 80}
    assert len(pool.excluded_by("voc-id")) == 50 and len(pool.excluded_by("duplicate")) == 19
    assert {"ceilnet_synthetic", "ceilnet_table2", "real20", "sir2_wild"} <= set(pool.tests)
    # The proof: with the VOC ids switched off, the content check alone finds the same 50 source
    # photos (and nothing else), so no pool photo matches any test ground truth in content.
    monkeypatch.setattr(pool_mod, "test_source_ids", lambda name, root=None: set())
    by_content = build_pool(shared, verbose=False)
    assert {e.name for e in by_content.excluded_by("content")} == {e.name for e in pool.excluded_by("voc-id")}
    assert by_content.fingerprint == pool.fingerprint
    assert sum(len(test_ground_truths(n, shared)) for n in TEST_SETS) == sum(pool.tests.values())


def test_synthesizer_still_takes_plain_lists():
    photos = [("a", _texture(1, 64, 64)), ("b", _texture(2, 64, 64))]
    out = ReflectionSynthesizer(photos, recipe="la", size=32, seed=0).batch(2)
    assert out["I"].shape == (2, 3, 32, 32) and torch.isfinite(out["I"]).all()
