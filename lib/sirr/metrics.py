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

Identical images have infinite PSNR. Scores keep ``inf`` as a float; :func:`summarise` averages
finite values and reports how many were infinite, and tables should print ``inf`` as "∞ (identical)".
A constant offset ``d`` (on a [0, 1] scale, no clipping) gives ``PSNR = 20 log10(1/d)`` under both.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy.stats import bootstrap
from skimage.metrics import structural_similarity
from skimage.transform import resize
from tqdm.auto import tqdm

from sirr.data.images import as_hwc, to_image, to_tensor
from sirr.lpips_vgg import lpips_vgg

__all__ = ["CONVENTIONS", "paired_difference", "seed_paired_difference", "VERDICTS", "LOWER_IS_BETTER", "psnr", "ssim", "score", "evaluate", "summarise", "resize_multiple_of",
           "downsize_max_side"]

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
    p = _as_hwc(pred, "pred")
    g = _as_hwc(gt, "gt")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown metric convention {convention!r}; use one of {CONVENTIONS}")
    if convention == "la":
        p = resize_multiple_of(p, 8)
        g = resize_multiple_of(g, 8)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt differ in shape: {p.shape} vs {g.shape} (convention {convention!r})")
    if convention == "errnet":
        p = np.clip(p, 0.0, 1.0) * 255.0
        g = np.clip(g, 0.0, 1.0) * 255.0
    else:
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


def evaluate(predict: Callable, dataset, conventions: Iterable[str] = CONVENTIONS, max_side: int | None = None,
             max_images: int | None = None, device: str | None = None, progress: bool = False,
             lpips: bool = False):
    """Score ``predict`` on every image of ``dataset`` that has ground truth.

    ``predict`` maps a ``(1,3,H,W)`` float tensor in [0, 1] to a ``(1,3,H,W)`` tensor. Under the
    ``"la"`` convention the input is first resized to a multiple of 8 (as the LA release does) and
    the ground truth is resized the same way; under ``"errnet"`` (no resizing) the input is
    reflect-padded to a multiple of 8 and the output cropped back to the native size. With
    ``max_side`` both input and ground truth are first shrunk consistently (antialiased) so the
    longer side is at most ``max_side``. When the (shrunk) image is already a multiple of 8 the
    prediction is made once and scored under both conventions. Returns a ``pandas.DataFrame`` with one row per image: ``image``, ``psnr_<c>``,
    ``ssim_<c>`` for each convention, ``seconds`` (time of the first prediction), ``height``, ``width``
    (size scored, after ``max_side``); with ``lpips`` also ``lpips`` (LPIPS-VGG, :mod:`sirr.lpips_vgg`, on the
    first convention's images; lower is better).
    """
    conventions = tuple(conventions)
    rows = []
    n = len(dataset) if max_images is None else min(len(dataset), int(max_images))
    it = range(n)
    if progress:
        it = tqdm(it, desc=f"evaluating {getattr(dataset, 'name', '')}", unit="img")

    def run(img: np.ndarray, pad: bool) -> tuple[np.ndarray, float]:
        h, w = img.shape[:2]
        x = to_tensor(img, device=device)
        ph, pw = (-h) % 8, (-w) % 8
        if pad and (ph or pw):  # reflect-pad to a multiple of 8, crop back: no resizing
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
        t0 = time.perf_counter()
        with torch.no_grad():
            y = predict(x)
        if isinstance(y, torch.Tensor) and y.is_cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        return np.clip(to_image(y), 0.0, 1.0)[:h, :w], dt

    for i in it:
        s = dataset[i]
        name, I, T = s[0], s[1], s[2]
        if T is None:
            continue
        I = downsize_max_side(np.asarray(I, dtype=np.float32), max_side)
        T = downsize_max_side(np.asarray(T, dtype=np.float32), max_side)
        row = {"image": name}
        seconds = []
        outs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if "la" in conventions:
            I8 = resize_multiple_of(I.astype(np.float64), 8).astype(np.float32)
            T8 = resize_multiple_of(T.astype(np.float64), 8).astype(np.float32)
            y, dt = run(I8, pad=False)
            seconds.append(dt)
            outs["la"] = (y, T8)
        if any(c != "la" for c in conventions):
            if "la" in outs and I.shape[0] % 8 == 0 and I.shape[1] % 8 == 0:
                outs["native"] = outs["la"]  # same input: predict once
            else:
                y, dt = run(I, pad=True)
                seconds.append(dt)
                outs["native"] = (y, T)
        for c in conventions:
            y, gt = outs["la" if c == "la" else "native"]
            row[f"psnr_{c}"] = psnr(y, gt, c)
            row[f"ssim_{c}"] = ssim(y, gt, c)
        if lpips:
            y, gt = outs["la" if conventions[0] == "la" else "native"]
            row["lpips"] = lpips_vgg(y, gt)
        row.update(seconds=seconds[0], height=I.shape[0], width=I.shape[1])
        rows.append(row)
    cols = (["image"] + [f"{m}_{c}" for c in conventions for m in ("psnr", "ssim")] + (["lpips"] if lpips else [])
            + ["seconds", "height", "width"])
    return pd.DataFrame(rows, columns=cols)


