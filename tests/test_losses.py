"""Known values, switches and gradients of both papers' losses (sirr.losses); random VGG only, no downloads."""

from __future__ import annotations

import logging
import math
import urllib.error
from types import SimpleNamespace

import kornia
import pytest
import torch
import torch.nn.functional as F
import torchvision.models._api as tv_api
from torch import nn

from sirr.losses import (
    LocationAwareLoss,
    LossInputError,
    VGG19Features,
    VGGWeightsUnavailable,
    adversarial_loss,
    binary_rcmap_target,
    clip_critic_weights,
    composition_loss,
    critic_loss,
    discriminator_loss,
    feature_reduction_loss,
    gamma_inverse,
    initial_loss,
    mix_loss,
    perceptual_loss,
    pixel_loss,
    rcmap_bce_loss,
    rcmap_composition_loss,
    reconstruction_loss,
    residual_loss,
    ssim_loss,
    stage2_generator_loss,
    two_stage_vgg,
)

THETA = 0.85


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    return VGG19Features(weights="random", seed=0)


@pytest.fixture(scope="module")
def ts_vgg() -> VGG19Features:
    return two_stage_vgg(weights="random", seed=0)


def synthetic_triple(b: int = 2, size: int = 32, alpha=(0.8, 0.95)) -> tuple[torch.Tensor, ...]:
    """I, T, R, alpha following LA Eq. 6: I = g(α g_inv(T) + g_inv(R)), g = g_inv^(-1)."""
    T, R = rand(b, 3, size, size, seed=1), 0.4 * rand(b, 3, size, size, seed=2)
    a = torch.tensor(alpha[:b])
    I = (a.view(-1, 1, 1, 1) * gamma_inverse(T) + gamma_inverse(R)).pow(1 / 2.2)
    return I, T, R, a


# ---------------------------------------------------------------- LA: shared pieces


def test_theta_weights_per_iteration():
    T = torch.zeros(1, 3, 8, 8)
    for k, expected in zip(range(3), (THETA**2, THETA, 1.0)):
        preds = [T.clone() for _ in range(3)]
        preds[k] = T + 0.5  # error only in iteration k + 1
        assert pixel_loss(preds, T).item() == pytest.approx(0.5 * expected, rel=1e-6)


def test_gamma_inverse_values_and_safe_gradient():
    x = torch.tensor([-0.5, 0.0, 0.25, 1.0], requires_grad=True)
    y = gamma_inverse(x)
    assert torch.allclose(y, torch.tensor([0.0, 0.0, 0.25**2.2, 1.0]))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[:2].abs().sum() == 0 and x.grad[3].item() == pytest.approx(2.2)
    with pytest.raises(LossInputError):
        gamma_inverse(x, gamma=0.5)


# ---------------------------------------------------------------- LA: composition loss (Eq. 6-9)


def test_rcmap_composition_loss_zero_when_c_zero_and_additive():
    T, R = rand(2, 3, 16, 16, seed=1), 0.3 * rand(2, 3, 16, 16, seed=2)
    I = T + R
    zeros = [torch.zeros(2, 1, 16, 16)] * 3
    assert rcmap_composition_loss(zeros, I, T, R).item() == pytest.approx(0.0, abs=1e-12)
    ones = [torch.zeros(2, 1, 16, 16)] * 2 + [torch.ones(2, 1, 16, 16)]  # Î_N = R: error mean(T²) in the last one
    assert rcmap_composition_loss(ones, I, T, R).item() == pytest.approx((T**2).mean().item(), rel=1e-5)


def test_residual_loss_zero_for_ground_truth_and_alpha_per_sample():
    I, T, R, a = synthetic_triple()
    assert residual_loss([R] * 3, [T] * 3, I, T, R, a).item() == pytest.approx(0.0, abs=1e-10)
    # one alpha for the whole batch is wrong for sample 0, so the loss must be positive
    assert residual_loss([R] * 3, [T] * 3, I, T, R, 0.95).item() > 1e-5
    with pytest.raises(LossInputError):
        residual_loss([R], [T], I, T, R, torch.tensor([0.8, 0.9, 1.0]))


