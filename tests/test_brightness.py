"""The brightness study of chapter 6: the least-squares gain, the per-image measures, the paired table and the
stored study (with a stand-in model, no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sirr.config import resolve
from sirrbook import brightness as B


def _pairs(n: int = 6, seed: int = 0, truth_gain: float = 0.8):
    """Named (input, truth) pairs whose truth is the input darkened by ``truth_gain`` plus a little texture."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        I = rng.uniform(0.2, 0.9, size=(20 + i, 28, 3)).astype(np.float32)
        T = np.clip(I * truth_gain + rng.normal(0, 0.02, I.shape), 0, 1).astype(np.float32)
        out.append((f"img{i}", I, T))
    return out


def test_least_squares_gain_is_the_minimiser():
    g = torch.Generator().manual_seed(0)
    I = torch.rand(2, 3, 8, 8, generator=g)
    assert B.least_squares_gain(I, 0.7 * I) == pytest.approx(0.7, abs=1e-7)
    T = torch.rand(2, 3, 8, 8, generator=g)
    c = B.least_squares_gain(I, T)
    err = lambda k: float(((k * I - T) ** 2).sum())  # noqa: E731
    assert err(c) < err(c + 1e-3) and err(c) < err(c - 1e-3)
    with pytest.raises(B.BrightnessError, match="one shape"):
        B.least_squares_gain(I, T[:, :, :4])
    with pytest.raises(B.BrightnessError, match="some light"):
        B.least_squares_gain(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))


def test_measures_of_a_model_that_only_darkens():
    pairs = _pairs()
    s = B.score_brightness(lambda img: img * 0.8, pairs, gain=0.8)
    assert s["image"] == [p[0] for p in pairs] and set(B.MEASURES) <= set(s)
    assert np.allclose(s["output_ratio"], 0.8, atol=1e-5)  # nothing reaches 1 after x0.8: no clipping
    assert np.allclose(s["truth_ratio"], 0.8, atol=0.01)
    assert np.allclose(s["psnr_model"], s["psnr_gain"])  # the model is the gain baseline
    assert all(m > i for m, i in zip(s["psnr_model"], s["psnr_identity"]))  # darkening helps on darker truths
    # at the truth's brightness the darkening model and the input are the same image
    assert np.allclose(s["psnr_model_matched"], s["psnr_identity_matched"], atol=1e-3)


def test_frame_separates_darkening_from_removal():
    pairs = _pairs(8)
    study = {"method": "la", "gain": {"gain": 0.8, "photos": 4},
             "sets": {"a": B.score_brightness(lambda img: img * 0.8, pairs[:4], gain=0.8),
                      "b": B.score_brightness(lambda img: img * 0.8, pairs[4:], gain=0.8)}}
    df = B.brightness_frame(study)
    assert list(df.index) == ["a", "b", B.POOLED] and df.loc[B.POOLED, "n"] == 8
    assert df.loc[B.POOLED, f"{B.GAIN_VS_INPUT} verdict"] == "better"
    assert df.loc[B.POOLED, B.MODEL_VS_GAIN] == pytest.approx(0.0, abs=1e-9)
    assert df.loc[B.POOLED, f"{B.MODEL_VS_GAIN} verdict"] == "no clear difference"
    assert abs(df.loc[B.POOLED, B.MATCHED]) < 1e-2
    pooled = B.pooled_difference(study, B.GAIN_VS_INPUT)
    assert pooled["n"] == 8 and pooled["mean"] == pytest.approx(df.loc[B.POOLED, B.GAIN_VS_INPUT])
    assert pooled["verdict"] == df.loc[B.POOLED, f"{B.GAIN_VS_INPUT} verdict"]
    assert B.pooled_difference(study, B.MODEL_VS_GAIN, "ssim_la")["mean"] == pytest.approx(
        df.loc[B.POOLED, f"{B.MODEL_VS_GAIN} SSIM"])
    text = B.brightness_sentence(study, {"a": "Set A"})
    assert text.startswith("LA's outputs keep 0.80 of their input's mean brightness")
    assert "The constant gain 0.800, fitted on 4 synthetic validation triples, is better than the input" in text
    assert "over all 8 real photos" in text and "not clearly different from it on Set A (+0.00 dB), b (+0.00 dB)" in text