def summarise(df, by: str | None = None):
    """Mean of each metric column (``inf`` PSNRs excluded, counted in ``n_inf``), with ``n`` images.

    ``by`` groups rows (e.g. by a ``dataset`` column). Returns a ``pandas.DataFrame``.
    """
    metric_cols = [c for c in df.columns if c.startswith(("psnr", "ssim")) or c in ("lpips", "seconds")]

    def agg(g):
        out: dict = {"n": int(len(g))}
        infs = {}
        for c in metric_cols:
            v = pd.to_numeric(g[c], errors="coerce").to_numpy(dtype=float)
            fin = v[np.isfinite(v)]
            out[c] = float(fin.mean()) if fin.size else (math.inf if np.isinf(v).any() else math.nan)
            if c.startswith("psnr"):
                infs[f"{c}_n_inf"] = int(np.isinf(v).sum())
        out.update(infs)
        return pd.Series(out, dtype=object)

    if by is None:
        res = agg(df).to_frame().T
    else:
        res = df.groupby(by, sort=False).apply(agg, include_groups=False)
    return res.infer_objects()


#: The three verdicts of :func:`paired_difference`, decided by the 95% interval of the mean paired difference.
VERDICTS = ("better", "worse", "no clear difference")
#: Metrics where a smaller value is better (everything else: larger is better).
LOWER_IS_BETTER = frozenset({"lpips"})


def paired_difference(model: Sequence[float], baseline: Sequence[float], metric: str = "psnr_la", *,
                      confidence: float = 0.95, resamples: int = 10_000, seed: int = 0) -> dict:
    """Mean of ``model − baseline`` over the same images, with a paired bootstrap interval and a verdict.

    The interval is SciPy's bootstrap (BCa, ``resamples`` draws, fixed ``seed``) of the mean per-image
    difference. The verdict is ``"better"`` when the whole interval lies on the good side of 0 (above for
    PSNR/SSIM, below for :data:`LOWER_IS_BETTER` metrics), ``"worse"`` when it lies on the bad side, and
    ``"no clear difference"`` when it contains 0. Non-finite pairs (identical images: PSNR ∞) are dropped.
    Returns ``{"metric", "n", "mean", "low", "high", "n_better", "verdict", "confidence"}``.
    """
    a, b = np.asarray(model, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_difference: need two 1-D sequences over the same images; got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    lower = metric in LOWER_IS_BETTER
    out = {"metric": metric, "n": int(d.size), "confidence": confidence}
    if d.size < 2:
        return {**out, "mean": float(d.mean()) if d.size else math.nan, "low": math.nan, "high": math.nan,
                "n_better": int(((d < 0) if lower else (d > 0)).sum()), "verdict": "no clear difference"}
    if np.ptp(d) == 0:  # every image moved by the same amount: the interval is that point
        low = high = float(d[0])
    else:
        ci = bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=resamples, method="BCa",
                       random_state=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    good_side = (high < 0) if lower else (low > 0)
    bad_side = (low > 0) if lower else (high < 0)
    verdict = "better" if good_side else "worse" if bad_side else "no clear difference"
    return {**out, "mean": float(d.mean()), "low": low, "high": high,
            "n_better": int(((d < 0) if lower else (d > 0)).sum()), "verdict": verdict}


def seed_paired_difference(differences: Sequence[Sequence[float]], *, confidence: float = 0.95,
                           resamples: int = 10_000, seed: int = 0) -> dict:
    """Mean paired difference over training seeds and images, with a two-level bootstrap interval.

    ``differences[s]`` holds, for training seed ``s``, the per-image differences between two arms trained
    from the same initialisation on the same batches (arm A − arm B on each held-out image). Both sources
    of variation count: each bootstrap draw resamples the seeds with replacement, then the images within
    each drawn seed, and takes the grand mean (a hierarchical, or cluster, percentile bootstrap). With few
    seeds the interval is honest about them: two seeds that disagree give an interval spanning both.
    Non-finite values are dropped. Returns ``{"n_seeds", "n", "mean", "low", "high", "seed_means",
    "confidence"}``; ``low``/``high`` are NaN with no values.
    """
    groups = [np.asarray(d, dtype=np.float64) for d in differences]
    groups = [g[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if g.size]
    out = {"n_seeds": len(groups), "n": int(sum(g.size for g in groups)), "confidence": confidence,
           "seed_means": [float(g.mean()) for g in groups]}
    if not groups:
        return {**out, "mean": math.nan, "low": math.nan, "high": math.nan}
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    k = len(groups)
    picks = rng.integers(0, k, size=(resamples, k))
    for b in range(resamples):
        total, count = 0.0, 0
        for s in picks[b]:
            g = groups[s]
            total += g[rng.integers(0, g.size, size=g.size)].sum()
            count += g.size
        means[b] = total / count
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    grand = float(np.concatenate(groups).mean())
    return {**out, "mean": grand, "low": float(low), "high": float(high)}
