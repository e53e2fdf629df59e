"""Training losses of the location-aware network (Dong et al., ICCV 2021, Sec. 4, Eq. 6-16, Table 3).

Notation follows the paper: ``I, T, R`` are the (gamma-corrected) input, transmission and reflection;
``rcmaps``, ``reflections``, ``transmissions`` are the per-iteration predictions Ĉ_i, R̂_i, T̂_i
(lists of length N, iteration 1 first); ``alpha`` is the blending scalar of Eq. 6. Every per-iteration
term is weighted by θ^(N−i) (:func:`iteration_weighted`), so the last iteration counts most.

Reductions are means over pixels, channels and the batch (``L_MSE``, ``L_1`` of the paper); the sums
over iterations and over the 3 perceptual scales are plain sums as in the equations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from sirr.errors import SirrError
from sirr.losses.vgg import VGG19Features

__all__ = [
    "LossInputError",
    "iteration_weighted",
    "gamma_inverse",
    "rcmap_composition_loss",
    "residual_loss",
    "composition_loss",
    "perceptual_loss",
    "pixel_loss",
    "ssim_loss",
    "mix_loss",
    "adversarial_loss",
    "discriminator_loss",
    "binary_rcmap_target",
    "rcmap_bce_loss",
    "LocationAwarePredictions",
    "LocationAwareLoss",
]


class LossInputError(SirrError, ValueError):
    """Loss inputs that do not fit together (shapes, missing R/α for synthetic samples, bad options)."""


def iteration_weighted(per_iteration: Sequence[torch.Tensor], theta: float = 0.85) -> torch.Tensor:
    """Σ_{i=1..N} θ^(N−i) · ℓ_i, the iteration weighting of LA Eq. 8, 11, 12, 16 (θ = 0.85)."""
    if len(per_iteration) == 0:
        raise LossInputError("iteration_weighted: got no iterations; pass one loss per recurrent iteration")
    n = len(per_iteration)
    return sum(theta ** (n - i) * loss for i, loss in enumerate(per_iteration, start=1))  # type: ignore[return-value]


def _check_like(name: str, x: torch.Tensor, ref: torch.Tensor) -> None:
    if x.shape[0] != ref.shape[0] or x.shape[-2:] != ref.shape[-2:]:
        raise LossInputError(f"{name}: shape {tuple(x.shape)} does not match {tuple(ref.shape)} (batch and H, W)")


def _alpha(alpha: torch.Tensor | float, ref: torch.Tensor) -> torch.Tensor:
    """α as a (B, 1, 1, 1) tensor on ``ref``'s device, from a float or a (B,) tensor."""
    a = torch.as_tensor(alpha, dtype=ref.dtype, device=ref.device)
    if a.ndim == 0:
        return a.view(1, 1, 1, 1)
    if a.ndim != 1 or a.shape[0] != ref.shape[0]:
        raise LossInputError(f"alpha: expected a float or a ({ref.shape[0]},) tensor, got shape {tuple(a.shape)}")
    return a.view(-1, 1, 1, 1)


