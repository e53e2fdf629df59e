"""Reflection synthesis, batched in torch, as the public releases do it (``shared/spec/synthesis-recipes.md``).

Three recipes, each a function of transmission photos ``T`` and reflection photos ``R``
(``(B, 3, H, W)`` in [0, 1], any device) and an explicit :class:`torch.Generator` on the
same device:

- :func:`synthesize_la` -- LA Eq. 6 as Zhang et al. (CVPR 2018) and IBCLN (CVPR 2020) implement it:
  inverse gamma, Gaussian blur, per-channel overflow fix, vignetting, alpha blending, gamma.
- :func:`synthesize_ceilnet` -- CEILNet (Fan et al., ICCV 2017): 11x11 blur, ``I = T + R_blur``,
  mean-overflow fix, stored ``R = I - T``.
- :func:`synthesize_ts` -- the TS release (Li & Lun 2019, github tingtianli/RM2S): weak vignetted,
  blurred reflection plus a shifted ghost, ``I = clip(alpha T + R)``.

Every function returns a dict with ``I``, ``T``, ``R`` (the training triple), ``alpha`` and
``keep`` (``(B,)``; the skip rules, only the LA recipe has them) and the sampled parameters
(``sigma``, ...), so a figure can say what it shows. Any sampled parameter can be fixed by
passing it (a float or a ``(B,)`` tensor), which the chapters' explorers use.

:class:`ReflectionSynthesizer` draws crops of two different photos per sample, moves them to
the device once and synthesises there; its generator state is checkpointable.

Where the releases and the spec text differ, we follow the release code and say so in the
docstring (``Release detail:``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import filter2d_separable
from kornia.geometry.transform import translate
from PIL import Image

from sirr.data.samples import sample_photos
from sirr.errors import SirrError

__all__ = [
    "GAMMA",
    "gamma_inverse",
    "gamma_correct",
    "gaussian_blur",
    "vignetting_profile",
    "ghost",
    "synthesize_la",
    "synthesize_ceilnet",
    "synthesize_ts",
    "RECIPES",
    "LA_SKIP_RULES",
    "ReflectionSynthesizer",
    "measure_throughput",
    "SynthesisError",
]

log = logging.getLogger(__name__)

GAMMA = 2.2
Param = float | torch.Tensor | None


class SynthesisError(SirrError, ValueError):
    """Bad input to a synthesis function or the synthesizer (shapes, ranges, too few photos, unknown recipe)."""


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def gamma_inverse(x: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """``g_inv`` of the LA paper (Sec. 4): linearise an sRGB-like image, ``x ** gamma`` (negatives clamped to 0)."""
    return x.clamp(min=0) ** gamma


def gamma_correct(x: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """Gamma correction, the inverse of :func:`gamma_inverse`: ``x ** (1 / gamma)`` (negatives clamped to 0)."""
    return x.clamp(min=0) ** (1.0 / gamma)


def _check_pair(T: torch.Tensor, R: torch.Tensor) -> None:
    for name, x in (("T", T), ("R", R)):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise SynthesisError(f"{name} must be a (B, 3, H, W) tensor in [0, 1], got {shape}")
        if not x.is_floating_point():
            raise SynthesisError(f"{name} must be a floating tensor in [0, 1], got dtype {x.dtype}")
    if T.shape != R.shape:
        raise SynthesisError(f"T and R must have the same shape, got {tuple(T.shape)} and {tuple(R.shape)}")
    if T.device != R.device:
        raise SynthesisError(f"T and R must be on the same device, got {T.device} and {R.device}")


def _check_generator(generator: torch.Generator, device: torch.device) -> None:
    if not isinstance(generator, torch.Generator):
        raise SynthesisError("generator must be a torch.Generator (pass torch.Generator(device).manual_seed(seed))")
    if torch.device(generator.device).type != device.type:
        raise SynthesisError(
            f"the generator is on {generator.device} but the images are on {device}; "
            f"create it with torch.Generator(device={str(device)!r})"
        )


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)


def _param(value: Param, n: int, like: torch.Tensor, sample: Callable[[], torch.Tensor]) -> torch.Tensor:
    """A per-sample parameter: the given value broadcast to ``(n,)``, or a fresh sample."""
    if value is None:
        return sample()
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).expand(n).clone()


def gaussian_blur(
    x: torch.Tensor,
    sigma: torch.Tensor,
    radius: torch.Tensor | None = None,
    border_type: str = "reflect",
) -> torch.Tensor:
    """Per-sample separable Gaussian blur of ``R`` (LA Eq. 6, CEILNet, TS).

    Each sample is blurred with its own Gaussian (``sigma``, ``radius``:
    ``(B,)``) by a separable per-sample filter. The kernel of sample ``b``
    is ``exp(-k^2 / (2 sigma_b^2))`` for ``|k| <= radius_b``, normalised to
    sum 1 -- what ``cv2.GaussianBlur(x, (2r+1, 2r+1), sigma)`` uses.
    ``radius=None`` gives Zhang et al.'s ``ceil(2 sigma)``. ``sigma = 0``
    (or ``radius = 0``) leaves the sample unchanged. ``border_type``:
    kornia's name; ``"reflect"`` is OpenCV's default ``BORDER_REFLECT_101``.
    """
    if radius is None:
        radius = torch.ceil(2 * sigma)  # Zhang et al.'s radius, (B,)
    radius = radius.to(torch.long)
    kmax = int(radius.max().item()) if radius.numel() else 0
    if kmax == 0:
        return x
    offsets = torch.arange(-kmax, kmax + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp(min=1e-6)[:, None]  # (B, 1)
    # exp(-k^2 / (2 sigma_b^2)), (B, 2 kmax + 1)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * s**2))
    kernel = kernel * (offsets.abs()[None] <= radius[:, None])  # |k| <= r_b
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # sums to 1
    return filter2d_separable(x, kernel, kernel, border_type=border_type)


def vignetting_profile(length: int, nsig: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """1-D factor ``s`` of the releases' vignetting mask ``gkern(length, nsig)``: the mask is ``outer(s, s)``, max 1.

    ``gkern`` (Zhang et al., also the TS release) integrates a unit Gaussian over ``length`` equal
    bins spanning ``+-(nsig + half a bin)``, takes ``sqrt(outer(k, k))`` and divides by its max;
    that equals ``outer(s, s)`` with ``s = sqrt(k) / max(sqrt(k))``.
    """
    interval = (2 * nsig + 1.0) / length
    edges = torch.linspace(-nsig - interval / 2, nsig + interval / 2, length + 1, dtype=torch.float64)
    k = torch.diff(torch.special.ndtr(edges)).sqrt()
    return (k / k.max()).to(device=device, dtype=dtype)


def ghost(
    R: torch.Tensor,
    shift: torch.Tensor,
    attenuation: float = 1.25,
) -> torch.Tensor:
    """Ghosting of the TS release (Li & Lun 2019): ``(R + R_shifted) / att``.

    ``R_shifted`` is ``R`` shifted by ``(dx, dy)`` px (``shift``: ``(B, 2)``;
    bilinear, border fill); ``att`` is ``attenuation``. Two close impulses
    as a convolution kernel; the release translates with torchsample's
    ``RandomTranslate`` (continuous shift, bilinear) and divides by 1.25.
    """
    shifted = translate(R, shift.to(R.dtype), mode="bilinear",
                        padding_mode="border", align_corners=True)
    return (R + shifted) / attenuation  # (B, 3, H, W)


def _overflow_fix_per_channel(r_blur: torch.Tensor, t_lin: torch.Tensor, att: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zhang et al.'s overflow fix (linear domain), per sample and channel; returns (clipped R_blur, subtracted amount (B, 3)).

    ``mean_i = max(1, mean of the blend values > 1 in channel i)``; ``R_blur_i -= (mean_i - 1) * att``
    over the whole channel; then ``R_blur`` is clipped to [0, 1].
    """
    blend = r_blur + t_lin
    over = blend > 1
    mean_i = (blend * over).sum(dim=(2, 3)) / (over.sum(dim=(2, 3)) + 1e-6)
    amount = (mean_i.clamp(min=1.0) - 1.0) * att[:, None]
    return (r_blur - amount[:, :, None, None]).clamp(0, 1), amount


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------

