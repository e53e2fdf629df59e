"""Is a trained model removing reflections, or only darkening its input? (chapter 6)

Every synthetic training mixture is brighter than its background, because the reflection adds light. A network
can therefore lower its loss by darkening every input a little, and a darkened photo can score above the input
in PSNR when the ground truth happens to be darker. Real test sets make this a live question: the ground truths
of real20 and SIR² were photographed without the glass, and their brightness relative to the input varies from
photo to photo.

:func:`brightness_study` separates the two on the real test sets, image by image:

- **The constant-gain baseline** ``c · I``. ``c`` is the least-squares gain ``Σ I·T / Σ I²`` on the preset's
  held-out synthetic validation triples (the training distribution, never a test set). It is the best any
  network could do by darkening alone, if it learned one gain for every photo.
- **The model against that baseline**, with a paired 95% interval per set.
- **Both at the ground truth's brightness.** The model's output and the input are each multiplied by the ground
  truth's mean over their own mean (then clipped to [0, 1]), then compared. This uses the ground truth, so it is a diagnosis, not a
  method: it asks what the model does beyond brightness.
- **Brightness ratios**: mean(ground truth) / mean(input) and mean(output) / mean(input), per image.

Images are scored at the preset's evaluation size, under the LA convention (resized to a multiple of 8), as in
:func:`sirrbook.evaluation.evaluate`. The model is the preset's committed weights where the repository has them
(what ``sirr remove`` runs), else the model of record of the preset's finished run; it runs in the path ``sirr
remove`` uses. The study never trains.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from sirr.config import RunConfig
from sirr.errors import SirrError
from sirr.messages import repo_relative
from sirr.metrics import psnr, ssim
from sirr.train.validation import ValidationSet, held_out_validation, hold_out
from sirrbook.evaluation import la_sized, paired_difference, verdict_phrase
from sirrbook.results import load_or_compute

__all__ = ["REAL_SETS", "least_squares_gain", "validation_gain", "score_brightness", "brightness_study",
           "pooled_difference", "brightness_frame", "brightness_sentence", "BrightnessError"]

#: The real test sets the study reads (those with ground truth photographed without the glass).
REAL_SETS = ("real20", "sir2_postcard", "sir2_solidobject", "sir2_wild")
#: Photos synthesised for the gain when a preset holds none out for validation (``smoke``: plumbing only).
FALLBACK_GAIN_PHOTOS = 8
#: The per-image measures the study stores, per set.
MEASURES = ("truth_ratio", "output_ratio", "psnr_identity", "psnr_gain", "psnr_model", "psnr_identity_matched",
            "psnr_model_matched", "ssim_identity", "ssim_gain", "ssim_model")


class BrightnessError(SirrError, ValueError):
    """The brightness study cannot run as asked (no images with ground truth, no photos for the gain)."""


def least_squares_gain(I: torch.Tensor, T: torch.Tensor) -> float:
    """The one gain ``c`` that minimises ``Σ (c·I − T)²`` over every pixel: ``Σ I·T / Σ I²``."""
    I, T = I.double(), T.double()
    den = float((I * I).sum())
    if I.shape != T.shape or den <= 0:
        raise BrightnessError(f"least_squares_gain: need inputs of one shape with some light; got {tuple(I.shape)}, "
                              f"{tuple(T.shape)}, Σ I² = {den}")
    return float((I * T).sum()) / den


def validation_gain(run: RunConfig) -> dict[str, Any]:
    """``{"gain", "photos", "held_out", "recipe", "size", "truth_ratio"}``: :func:`least_squares_gain` on the
    preset's validation triples (the photos every trainer holds out), or, for a preset that holds none out, on
    :data:`FALLBACK_GAIN_PHOTOS` triples of its training photos (``held_out`` False; ``smoke`` only)."""
    from sirrbook.experiments import _training_photos  # the one cached training pool

    v = run.preset.validation
    n = v.photos or FALLBACK_GAIN_PHOTOS
    photos = _training_photos(run)
    if len(photos) < n + 2:
        raise BrightnessError(f"validation_gain: {len(photos)} training photos cannot give {n} triples for the gain")
    _, vs = held_out_validation(run, photos)
    if vs is None:  # smoke: triples of training photos, by the same recipe
        vs = ValidationSet(hold_out(photos, n)[1], v.recipe, v.size, "cpu")
    return {"gain": least_squares_gain(vs.I, vs.T), "photos": len(vs), "held_out": bool(v.photos),
            "recipe": v.recipe, "size": v.size, "truth_ratio": float(vs.T.double().mean() / vs.I.double().mean())}


def _scaled(img: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(img * np.float32(factor), 0.0, 1.0)


def score_brightness(predict: Callable[[np.ndarray], np.ndarray], dataset, gain: float,
                     max_side: int | None = None) -> dict[str, list]:
    """Per image of ``dataset`` with ground truth: the :data:`MEASURES` (and ``image``), PSNR and SSIM under the LA
    convention. ``predict`` maps an (H, W, 3) float image in [0, 1] to the model's output of the same shape."""
    out: dict[str, list] = {"image": [], **{m: [] for m in MEASURES}}
    for i in range(len(dataset)):
        s = dataset[i]
        name, I, T = s[0], s[1], s[2]
        if T is None:
            continue
        I, T = la_sized(I, max_side), la_sized(T, max_side)
        Y = np.clip(np.asarray(predict(I), np.float32), 0.0, 1.0)
        mi, mt, my = float(I.mean()), float(T.mean()), float(Y.mean())
        G = _scaled(I, gain)
        row = {"truth_ratio": mt / mi, "output_ratio": my / mi,
               "psnr_identity": psnr(I, T, "la"), "psnr_gain": psnr(G, T, "la"), "psnr_model": psnr(Y, T, "la"),
               "psnr_identity_matched": psnr(_scaled(I, mt / mi), T, "la"),
               "psnr_model_matched": psnr(_scaled(Y, mt / max(my, 1e-8)), T, "la"),
               "ssim_identity": ssim(I, T, "la"), "ssim_gain": ssim(G, T, "la"), "ssim_model": ssim(Y, T, "la")}
        out["image"].append(str(name))
        for k, v in row.items():
            out[k].append(float(v))
    if not out["image"]:
        raise BrightnessError(f"score_brightness: {getattr(dataset, 'name', 'the dataset')} has no image with ground "
                              "truth")
    return out


