"""The two-stage networks (TS Sec. IV-A) and the confidence-map edge split (TS Eq. 5-6)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sirr.models.two_stage import (
    RELEASE_EDGE_MARGINS,
    UNET_PARAMETERS,
    UNET_PARAMETERS_STAGE2,
    TwoMeans,
    TwoStage,
    TwoStageInputError,
    TwoStageOutput,
    UNet,
    WGANDiscriminator,
    confidence_map,
    edge_masks,
    edge_sets,
    gradient_magnitude,
    ground_truth_edge_sets,
    two_means_threshold,
)

TINY = 1 / 16  # widths 4, 4, 8, 16, 32, bottleneck 250: fast enough for unit tests


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_release_widths_give_the_documented_parameter_counts():
    with torch.device("meta"):
        assert _count(UNet(3)) == UNET_PARAMETERS == 115_275_734
        assert _count(UNet(9)) == UNET_PARAMETERS_STAGE2 == 115_286_498
        assert _count(WGANDiscriminator()) == 11_156_224
        smoke = TwoStage.for_preset("smoke")
    assert smoke.config["width_scale"] == 0.125
    assert _count(smoke.stage1) == 1_804_670


def test_config_rebuilds_the_same_network():
    model = TwoStage(width_scale=TINY, c1=0.2, c2=0.8)
    again = TwoStage(**model.config)
    assert _count(again) == _count(model)
    loaded = again.load_state_dict(model.state_dict())
    assert not loaded.missing_keys and not loaded.unexpected_keys
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval().initial(x), again.eval().initial(x))  # same weights, same output


@pytest.mark.parametrize("size", [(97, 131), (64, 64), (1, 1), (3, 200)])
def test_unet_returns_the_input_size(size):
    net = UNet(width_scale=TINY).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, *size))
    assert out.shape == (1, 3, *size)
    assert float(out.min()) >= 0 and float(out.max()) <= 1  # sigmoid output


def test_unet_trains_on_odd_sizes_and_rejects_a_single_bottleneck_value():
    net = UNet(width_scale=TINY).train()
    assert net(torch.rand(2, 3, 97, 131)).shape == (2, 3, 97, 131)
    with pytest.raises(TwoStageInputError, match="batch of >= 2"):
        net(torch.rand(1, 3, 40, 64))


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(3, 32, 32), r"\(B, 3, H, W\)"),
        (torch.rand(1, 4, 32, 32), r"\(B, 3, H, W\)"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "floating-point"),
        (torch.rand(0, 3, 32, 32), "empty"),
        (np.zeros((1, 3, 8, 8), np.float32), "tensor"),
    ],
)
def test_bad_inputs_raise_one_clear_error(bad, match):
    with pytest.raises(TwoStageInputError, match=match):
        UNet(width_scale=TINY).eval()(bad)
    assert issubclass(TwoStageInputError, ValueError)


def test_model_argument_errors():
    with pytest.raises(ValueError, match="5 values each"):
        UNet(widths=(8, 8, 8))
    with pytest.raises(ValueError, match="both c1 and c2"):
        TwoStage(width_scale=TINY, c1=0.5)
    with pytest.raises(ValueError, match="ksize"):
        gradient_magnitude(torch.rand(1, 3, 8, 8), ksize=7)


def test_discriminator_scores_one_value_per_image():
    d = WGANDiscriminator(width=8)
    assert d(torch.rand(3, 3, 128, 96)).shape == (3,)
    assert d(torch.rand(2, 3, 256, 256)).shape == (2,)
    with pytest.raises(TwoStageInputError, match="H, W >= 64"):
        d(torch.rand(2, 3, 32, 128))


def test_sobel_5x5_magnitude_of_a_unit_step_is_48():
    img = torch.zeros(1, 1, 16, 16)
    img[..., 8:] = 1.0  # vertical step between columns 7 and 8
    g = gradient_magnitude(img)
    assert g.shape == (1, 1, 16, 16)
    assert float(g.max()) == pytest.approx(48.0)
    assert float(g[..., :, :5].abs().max()) == 0.0  # flat far from the step
    assert float(gradient_magnitude(img, ksize=3).max()) == pytest.approx(4.0)
    grey = torch.full((1, 3, 8, 8), 0.5)
    assert float(gradient_magnitude(grey).max()) == 0.0
    assert gradient_magnitude(torch.rand(2, 3, 2, 1)).shape == (2, 1, 2, 1)  # tiny images: replicate border


def _scene(h: int = 64, w: int = 64):
    """Background with a vertical step (column 20), reflection with a horizontal step (row 40).

    B_ini keeps the background edge attenuated (0.7) and removes the reflection, so the residual
    I − B_ini holds the whole reflection edge and 0.3 of the background edge.
    """
    B = torch.full((1, 3, h, w), 0.2)
    B[..., :, 20:] = 0.7
    R = torch.zeros(1, 3, h, w)
    R[..., 40:, :] = 0.25
    I = B + R
    b_ini = 0.7 * B + 0.3 * B.mean()
    return I, B, R, b_ini


def test_confidence_is_high_on_reflection_only_edges_and_low_on_shared_edges():
    I, B, R, b_ini = _scene()
    c = confidence_map(I, b_ini)
    assert c.shape == (1, 1, 64, 64)
    reflection_edge = c[0, 0, 39:41, 30:60]  # only R changes here
    background_edge = c[0, 0, 5:30, 19:21]  # B's edge, attenuated copy in the residual
    assert float(reflection_edge.min()) > 10.0  # log(G_res / ε): G_{B_ini} = 0
    assert float(background_edge.max()) == pytest.approx(np.log(0.3 / 0.7 + 1), rel=1e-3)
    assert float(c[0, 0, 5:30, 30:60].abs().max()) == 0.0  # flat: outside the mask M
    split = two_means_threshold(c)
    assert background_edge.max() < split.threshold < reflection_edge.min()
    e_b, e_r = edge_sets(I, c, split)
    assert float(e_r[0, :, 39:41, 30:60].min()) > 0 and float(e_r[0, :, 5:30, 19:21].abs().max()) == 0
    assert float(e_b[0, :, 5:30, 19:21].min()) > 0 and float(e_b[0, :, 39:41, 30:60].abs().max()) == 0
    for margins in RELEASE_EDGE_MARGINS.values():  # the release's margins agree on this clear-cut scene
        rb, rr = edge_sets(I, c, split, *margins)
        assert torch.equal(rb > 0, e_b > 0) and torch.equal(rr > 0, e_r > 0)


def test_ground_truth_edge_sets_follow_the_stronger_layer():
    I, B, R, _ = _scene()
    e_b, e_r = ground_truth_edge_sets(I, B, R)
    assert float(e_b[0, :, 5:30, 19:21].min()) > 0 and float(e_b[0, :, 39:41, 30:60].abs().max()) == 0
    assert float(e_r[0, :, 39:41, 30:60].min()) > 0 and float(e_r[0, :, 5:30, 19:21].abs().max()) == 0
    with pytest.raises(TwoStageInputError, match="T must have I"):
        ground_truth_edge_sets(I, B[..., :10], R)


def _brute_force_sse(values: np.ndarray) -> tuple[float, set[tuple[float, float]]]:
    """Minimum within-cluster sum of squares over every 2-partition, and the centres achieving it."""
    best, centres = np.inf, set()
    n = len(values)
    for labels in itertools.product((0, 1), repeat=n - 1):  # fix the first label: each partition once
        mask = np.array((0,) + labels, dtype=bool)
        if mask.all() or not mask.any():
            continue
        a, b = values[~mask], values[mask]
        sse = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
        pair = tuple(sorted((round(a.mean(), 9), round(b.mean(), 9))))
        if sse < best - 1e-12:
            best, centres = sse, {pair}
        elif abs(sse - best) <= 1e-12:
            centres.add(pair)
    return best, centres


@pytest.mark.parametrize("seed", range(60))
def test_two_means_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 11))
    values = rng.exponential(1.0, n) if seed % 2 else rng.normal(0, 1, n)
    if seed % 3 == 0:
        values = np.round(values, 1)  # duplicates
    values = values[values != 0]
    if len(np.unique(values)) < 2:  # a 2-clustering needs two distinct values: add one rather than pass silently
        values = np.append(values, (values.max() if len(values) else 0.0) + 1.0)
    result = two_means_threshold(np.concatenate([values, np.zeros(5)]))  # zeros are ignored
    best, centres = _brute_force_sse(values)
    assert result.count == len(values)
    low_group, high_group = values[values < result.threshold], values[values > result.threshold]
    assert len(low_group) + len(high_group) == len(values)  # ξ separates the clusters
    sse = ((low_group - result.low) ** 2).sum() + ((high_group - result.high) ** 2).sum()
    assert sse == pytest.approx(best, abs=1e-9)
    assert (round(result.low, 9), round(result.high, 9)) in centres
    assert result.low < result.threshold < result.high


def test_two_means_is_deterministic_and_handles_degenerate_input():
    rng = np.random.default_rng(0)
    values = rng.random(5000)
    a = two_means_threshold(values)
    b = two_means_threshold(torch.from_numpy(rng.permutation(values)))
    assert a == b
    assert two_means_threshold(np.zeros(10)) == TwoMeans(0.0, 0.0, 0.0, 0)
    assert two_means_threshold([0.0, 2.0, 2.0]) == TwoMeans(2.0, 2.0, 2.0, 2)
    assert two_means_threshold([1.0, 3.0]).threshold == 2.0
    with pytest.raises(ValueError, match="NaN"):
        two_means_threshold([1.0, float("nan")])


def test_release_margins_move_the_two_thresholds():
    split = TwoMeans(threshold=2.0, low=1.0, high=3.0, count=4)
    assert split.margins(0.5, 0.5) == (2.0, 2.0)  # equals Eq. 6's threshold
    assert split.margins(0.2, 0.8) == pytest.approx((2.6, 2.6))
    c = torch.tensor([0.0, 1.0, 1.9, 2.1, 2.7, 3.0]).view(1, 1, 1, 6)
    background, reflection = edge_masks(c, split)
    assert background.flatten().tolist() == [False, True, True, False, False, False]
    assert reflection.flatten().tolist() == [False, False, False, True, True, True]
    background, reflection = edge_masks(c, split, *RELEASE_EDGE_MARGINS["fidelity"])
    assert background.flatten().tolist() == [False, True, True, True, False, False]
    assert reflection.flatten().tolist() == [False, False, False, False, True, True]
    with pytest.raises(TwoStageInputError, match="need TwoMeans"):
        edge_masks(c, 2.0, 0.5, 0.5)
    with pytest.raises(TwoStageInputError, match="one value per image"):
        edge_masks(c.expand(2, 1, 1, 6), [1.0, 2.0, 3.0])


def test_two_stage_forward_and_gradients_reach_both_unets():
    torch.manual_seed(0)
    model = TwoStage(width_scale=TINY, generator=torch.Generator().manual_seed(0)).train()
    I = torch.rand(2, 3, 64, 80)
    out = model(I)
    assert isinstance(out, TwoStageOutput)
    for t in (out.b_initial, out.residual, out.edges_background, out.edges_reflection, out.b_final):
        assert t.shape == I.shape
    assert out.confidence.shape == (2, 1, 64, 80) and out.threshold.shape == (2,) and out.centres.shape == (2, 2)
    assert torch.allclose(out.residual, I - out.b_initial)
    assert not (out.background_mask & out.reflection_mask).any()
    assert torch.equal(out.edges_reflection, I * out.reflection_mask)
    assert (out.centres[:, 0] <= out.threshold).all() and (out.threshold <= out.centres[:, 1]).all()
    assert out.transmission is out.b_final

    (out.b_initial.mean() + out.b_final.mean() - model.discriminator(out.b_final).mean()).backward()
    for name, net in (("stage1", model.stage1), ("stage2", model.stage2), ("critic", model.discriminator)):
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0, name

    model.zero_grad(set_to_none=True)
    model(I).b_final.mean().backward()  # the hard edge split stops stage 2's gradient at F1
    assert all(p.grad is None for p in model.stage1.parameters())


def test_two_stage_is_deterministic_in_eval_and_checks_refine_inputs():
    seeded = [TwoStage(width_scale=TINY, generator=torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    pairs = [list(zip(seeded[0].state_dict().values(), m.state_dict().values())) for m in seeded[1:]]
    assert all(torch.equal(a, b) for a, b in pairs[0])  # the same seed, the same weights
    assert not all(torch.equal(a, b) for a, b in pairs[1])  # another seed, other weights
    model = TwoStage(width_scale=TINY).eval()
    I = torch.rand(1, 3, 50, 70)
    with torch.no_grad():
        a, b = model(I), model(I)
        assert torch.equal(a.b_final, b.b_final) and torch.equal(a.threshold, b.threshold)
        assert model.initial(I).shape == I.shape
        assert model.refine(I, None, a.edges_background, a.edges_reflection).shape == I.shape
    with pytest.raises(TwoStageInputError, match="e_r must have"):
        model.refine(I, a.b_initial, a.edges_background, a.edges_reflection[..., :10])
    with pytest.raises(TwoStageInputError, match="b_initial must have"):
        confidence_map(I, I[:, :, :5])


def test_chapter_figures_draw_the_model_output():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from sirrbook.viz import two_stage as tsviz

    model = TwoStage(width_scale=TINY).eval()
    I, *_ = _scene()
    with torch.no_grad():
        out = model(I)
    split = two_means_threshold(out.confidence[0])
    figs = [
        tsviz.fig1_panels(I, out, split),
        tsviz.edge_split_figure(I, out.confidence, split.threshold, split),
        tsviz.initial_vs_final([("scene", I, out.b_initial, out.b_final), ("no input", None, I, I)]),
        tsviz.training_curves(pd.DataFrame({"step": [1, 2, 3, 4], "phase": ["stage1"] * 2 + ["stage2"] * 2,
                                            "total": [1.0, 0.5, 0.4, 0.3], "lr": [2e-4] * 4})),
    ]
    assert [len(f.axes) for f in figs] == [9, 3, 6, 2]  # fig 1: 8 panels + the C_rf colour bar
    assert "E_R" in figs[1].axes[1].get_title()
    for f in figs:
        plt.close(f)