#: Zhang et al.'s sigma choices: ``np.linspace(1, 5, 80)``.
LA_SIGMA_VALUES: tuple[float, ...] = tuple(float(v) for v in np.linspace(1, 5, 80))
#: The skip rules of Zhang et al.'s training loop, in the order of the ``rules`` columns.
LA_SKIP_RULES: tuple[str, ...] = ("mean(T)/2 > mean(R)", "max(T) or max(R) < 0.15", "max(I) < 0.1")
#: Side of Zhang et al.'s vignetting kernel ``gkern(560, 3)``.
LA_VIGNETTE_SIZE = 560


def synthesize_la(
    T: torch.Tensor,
    R: torch.Tensor,
    generator: torch.Generator,
    *,
    alpha_range: tuple[float, float] = (0.8, 1.0),
    sigma_values: Sequence[float] = LA_SIGMA_VALUES,
    att_range: tuple[float, float] = (1.08, 1.18),
    vignetting: bool = True,
    skip_rules: bool = True,
    alpha: Param = None,
    sigma: Param = None,
    att: Param = None,
) -> dict[str, torch.Tensor]:
    """LA Eq. 6 with inverse gamma, as Zhang et al. 2018 / IBCLN implement it.

    ``I = (R_blur*mask + alpha*g_inv(T))^(1/2.2)``. Steps (``syn_data`` of
    Zhang et al.'s ``main.py``), per sample:

    1. linearise ``T`` and ``R`` (``x ** 2.2``);
    2. blur ``R`` with a Gaussian, sigma drawn from ``sigma_values``
       (80 values in [1, 5]), kernel ``2 ceil(2 sigma) + 1``;
    3. overflow fix per channel: ``mean_i`` = mean of the blend
       ``R_blur + T`` over its values above 1 (1 if none);
       ``R_blur -= (mean_i - 1) * att`` with ``att ~ U[1.08, 1.18)``,
       then clip ``R_blur`` to [0, 1];
    4. vignetting: multiply ``R_blur`` by a random ``H x W`` window of
       ``gkern(560, 3)``;
    5. ``I = clip((R_blur * mask + alpha * T_lin) ** (1/2.2))``,
       ``alpha ~ (0.8, 1]``; ground truth ``T`` is the input ``T`` (not
       scaled by alpha), ``R = (R_blur * mask) ** (1/2.2)``.

    Release detail: step 3 subtracts the amount from the whole channel (the
    release code), not only where the blend exceeds 1. ``keep`` applies the
    training loop's skip rules: a sample is skipped when
    ``mean(T)/2 > mean(R)`` (input photos, before synthesis), when
    ``max(T)`` or ``max(R_out)`` ``< 0.15``, or when ``max(I) < 0.1``.
    Sides above 549 px use a longer vignetting kernel (``side + 11``, same
    ``nsig = 3``) since the release's 560-px one cannot fit them.

    Returns ``I, T, R, alpha, sigma, att, mask`` (``(B, 1, H, W)``
    vignetting), ``overflow`` (``(B, 3)`` subtracted amount), ``rules``
    (``(B, 3)`` bool, which of :data:`LA_SKIP_RULES` fire) and ``keep``
    (no rule fires; all True when ``skip_rules=False``). ``att=0`` disables
    the overflow fix.
    """
    _check_pair(T, R)
    _check_generator(generator, T.device)
    B, _, H, W = T.shape
    # alpha ~ (0.8, 1], (B,)
    alpha_t = _param(alpha, B, T, lambda: alpha_range[1] - _uniform(
        B, 0, alpha_range[1] - alpha_range[0], generator, T))
    values = torch.as_tensor(list(sigma_values), dtype=T.dtype, device=T.device)
    # sigma drawn from sigma_values, (B,)
    sigma_t = _param(sigma, B, T, lambda: values[torch.randint(
        len(values), (B,), generator=generator, device=T.device)])
    att_t = _param(att, B, T, lambda: _uniform(B, *att_range, generator, T))

    t_lin, r_lin = gamma_inverse(T), gamma_inverse(R)  # step 1, (B, 3, H, W)
    r_blur = gaussian_blur(r_lin, sigma_t)  # step 2
    # step 3: overflow fix, (B, 3, H, W) and (B, 3)
    r_blur, overflow = _overflow_fix_per_channel(r_blur, t_lin, att_t)

    if vignetting:  # step 4
        L = max(LA_VIGNETTE_SIZE, H + 11, W + 11)
        prof = vignetting_profile(L, 3.0, device=T.device, dtype=T.dtype)
        # the release: newh = randint(0, 560 - h - 10), neww likewise
        # (upper bound exclusive)
        oy = torch.randint(L - H - 10, (B,), generator=generator,
                           device=T.device)
        ox = torch.randint(L - W - 10, (B,), generator=generator,
                           device=T.device)
        rows = prof[oy[:, None] + torch.arange(H, device=T.device)[None]]
        cols = prof[ox[:, None] + torch.arange(W, device=T.device)[None]]
        mask = (rows[:, :, None] * cols[:, None, :])[:, None]  # (B, 1, H, W)
    else:
        mask = torch.ones(B, 1, H, W, dtype=T.dtype, device=T.device)
    # step 5, LA Eq. 6: I = clip(g(R_blur * mask + alpha * g_inv(T)))
    r_blur_mask = r_blur * mask  # (B, 3, H, W)
    a = alpha_t[:, None, None, None]  # (B, 1, 1, 1)
    I = gamma_correct(r_blur_mask + a * t_lin).clamp(0, 1)  # (B, 3, H, W)
    R_out = gamma_correct(r_blur_mask)

    rules = torch.stack([  # LA_SKIP_RULES, (B, 3)
        T.mean(dim=(1, 2, 3)) / 2 > R.mean(dim=(1, 2, 3)),
        (T.amax(dim=(1, 2, 3)) < 0.15) | (R_out.amax(dim=(1, 2, 3)) < 0.15),
        I.amax(dim=(1, 2, 3)) < 0.1,
    ], dim=1)
    keep = (~rules.any(dim=1) if skip_rules
            else torch.ones(B, dtype=torch.bool, device=T.device))
    return {"I": I, "T": T, "R": R_out, "alpha": alpha_t, "sigma": sigma_t,
            "att": att_t, "mask": mask, "overflow": overflow, "rules": rules,
            "keep": keep}


