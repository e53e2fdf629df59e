"""The gradient-domain maps of LA Fig. 4: CEILNet's edge map ``E`` and the normalised absolute Laplacian ``L``.

LA Fig. 4 shows ``1 - E`` and ``1 - L`` beside the input: the Laplacian (second derivative)
suppresses smooth, low-frequency reflections that still show in the first-derivative edge map,
while the hard boundaries of strong reflections survive -- the motivation for the multi-scale
Laplacian sub-module (LA Eq. 4, :class:`sirr.models.location_aware.MultiScaleLaplacian`).

Both maps take ``(B, 3, H, W)`` tensors in [0, 1] and return ``(B, 1, H, W)`` maps in [0, 1].
Normalisation (the paper only says each map ranges between 0 and 1): ``normalize="max"``
(default) divides each image's map by its own maximum, so both maps use their full range and
can be compared side by side; ``normalize="bound"`` divides by the largest value the operator can
reach on any image in [0, 1] (``E``: 6, ``L``: 12, summed over 3 channels), which keeps absolute
magnitudes comparable across images. A flat image maps to zeros either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import filter2d
from torch import nn

from sirr.errors import SirrError

__all__ = [
    "LAPLACIAN_KERNEL",
    "laplacian_map",
    "edge_map",
    "multiscale_responses",
    "region_energy",
    "layer_response_ratio",
    "GradientMapError",
]

#: ``k_L`` of LA Sec. 3 ("Multi-scale Laplacian Features"): the 3x3 Laplacian the MLSM kernel is initialised to.
LAPLACIAN_KERNEL = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


class GradientMapError(SirrError, ValueError):
    """Input that is not a (B, C, H, W) floating tensor, or an unknown normalisation."""


def _check(img: torch.Tensor, normalize: str) -> None:
    if not isinstance(img, torch.Tensor) or img.ndim != 4 or not img.is_floating_point():
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise GradientMapError(f"expected a floating (B, C, H, W) tensor in [0, 1], got {shape}")
    if normalize not in ("max", "bound"):
        raise GradientMapError(f"normalize must be 'max' or 'bound', got {normalize!r}")


def _normalise(m: torch.Tensor, normalize: str, bound: float) -> torch.Tensor:
    if normalize == "bound":
        return (m / bound).clamp(0, 1)
    peak = m.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(peak > 0, m / peak.clamp(min=torch.finfo(m.dtype).tiny), torch.zeros_like(m))


def laplacian_map(
    img: torch.Tensor,
    normalize: str = "max",
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L`` of LA Fig. 4: ``sum_c |k_L * img_c|``, normalised to [0, 1].

    ``(B, C, H, W) -> (B, 1, H, W)``. ``k_L`` (or ``kernel``, a 3x3
    alternative such as a learned MLSM kernel) is applied to each channel,
    as the MLSM applies its depthwise kernel; absolute responses are summed
    over channels. Borders are replicated, so flat regions touching the
    border give 0 (the network itself zero-pads).
    """
    _check(img, normalize)
    k = LAPLACIAN_KERNEL if kernel is None else kernel
    k = k.to(img.device, img.dtype)  # k_L, (3, 3)
    # sum_c |k_L * img_c| (LA Fig. 4)
    resp = filter2d(img, k[None], border_type="replicate")  # (B, C, H, W)
    resp = resp.abs().sum(dim=1, keepdim=True)  # (B, 1, H, W)
    # largest |response| on [0, 1] images
    reach = max(float(k.clamp(min=0).sum()), float(-k.clamp(max=0).sum()))
    return _normalise(resp, normalize, reach * img.shape[1])