def test_a_model_that_removes_more_than_brightness_beats_the_gain():
    rng = np.random.default_rng(1)
    pairs = []
    for i in range(10):  # input = truth + a textured reflection; the model recovers the truth, up to a little noise
        T = rng.uniform(0.1, 0.6, size=(24, 24, 3)).astype(np.float32)
        R = rng.uniform(0.0, 0.3, size=(24, 24, 3)).astype(np.float32)
        pairs.append((f"p{i}", np.clip(T + R, 0, 1), T))
    s = B.score_brightness(lambda img: _truth_of(img, pairs), pairs, gain=0.75)
    df = B.brightness_frame({"method": "la", "gain": {"gain": 0.75, "photos": 4}, "sets": {"only": s}})
    assert list(df.index) == ["only"]  # one set: no pooled row
    assert df.loc["only", f"{B.MODEL_VS_GAIN} verdict"] == "better"
    assert df.loc["only", f"{B.MATCHED} verdict"] == "better"


def _truth_of(img, pairs):
    for _, I, T in pairs:
        if I.shape == img.shape and np.allclose(I, img, atol=1e-4):
            return T + np.random.default_rng(0).normal(0, 0.01, T.shape).astype(np.float32)
    raise AssertionError("unknown image")


def test_a_set_without_ground_truth_is_one_clear_error():
    with pytest.raises(B.BrightnessError, match="no image with ground truth"):
        B.score_brightness(lambda img: img, [("a", np.zeros((8, 8, 3), np.float32), None)], gain=1.0)


def test_study_is_stored_and_read_back(tmp_path, monkeypatch):
    from sirrbook.remove import load_method

    class Darken(torch.nn.Module):
        def forward(self, x):
            from types import SimpleNamespace
            return SimpleNamespace(transmission=x * 0.9)

    calls = []

    def fake_model(run, method):
        calls.append(method)
        return load_method(method, model=Darken(), device="cpu"), "a stand-in that darkens by 0.9"

    monkeypatch.setattr(B, "_model", fake_model)
    run = resolve("smoke", data_root="none", results_dir=tmp_path / "results", eval__max_images=3,
                  eval__max_side=48, validation__photos=4, validation__size=32)
    study = B.brightness_study(run, "la", verbose=False)
    (name, s), = study["sets"].items()  # without a data root: the one fallback set
    assert study["gain"]["held_out"] and study["gain"]["photos"] == 4 and 0.3 < study["gain"]["gain"] < 1.2
    assert len(s["image"]) == 3 and np.allclose(s["output_ratio"], 0.9, atol=0.02)
    assert (tmp_path / "results" / "smoke" / "nodata" / "brightness" / "la" / "0.json").is_file()
    again = B.brightness_study(run, "la", verbose=False)
    assert calls == ["la"] and again["sets"][name]["psnr_model"] == pytest.approx(s["psnr_model"])
    assert math.isfinite(B.brightness_frame(again).loc[name, B.MODEL_VS_GAIN])


def test_study_never_trains_a_missing_model(tmp_path):
    run = resolve("smoke", seed=97, data_root="none", results_dir=tmp_path / "results")  # seed 97: no run folder
    with pytest.raises(B.BrightnessError, match=r"no LA weights at preset 'smoke', seed 97: .*python -m sirr train la "
                                                r"--preset smoke --seed 97"):
        B.brightness_study(run, "la", verbose=False)
    assert not (tmp_path / "results" / "smoke" / "nodata" / "brightness").exists()


def test_cli_without_weights_is_one_line_and_exit_2(tmp_path, capsys):
    from sirrbook.cli import main

    rc = main(["brightness", "la", "--preset", "smoke", "--seed", "97", "--data-root", "none",
               "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("sirr: error: no LA weights at preset 'smoke', seed 97")