def synthesize_ceilnet(
    T: torch.Tensor,
    R: torch.Tensor,
    generator: torch.Generator,
    *,
    sigma_range: tuple[float, float] = (2.0, 5.0),
    kernel_size: int = 11,
    overflow_factor: float = 1.3,
    sigma: Param = None,
) -> dict[str, torch.Tensor]:
    """CEILNet's synthesis (Fan et al. 2017): ``I = clip(T + R_blur)``.

    As ``generate_data_reflection.lua``; stored ``R = I - T``. No gamma.
    ``R`` is blurred with a fixed ``kernel_size`` Gaussian,
    ``sigma ~ U[2, 5]``, zero padding (torch7
    ``image.convolve(..., 'same')``). If the blend exceeds 1 anywhere, the
    mean of ``blend - 1`` over all overflowing values (all channels) times
    1.3 is subtracted from ``R_blur``, which is clipped to [0, 1]; the blend
    is clipped and the stored reflection is ``I - T`` (CEILNet's
    ``label2``).

    Returns ``I, T, R, alpha`` (ones), ``sigma``, ``overflow`` (``(B,)``
    subtracted amount), ``keep`` (all True).
    """
    _check_pair(T, R)
    _check_generator(generator, T.device)
    B = T.shape[0]
    sigma_t = _param(  # sigma ~ U[2, 5], (B,)
        sigma, B, T, lambda: _uniform(B, *sigma_range, generator, T))
    radius = torch.full((B,), kernel_size // 2, device=T.device)
    r_blur = gaussian_blur(R, sigma_t, radius, border_type="constant")
    blend = T + r_blur  # (B, 3, H, W)
    over = blend > 1
    # mean of blend - 1 over all overflowing values (all channels), (B,)
    excess = ((blend - 1) * over).sum(dim=(1, 2, 3))
    mean_over = excess / over.sum(dim=(1, 2, 3)).clamp(min=1)
    amount = overflow_factor * mean_over  # (B,)
    r_blur = (r_blur - amount[:, None, None, None]).clamp(0, 1)
    I = (T + r_blur).clamp(0, 1)  # I = clip(T + R_blur), (B, 3, H, W)
    ones = torch.ones(B, dtype=T.dtype, device=T.device)
    return {"I": I, "T": T, "R": I - T, "alpha": ones, "sigma": sigma_t,
            "overflow": amount,
            "keep": torch.ones(B, dtype=torch.bool, device=T.device)}


def synthesize_ts(
    T: torch.Tensor,
    R: torch.Tensor,
    generator: torch.Generator,
    *,
    alpha_range: tuple[float, float] = (0.67, 1.0),
    sigma_range: tuple[float, float] = (0.0, 3.0),
    att_range: tuple[float, float] = (1.08, 1.18),
    vignette_range: tuple[float, float] = (0.0, 0.2),
    max_shift: float = 15.0,
    ghosting: bool = True,
    alpha: Param = None,
    sigma: Param = None,
    vignette: Param = None,
    shift: torch.Tensor | Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """TS release's synthesis (Li & Lun 2019): ``I = clip(alpha T + R)``.

    TS Eq. 1's image model I = I_B + I_R, with I_B = alpha T.

    As RM2S ``custom_data_reflection_simulation.py``, per sample:

    1. linearise (``** 2.2``), blur ``R`` with ``sigma ~ U[0, 3)``, kernel
       ``2 ceil(2 sigma) + 1`` (``sigma = 0``: no blur);
    2. the same per-channel overflow fix as Zhang et al.
       (``att ~ U[1.08, 1.18)``; the release keeps it although the spec
       does not list it);
    3. weak vignetting: ``R_blur * v * gkern(side, 1)`` with
       ``v ~ U(0, 0.2)`` (a centred mask over the whole image), back to
       sRGB with ``** (1/2.2)``;
    4. ground truth ``T = alpha * T`` with ``alpha ~ (0.67, 1]`` (the
       release scales the gamma-corrected ``T``);
    5. ghosting: ``R = (R + R shifted by (dx, dy)) / 1.25``,
       ``dx, dy ~ U[-15, 15] * side / 256`` px;
    6. ``I = clip(T + R, 0, 1)``; the stored ``R`` is not clipped.

    ``shift`` fixes the ghost offset, ``(dx, dy)`` px or a ``(B, 2)``
    tensor. Returns ``I, T, R, alpha, sigma, att, vignette, shift, keep``
    (all True: the release has no skip rules).
    """
    _check_pair(T, R)
    _check_generator(generator, T.device)
    B, _, H, W = T.shape
    # sigma ~ U[0, 3), att ~ U[1.08, 1.18), v ~ U(0, 0.2), alpha ~ (0.67, 1]
    sigma_t = _param(
        sigma, B, T, lambda: _uniform(B, *sigma_range, generator, T))
    att_t = _uniform(B, *att_range, generator, T)
    vig_t = _param(
        vignette, B, T, lambda: _uniform(B, *vignette_range, generator, T))
    alpha_t = _param(alpha, B, T, lambda: alpha_range[1] - _uniform(
        B, 0, alpha_range[1] - alpha_range[0], generator, T))
    if shift is None:  # (dx, dy) ~ U[-15, 15] * side / 256 px
        scale = torch.tensor([W / 256.0, H / 256.0], dtype=T.dtype,
                             device=T.device)
        u = torch.rand(B, 2, generator=generator, device=T.device,
                       dtype=T.dtype)  # (B, 2)
        shift_t = (2 * u - 1) * max_shift * scale
    else:
        shift_t = torch.as_tensor(shift, dtype=T.dtype, device=T.device)
        shift_t = shift_t.reshape(-1, 2).expand(B, 2).clone()  # (B, 2)

    t_lin, r_lin = gamma_inverse(T), gamma_inverse(R)  # step 1, (B, 3, H, W)
    r_blur = gaussian_blur(r_lin, sigma_t)
    # step 2: Zhang et al.'s overflow fix
    r_blur, overflow = _overflow_fix_per_channel(r_blur, t_lin, att_t)
    # step 3: v * gkern(side, 1), a centred mask, (B, 1, H, W)
    rows = vignetting_profile(H, 1.0, device=T.device, dtype=T.dtype)
    cols = vignetting_profile(W, 1.0, device=T.device, dtype=T.dtype)
    gk = (rows[:, None] * cols[None, :])[None, None]  # (1, 1, H, W)
    mask = vig_t[:, None, None, None] * gk
    R_out = gamma_correct(r_blur * mask)
    if ghosting:  # step 5
        R_out = ghost(R_out, shift_t)
    T_out = alpha_t[:, None, None, None] * T  # step 4
    I = (T_out + R_out).clamp(0, 1)  # step 6: I = clip(alpha T + R)
    return {"I": I, "T": T_out, "R": R_out, "alpha": alpha_t,
            "sigma": sigma_t, "att": att_t, "vignette": vig_t,
            "shift": shift_t, "overflow": overflow,
            "keep": torch.ones(B, dtype=torch.bool, device=T.device)}


RECIPES: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "la": synthesize_la,
    "ceilnet": synthesize_ceilnet,
    "ts": synthesize_ts,
}


# --------------------------------------------------------------------------------------------
# Photo pairs -> training triples on the device
# --------------------------------------------------------------------------------------------


def _photo_to_uint8(photo: Any, size: int) -> torch.Tensor:
    """(H, W, 3) float in [0, 1] or uint8 -> (3, H', W') uint8 with the short side at least ``size``.

    Photos whose short side is below ``size`` are upscaled (bilinear, aspect kept) with PIL on the
    8-bit image -- this runs once per photo when a synthesizer is built, so it should be cheap.
    """
    a = np.asarray(photo)
    if a.ndim != 3 or a.shape[2] != 3:
        raise SynthesisError(f"photos must be (H, W, 3) arrays, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    h, w = a.shape[:2]
    if min(h, w) < size:
        f = size / min(h, w)
        hw = (max(size, round(h * f)), max(size, round(w * f)))
        a = np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((hw[1], hw[0]), Image.BILINEAR))
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


class _LazyPhotos:
    """Photos of a lazy pool (``photos.lazy``), decoded and converted when first drawn, kept in an LRU
    cache of at most ``max_bytes`` (a user's full VOC does not fit in memory, and need not)."""

    def __init__(self, pool: Sequence, size: int, max_bytes: int):
        self.pool, self.size, self.max_bytes = pool, size, max_bytes
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, i: int) -> torch.Tensor:
        t = self._cache.get(i)
        if t is not None:
            self._cache.move_to_end(i)
            return t
        item = self.pool[i]
        t = _photo_to_uint8(item[1] if isinstance(item, tuple) else item, self.size)
        self._cache[i] = t
        self._bytes += t.numel()
        while self._bytes > self.max_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.numel()
        return t


