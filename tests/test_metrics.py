"""PSNR/SSIM conventions on known values, and evaluate() over a dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from sirr.data.datasets import load_dataset
from sirr.metrics import psnr, resize_multiple_of, score, ssim
from sirrbook.evaluation import evaluate, summarise


def _img(h=32, w=40, seed=0, lo=0.2, hi=0.8):
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(lo, hi, (h, w, 3)) * 255).astype(np.float32) / 255


@pytest.mark.parametrize("conv", ["la", "errnet"])
def test_identical_images(conv):
    a = _img()
    assert psnr(a, a, conv) == math.inf
    assert ssim(a, a, conv) == pytest.approx(1.0)


@pytest.mark.parametrize("conv", ["la", "errnet"])
@pytest.mark.parametrize("d", [10 / 255, 0.1, 0.01])
def test_constant_offset_gives_analytic_psnr(conv, d):
    a = _img()  # values in [0.2, 0.8]: no clipping; size a multiple of 8: no resizing
    assert psnr(a + d, a, conv) == pytest.approx(20 * math.log10(1 / d), abs=1e-4)
    assert psnr(a - d, a, conv) == pytest.approx(20 * math.log10(1 / d), abs=1e-4)


def test_per_channel_averaging_differs_from_whole_image():
    a = _img()
    d = np.array([5, 10, 20]) / 255
    b = a + d
    whole = 10 * math.log10(1 / np.mean(d**2))  # "la": one MSE over all channels
    bandwise = float(np.mean(20 * np.log10(1 / d)))  # "errnet": PSNR per channel, averaged
    assert psnr(b, a, "la") == pytest.approx(whole, abs=1e-4)
    assert psnr(b, a, "errnet") == pytest.approx(bandwise, abs=1e-4)
    assert bandwise > whole + 1.0  # Jensen: the conventions differ by over a dB here


def test_la_resizes_to_multiple_of_8():
    a = _img(37, 45, seed=1, lo=0, hi=1)
    b = _img(37, 45, seed=2, lo=0, hi=1)
    r = resize_multiple_of(a, 8)
    assert r.shape == (32, 40, 3)
    assert resize_multiple_of(_img(32, 40), 8).shape == (32, 40, 3)
    la, en = psnr(b, a, "la"), psnr(b, a, "errnet")
    assert la != pytest.approx(en, abs=0.05)  # resizing averages noise away: a visible difference
    assert la > en


def test_errnet_is_mean_of_per_channel_scores():
    a = _img(lo=0, hi=1)
    b = np.clip(a + np.random.default_rng(5).normal(0, 0.05, a.shape), 0, 1)
    per_channel = [psnr(b[..., c:c + 1], a[..., c:c + 1], "la") for c in range(3)]  # grey->RGB: same MSE
    assert psnr(b, a, "errnet") == pytest.approx(np.mean(per_channel), abs=1e-6)
    from skimage.metrics import structural_similarity

    ref = np.mean([structural_similarity(b[..., c] * 255, a[..., c] * 255, data_range=255) for c in range(3)])
    assert ssim(b, a, "errnet") == pytest.approx(ref, abs=1e-9)
    ref_la = structural_similarity(b, a, data_range=1, channel_axis=-1)
    assert ssim(b, a, "la") == pytest.approx(ref_la, abs=1e-9)


def test_inputs_uint8_tensor_and_clipping():
    a = _img()
    u8 = np.round(a * 255).astype(np.uint8)
    assert psnr(u8, a, "la") > 100  # equal up to float32 rounding
    t = torch.from_numpy(a).permute(2, 0, 1)[None]
    assert psnr(t, a) == math.inf
    assert psnr(a + 5.0, np.ones_like(a), "la") == math.inf  # predictions are clipped to [0, 1]


def test_ssim_known_orderings():
    a = _img(lo=0, hi=1)
    noisy = np.clip(a + np.random.default_rng(3).normal(0, 0.1, a.shape), 0, 1)
    for conv in ("la", "errnet"):
        s = ssim(noisy, a, conv)
        assert 0 < s < 0.95
        assert ssim(np.clip(a + 0.02, 0, 1), a, conv) > s


def test_tiny_images_do_not_crash():
    a = _img(1, 1)
    assert psnr(a, a, "errnet") == math.inf
    assert ssim(a, a, "errnet") == 1.0
    b = _img(5, 6, seed=4)
    assert ssim(b, b, "errnet") == pytest.approx(1.0)


def test_errors():
    a = _img()
    with pytest.raises(ValueError, match="unknown metric convention 'foo'"):
        psnr(a, a, "foo")
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, _img(16, 40), "errnet")
    with pytest.raises(ValueError, match="HxWx3"):
        psnr(np.zeros((2, 3, 4, 5)), a)


def test_score_keys():
    a = _img()
    s = score(a, a)
    assert set(s) == {"psnr_la", "ssim_la", "psnr_errnet", "ssim_errnet"}
    assert set(score(a, a, convention="la")) == {"psnr", "ssim"}
    assert set(score(a, a, "errnet")) == {"psnr_errnet", "ssim_errnet"}


@pytest.fixture
def pairs(tmp_path):
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a": (37, 45), "b": (40, 48)}.items():
        t = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        (tmp_path / "real20/blended").mkdir(parents=True, exist_ok=True)
        (tmp_path / "real20/transmission_layer").mkdir(parents=True, exist_ok=True)
        Image.fromarray(t).save(tmp_path / f"real20/blended/{name}.png")
        Image.fromarray(t).save(tmp_path / f"real20/transmission_layer/{name}.png")
    return load_dataset("real20", tmp_path)


def test_evaluate_identity_on_identical_pairs(pairs):
    seen = []

    def predict(x):
        seen.append(tuple(x.shape))
        return x

    df = evaluate(predict, pairs)
    assert list(df.columns) == ["image", "psnr_la", "ssim_la", "psnr_errnet", "ssim_errnet", "seconds", "height",
                                "width"]
    assert list(df["image"]) == ["a", "b"]
    assert np.isinf(df["psnr_la"]).all() and np.isinf(df["psnr_errnet"]).all()
    assert np.allclose(df["ssim_la"], 1) and np.allclose(df["ssim_errnet"], 1)
    assert all(h % 8 == 0 and w % 8 == 0 for _, _, h, w in seen)
    assert seen == [(1, 3, 32, 40), (1, 3, 40, 48), (1, 3, 40, 48)]  # "a": resized + padded; "b": once
    summ = summarise(df)
    assert summ["n"].iloc[0] == 2 and summ["psnr_la_n_inf"].iloc[0] == 2


def test_evaluate_max_side_and_max_images(pairs):
    df = evaluate(lambda x: x * 0.9, pairs, max_side=20, max_images=1)
    assert len(df) == 1 and max(df["height"].iloc[0], df["width"].iloc[0]) <= 20
    assert np.isfinite(df["psnr_la"]).all() and (df["seconds"] >= 0).all()


def test_evaluate_skips_images_without_ground_truth(tmp_path):
    (tmp_path / "zhang2018/real").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "zhang2018/real/1.jpg")
    df = evaluate(lambda x: x, load_dataset("zhang2018_real", tmp_path), conventions=("la",))
    assert len(df) == 0 and list(df.columns) == ["image", "psnr_la", "ssim_la", "seconds", "height", "width"]


def test_summarise_groups_and_infinite():
    import pandas as pd

    df = pd.DataFrame({"dataset": ["x", "x", "y"], "psnr_la": [math.inf, 20.0, 30.0], "ssim_la": [1.0, 0.5, 0.7]})
    s = summarise(df, by="dataset")
    assert s.loc["x", "psnr_la"] == 20.0 and s.loc["x", "psnr_la_n_inf"] == 1
    assert s.loc["y", "n"] == 1 and s.loc["x", "ssim_la"] == pytest.approx(0.75)


def test_paired_difference_verdicts_follow_the_interval():
    from sirrbook.evaluation import paired_difference

    rng = np.random.default_rng(0)
    base = rng.normal(20, 2, 19)
    clear = paired_difference(base + 0.5 + rng.normal(0, 0.1, 19), base)
    assert clear["verdict"] == "better" and 0 < clear["low"] < clear["mean"] < clear["high"]
    assert clear["n"] == 19 and clear["n_better"] == 19
    noise = rng.normal(0, 2, 19)
    noisy = paired_difference(base + noise - noise.mean(), base)  # mean difference exactly 0
    assert noisy["verdict"] == "no clear difference" and noisy["low"] < 0 < noisy["high"]
    assert paired_difference(base - 1.0 + rng.normal(0, 0.1, 19), base)["verdict"] == "worse"
    lp = paired_difference([0.2] * 5, [0.3] * 5, "lpips")  # LPIPS: lower is better
    assert lp["verdict"] == "better" and lp["low"] == lp["high"] == pytest.approx(-0.1)
    inf = paired_difference([np.inf, 21.0, 22.0, 23.0], [20.0, 20.0, 20.5, 21.0])
    assert inf["n"] == 3  # identical images (PSNR inf) are left out
    with pytest.raises(ValueError, match="same images"):
        paired_difference([1.0, 2.0], [1.0])