def edge_map(img: torch.Tensor, normalize: str = "max") -> torch.Tensor:
    """``E`` of LA Fig. 4: CEILNet's edge map (Fan et al. 2017, LA ref. [4]).

    Normalised to [0, 1]; ``(B, C, H, W) -> (B, 1, H, W)``. CEILNet's
    ``computeEdge.lua``: per channel, the x-gradient at a pixel is the mean
    of the absolute differences to its left and right neighbours,
    ``(|x_{j+1} - x_j| + |x_j - x_{j-1}|) / 2`` (a missing neighbour at the
    border contributes 0), likewise in y; ``E = sum_c (G_x + G_y)``.
    """
    _check(img, normalize)
    # replicated border: zero difference, as CEILNet's zero-filled ends
    p = F.pad(img, (1, 1, 1, 1), mode="replicate")  # (B, C, H+2, W+2)
    # |differences| between horizontal (dx) and vertical (dy) neighbours
    dx = (p[..., 1:-1, 1:] - p[..., 1:-1, :-1]).abs()  # (B, C, H, W+1)
    dy = (p[..., 1:, 1:-1] - p[..., :-1, 1:-1]).abs()  # (B, C, H+1, W)
    gx = (dx[..., 1:] + dx[..., :-1]) / 2  # G_x, (B, C, H, W)
    gy = (dy[..., 1:, :] + dy[..., :-1, :]) / 2  # G_y, (B, C, H, W)
    e = (gx + gy).sum(dim=1, keepdim=True)  # E, (B, 1, H, W)
    return _normalise(e, normalize, 2.0 * img.shape[1])


def multiscale_responses(img: torch.Tensor, mlsm: nn.Module) -> torch.Tensor:
    """Absolute response of each scale of an MLSM (LA Eq. 4), summed over its channels: ``(B, S, H, W)``.

    ``mlsm`` is a :class:`sirr.models.location_aware.MultiScaleLaplacian`; its output (scales
    concatenated in the order of ``mlsm.scales``, e.g. ``[1/8, 1/4, 1/2, 1]``, each already
    resized back to the input size) is split per scale.
    """
    _check(img, "max")
    with torch.no_grad():
        feats = mlsm(img)
    return torch.stack([f.abs().sum(dim=1) for f in feats.chunk(len(mlsm.scales), dim=1)], dim=1)


def region_energy(responses: torch.Tensor, mask: torch.Tensor, border: int = 16) -> torch.Tensor:
    """Mean response inside ``mask`` and outside it, per image and scale: ``(B, S, 2)`` ``[inside, outside]``.

    ``responses``: ``(B, S, H, W)`` (e.g. :func:`multiscale_responses`); ``mask``: ``(B, 1, H, W)``
    boolean. A ``border``-pixel frame is left out of both regions (the MLSM zero-pads, which makes
    the coarse scales respond at the image frame). An empty region gives NaN.
    """
    if mask.shape[0] != responses.shape[0] or mask.shape[-2:] != responses.shape[-2:]:
        raise GradientMapError(f"mask {tuple(mask.shape)} does not match responses {tuple(responses.shape)}")
    valid = torch.zeros_like(mask, dtype=torch.bool)
    valid[..., border:mask.shape[-2] - border, border:mask.shape[-1] - border] = True
    out = []
    for region in (mask.bool() & valid, ~mask.bool() & valid):
        w = region.to(responses.dtype)
        out.append((responses * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)))
    return torch.stack(out, dim=-1)


def layer_response_ratio(
    T: torch.Tensor,
    R: torch.Tensor,
    mlsm: nn.Module,
    mask: torch.Tensor | None = None,
    border: int = 16,
) -> torch.Tensor:
    """Reflection / transmission response per MLSM scale (LA Eq. 4).

    How strongly each MLSM scale sees the reflection layer relative to the
    transmission: ``(B, S, 2)``. The MLSM is linear (bilinear resizing and a
    convolution, no bias), so for a blend ``I = T + R`` its features split
    exactly as ``F_s(I) = F_s(T) + F_s(R)``. This returns
    ``mean |F_s(R)| / mean |F_s(T)|`` per image and scale, ``[..., 0]``
    inside ``mask`` and ``[..., 1]`` outside it (``mask=None``: the whole
    image is "inside", outside is NaN), leaving out a ``border``-pixel frame
    as :func:`region_energy`. A ratio near 0 means the scale suppresses the
    reflection; near or above 1 means the reflection is as visible as the
    transmission there.
    """
    _check(T, "max")
    _check(R, "max")
    if T.shape != R.shape:
        raise GradientMapError(
            f"T {tuple(T.shape)} and R {tuple(R.shape)} "
            "must have the same shape"
        )
    if mask is None:  # (B, 1, H, W), all inside
        mask = torch.ones(T.shape[0], 1, *T.shape[-2:], dtype=torch.bool,
                          device=T.device)
    # mean |F_s(.)| inside / outside the mask (LA Eq. 4), (B, S, 2)
    e_r = region_energy(multiscale_responses(R, mlsm), mask, border)
    e_t = region_energy(multiscale_responses(T, mlsm), mask, border)
    return e_r / e_t