def test_composition_loss_is_sum_of_parts():
    I, T, R, a = synthetic_triple()
    rcmaps = [rand(2, 1, 32, 32, seed=s) for s in range(3)]
    reflections = [rand(2, 3, 32, 32, seed=10 + s) for s in range(3)]
    out = composition_loss(rcmaps, reflections, [T] * 3, I, T, R, a)
    assert out["total"].item() == pytest.approx(out["rcmap"].item() + out["residual"].item())
    assert out["rcmap"].item() > 0 and out["residual"].item() > 0


# ---------------------------------------------------------------- LA: pixel, SSIM, mix (Eq. 11-13)


def test_ssim_term_is_kornia_ssim():
    x = rand(2, 3, 32, 32, seed=3)
    y = (x + 0.2 * rand(2, 3, 32, 32, seed=4)).clamp(0, 1)
    expected = 1 - kornia.metrics.ssim(x, y, 11).mean()
    assert ssim_loss([x], y).item() == pytest.approx(expected.item(), rel=1e-6)
    assert 0 < expected.item() < 1


def test_mix_loss_zero_for_identical_and_hand_checked_flat_case():
    T = rand(1, 3, 24, 24, seed=5)
    assert mix_loss([T, T, T], T).item() == pytest.approx(0.0, abs=1e-6)
    # flat images 0.6 vs 0.5: σ = 0, so SSIM = (2 μx μy + c1) / (μx² + μy² + c1), c1 = 0.01²
    flat = torch.full((1, 3, 24, 24), 0.5, dtype=torch.float64)  # float64: no cancellation in σ² = E[x²] − μ²
    pred = torch.full((1, 3, 24, 24), 0.6, dtype=torch.float64)
    c1 = 0.01**2
    ssim = (2 * 0.6 * 0.5 + c1) / (0.6**2 + 0.5**2 + c1)
    expected = 0.84 * (1 - ssim) + 0.16 * 0.1
    assert mix_loss([pred], flat).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.02977, abs=1e-5)


# ---------------------------------------------------------------- LA: perceptual (Eq. 10)


def test_perceptual_loss_zero_identical_positive_and_scale_weights(vgg):
    T = rand(1, 3, 64, 64, seed=6)
    scales = [T, resize(T, 32), resize(T, 16)]
    assert perceptual_loss(vgg, scales, T).item() == pytest.approx(0.0, abs=1e-7)
    for j, gamma in enumerate((1.0, 0.8, 0.6)):  # full -> γ1 = 1, half -> γ3 = 0.8, quarter -> γ5 = 0.6
        perturbed = list(scales)
        perturbed[j] = (scales[j] + 0.2 * rand(*scales[j].shape, seed=7)).clamp(0, 1)
        by_hand = sum(F.l1_loss(p, t) for p, t in zip(vgg(perturbed[j]), vgg(scales[j])))
        loss = perceptual_loss(vgg, perturbed, T).item()
        assert loss > 0
        assert loss == pytest.approx(gamma * by_hand.item(), rel=1e-5)


# ---------------------------------------------------------------- LA: adversarial (Eq. 14)


def test_adversarial_and_discriminator_losses():
    zeros = torch.zeros(4, 1)
    assert adversarial_loss(zeros).item() == pytest.approx(math.log(2))
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(math.log(2))
    assert adversarial_loss(torch.full((4, 1), 100.0)).item() == pytest.approx(0.0, abs=1e-6)
    assert adversarial_loss(torch.full((4, 1), -100.0)).item() == pytest.approx(100.0, rel=1e-4)  # stable, finite
    good_d = discriminator_loss(torch.full((4, 1), 5.0), torch.full((4, 1), -5.0))
    assert good_d.item() < discriminator_loss(zeros, zeros).item()


# ---------------------------------------------------------------- LA: binary RCMap (Sec. 5.2, Eq. 16)