class ReflectionSynthesizer:
    """Endless batches of synthetic triples ``(I, T, R)`` from a pool of natural photos, on any device.

    Per sample: two different photos (T and R); for each, a random square crop whose side is
    ``size * U(scale_range)`` (at most the photo's short side; photos smaller than ``size`` are
    upscaled once), resized to ``size`` -- i.e. the short side rescaled to a random length
    ``>= size`` then a ``size`` crop, as ERRNet does -- and random horizontal / vertical flips
    (TS: also 90-degree rotations, as its release). The crops go to the device as one tensor and
    the recipe synthesises there. Skipped samples (LA skip rules) are redrawn, at most
    ``max_retries`` rounds; a batch that still has skipped samples returns them with
    ``keep=False`` and logs a warning.

    Release detail: Zhang et al. rescale to a random width in [256, 480), TS and IBCLN squash
    photos to 256x256; we crop squares so batches have one size.

    All randomness comes from one ``torch.Generator`` on ``device`` seeded with ``seed``;
    :meth:`state_dict` / :meth:`load_state_dict` save and restore it for a bit-exact resume.
    """

    def __init__(self, photos: Sequence, recipe: str = "la", size: int = 256, device: str | torch.device = "cpu",
                 seed: int = 0, *, scale_range: tuple[float, float] = (1.0, 2.0), max_retries: int = 20,
                 store_on_device_max_bytes: int = 2 << 30, **recipe_kwargs: Any):
        if recipe not in RECIPES:
            raise SynthesisError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        if not isinstance(size, int) or size < 16:
            raise SynthesisError(f"size must be an integer >= 16, got {size!r}")
        if len(photos) < 2:
            raise SynthesisError(f"need at least 2 photos to draw different T and R photos, got {len(photos)}")
        self.recipe = recipe
        self.size = size
        self.device = torch.device(device)
        self.seed = int(seed)
        self.scale_range = scale_range
        self.max_retries = max_retries
        self.recipe_kwargs = recipe_kwargs
        if getattr(photos, "lazy", False):  # a PhotoPool read from disk: decode each photo when first drawn
            self._photos = _LazyPhotos(photos, size, store_on_device_max_bytes)
        else:
            arrays = [p[1] if isinstance(p, tuple) else p for p in photos]
            photos_u8 = [_photo_to_uint8(a, size) for a in arrays]
            total = sum(p.numel() for p in photos_u8)
            store = self.device if total <= store_on_device_max_bytes else torch.device("cpu")
            self._photos = [p.to(store) for p in photos_u8]
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)

    def __len__(self) -> int:
        return len(self._photos)

    def _crop(self, idx: int, u: list[float]) -> torch.Tensor:
        """One augmented ``size`` crop of photo ``idx`` from 6 uniforms: side, y, x, hflip, vflip, rot90."""
        p = self._photos[idx]
        h, w = p.shape[1:]
        lo, hi = self.scale_range
        side = min(h, w, max(self.size, round(self.size * (lo + (hi - lo) * u[0]))))
        y = min(int(u[1] * (h - side + 1)), h - side)
        x = min(int(u[2] * (w - side + 1)), w - side)
        c = p[:, y:y + side, x:x + side].to(self.device, non_blocking=True).float().div_(255.0)
        if side != self.size:
            c = F.interpolate(c[None], size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True)[0].clamp_(0, 1)
        if u[3] < 0.5:
            c = c.flip(2)
        if u[4] < 0.5:
            c = c.flip(1)
        if self.recipe == "ts":
            c = torch.rot90(c, int(u[5] * 4) % 4, dims=(1, 2))
        return c

    def _pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        u = torch.rand(n, 14, generator=g, device=self.device, dtype=torch.float64).cpu().tolist()
        m = len(self._photos)
        Ts, Rs = [], []
        for row in u:
            it = min(int(row[0] * m), m - 1)
            ir = min(int(row[1] * (m - 1)), m - 2)
            ir += ir >= it
            Ts.append(self._crop(it, row[2:8]))
            Rs.append(self._crop(ir, row[8:14]))
        return torch.stack(Ts), torch.stack(Rs)

    def _draw(self, n: int) -> dict[str, torch.Tensor]:
        T, R = self._pairs(n)
        return RECIPES[self.recipe](T, R, self.generator, **self.recipe_kwargs)

    def pairs(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T, R)``: ``batch_size`` augmented crops of two different photos each, before any recipe (for figures)."""
        if batch_size < 1:
            raise SynthesisError(f"batch_size must be >= 1, got {batch_size}")
        return self._pairs(batch_size)

    def batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        """``batch_size`` synthetic triples on the device (dict of ``(B, ...)`` tensors, see the recipe)."""
        if batch_size < 1:
            raise SynthesisError(f"batch_size must be >= 1, got {batch_size}")
        out = self._draw(batch_size)
        for _ in range(self.max_retries):
            bad = (~out["keep"]).nonzero().flatten()
            if bad.numel() == 0:
                break
            redo = self._draw(bad.numel())
            for k, v in out.items():
                v[bad] = redo[k]
        else:
            n_bad = int((~out["keep"]).sum())
            if n_bad:
                log.warning("%d of %d samples still fail the skip rules after %d redraws; returned with keep=False",
                            n_bad, batch_size, self.max_retries)
        return out

    def state_dict(self) -> dict[str, Any]:
        """The generator state (and what it belongs to), for a bit-exact resume."""
        return {"recipe": self.recipe, "size": self.size, "seed": self.seed, "n_photos": len(self._photos),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the recipe, size and photo count must match."""
        for key in ("recipe", "size", "n_photos"):
            mine = len(self._photos) if key == "n_photos" else getattr(self, key)
            if state.get(key) != mine:
                raise SynthesisError(f"synthesizer state is for {key}={state.get(key)!r}, this one has {mine!r}")
        self.generator.set_state(state["generator"])


def measure_throughput(recipe: str, size: int = 256, batch: int = 16, device: str | torch.device = "cpu",
                       seconds: float = 3.0, photos: Sequence | None = None, seed: int = 0) -> float:
    """Synthesised pairs per second of :class:`ReflectionSynthesizer` (crops, transfer and recipe), after one warm-up batch.

    ``photos``: the pool (default: :func:`sirr.data.samples.sample_photos`).
    """
    if photos is None:
        photos = sample_photos()
        photos = photos.photos if hasattr(photos, "photos") else photos
    syn = ReflectionSynthesizer(photos, recipe=recipe, size=size, device=device, seed=seed)
    dev = torch.device(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    syn.batch(batch)
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        syn.batch(batch)
        sync()
        n += batch
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed
