"""Scoring a model on a benchmark set, and the statistics of the book's verdicts against a baseline.

:func:`evaluate` runs a ``predict`` callable over a :class:`sirr.data.datasets.PairDataset` and scores each
image under the named metric conventions of :mod:`sirr.metrics` (and LPIPS); :func:`summarise` averages a
set. :func:`paired_difference` turns two arms' per-image scores into a mean difference, a paired bootstrap
interval and a verdict (:data:`VERDICTS`); :func:`seed_paired_difference` does the same over training seeds
too (the claims of chapter 07). None of this is either paper's method: it is how this book reports.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import bootstrap
from tqdm.auto import tqdm

from sirr.data.images import to_image, to_tensor
from sirr.lpips_vgg import lpips_vgg
from sirr.metrics import CONVENTIONS, downsize_max_side, psnr, resize_multiple_of, ssim

__all__ = ["evaluate", "summarise", "paired_difference", "seed_paired_difference", "VERDICTS", "LOWER_IS_BETTER"]


def la_sized(img: np.ndarray, max_side: int | None = None) -> np.ndarray:
    """``img`` as the LA convention scores it: shrunk (antialiased) so its longer side is at most ``max_side``, then
    resized to a multiple of 8, as float32."""
    small = downsize_max_side(np.asarray(img, dtype=np.float32), max_side)
    return resize_multiple_of(small.astype(np.float64), 8).astype(np.float32)


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
            I8, T8 = la_sized(I), la_sized(T)
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


def verdict_phrase(verdict: str, reference: str = "the input") -> str:
    """A verdict of :data:`VERDICTS` as words that fit a sentence: ``"not clearly different from the input"``."""
    phrases = {"better": f"better than {reference}", "worse": f"worse than {reference}",
               "no clear difference": f"not clearly different from {reference}"}
    if verdict not in phrases:
        raise ValueError(f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}")
    return phrases[verdict]


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