def test_binary_rcmap_target_thresholds():
    def grey_image(values):
        v = torch.tensor(values, dtype=torch.float32).view(1, 1, 2, 2)
        return v.expand(1, 3, 2, 2)

    T = torch.zeros(3, 3, 2, 2)
    I = torch.cat([
        grey_image([0.0, 0.2, 0.5, 0.9]),  # γ = max(0 + 0.3 · 0.9, 0.3) = 0.3
        grey_image([0.1, 0.15, 0.2, 0.25]),  # γ = max(0.1 + 0.045, 0.3) = 0.3 -> nothing
        grey_image([0.5, 0.6, 0.9, 1.0]),  # γ = max(0.5 + 0.15, 0.3) = 0.65
    ])  # fmt: skip
    target = binary_rcmap_target(I, T, beta=0.3)
    assert target.shape == (3, 1, 2, 2)
    expected = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1]], dtype=torch.float32)
    assert torch.equal(target.view(3, 4), expected)


def test_rcmap_bce_loss_decreases_toward_target():
    target = (rand(2, 1, 8, 8, seed=8) > 0.5).float()
    logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    optimiser = torch.optim.SGD([logits], lr=200.0)
    losses = []
    for _ in range(10):
        loss = rcmap_bce_loss([torch.sigmoid(logits)] * 3, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx((THETA**2 + THETA + 1) * math.log(2), rel=1e-5)
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.1 * losses[0]


# ---------------------------------------------------------------- LA: overall loss (Eq. 15, Table 3)


def fake_output(I: torch.Tensor, requires_grad: bool = False) -> SimpleNamespace:
    b, _, h, w = I.shape

    def leaf(shape, seed):
        return rand(*shape, seed=seed).requires_grad_(requires_grad)

    return SimpleNamespace(
        rcmaps=[leaf((b, 1, h, w), 20 + i) for i in range(3)],
        reflections=[leaf((b, 3, h, w), 30 + i) for i in range(3)],
        transmissions=[leaf((b, 3, h, w), 40 + i) for i in range(3)],
        transmissions_half=[leaf((b, 3, h // 2, w // 2), 50 + i) for i in range(3)],
        transmissions_quarter=[leaf((b, 3, h // 4, w // 4), 60 + i) for i in range(3)],
    )


def test_location_aware_loss_total_and_each_switch(vgg):
    I, T, R, a = synthetic_triple(size=64)
    out, d_fake = fake_output(I), torch.randn(2, 1, generator=torch.Generator().manual_seed(9))
    full = LocationAwareLoss(vgg=vgg)(out, I, T, R, a, d_fake)
    eq15 = 0.4 * full["comp"] + 0.2 * full["perceptual"] + 0.4 * full["mix"] + 0.01 * full["adv"]
    assert full["total"].item() == pytest.approx(eq15.item(), rel=1e-6)
    assert full["mix"].item() == pytest.approx((0.84 * full["ssim"] + 0.16 * full["pixel"]).item(), rel=1e-6)
    removed = {
        "use_composition": ("comp", 0.4),
        "use_perceptual": ("perceptual", 0.2),
        "use_ssim": ("ssim", 0.4 * 0.84),
        "use_pixel": ("pixel", 0.4 * 0.16),
        "use_adversarial": ("adv", 0.01),
    }
    for flag, (term, weight) in removed.items():
        ablated = LocationAwareLoss(vgg=vgg, **{flag: False})(out, I, T, R, a, d_fake)
        assert term not in ablated
        assert (full["total"] - ablated["total"]).item() == pytest.approx((weight * full[term]).item(), rel=1e-4)
    bce = LocationAwareLoss(vgg=vgg, rcmap_loss="bce")(out, I, T, R, a, d_fake)
    expected = rcmap_bce_loss(out.rcmaps, binary_rcmap_target(I, T, 0.3))
    assert bce["rcmap"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert bce["residual"].item() == pytest.approx(full["residual"].item(), rel=1e-6)
    with pytest.raises(LossInputError):
        LocationAwareLoss(vgg=vgg, rcmap_loss="dice")


def test_location_aware_loss_real_pairs_skip_composition(vgg):
    I, T, R, a = synthetic_triple(size=32)
    out = fake_output(I)
    loss = LocationAwareLoss(use_perceptual=False, use_adversarial=False)
    mixed = loss(out, I, T, R, a, is_synthetic=torch.tensor([True, False]))
    subset = composition_loss(
        [c[:1] for c in out.rcmaps], [r[:1] for r in out.reflections], [t[:1] for t in out.transmissions],
        I[:1], T[:1], R[:1], a[:1],
    )  # fmt: skip
    assert mixed["comp"].item() == pytest.approx(subset["total"].item(), rel=1e-6)
    real = loss(out, I, T)  # R None: a fully real batch
    assert real["comp"].item() == 0.0 and real["total"].item() > 0
    with pytest.raises(LossInputError):
        loss(out, I, T, None, None, is_synthetic=torch.tensor([True, True]))
    with pytest.raises(LossInputError):
        LocationAwareLoss(vgg=vgg)(out, I, T, R, a)  # adversarial enabled but no d_fake_logits


def test_location_aware_loss_gradients_reach_every_prediction(vgg):
    I, T, R, a = synthetic_triple(size=64)
    out = fake_output(I, requires_grad=True)
    d_fake = torch.zeros(2, 1, requires_grad=True)
    LocationAwareLoss(vgg=vgg)(out, I, T, R, a, d_fake)["total"].backward()
    for name in ("rcmaps", "reflections", "transmissions"):
        for i, x in enumerate(getattr(out, name)):
            assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, (name, i)
    for x in (out.transmissions_half[-1], out.transmissions_quarter[-1], d_fake):
        assert x.grad is not None and x.grad.abs().sum() > 0
    assert out.transmissions_half[0].grad is None  # L_P reads only the last iteration
    assert all(p.grad is None for p in vgg.parameters())


# ---------------------------------------------------------------- TS (Eq. 2-4, 7-8)


def test_feature_reduction_larger_for_textured_than_flat(ts_vgg):
    flat = torch.full((1, 3, 32, 32), 0.5)
    textured = (torch.arange(32).view(1, 1, 32, 1) + torch.arange(32).view(1, 1, 1, 32)) % 2
    textured = textured.float().expand(1, 3, 32, 32)
    assert feature_reduction_loss(ts_vgg, textured).item() > 2 * feature_reduction_loss(ts_vgg, flat).item()
    noise = rand(1, 3, 32, 32, seed=11)
    assert feature_reduction_loss(ts_vgg, noise).item() > feature_reduction_loss(ts_vgg, flat).item()


def test_reconstruction_and_initial_loss(ts_vgg):
    b = rand(2, 3, 32, 32, seed=12)
    b_hat = (b + 0.1 * rand(2, 3, 32, 32, seed=13)).clamp(0, 1)
    same = reconstruction_loss(ts_vgg, b, b)
    assert same["total"].item() == pytest.approx(0.0, abs=1e-8)
    rec = reconstruction_loss(ts_vgg, b_hat, b)
    assert rec["total"].item() == pytest.approx((3 * rec["feature"] + 0.4 * rec["pixel"]).item(), rel=1e-6)
    assert rec["feature"].item() > 0 and rec["pixel"].item() > 0
    ini = initial_loss(ts_vgg, b_hat, b)
    fr = feature_reduction_loss(ts_vgg, b_hat)
    assert ini["fr"].item() == pytest.approx(fr.item(), rel=1e-6)
    assert ini["total"].item() == pytest.approx(rec["total"].item() + fr.item(), rel=1e-6)
    no_fr = initial_loss(ts_vgg, b_hat, b, use_feature_reduction=False)
    assert "fr" not in no_fr and no_fr["total"].item() == pytest.approx(rec["total"].item(), rel=1e-6)
    with pytest.raises(LossInputError):
        reconstruction_loss(ts_vgg, b_hat, b[:1])


def test_stage2_generator_and_critic_losses(ts_vgg):
    b = rand(2, 3, 32, 32, seed=14)
    b_final = (b * 0.9).requires_grad_(True)
    d_fake = torch.tensor([[2.0], [4.0]])
    out = stage2_generator_loss(ts_vgg, b_final, b, d_fake)
    assert out["adv"].item() == pytest.approx(-3.0)
    assert out["total"].item() == pytest.approx((out["rec"] - 0.05 * 3.0).item(), rel=1e-6)
    higher = stage2_generator_loss(ts_vgg, b_final, b, d_fake + 1)["total"]
    assert higher.item() < out["total"].item()  # a more "natural" score lowers the generator loss
    out["total"].backward()
    assert b_final.grad is not None and b_final.grad.abs().sum() > 0
    assert "adv" not in stage2_generator_loss(ts_vgg, b_final, b, None, use_adversarial=False)
    # Eq. 8: the critic is rewarded (negative loss) for scoring real above fake
    assert critic_loss(torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 0.0])).item() == pytest.approx(-2.5)
    assert critic_loss(torch.tensor([0.0]), torch.tensor([1.0])).item() > 0


def test_clip_critic_weights_bounds():
    critic = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    small = critic[2].bias.detach().clone().fill_(0.004)
    critic[2].bias.data.copy_(small)
    clip_critic_weights(critic, 0.01)
    for p in critic.parameters():
        assert p.abs().max().item() <= 0.01 + 1e-9
    assert torch.equal(critic[2].bias, small)  # values inside the box are untouched
    assert critic[0].weight.max().item() == pytest.approx(0.01)


# ---------------------------------------------------------------- VGG features


def test_vgg_weights_unavailable_when_offline(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", refuse)
    with pytest.raises(VGGWeightsUnavailable) as info:
        VGG19Features(weights="imagenet")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError) and "\n" not in message
    assert "could not be downloaded" in message and "torch hub cache" in message
    assert 'vgg_weights="random"' in message


def test_vgg_imagenet_uses_hub_cache_and_reports_corrupt_file(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("must not download when the cache holds the file")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", refuse)
    reference = VGG19Features(layers=("conv1_2",), weights="random", seed=3)
    (tmp_path / "checkpoints").mkdir()
    path = tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth"
    torch.save({f"features.{k}": v for k, v in reference.features.state_dict().items()}, path)
    loaded = VGG19Features(layers=("conv1_2",), weights="imagenet")
    assert not loaded.is_fallback
    assert torch.equal(loaded.features[2].weight, reference.features[2].weight)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(VGGWeightsUnavailable, match="unreadable"):
        VGG19Features(layers=("conv1_2",), weights="imagenet")


def test_vgg_random_fallback_is_seeded_flagged_and_logged(caplog):
    layers = ("conv1_2", "conv2_2")
    with caplog.at_level(logging.WARNING, logger="sirr.losses.vgg"):
        a = VGG19Features(layers, weights="random", seed=0)
        b = VGG19Features(layers, weights="random", seed=0)
    c = VGG19Features(layers, weights="random", seed=1)
    assert a.is_fallback and b.is_fallback
    assert sum("RANDOM weights (offline fallback, seed 0)" in r.getMessage() for r in caplog.records) == 2
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    x = rand(1, 3, 16, 16, seed=15)
    assert all(torch.equal(fa, fb) for fa, fb in zip(a(x), b(x)))


def test_vgg_taps_frozen_and_relu_choice():
    x = rand(2, 3, 32, 32, seed=16)
    post = VGG19Features(("conv1_2", "conv3_2"), weights="random", after_relu=True)
    pre = VGG19Features(("conv1_2", "conv3_2"), weights="random", after_relu=False)
    f_post, f_pre = post(x), pre(x)
    assert [f.shape[1:] for f in f_post] == [(64, 32, 32), (256, 8, 8)]
    assert all(torch.equal(torch.relu(p), q) for p, q in zip(f_pre, f_post))  # pre taps untouched by ReLU
    assert (f_pre[0] < 0).any() and (f_post[0] >= 0).all()
    assert len(post.features) == 14 and len(pre.features) == 13  # truncated after the last tap
    post.train()
    assert not post.training and not any(p.requires_grad for p in post.parameters())
    with pytest.raises(ValueError, match="unknown layers"):
        VGG19Features(("conv6_1",), weights="random")
    with pytest.raises(ValueError, match="weights"):
        VGG19Features(weights="places365")
    with pytest.raises(ValueError, match="B, 3, H, W"):
        post(torch.rand(1, 1, 8, 8))