def _model(run: RunConfig, method: str):
    """``(remover, words)``: the preset's committed weights where the repository has them, else the model of record
    of the preset's finished run under ``runs/``, as ``sirr remove`` runs them. It never trains: without either,
    :class:`BrightnessError` says how to get one."""
    from sirr.methods import get_method
    from sirr.train.checkpoint import selected_checkpoint
    from sirrbook.remove import load_method
    from sirrbook.weights import committed_weights

    found = committed_weights(run, method, run.preset.name, run.seed)
    if found is not None:
        path, entry = found
        return load_method(method, path, run.device), f"committed weights {entry['path']}"
    rdir = get_method(method).run_dir(run, "full")
    path = selected_checkpoint(rdir)
    if path is None:
        raise BrightnessError(f"no {method.upper()} weights at preset {run.preset.name!r}, seed {run.seed}: none "
                              f"committed and no finished run in {rdir}; train one first with `python -m sirr train "
                              f"{method} --preset {run.preset.name} --seed {run.seed}`")
    return load_method(method, path, run.device), f"the model of record {repo_relative(path)}"


def brightness_study(run: RunConfig, method: str = "la", verbose: bool = True) -> dict:
    """The stored study ``brightness/<method>`` of the preset's model (computed when missing or ``run.retrain``):
    the gain (:func:`validation_gain`), the model used, and per real set the per-image :data:`MEASURES`."""
    from sirrbook import experiments as ex
    from sirrbook.remove import predict as run_on

    def compute() -> dict:
        t0 = time.perf_counter()
        remover, words = _model(run, method)  # first: a missing model is an error before any work
        gain = validation_gain(run)
        sets = ex.evaluation_datasets(run, REAL_SETS)
        per_set = {name: score_brightness(lambda img: run_on(remover.fn, img, run.device), ds, gain["gain"],
                                          run.preset.eval.max_side)
                   for name, ds in sets.items()}
        return {"method": method, "model": words, "source": remover.source, "gain": gain,
                "max_side": run.preset.eval.max_side, "convention": "la", "sets": per_set,
                "seconds": time.perf_counter() - t0}

    return load_or_compute(run, ex.experiment_name(run, f"brightness/{method}"), compute, seed=run.seed,
                           verbose=verbose)


GAIN_VS_INPUT, MODEL_VS_INPUT, MODEL_VS_GAIN = "gain − input", "model − input", "model − gain"
MATCHED = "model − input, both at the truth's brightness"
#: The paired PSNR comparisons of :func:`brightness_frame`: column prefix -> (measure, baseline measure).
CONTRASTS = {
    GAIN_VS_INPUT: ("psnr_gain", "psnr_identity"),
    MODEL_VS_INPUT: ("psnr_model", "psnr_identity"),
    MODEL_VS_GAIN: ("psnr_model", "psnr_gain"),
    MATCHED: ("psnr_model_matched", "psnr_identity_matched"),
}
#: The row that pools every real image of the study.
POOLED = "all real photos (pooled)"