def gamma_inverse(x: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    """Inverse gamma correction g_inv(x) = max(x, 0)^γ (LA Eq. 6); gradient 0, not NaN, at x ≤ 0."""
    if gamma < 1.0:
        raise LossInputError(f"gamma_inverse: gamma must be >= 1 (got {gamma}); the paper uses 2.2")
    return x.clamp(min=0.0).pow(gamma)


def rcmap_composition_loss(
    rcmaps: Sequence[torch.Tensor], I: torch.Tensor, T: torch.Tensor, R: torch.Tensor, theta: float = 0.85
) -> torch.Tensor:
    """RCMap loss L_Ĉ, LA Eq. 8: Σ_i θ^(N−i) MSE(I, Î_i) with Î_i = (1 − Ĉ_i) ∘ T + R (Eq. 7).

    Eq. 1's image model I = W ∘ T + R with W = 1 − RCMap, used as a loss: how the RDM learns without
    ground-truth masks."""
    for c in rcmaps:
        _check_like("rcmap_composition_loss: rcmap", c, I)
    return iteration_weighted([F.mse_loss((1.0 - c) * T + R, I) for c in rcmaps], theta)


def residual_loss(
    reflections: Sequence[torch.Tensor],
    transmissions: Sequence[torch.Tensor],
    I: torch.Tensor,
    T: torch.Tensor,
    R: torch.Tensor,
    alpha: torch.Tensor | float,
    theta: float = 0.85,
    gamma: float = 2.2,
) -> torch.Tensor:
    """Residual loss L_res, LA Sec. 4 (after IBCLN): Eq. 6 re-composed with one predicted layer.

    T̂^g_i = α·g_inv(T) + g_inv(R̂_i) and R̂^g_i = α·g_inv(T̂_i) + g_inv(R), each compared with
    g_inv(I) by MSE, θ-weighted over iterations (Eq. 8 form). The paper states only the T̂^g_i term; the R̂^g_i
    term is our reading of "in two forms", as IBCLN's loss has both. ``alpha``: float or (B,) tensor.
    """
    if len(reflections) != len(transmissions):
        raise LossInputError(f"residual_loss: {len(reflections)} reflections but {len(transmissions)} transmissions")
    a = _alpha(alpha, I)
    i_lin, t_lin, r_lin = gamma_inverse(I, gamma), gamma_inverse(T, gamma), gamma_inverse(R, gamma)
    per_iteration = []
    for r_hat, t_hat in zip(reflections, transmissions):
        _check_like("residual_loss: prediction", r_hat, I)
        _check_like("residual_loss: prediction", t_hat, I)
        t_g = a * t_lin + gamma_inverse(r_hat, gamma)
        r_g = a * gamma_inverse(t_hat, gamma) + r_lin
        per_iteration.append(F.mse_loss(t_g, i_lin) + F.mse_loss(r_g, i_lin))
    return iteration_weighted(per_iteration, theta)


def composition_loss(
    rcmaps: Sequence[torch.Tensor],
    reflections: Sequence[torch.Tensor],
    transmissions: Sequence[torch.Tensor],
    I: torch.Tensor,
    T: torch.Tensor,
    R: torch.Tensor,
    alpha: torch.Tensor | float,
    theta: float = 0.85,
    gamma: float = 2.2,
) -> dict[str, torch.Tensor]:
    """Composition loss L_comp, LA Eq. 9: L_Ĉ (Eq. 8) + L_res; synthetic triples only (needs R, α).

    Returns ``{"total", "rcmap", "residual"}``.
    """
    rcmap = rcmap_composition_loss(rcmaps, I, T, R, theta)
    residual = residual_loss(reflections, transmissions, I, T, R, alpha, theta, gamma)
    return {"total": rcmap + residual, "rcmap": rcmap, "residual": residual}


def perceptual_loss(
    vgg: VGG19Features,
    t_hat_scales: Sequence[torch.Tensor],
    T: torch.Tensor,
    gammas: Sequence[float] = (1.0, 0.8, 0.6),
) -> torch.Tensor:
    """Multi-scale perceptual loss L_P, LA Eq. 10: Σ_j γ_j Σ_k ‖Φ_k(T^j) − Φ_k(T̂_N^j)‖_1.

    ``t_hat_scales`` are the last iteration's outputs ordered (full, 1/2, 1/4): the "last j-th layer"
    of the stage-2 auto-encoder for j = 1, 3, 5, so γ_1 = 1 weighs full size, γ_3 = 0.8 half size and
    γ_5 = 0.6 quarter size. ``T^j`` is ``T`` resized bilinearly (antialiased) to each output's size;
    Φ_k are the VGG-19 layers of ``vgg`` (conv1_2 .. conv5_2), each compared with a mean L1.
    """
    if len(t_hat_scales) != len(gammas):
        raise LossInputError(f"perceptual_loss: {len(t_hat_scales)} scales but {len(gammas)} weights gammas")
    total = T.new_zeros(())
    for gamma_j, t_hat in zip(gammas, t_hat_scales):
        if t_hat.shape[0] != T.shape[0]:
            raise LossInputError(f"perceptual_loss: prediction batch {t_hat.shape[0]} != target batch {T.shape[0]}")
        target = T
        if t_hat.shape[-2:] != T.shape[-2:]:
            target = F.interpolate(T, size=t_hat.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            target_features = vgg(target)
        distance = sum(F.l1_loss(p.float(), t.float()) for p, t in zip(vgg(t_hat), target_features))
        total = total + gamma_j * distance
    return total


def pixel_loss(transmissions: Sequence[torch.Tensor], T: torch.Tensor, theta: float = 0.85) -> torch.Tensor:
    """Pixel loss L_pixel, LA Eq. 11: Σ_i θ^(N−i) L1(T, T̂_i)."""
    for t_hat in transmissions:
        _check_like("pixel_loss: transmission", t_hat, T)
    return iteration_weighted([F.l1_loss(t_hat, T) for t_hat in transmissions], theta)


def ssim_loss(
    transmissions: Sequence[torch.Tensor], T: torch.Tensor, theta: float = 0.85, window_size: int = 11
) -> torch.Tensor:
    """SSIM loss L_SSIM, LA Eq. 12: Σ_i θ^(N−i) (1 − SSIM(T, T̂_i)).

    SSIM is ``kornia.metrics.ssim`` (Gaussian window 11, σ = 1.5, reflect padding), averaged over the
    map; computed in at least float32 (also under bf16 autocast). Note that ``kornia.losses.ssim_loss`` is
    (1 − SSIM)/2, which is not the paper's term.
    """
    per_iteration = []
    for t_hat in transmissions:
        _check_like("ssim_loss: transmission", t_hat, T)
        dtype = torch.promote_types(torch.promote_types(t_hat.dtype, T.dtype), torch.float32)
        ssim_map = kornia.metrics.ssim(t_hat.to(dtype), T.to(dtype), window_size, max_val=1.0)
        per_iteration.append(1.0 - ssim_map.mean())
    return iteration_weighted(per_iteration, theta)


def mix_loss(
    transmissions: Sequence[torch.Tensor], T: torch.Tensor, beta: float = 0.84, theta: float = 0.85
) -> torch.Tensor:
    """Mixed loss L_mix, LA Eq. 13: β L_SSIM (Eq. 12) + (1 − β) L_pixel (Eq. 11), β = 0.84 (Zhao et al.)."""
    return beta * ssim_loss(transmissions, T, theta) + (1.0 - beta) * pixel_loss(transmissions, T, theta)


def adversarial_loss(d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Adversarial loss L_adv, LA Eq. 14: Σ −log D(T, T̂), with D's output on the pair given as logits.

    BCE-with-logits against 1 (numerically stable); how D reads the pair (T, T̂) is in
    :class:`sirr.models.location_aware.LocationAwareDiscriminator`."""
    logits = d_fake_logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def discriminator_loss(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss for LA Eq. 14's D: ½[−log D(T) − log(1 − D(T̂))] (standard GAN BCE, pix2pix's ½).

    Pass ``d_fake_logits`` computed on detached predictions when training D.
    """
    real, fake = d_real_logits.float(), d_fake_logits.float()
    real_term = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
    fake_term = F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    return 0.5 * (real_term + fake_term)


def binary_rcmap_target(I: torch.Tensor, T: torch.Tensor, beta: float = 0.3) -> torch.Tensor:
    """Binary ground-truth RCMap C_gt for L_C^B (LA Sec. 5.2, after Qian et al. [30]); (B, 1, H, W) in {0, 1}.

    R = |I − T| in grey; per image, γ = max{R_min + β (R_max − R_min), β}; C_gt = [R_gray > γ].
    """
    _check_like("binary_rcmap_target: T", T, I)
    grey = kornia.color.rgb_to_grayscale((I - T).abs())
    flat = grey.flatten(1)
    r_min, r_max = flat.min(dim=1).values, flat.max(dim=1).values
    threshold = torch.clamp(r_min + beta * (r_max - r_min), min=beta).view(-1, 1, 1, 1)
    return (grey > threshold).to(I.dtype)


def rcmap_bce_loss(rcmaps: Sequence[torch.Tensor], target: torch.Tensor, theta: float = 0.85) -> torch.Tensor:
    """Binary RCMap loss L_C^B, LA Eq. 16: Σ_i θ^(N−i) BCE(Ĉ_i, C_gt) (Ĉ_i are probabilities, float32)."""
    per_iteration = []
    with torch.autocast(device_type=target.device.type, enabled=False):  # BCE on probabilities is autocast-unsafe
        for c in rcmaps:
            _check_like("rcmap_bce_loss: rcmap", c, target)
            per_iteration.append(F.binary_cross_entropy(c.float(), target.float().expand_as(c)))
    return iteration_weighted(per_iteration, theta)


class LocationAwarePredictions(Protocol):
    """What :class:`LocationAwareLoss` reads from the network's output: one entry per iteration."""

    rcmaps: Sequence[torch.Tensor]
    reflections: Sequence[torch.Tensor]
    transmissions: Sequence[torch.Tensor]
    transmissions_half: Sequence[torch.Tensor]
    transmissions_quarter: Sequence[torch.Tensor]


class LocationAwareLoss(nn.Module):
    """Overall LA loss, Eq. 15: λ1 L_comp + λ2 L_P + λ3 L_mix + λ4 L_adv (λ = 0.4, 0.2, 0.4, 0.01).

    The ``use_*`` flags are the rows of LA Table 3 ("w/o L"): a disabled term is neither computed nor
    added, and the other weights stay as they are (w/o L_SSIM leaves (1 − β) L_pixel in L_mix).
    ``rcmap_loss="bce"`` replaces L_Ĉ (Eq. 8) by L_C^B (Eq. 16) inside L_comp ("L_C → L_C^B").

    Real pairs have no R and no α: L_Ĉ and L_res use only the synthetic samples (``is_synthetic``, a
    (B,) bool mask; default all synthetic when R is given, none when R is None) and average over them;
    they are 0 for a batch without synthetic samples. L_C^B needs only (I, T) and, like Eq. 16's
    Σ_{I,T∈D}, uses every sample. L_P, L_mix and L_adv use every sample.
    """

    def __init__(
        self,
        vgg: VGG19Features | None = None,
        vgg_weights: str = "auto",
        lambdas: tuple[float, float, float, float] = (0.4, 0.2, 0.4, 0.01),
        theta: float = 0.85,
        beta: float = 0.84,
        gammas: tuple[float, float, float] = (1.0, 0.8, 0.6),
        gamma_correction: float = 2.2,
        use_pixel: bool = True,
        use_ssim: bool = True,
        use_perceptual: bool = True,
        use_composition: bool = True,
        use_adversarial: bool = True,
        rcmap_loss: str = "composition",
        rcmap_bce_beta: float = 0.3,
    ) -> None:
        super().__init__()
        if rcmap_loss not in ("composition", "bce"):
            raise LossInputError(f'LocationAwareLoss: rcmap_loss must be "composition" or "bce", got {rcmap_loss!r}')
        self.lambdas = lambdas
        self.theta, self.beta, self.gammas, self.gamma_correction = theta, beta, gammas, gamma_correction
        self.use_pixel, self.use_ssim, self.use_perceptual = use_pixel, use_ssim, use_perceptual
        self.use_composition, self.use_adversarial = use_composition, use_adversarial
        self.rcmap_loss, self.rcmap_bce_beta = rcmap_loss, rcmap_bce_beta
        if use_perceptual and vgg is None:
            vgg = VGG19Features(weights=vgg_weights, after_relu=True)
        self.vgg = vgg if use_perceptual else None

    def forward(
        self,
        out: LocationAwarePredictions,
        I: torch.Tensor,
        T: torch.Tensor,
        R: torch.Tensor | None = None,
        alpha: torch.Tensor | float | None = None,
        d_fake_logits: torch.Tensor | None = None,
        is_synthetic: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """All enabled terms (unweighted) plus ``"total"`` (Eq. 15, weighted).

        Keys: ``rcmap`` (L_Ĉ or L_C^B), ``residual``, ``comp``, ``perceptual``,
        ``pixel``, ``ssim``, ``mix``, ``adv``, ``total``; disabled terms are
        absent.
        """
        if self.use_adversarial and d_fake_logits is None:
            raise LossInputError("LocationAwareLoss: use_adversarial=True "
                                 "needs d_fake_logits (D on the predicted T)")
        lam_comp, lam_p, lam_mix, lam_adv = self.lambdas  # 0.4, 0.2, 0.4, 0.01
        terms: dict[str, torch.Tensor] = {}
        total = T.new_zeros((), dtype=torch.float32)
        if self.use_composition:  # L_comp = L_Ĉ + L_res, Eq. 8-9
            terms.update(self._composition(out, I, T, R, alpha, is_synthetic))
            total = total + lam_comp * terms["comp"]
        if self.use_perceptual:  # L_P on T̂_N at 1, 1/2, 1/4, Eq. 10
            scales = (out.transmissions[-1], out.transmissions_half[-1],
                      out.transmissions_quarter[-1])
            terms["perceptual"] = perceptual_loss(self.vgg, scales, T,
                                                  self.gammas)
            total = total + lam_p * terms["perceptual"]
        if self.use_pixel or self.use_ssim:  # L_mix, Eq. 11-13
            mix = T.new_zeros((), dtype=torch.float32)
            if self.use_ssim:  # β · L_SSIM
                terms["ssim"] = ssim_loss(out.transmissions, T, self.theta)
                mix = mix + self.beta * terms["ssim"]
            if self.use_pixel:  # (1 − β) · L_pixel
                terms["pixel"] = pixel_loss(out.transmissions, T, self.theta)
                mix = mix + (1.0 - self.beta) * terms["pixel"]
            terms["mix"] = mix
            total = total + lam_mix * mix
        if self.use_adversarial:  # L_adv, Eq. 14
            terms["adv"] = adversarial_loss(
                d_fake_logits)  # type: ignore[arg-type]
            total = total + lam_adv * terms["adv"]
        terms["total"] = total  # Eq. 15
        return terms

    def _composition(
        self,
        out: LocationAwarePredictions,
        I: torch.Tensor,
        T: torch.Tensor,
        R: torch.Tensor | None,
        alpha: torch.Tensor | float | None,
        is_synthetic: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """L_comp (Eq. 9) on the synthetic subset; with ``rcmap_loss="bce"`` its L_Ĉ is L_C^B on all samples."""
        if is_synthetic is None:
            is_synthetic = torch.full((I.shape[0],), R is not None, dtype=torch.bool, device=I.device)
        is_synthetic = is_synthetic.to(device=I.device, dtype=torch.bool)
        if is_synthetic.shape != (I.shape[0],):
            raise LossInputError(f"is_synthetic: expected a ({I.shape[0]},) bool mask, got {tuple(is_synthetic.shape)}")
        has_synthetic = bool(is_synthetic.any())
        if has_synthetic and (R is None or alpha is None):
            raise LossInputError("LocationAwareLoss: synthetic samples need R and alpha for L_comp (Eq. 9)")
        zero = T.new_zeros((), dtype=torch.float32)
        rcmap, residual = zero, zero
        if has_synthetic:
            m = is_synthetic
            a = _alpha(alpha, I).expand(I.shape[0], 1, 1, 1)[m].flatten()  # type: ignore[arg-type]
            I_s, T_s, R_s = I[m], T[m], R[m]  # type: ignore[index]
            reflections, transmissions = [x[m] for x in out.reflections], [x[m] for x in out.transmissions]
            residual = residual_loss(reflections, transmissions, I_s, T_s, R_s, a, self.theta, self.gamma_correction)
            if self.rcmap_loss == "composition":
                rcmap = rcmap_composition_loss([c[m] for c in out.rcmaps], I_s, T_s, R_s, self.theta)
        if self.rcmap_loss == "bce":
            rcmap = rcmap_bce_loss(out.rcmaps, binary_rcmap_target(I, T, self.rcmap_bce_beta), self.theta)
        return {"rcmap": rcmap, "residual": residual, "comp": rcmap + residual}
