"""Training losses of the two-stage background recovery (Li & Lun, IEEE SPL 2019, Eq. 2-4, 7-8).

Φ_i are VGG-19 features at ``conv(i_2)``, i = 1..5 (:func:`two_stage_vgg`: raw convolution outputs,
as the release takes them before BatchNorm). ``‖·‖²`` and ``‖·‖₁`` are implemented as means (the
release's MSE and mean |·|), so the λ's keep their published values (λ1 = 3, λ2 = 0.4, λ3 = 3,
λ4 = 0.05). Images are (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sirr.losses.location_aware import LossInputError
from sirr.losses.vgg import VGG19Features

__all__ = [
    "two_stage_vgg",
    "reconstruction_loss",
    "feature_reduction_loss",
    "initial_loss",
    "stage2_generator_loss",
    "critic_loss",
    "clip_critic_weights",
]

_FR_LAYERS = 3  # L_FR sums the first three layers, conv1_2, conv2_2, conv3_2 (Eq. 4)


def two_stage_vgg(weights: str = "auto", seed: int = 0, normalize: bool = True) -> VGG19Features:
    """VGG-19 Φ for TS: conv1_2 .. conv5_2 before the ReLU (the release's pre-BatchNorm taps).

    Divergence from the release: it taps VGG-19-**BN** (ImageNet, batch-normalised) before each
    BatchNorm; no BN weights are available offline, so Φ here is the plain VGG-19's pre-ReLU convolution
    output (``weights`` as in :class:`~sirr.losses.vgg.VGG19Features`: ``"auto"`` = torchvision's weights
    when cached, else the Oxford weights with their features rescaled to torchvision's order). The
    feature values, hence the balance of Eq. 3's λ1 term against its pixel term, differ from the release's.

    ``normalize=False`` is the release's choice (no ImageNet mean/std); the default normalises, as the
    ImageNet-trained network expects.
    """
    layers = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
    return VGG19Features(layers, weights=weights, seed=seed, normalize=normalize, after_relu=False)


def _check_pair(name: str, prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape:
        raise LossInputError(
            f"{name}: prediction {tuple(prediction.shape)} and ground truth {tuple(target.shape)} differ in shape"
        )


def _reconstruction_terms(
    pred_features: list[torch.Tensor],
    target_features: list[torch.Tensor],
    prediction: torch.Tensor,
    target: torch.Tensor,
    lambda1: float,
    lambda2: float,
) -> dict[str, torch.Tensor]:
    feature = sum(F.mse_loss(p.float(), t.float()) for p, t in zip(pred_features, target_features))
    pixel = F.l1_loss(prediction.float(), target.float())
    return {"feature": feature, "pixel": pixel, "total": lambda1 * feature + lambda2 * pixel}  # type: ignore[dict-item]


def _target_features(vgg: VGG19Features, target: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return vgg(target)


def reconstruction_loss(
    vgg: VGG19Features, b_hat: torch.Tensor, b: torch.Tensor, lambda1: float = 3.0, lambda2: float = 0.4
) -> dict[str, torch.Tensor]:
    """Reconstruction loss L_rec, TS Eq. 3: Σ_i λ1 ‖Φ_i(F1(I)) − Φ_i(I_B)‖² + λ2 ‖F1(I) − I_B‖₁.

    Returns ``{"feature", "pixel", "total"}`` (feature = Σ_i MSE over conv(i_2), i = 1..5, pixel = mean L1).
    The paper's feature norm is not legible as squared or not, nor its upper index; the MSE and i = 1..5 are
    the release's.
    """
    _check_pair("reconstruction_loss", b_hat, b)
    return _reconstruction_terms(vgg(b_hat), _target_features(vgg, b), b_hat, b, lambda1, lambda2)


def _feature_reduction(pred_features: list[torch.Tensor], lambda3: float) -> torch.Tensor:
    return lambda3 * sum(f.float().abs().mean() for f in pred_features[:_FR_LAYERS])  # type: ignore[return-value]


def feature_reduction_loss(vgg: VGG19Features, b_hat: torch.Tensor, lambda3: float = 3.0) -> torch.Tensor:
    """Feature reduction loss L_FR, TS Eq. 4: Σ_{i=1..3} λ3 ‖Φ_i(F1(I))‖₁ (mean |·| of conv1_2..conv3_2).

    It penalises all low-level features of B_ini, so a textured image costs more than a flat one;
    L_rec keeps the background's features, leaving mainly reflection features suppressed.
    """
    if len(vgg.layers) < _FR_LAYERS:
        raise LossInputError(f"feature_reduction_loss: vgg needs >= 3 layers (conv1_2..conv3_2), has {vgg.layers}")
    return _feature_reduction(vgg(b_hat), lambda3)


def initial_loss(
    vgg: VGG19Features,
    b_hat: torch.Tensor,
    b: torch.Tensor,
    lambda1: float = 3.0,
    lambda2: float = 0.4,
    lambda3: float = 3.0,
    use_feature_reduction: bool = True,
) -> dict[str, torch.Tensor]:
    """Stage-1 loss L_ini, TS Eq. 2: L_rec (Eq. 3) + L_FR (Eq. 4); one VGG pass over F1(I).

    ``use_feature_reduction=False`` drops L_FR (the paper's Fig. 1e ablation). Returns
    ``{"feature", "pixel", "rec", "fr", "total"}`` (``fr`` absent when disabled).
    """
    _check_pair("initial_loss", b_hat, b)
    pred_features = vgg(b_hat)
    rec = _reconstruction_terms(pred_features, _target_features(vgg, b), b_hat, b, lambda1, lambda2)
    parts = {"feature": rec["feature"], "pixel": rec["pixel"], "rec": rec["total"]}
    total = rec["total"]
    if use_feature_reduction:
        parts["fr"] = _feature_reduction(pred_features, lambda3)
        total = total + parts["fr"]
    parts["total"] = total
    return parts


def stage2_generator_loss(
    vgg: VGG19Features,
    b_final: torch.Tensor,
    b: torch.Tensor,
    d_fake: torch.Tensor | None,
    lambda1: float = 3.0,
    lambda2: float = 0.4,
    lambda4: float = 0.05,
    use_adversarial: bool = True,
) -> dict[str, torch.Tensor]:
    """Stage-2 loss L_2, TS Eq. 7: Σ_i λ1 ‖Φ_i(F2(z)) − Φ_i(I_B)‖² + λ2 ‖F2(z) − I_B‖₁ − λ4 D(F2(z)).

    ``d_fake`` are the critic's raw scores on F2(z) (WGAN, no sigmoid), averaged. ``use_adversarial``
    False is Table I's "without the adversarial term".
    Returns ``{"feature", "pixel", "rec", "adv", "total"}`` (``adv`` = −mean D(F2(z)), unweighted); the
    feature term is the release's MSE over conv(i_2), i = 1..5, as in :func:`reconstruction_loss`.
    """
    parts = reconstruction_loss(vgg, b_final, b, lambda1, lambda2)
    parts = {"feature": parts["feature"], "pixel": parts["pixel"], "rec": parts["total"]}
    total = parts["rec"]
    if use_adversarial:
        if d_fake is None:
            raise LossInputError("stage2_generator_loss: use_adversarial=True needs d_fake (critic scores on F2(z))")
        parts["adv"] = -d_fake.float().mean()
        total = total + lambda4 * parts["adv"]
    parts["total"] = total
    return parts


def critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss L_adv, TS Eq. 8: D(F2(z)) − D(I_B) (batch means); minimised by D.

    Pair it with :func:`clip_critic_weights` after every critic step.
    """
    return d_fake.float().mean() - d_real.float().mean()


@torch.no_grad()
def clip_critic_weights(module: nn.Module, c: float = 0.01) -> None:
    """Clip every parameter of the critic to [−c, c] (WGAN weight clipping with TS Eq. 8, c = 0.01).

    The release's, not the paper's: TS names neither WGAN nor clipping, but its Eq. 8 is a WGAN critic
    loss and the release clips after every critic step."""
    if c <= 0:
        raise LossInputError(f"clip_critic_weights: c must be positive, got {c}")
    for parameter in module.parameters():
        parameter.clamp_(-c, c)
