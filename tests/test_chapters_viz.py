"""Chapter 01/02 helpers of ``sirrbook.book.chapters``: what they compute (known values) and that every figure draws (Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sirr.data.synthesis import LA_SKIP_RULES, synthesize_la  # noqa: E402
from sirrbook.book import chapters  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def photos(n: int = 4, side: int = 40, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = rng.integers(0, 256, (side, side + 8, 3), dtype=np.uint8)
        a[: side // 2] //= 4 if i % 2 else 1  # some darker photos, so the skip rules can fire
        out.append((f"p{i}", a))
    return out


def test_prepare_images_scales_and_caps_longer_side():
    a = np.full((30, 60, 3), 255, np.uint8)
    b = np.full((10, 20, 3), 0.5, np.float32)
    out = chapters.prepare_images([("a", a), ("b", b)], max_side=40)
    assert list(out) == ["a", "b"]
    assert out["a"].shape == (1, 3, 20, 40)
    torch.testing.assert_close(out["a"], torch.ones(1, 3, 20, 40))  # uint8 -> [0, 1], flat stays flat
    assert out["b"].shape == (1, 3, 10, 20)  # smaller than max_side: untouched
    with pytest.raises(ValueError, match="'bad'.*shape"):
        chapters.prepare_images([("bad", np.zeros((4, 4)))])


def test_layer_ratios_and_table_know_the_identity_case():
    T = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    R = T.clone() * 0.5  # R is half of T: every linear response is exactly half
    R[..., :24, :] = T[..., :24, :] * 2  # ... except the top half where it is double (R-dominated there)
    ratios = chapters.layer_ratios([("x", T, R)], border=4)
    assert set(ratios) == {"Laplacian k_L", "Edge (x/y derivatives)"}
    r = ratios["Laplacian k_L"]
    assert r.shape == (1, 4, 2)
    assert r[0, 3, 0] == pytest.approx(2.0, rel=0.05)  # full scale, R-dominated (top) half: 2x
    assert r[0, 3, 1] == pytest.approx(0.5, rel=0.05)  # T-dominated half: 0.5x
    table = chapters.ratio_table(ratios)
    assert table.shape == (4, 4)
    assert table.loc[("Laplacian k_L", "T-dominated"), "scale 1"] == pytest.approx(0.5, rel=0.05)
    with pytest.raises(ValueError, match="unknown kernel"):
        chapters.layer_ratios([("x", T, R)], kernels=("sobel",))


def test_sample_parameters_ranges_match_the_recipes():
    p = chapters.sample_parameters(n=400, seed=1)
    assert set(p) == {"la", "ceilnet", "ts"}
    assert 0.8 <= p["la"]["alpha"].min() and p["la"]["alpha"].max() <= 1.0
    grid = np.linspace(1, 5, 80)
    assert np.abs(p["la"]["sigma"][:, None] - grid[None]).min(axis=1).max() < 1e-5  # Zhang et al.'s 80 values
    assert "alpha" not in p["ceilnet"] and 2.0 <= p["ceilnet"]["sigma"].min() <= p["ceilnet"]["sigma"].max() <= 5.0
    assert 0.67 <= p["ts"]["alpha"].min() and p["ts"]["sigma"].max() <= 3.0
    ghost = p["ts"]["ghost offset (px at 256)"]
    assert ghost.max() <= 15 * np.sqrt(2) + 1e-4 and ghost.max() > 10


def test_skip_rule_rates_counts_what_the_rules_flag():
    rates, out = chapters.skip_rule_rates(photos(), size=32, n=24, seed=0)
    assert list(rates.index) == [*LA_SKIP_RULES, "any rule (pair skipped)"]
    # rules 2 and 3 recomputed from the returned layers, independently of the synthesis code
    dim = (1, 2, 3)
    dark = (out["T"].amax(dim=dim) < 0.15) | (out["R"].amax(dim=dim) < 0.15)
    assert rates["max(T) or max(R) < 0.15"] == pytest.approx(float(dark.float().mean()))
    assert rates["max(I) < 0.1"] == pytest.approx(float((out["I"].amax(dim=dim) < 0.1).float().mean()))
    assert rates["any rule (pair skipped)"] >= max(rates[r] for r in LA_SKIP_RULES)
    # known values: photos at 10/255 fail rules 2 and 3 for every pair (two such layers blend to at most
    # (2 · 0.039^2.2)^(1/2.2) ≈ 0.054 < 0.1); bright, busy ones pass them
    black = [(f"b{i}", np.full((40, 48, 3), 10, np.uint8)) for i in range(3)]
    rates_black, _ = chapters.skip_rule_rates(black, size=32, n=8, seed=0)
    assert rates_black["max(T) or max(R) < 0.15"] == 1.0 and rates_black["max(I) < 0.1"] == 1.0
    assert rates_black["any rule (pair skipped)"] == 1.0
    bright = [(f"w{i}", np.random.default_rng(i).integers(128, 256, (40, 48, 3), dtype=np.uint8)) for i in range(3)]
    rates_bright, _ = chapters.skip_rule_rates(bright, size=32, n=8, seed=0)
    assert rates_bright["max(T) or max(R) < 0.15"] == 0.0 and rates_bright["max(I) < 0.1"] == 0.0
    chapters.skip_rules_figure(out, LA_SKIP_RULES)


def test_overflow_pair_only_toggles_the_fix():
    T = torch.full((2, 3, 24, 24), 0.9)
    R = torch.full((2, 3, 24, 24), 0.9)
    without, with_fix = chapters.overflow_pair(T, R, seed=0)
    torch.testing.assert_close(without["alpha"], with_fix["alpha"])
    torch.testing.assert_close(without["mask"], with_fix["mask"])  # same vignetting window
    assert (without["overflow"] == 0).all() and (with_fix["overflow"] > 0).all()
    assert with_fix["R"].mean() < without["R"].mean()
    chapters.overflow_figure(without, with_fix, index=1)


def test_triple_statistics_known_values():
    T = torch.full((1, 3, 8, 8), 0.5)
    R = torch.zeros(1, 3, 8, 8)
    R[..., :4, :] = 0.5  # top half: blend saturates
    I = (T + R).clamp(0, 1)
    st = chapters.triple_statistics(I, T, R)
    assert st["saturated"][0] == pytest.approx(0.5)
    assert st["mean R"][0] == pytest.approx(0.25)
    assert st["R share"][0] == pytest.approx(0.25 / 0.75)
    assert st["R edge / T edge"][0] > 0  # R has an edge, T is flat (denominator clamped)


def test_ceilnet_comparison_without_data_prints_and_returns_ours(capsys):
    stats = chapters.ceilnet_comparison(photos(), data_root="none", n=4, size=32)
    assert list(stats) == ["our CEILNet recipe"]
    assert stats["our CEILNet recipe"]["mean R"].shape == (4,)
    assert "not available" in capsys.readouterr().out


def test_reflection_triples_fallback_is_additive(capsys):
    triples, source = chapters.reflection_triples("none", n=2, size=32)
    assert "fallback" in source and "not available" in capsys.readouterr().out
    assert len(triples) == 2
    for _name, T, R in triples:
        assert T.shape == R.shape == (1, 3, 32, 32)
        assert (T + R).max() <= 1 + 1e-6 and (T + R).min() >= -1e-6  # I = T + R, a valid image


def test_record_throughput_keeps_other_devices(tmp_path):
    import sirr.config

    cpu = sirr.config.resolve("smoke", results_dir=tmp_path, data_root="none")
    path, table = chapters.record_throughput(cpu, {"la": 10.0, "ts": 5.0}, size=256, batch=16, seconds=1.0)
    assert path.exists() and table.shape[0] == 1 and list(table.columns[:2]) == ["la", "ts"]
    from sirrbook.results import load_result, save_result

    rec = load_result(cpu, "synthesis_throughput")
    by = dict(rec["by_device"])
    by["cuda"] = {**by["cpu"], "device": "cuda (test)", "pairs_per_s": {"la": 1000.0, "ts": 900.0}}
    save_result(cpu, "synthesis_throughput", {"by_device": by})
    _, table = chapters.record_throughput(cpu, {"la": 12.0, "ts": 6.0}, size=256, batch=16, seconds=1.0)
    assert table.shape[0] == 2
    assert table.loc["cuda (test)", "la"] == 1000.0  # the other device's entry survives a CPU run
    assert table.iloc[[i for i, d in enumerate(table.index) if d.startswith("cpu")][0]]["la"] == 12.0


def test_figures_and_renders_draw():
    imgs = {"a": torch.rand(1, 3, 32, 40), "b": torch.rand(1, 3, 32, 40)}
    fig = chapters.laplacian_vs_edge_figure(list(imgs.items()))
    assert len(fig.axes) == 6
    render = chapters.make_mlsm_render(imgs)
    for kernel in chapters.KERNEL_CHOICES:
        assert len(render(image="b", scale="1/8", kernel=kernel).axes) == 2
    T, R = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    srender = chapters.make_synthesis_render(T, R)
    for recipe in ("la", "ceilnet", "ts"):
        assert len(srender(recipe=recipe, alpha=0.9, sigma=2.0, ghost=5).axes) == 4
    out = synthesize_la(T, R, torch.Generator().manual_seed(0))
    assert len(chapters.synthesis_figure({"la": out}).axes) == 4
    fig = chapters.parameter_figure(chapters.sample_parameters(n=50))
    assert sum(ax.axison for ax in fig.axes) == 5  # alpha, sigma, att, vignette, ghost offset
    assert len(chapters.scale_energy_figure({"k": np.ones((3, 4))}, ylabel="rho").axes) >= 1
    sfig = chapters.statistic_figure({"x": np.arange(5.0), "y": np.arange(3.0)}, xlabel="v")
    assert sfig.axes and sfig.axes[0].get_xlabel() == "v"
