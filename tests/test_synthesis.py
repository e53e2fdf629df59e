"""Reflection synthesis (sirr.data.synthesis): known values of each recipe, skip rules, determinism, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sirr.data.synthesis import (
    ReflectionSynthesizer,
    SynthesisError,
    gamma_correct,
    gamma_inverse,
    gaussian_blur,
    ghost,
    synthesize_ceilnet,
    synthesize_la,
    synthesize_ts,
    vignetting_profile,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def const(v: float, b: int = 1, s: int = 32) -> torch.Tensor:
    return torch.full((b, 3, s, s), v)


def photos(n: int = 4, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = rng.random((1, 1, 3)) * 0.6 + 0.2
        out.append(np.clip(base + 0.2 * rng.random((60 + 8 * i, 80, 3)), 0, 1).astype(np.float32))
    return out


def test_gamma_round_trip_and_values():
    x = torch.rand(2, 3, 8, 8, generator=gen())
    torch.testing.assert_close(gamma_correct(gamma_inverse(x)), x, atol=1e-5, rtol=0)
    assert gamma_inverse(torch.tensor(0.5)).item() == pytest.approx(0.5**2.2)
    assert gamma_correct(torch.tensor(-0.1)).item() == 0.0


def test_la_known_value_constant_images():
    T, R = const(0.5), const(0.6)
    out = synthesize_la(T, R, gen(), alpha=0.9, sigma=2.0, att=1.1, vignetting=False)
    expect = (0.6**2.2 + 0.9 * 0.5**2.2) ** (1 / 2.2)  # no overflow: 0.325 + 0.196 < 1
    torch.testing.assert_close(out["I"], torch.full_like(T, expect), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["R"], torch.full_like(T, 0.6), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["T"], T)  # ground truth T is not scaled by alpha
    assert out["alpha"].item() == pytest.approx(0.9)
    assert out["overflow"].abs().max().item() == 0.0


def test_la_zero_reflection_gives_scaled_transmission_and_is_skipped():
    T = torch.rand(2, 3, 32, 32, generator=gen(1)) * 0.8 + 0.2
    out = synthesize_la(T, torch.zeros_like(T), gen(), alpha=0.85, vignetting=False)
    torch.testing.assert_close(out["I"], (0.85 * T**2.2) ** (1 / 2.2), atol=1e-5, rtol=0)
    assert out["R"].abs().max().item() == 0.0
    assert not out["keep"].any()  # max(R) < 0.15 (and mean(T)/2 > mean(R))


def test_la_skip_rules_flag_constructed_cases():
    bright, dark = const(0.9), const(0.05)
    ok = synthesize_la(const(0.4), const(0.5), gen(), vignetting=False)
    assert ok["keep"].all()
    first = synthesize_la(bright, const(0.3), gen(), vignetting=False)
    assert not first["keep"].any() and first["rules"][0].tolist() == [True, False, False]  # mean(T)/2 > mean(R)
    both = synthesize_la(dark, dark, gen(), vignetting=False)
    assert not both["keep"].any() and both["rules"][0].tolist() == [False, True, True]  # maxima < 0.15, max(I) < 0.1
    assert synthesize_la(dark, dark, gen(), vignetting=False, skip_rules=False)["keep"].all()


def test_la_overflow_fix_known_value_and_reduces_overflow():
    T, R = const(0.9), const(0.9)
    out = synthesize_la(T, R, gen(), alpha=1.0, att=1.1, vignetting=False)
    lin = 0.9**2.2
    amount = (2 * lin - 1) * 1.1  # blend = 2 lin > 1 everywhere: mean_i - 1 = 2 lin - 1
    torch.testing.assert_close(out["overflow"], torch.full((1, 3), amount), atol=1e-5, rtol=0)
    r_blur = lin - amount
    torch.testing.assert_close(out["R"], torch.full_like(T, r_blur ** (1 / 2.2)), atol=1e-5, rtol=0)
    assert 2 * lin > 1 and r_blur + lin < 1  # the linear blend no longer exceeds 1


def test_la_vignetting_window_of_release_kernel():
    out = synthesize_la(const(0.3, b=3), const(0.6, b=3), gen(), sigma=1.0)
    m = out["mask"]
    assert m.shape == (3, 1, 32, 32)
    assert 0 < m.min() and m.max() <= 1
    assert not torch.allclose(m[0], m[1])  # random windows differ
    # separable: every row is a scaled copy of every other row
    rows = m[0, 0] / m[0, 0, :, :1]
    torch.testing.assert_close(rows, rows[:1].expand_as(rows), atol=1e-5, rtol=1e-4)


def test_vignetting_profile_matches_release_gkern():
    st = pytest.importorskip("scipy.stats")
    n, nsig = 40, 3.0
    interval = (2 * nsig + 1.0) / n
    x = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, n + 1)
    k1 = np.diff(st.norm.cdf(x))
    k = np.sqrt(np.outer(k1, k1))
    k = k / k.sum()
    k = k / k.max()
    s = vignetting_profile(n, nsig, dtype=torch.float64).numpy()
    np.testing.assert_allclose(np.outer(s, s), k, rtol=1e-10)


def test_gaussian_blur_support_and_identity():
    x = torch.zeros(2, 3, 31, 31)
    x[:, :, 15, 15] = 1
    out = gaussian_blur(x, torch.tensor([1.3, 0.0]))
    k = out[0, 0]
    r = math.ceil(2 * 1.3)
    assert k.sum().item() == pytest.approx(1.0, abs=1e-5)
    nz = k.nonzero()
    assert nz[:, 0].min().item() == 15 - r and nz[:, 0].max().item() == 15 + r  # kernel 2 ceil(2 sigma) + 1
    g = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * 1.3**2))
    g = g / g.sum()
    torch.testing.assert_close(k[15 - r:16 + r, 15 - r:16 + r], torch.outer(g, g), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1], x[1])  # sigma = 0: no blur


def test_ceilnet_stored_reflection_is_blend_minus_transmission():
    T = torch.rand(3, 3, 32, 32, generator=gen(2))
    R = torch.rand(3, 3, 32, 32, generator=gen(3))
    out = synthesize_ceilnet(T, R, gen())
    torch.testing.assert_close(out["R"], out["I"] - out["T"])
    assert out["I"].min() >= 0 and out["I"].max() <= 1
    assert (out["overflow"] > 0).all()  # random images overflow
    assert ((out["sigma"] >= 2) & (out["sigma"] <= 5)).all()


def test_ceilnet_known_value_without_overflow():
    out = synthesize_ceilnet(const(0.3), const(0.4), gen(), sigma=3.0)
    assert out["I"][0, :, 16, 16].tolist() == pytest.approx([0.7] * 3, abs=1e-5)  # interior: blur of a constant
    assert out["I"][0, 0, 0, 0].item() < 0.7  # zero padding at the border, as torch7's 'same' convolution
    assert out["overflow"].item() == 0.0


def test_ceilnet_overflow_fix_reduces_values_above_one():
    T, R = const(0.8), const(0.6)
    out = synthesize_ceilnet(T, R, gen(), sigma=2.0)
    # interior blend 1.4, border lower; the amount is 1.3 x the mean overflow
    assert 0 < out["overflow"].item() <= 1.3 * 0.4 + 1e-6
    assert out["R"][0, 0, 16, 16].item() == pytest.approx(max(0.0, 0.6 - out["overflow"].item()), abs=1e-5)


def test_ts_ghosting_makes_two_shifted_copies_of_an_impulse():
    R = torch.zeros(1, 3, 33, 33)
    R[:, :, 10, 12] = 1.0
    g = ghost(R, torch.tensor([[5.0, 3.0]]))  # (dx, dy)
    nz = g[0, 0].nonzero().tolist()
    assert sorted(nz) == [[10, 12], [13, 17]]
    assert g[0, 0, 10, 12].item() == pytest.approx(1 / 1.25) and g[0, 0, 13, 17].item() == pytest.approx(1 / 1.25)


def test_ts_recipe_impulse_and_alpha_scaled_transmission():
    T = const(0.4, s=33)
    R = torch.zeros(1, 3, 33, 33)
    R[:, :, 16, 16] = 0.5  # linear 0.5**2.2 + 0.4**2.2 < 1: no overflow fix
    out = synthesize_ts(T, R, gen(), sigma=0.0, vignette=0.2, alpha=0.75, shift=(4.0, -2.0))
    r = out["R"][0, 0]
    assert sorted(r.nonzero().tolist()) == [[14, 20], [16, 16]]
    assert r[16, 16].item() == pytest.approx(r[14, 20].item())
    assert r[16, 16].item() == pytest.approx(0.2 ** (1 / 2.2) * 0.5 / 1.25, rel=1e-4)  # mask is 1 at the centre
    torch.testing.assert_close(out["T"], 0.75 * T)  # ground truth T is scaled by alpha
    torch.testing.assert_close(out["I"], (out["T"] + out["R"]).clamp(0, 1))


def test_ts_sampled_parameter_ranges():
    out = synthesize_ts(torch.rand(64, 3, 32, 32, generator=gen(4)), torch.rand(64, 3, 32, 32, generator=gen(5)), gen())
    assert ((out["alpha"] > 0.67) & (out["alpha"] <= 1)).all()
    assert ((out["sigma"] >= 0) & (out["sigma"] < 3)).all()
    assert ((out["vignette"] >= 0) & (out["vignette"] < 0.2)).all()
    assert out["shift"].abs().max() <= 15 * 32 / 256 + 1e-6  # 15 px at 256, scaled
    assert out["keep"].all()


@pytest.mark.parametrize("recipe", ["la", "ceilnet", "ts"])
def test_synthesizer_batch_shapes_ranges_determinism(recipe):
    a = ReflectionSynthesizer(photos(), recipe=recipe, size=64, seed=0).batch(4)
    b = ReflectionSynthesizer(photos(), recipe=recipe, size=64, seed=0).batch(4)
    c = ReflectionSynthesizer(photos(), recipe=recipe, size=64, seed=1).batch(4)
    for k in ("I", "T", "R"):
        assert a[k].shape == (4, 3, 64, 64) and a[k].dtype == torch.float32
        assert a[k].min() >= 0 and a[k].max() <= 1
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert a["alpha"].shape == (4,) and a["keep"].dtype == torch.bool
    assert not torch.equal(a["I"], c["I"])


def test_synthesizer_draws_two_different_photos():
    pool = [np.full((40, 40, 3), 0.2, np.float32), np.full((40, 40, 3), 0.8, np.float32)]
    out = ReflectionSynthesizer(pool, recipe="ceilnet", size=32, seed=3).batch(8)
    t = out["T"][:, 0, 16, 16]
    r = out["R"][:, 0, 16, 16]  # interior, no overflow (0.2 + 0.8 = 1): R = the other photo
    assert ((t - 0.2).abs() < 1e-5).any() and ((t - 0.8).abs() < 1e-5).any()
    assert (((t - 0.2).abs() < 1e-5) | ((t - 0.8).abs() < 1e-5)).all()
    torch.testing.assert_close(t + r, torch.ones(8), atol=1e-5, rtol=0)


def test_synthesizer_resamples_skipped_samples():
    rng = np.random.default_rng(0)
    pool = [np.clip(v + 0.05 * rng.random((48, 48, 3)), 0, 1).astype(np.float32) for v in (0.9, 0.25, 0.9, 0.25)]
    # T ~ 0.9 with R ~ 0.25 breaks mean(T)/2 > mean(R): without redraws some samples stay flagged
    raw = ReflectionSynthesizer(pool, recipe="la", size=32, seed=0, max_retries=0).batch(16)
    assert not raw["keep"].all()
    out = ReflectionSynthesizer(pool, recipe="la", size=32, seed=0).batch(16)
    assert out["keep"].all()
    torch.testing.assert_close(out["I"][raw["keep"]], raw["I"][raw["keep"]])  # kept samples are not redrawn


def test_synthesizer_generator_state_resume_is_bit_exact():
    syn = ReflectionSynthesizer(photos(), recipe="la", size=48, seed=7)
    syn.batch(2)
    state = syn.state_dict()
    nxt = syn.batch(3)
    resumed = ReflectionSynthesizer(photos(), recipe="la", size=48, seed=123)
    resumed.load_state_dict(state)
    again = resumed.batch(3)
    for k in ("I", "T", "R", "alpha", "sigma"):
        assert torch.equal(nxt[k], again[k])
    with pytest.raises(SynthesisError, match="recipe"):
        ReflectionSynthesizer(photos(), recipe="ts", size=48).load_state_dict(state)


def test_bad_input_errors():
    with pytest.raises(SynthesisError, match=r"\(B, 3, H, W\)"):
        synthesize_la(torch.rand(3, 8, 8), torch.rand(3, 8, 8), gen())
    with pytest.raises(SynthesisError, match="same shape"):
        synthesize_ts(const(0.5, s=16), const(0.5, s=32), gen())
    with pytest.raises(SynthesisError, match="torch.Generator"):
        synthesize_ceilnet(const(0.5), const(0.5), 0)
    with pytest.raises(SynthesisError, match="at least 2 photos"):
        ReflectionSynthesizer(photos(1), size=32)
    with pytest.raises(SynthesisError, match="unknown recipe"):
        ReflectionSynthesizer(photos(), recipe="zhang", size=32)


def test_synthesizer_pairs_are_the_raw_crops_the_recipe_gets():
    a = ReflectionSynthesizer(photos(), recipe="ceilnet", size=32, seed=3)
    b = ReflectionSynthesizer(photos(), recipe="ceilnet", size=32, seed=3)
    T, R = a.pairs(2)
    assert T.shape == R.shape == (2, 3, 32, 32)
    assert not torch.equal(T, R)
    out = b.batch(2)
    torch.testing.assert_close(out["T"], T)  # CEILNet keeps T as it is
    with pytest.raises(SynthesisError, match="batch_size"):
        a.pairs(0)