def _pooled(study: dict) -> dict[str, list]:
    """Every image of the study, its sets pooled: ``image`` and each of the :data:`MEASURES`."""
    return {k: [v for s in study["sets"].values() for v in s[k]] for k in ("image", *MEASURES)}


def pooled_difference(study: dict, contrast: str, metric: str = "psnr_la") -> dict:
    """:func:`sirrbook.evaluation.paired_difference` of one :data:`CONTRASTS` entry over every image of the study,
    its sets pooled (``metric="ssim_la"``: the model against the gain in SSIM)."""
    a, b = CONTRASTS[contrast] if metric == "psnr_la" else ("ssim_model", "ssim_gain")
    pooled = _pooled(study)
    return paired_difference(pooled[a], pooled[b], metric)


def brightness_frame(study: dict) -> pd.DataFrame:
    """One row per set (and :data:`POOLED`): n, median brightness ratios, and for each :data:`CONTRASTS` entry
    the mean PSNR difference (dB) with its paired 95% interval and verdict; ``model − gain`` also in SSIM."""
    sets = dict(study["sets"])
    if len(sets) > 1:
        sets[POOLED] = _pooled(study)
    rows = []
    for name, s in sets.items():
        out = np.asarray(s["output_ratio"])
        row: dict[str, Any] = {"set": name, "n": len(s["image"]),
                               "truth / input (median)": float(np.median(s["truth_ratio"])),
                               "output / input (median)": float(np.median(out)),
                               "output / input (range)": (float(out.min()), float(out.max()))}
        for label, (a, b) in CONTRASTS.items():
            d = paired_difference(s[a], s[b], "psnr_la")
            row.update({f"{label}": d["mean"], f"{label} low": d["low"], f"{label} high": d["high"],
                        f"{label} verdict": d["verdict"]})
        d = paired_difference(s["ssim_model"], s["ssim_gain"], "ssim_la")
        row.update({f"{MODEL_VS_GAIN} SSIM": d["mean"], f"{MODEL_VS_GAIN} SSIM low": d["low"],
                    f"{MODEL_VS_GAIN} SSIM high": d["high"], f"{MODEL_VS_GAIN} SSIM verdict": d["verdict"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("set")


def _range(lo: float, hi: float, digits: int = 2) -> str:
    return f"{lo:.{digits}f}" if round(lo, digits) == round(hi, digits) else f"{lo:.{digits}f}–{hi:.{digits}f}"


def brightness_sentence(study: dict, names: dict[str, str] | None = None) -> str:
    """What the study found, in words and from its numbers: how bright the model makes its outputs, what the
    constant gain gets, how the model compares with that gain (pooled, then per set), and what is left at the
    ground truth's brightness. ``names`` maps set keys to the names to print."""
    names = names or {}
    df = brightness_frame(study)
    g = study["gain"]
    real = df.drop(index=POOLED, errors="ignore")
    images = _pooled(study)
    truth, output = np.asarray(images["truth_ratio"]), np.asarray(images["output_ratio"])
    lo, hi = float(output.min()), float(output.max())
    slope = float(np.polyfit(truth, output, 1)[0]) if np.ptp(truth) > 0 else float("nan")
    method = study["method"].upper()
    pooled = df.loc[POOLED] if POOLED in df.index else df.iloc[0]
    where = f"over all {int(pooled['n'])} real photos" if POOLED in df.index else f"on {df.index[0]}"

    def words(label: str, reference: str, row=pooled) -> str:
        return (f"{verdict_phrase(row[f'{label} verdict'], reference)} ({row[label]:+.2f} dB, 95% interval "
                f"{row[f'{label} low']:+.2f} to {row[f'{label} high']:+.2f})")

    groups: dict[str, list[str]] = {}
    for n, r in real.iterrows():
        groups.setdefault(r[f"{MODEL_VS_GAIN} verdict"], []).append(f"{names.get(n, n)} ({r[MODEL_VS_GAIN]:+.2f} dB)")
    per_set = "; ".join(f"{verdict_phrase(k, 'it')} on {', '.join(v)}" for k, v in groups.items())
    return (f"{method}'s outputs keep {_range(lo, hi)} of their input's mean brightness, while the ground truth's "
            f"ranges from {truth.min():.2f} to {truth.max():.2f} of the input's; a straight line fitted to the one "
            f"against the other has slope {slope:.2f} (1 would follow the ground truth, 0 ignore it). The constant gain "
            f"{g['gain']:.3f}, fitted on {g['photos']} synthetic validation triples, is "
            f"{words(GAIN_VS_INPUT, 'the input')} {where}. {method} is {words(MODEL_VS_GAIN, 'that gain')}; per set, "
            f"it is {per_set}. With both scaled to the ground truth's brightness, {method} is "
            f"{words(MATCHED, 'the input')}.")
