"""PSNR and SSIM under the named conventions the reflection-removal literature uses.

Published numbers are not comparable unless scored the same way, so every score names its
convention. Both use scikit-image (``skimage.metrics``):

``"la"`` -- the LA release (Dong et al., ICCV 2021, ``utils/util.py: compare_psnr_ssim`` and
    ``inference.py``): the blend and the ground truth are each resized (PIL bilinear, aspect not kept)
    so that height and width are multiples of 8 (``make_power(img, base=8)``: ``floor(side/8)*8``),
    the prediction is made on the resized blend; ground truth is quantised to 8 bits (read from PNG)
    and the prediction kept as float. PSNR is computed over the whole RGB image with
    ``data_range=1``; SSIM with ``data_range=1`` over the colour channels (``channel_axis=-1``,
    skimage's default 7x7 uniform window; the release's ``multichannel=True`` is the older name).
    Here both images are resized with PIL bilinear to the multiple-of-8 size when they are not
    already that size (a prediction made on the resized blend already is).
``"errnet"`` -- the ERRNet family (Wei et al., CVPR 2019, ``models/errnet_model.py: eval`` and
    ``util/index.py: quality_assess``; the same bandwise code is reused by later methods): both
    images clipped to [0, 1] and scaled to [0, 255] (ERRNet's eval-time ``tensor2im``, whose
    ``astype(uint8)`` is commented out, so the prediction is *not* quantised; ground truth read from
    8-bit files is on the 8-bit grid anyway), no resizing; PSNR and SSIM are computed per colour
    channel with ``data_range=255`` (skimage defaults otherwise: 7x7 uniform SSIM window) and averaged
    over the three channels ("bandwise").

Which convention the papers' tables used, as far as known: LA Tables 1-3 come from the LA
authors' evaluation; their release scores with the ``"la"`` convention (the paper also says the
code of Kim et al. was changed "to compute SSIM in RGB space"), but Table 1 numbers of other
methods may have been computed by those methods' code. TS Table I (PSNR on SIR^2) comes from the
TS release's script, which resizes everything to 256x256 and uses PSNR with range 255 and SSIM
with an 11-pixel window (see ``shared/spec/two-stage-release-notes.md``); the TS paper itself only
says "average PSNR ... with respect to the ground truth background". That is neither convention
exactly; the book reports TS numbers under both conventions here and labels the paper's as such.

Consequences worth knowing: skimage's multichannel SSIM is itself the mean of per-channel SSIMs
and SSIM does not depend on the [0, 1] vs [0, 255] scale when ``data_range`` scales with it, so
the two conventions give the same SSIM whenever no resizing is needed (sides already multiples of
8); they differ in PSNR by averaging (whole-image MSE vs. mean of per-channel PSNRs, which is
never lower, by Jensen's inequality) and, for other sizes, by the LA resize.

Identical images have infinite PSNR. Scores keep ``inf`` as a float; :func:`sirrbook.evaluation.summarise`
averages finite values and reports how many were infinite, and tables should print ``inf`` as "∞ (identical)".
A constant offset ``d`` (on a [0, 1] scale, no clipping) gives ``PSNR = 20 log10(1/d)`` under both.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity
from skimage.transform import resize

from sirr.data.images import as_hwc

__all__ = ["CONVENTIONS", "psnr", "ssim", "score", "resize_multiple_of", "downsize_max_side"]

CONVENTIONS = ("la", "errnet")


def _as_hwc(x, what: str) -> np.ndarray:
    a = as_hwc(x)
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"{what} must be an HxWx3 image (or (1,3,H,W) tensor), got shape {a.shape}")
    if a.shape[2] == 1:
        a = a.repeat(3, axis=2)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return a.astype(np.float64)


def resize_multiple_of(img: np.ndarray, base: int = 8) -> np.ndarray:
    """Resize (PIL bilinear, like the LA release's ``make_power``) to ``floor(side/base)*base`` per side."""
    h, w = img.shape[:2]
    nh, nw = max(base, (h // base) * base), max(base, (w // base) * base)
    if (nh, nw) == (h, w):
        return img
    chans = []
    for c in range(img.shape[2]):
        im = Image.fromarray(img[..., c].astype(np.float32), mode="F")
        chans.append(np.asarray(im.resize((nw, nh), Image.BILINEAR), dtype=np.float64))
    return np.stack(chans, axis=2)


def downsize_max_side(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink (antialiased) so the longer side is at most ``max_side``; never enlarges."""
    if not max_side or max(img.shape[:2]) <= max_side:
        return img
    s = max_side / max(img.shape[:2])
    shape = (max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s)), img.shape[2])
    return resize(img, shape, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def _prepare(pred, gt, convention: str):
    p = _as_hwc(pred, "pred")  # (H, W, 3) float64
    g = _as_hwc(gt, "gt")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown metric convention {convention!r}; "
                         f"use one of {CONVENTIONS}")
    if convention == "la":  # LA release: sides resized to multiples of 8
        p = resize_multiple_of(p, 8)
        g = resize_multiple_of(g, 8)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt differ in shape: {p.shape} vs "
                         f"{g.shape} (convention {convention!r})")
    if convention == "errnet":  # clipped to [0, 1], scaled to [0, 255]
        p = np.clip(p, 0.0, 1.0) * 255.0
        g = np.clip(g, 0.0, 1.0) * 255.0
    else:  # "la": clipped to [0, 1]
        p = np.clip(p, 0.0, 1.0)
        g = np.clip(g, 0.0, 1.0)
    return p, g


def _psnr(p, g, data_range):
    mse = float(np.mean((p - g) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def _ssim(p, g, data_range, channel_axis=None):
    h, w = p.shape[:2]
    win = 7
    if min(h, w) < 7:  # skimage needs an odd window no larger than the image
        win = max(1, min(h, w) if min(h, w) % 2 == 1 else min(h, w) - 1)
        if win < 3:
            return 1.0 if np.array_equal(p, g) else float("nan")
    return float(structural_similarity(p, g, data_range=data_range, channel_axis=channel_axis, win_size=win))


def psnr(pred, gt, convention: str = "la") -> float:
    """PSNR (dB) of ``pred`` against ``gt`` under ``convention`` (``inf`` when identical)."""
    p, g = _prepare(pred, gt, convention)
    if convention == "la":
        return _psnr(p, g, 1.0)
    vals = [_psnr(p[..., c], g[..., c], 255.0) for c in range(3)]
    return float(np.mean(vals))


def ssim(pred, gt, convention: str = "la") -> float:
    """SSIM of ``pred`` against ``gt`` under ``convention`` (1.0 when identical)."""
    p, g = _prepare(pred, gt, convention)
    if convention == "la":
        return _ssim(p, g, 1.0, channel_axis=-1)
    return float(np.mean([_ssim(p[..., c], g[..., c], 255.0) for c in range(3)]))


def score(pred, gt, conventions: Iterable[str] | str = CONVENTIONS, *, convention: str | None = None) -> dict:
    """PSNR and SSIM under each convention: ``{"psnr_la", "ssim_la", "psnr_errnet", "ssim_errnet"}``.

    With ``convention="la"`` (a single name) the keys are plain ``{"psnr", "ssim"}``.
    """
    if convention is not None:
        return {"psnr": psnr(pred, gt, convention), "ssim": ssim(pred, gt, convention)}
    if isinstance(conventions, str):
        conventions = (conventions,)
    out = {}
    for c in conventions:
        out[f"psnr_{c}"] = psnr(pred, gt, c)
        out[f"ssim_{c}"] = ssim(pred, gt, c)
    return out
