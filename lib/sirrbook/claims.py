"""The papers' claims, tested at CPU scale: small controlled experiments with paired seeds and intervals.

Each :class:`Claim` states what a paper claims and what we predict before anything runs. Its arms differ
in one thing only: every arm of a seed starts from the same initialisation and draws the same batches
(the seed fixes both), trains the same number of steps, and is measured on the same held-out images.
The paired difference (reference arm − other arm, image by image) is summarised over seeds and images
by :func:`sirrbook.evaluation.seed_paired_difference`, and the verdict comes from its 95% interval:

- ``"agrees with the paper"``: the interval lies wholly on the side the paper predicts;
- ``"disagrees"``: it lies wholly on the other side;
- ``"inconclusive at this scale"``: it contains 0.

Every (claim, arm, seed) is one named run, stored as ``results/<preset>/claims/<id>/<arm>/<seed>.json``
as soon as it finishes; a rerun skips finished runs (:func:`run_claim`), and :func:`claim_summary` draws no
verdict until all of a claim's runs are in. Run them with ``python -m sirr claims E3 --preset cpu``.

The measures:

- *held-out synthetic triples* (``"validation"``): the preset's validation photos (never trained on),
  made into triples once by the validation recipe, where the reflection layer R is known;
- *real photos* (``"real"``): real20 and the SIR² sets (the preset's declared evaluation subsets), pooled;
- ``reflection_edge_energy``: of the input's gradient energy on the reflection's strong edges (pixels among
  R's strongest 10% of gradients and not among T's), the fraction the output keeps;
- ``background_edge_energy``: of the ground truth's gradient energy on the background's strong edges (T's
  strongest 10%, not R's), the fraction the output has;
- ``sharpness``: the output's mean gradient energy over the ground truth's (1 = as sharp as the truth);
- ``rcmap_auc``: how well Ĉ ranks the reflection-dominated pixels above the others (ROC AUC per image,
  scikit-learn). A pixel is reflection-dominated when C* > 0.5, C* being the confidence LA Eq. 7-8 asks
  for, which is known where R is (:func:`true_rcmap`). (Eq. 16's binary target, |I − T| above
  max(0.3, ...), marks no pixel at all in half of the held-out triples, so it cannot rank.) And
  ``rcmap_loss``: L_Ĉ of LA Eq. 8 per image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from sirr import paper_numbers, train
from sirr.train.engine import seed_everything
from sirr.atomic import atomic_write_bytes
from sirr.config import RunConfig
from sirr.errors import SirrError
from sirr.data.synthesis import ReflectionSynthesizer
from sirr.losses import LocationAwareLoss, stage2_generator_loss
from sirr.losses.location_aware import rcmap_composition_loss
from sirr.metrics import psnr, ssim
from sirrbook.evaluation import LOWER_IS_BETTER, seed_paired_difference
from sirr.messages import repo_relative
from sirr.methods import get_method
from sirr.models.location_aware import LocationAware
from sirr.train.rundir import default_run_dir
from sirrbook.results import load_result, result_path, save_result
from sirr.train.validation import ValidationSet, held_out_validation, hold_out

__all__ = ["Claim", "Arm", "CLAIMS", "VERDICTS", "claim", "claim_run", "run_claim", "claim_progress",
           "claim_summary", "claim_runs", "park", "unpark", "parked_dir", "parked_step", "reflection_edge_energy",
           "background_edge_energy", "sharpness",
           "rcmap_auc", "true_rcmap", "ClaimError", "pipeline_check", "la_loss_shares",
           "ts_stage2_loss_shares", "untested_reason", "paper_gaps", "TESTED_BY"]

#: The verdicts a claim can get, from its interval.
VERDICTS = ("agrees with the paper", "disagrees", "inconclusive at this scale")

#: The real test sets of :attr:`Claim` measures on real photos (each at the preset's declared subset).
REAL_SETS = ("real20", "sir2_postcard", "sir2_solidobject", "sir2_wild")

#: Gradient quantile above which a pixel is on a layer's strong edges.
EDGE_QUANTILE = 0.9

#: Held-out triples (the first, by the validation set's order) whose outputs or RCMaps a run stores as PNGs.
EXAMPLES = 3

#: Measures where a lower value is better (for the direction of a verdict); the rest are higher-is-better.
LOWER = frozenset({*LOWER_IS_BETTER, "rcmap_loss"})


class ClaimError(SirrError, ValueError):
    """An unknown claim, arm or seed."""


@dataclass(frozen=True)
class Arm:
    """One arm of a claim: its key, a label, and what it changes.

    ``variant`` is the row of :mod:`sirr.registry` it trains (``"full"``: the method as the preset trains it);
    ``schedule`` changes the steps (``"stage1_only"``: TS stage 1 for all of the claim's steps, and B_ini is the
    output); ``settings`` are :class:`~sirr.models.LocationAware` flags for the detector-only claim (E2).
    """

    name: str
    label: str
    variant: str = "full"
    schedule: str = "preset"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """A paper's claim, our prediction, and the controlled experiment that tests it.

    ``primary`` is the (measure set, metric) whose interval gives the verdict; ``expect`` is the sign the
    paper predicts for reference − other on it (+1: the reference arm scores higher). ``arms[0]`` is the
    reference (the paper's method); every other arm is compared with it.
    """

    id: str
    method: str  # the method whose networks the arms train (sirr.methods)
    kind: str  # "network": the whole network, trained by Method.train; "detector": LA's RDM alone (E2)
    source: str
    claim: str
    prediction: str
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    schedule: str  # the preset's steps every arm trains: "la" (la.steps), "ts_stage1" or "ts_total" (stage 1 + 2)
    primary: tuple[str, str]
    expect: int
    paper: str  # the paper's number or statement beside ours
    measures: tuple[str, ...]  # "validation" and/or "real"

    @property
    def reference(self) -> Arm:
        return self.arms[0]

    def steps(self, run: RunConfig) -> int:
        """Optimiser steps per arm at ``run``'s preset (every arm the same)."""
        la, ts = run.preset.la, run.preset.ts
        return {"la": la.steps, "ts_stage1": ts.stage1_steps, "ts_total": ts.stage1_steps + ts.stage2_steps}[self.schedule]

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise ClaimError(f"{self.id} has no arm {name!r}; valid: {', '.join(a.name for a in self.arms)}")


def paper_gaps(table: dict[str, dict[str, float]], row: str) -> list[float]:
    """The paper's PSNR of "Ours" minus ``row``'s, per test-set column of an LA ablation table (SIR², real20, Nature)."""
    ours, other = table["ours"], table[row]
    return [ours[k] - other[k] for k in ours if k.endswith("psnr") and k in other]


def _gaps_text(table: dict, row: str, label: str) -> str:
    return f"{label} " + " / ".join(f"−{g:.1f}" for g in paper_gaps(table, row)) + " dB"


def _paper_drop(row: str) -> str:
    drops = paper_gaps(paper_numbers.LA_TABLE3, row)
    return f"PSNR {min(drops):.1f}-{max(drops):.1f} dB lower without L_SSIM (Table 3, three test sets)"


#: The four experiments of chapter 07 (issue 21), in the order they are run.
CLAIMS: dict[str, Claim] = {
    "E3": Claim(
        "E3", "ts", "network", "TS Fig. 1(d, e) and Sec. II",
        "Stage 1 trained with the feature-reduction loss L_FR gives a blurred background estimate B_ini without "
        "the reflection's edges; without L_FR the reflection's edges stay.",
        "B_ini keeps less of the input's energy on the reflection's strong edges with L_FR than without it "
        "(and, being blurred, less of the background's edge energy too).",
        (Arm("with_fr", "stage 1 with L_FR (paper)", "full", "stage1_only"),
         Arm("without_fr", "stage 1 without L_FR (Fig. 1e)", "wo_feature_reduction", "stage1_only")),
        (0, 1, 2), "ts_stage1", ("validation", "reflection_edge_energy"), -1,
        "qualitative: Fig. 1(d) shows no reflection edges with L_FR, Fig. 1(e) keeps them", ("validation",)),
    "E2": Claim(
        "E2", "la", "detector", "LA Sec. 3, Fig. 4 and Table 2",
        "Multi-scale Laplacian features locate reflections better than edge features (∂x, ∂y) or plain image "
        "features (Ĉ from I_ft).",
        "The RDM alone, trained on L_Ĉ (Eq. 8) for the same steps, ranks reflection-dominated pixels higher "
        "(RCMap AUC) from Laplacian features than from edge or image features.",
        (Arm("laplacian", "multi-scale Laplacian (paper)"),
         Arm("edge", "edge features ∂x, ∂y (Laplacian → Edge)", settings={"gradient_filter": "edge"}),
         Arm("image_features", "Ĉ from I_ft", settings={"rcmap_from": "image_features"})),
        (0, 1, 2), "la", ("validation", "rcmap_auc"), +1,
        "Table 2 (whole network, PSNR on SIR² / real20 / Nature): "
        + _gaps_text(paper_numbers.LA_TABLE2, "laplacian_to_edge", "Laplacian → Edge") + ", "
        + _gaps_text(paper_numbers.LA_TABLE2, "c_from_image_features", "Ĉ from I_ft"), ("validation",)),
    "E4": Claim(
        "E4", "ts", "network", "TS Sec. III, Sec. IV-C and Fig. 4",
        "The second stage recovers a sharper, better background than the first.",
        "Two stages (the preset's stage-1 then stage-2 steps) score a higher PSNR on real photos than stage 1 "
        "trained alone for the same total steps, and their output is sharper.",
        (Arm("two_stage", "stage 1 then stage 2 (paper)"),
         Arm("stage1_only", "stage 1 alone, same total steps", "full", "stage1_only")),
        (0, 1), "ts_total", ("real", "psnr_la"), +1,
        f"Table I: {paper_numbers.TS_TABLE1['proposed']} dB (SIR² average) for the two-stage method, no number for "
        "stage 1 alone; Fig. 4 shows B_final sharper than B_ini",
        ("validation", "real")),
    "E1": Claim(
        "E1", "la", "network", "LA Table 3",
        "Without L_SSIM, PSNR drops far below the full loss's: the largest effect of any row in Table 3.",
        "LA trained without L_SSIM scores a lower PSNR than the full loss at equal steps, on real photos and "
        "on held-out synthetic triples.",
        (Arm("full", "full loss (paper)"), Arm("wo_ssim", "w/o L_SSIM", "wo_ssim")),
        (0, 1, 2), "la", ("real", "psnr_la"), +1, _paper_drop("wo_ssim"), ("validation", "real")),
}


def claim(cid: str) -> Claim:
    """The :class:`Claim` called ``cid`` (``"E1"`` … ``"E4"``)."""
    try:
        return CLAIMS[cid.upper()]
    except KeyError:
        raise ClaimError(f"unknown claim {cid!r}; valid: {', '.join(CLAIMS)}") from None


def _experiment(c: Claim, arm: str) -> str:
    return f"claims/{c.id}/{arm}"


# ----------------------------------------------------------------------------------------------------
# Measures (the paper's own ideas are the masks; gradients come from kornia, AUC from scikit-learn)
# ----------------------------------------------------------------------------------------------------


def _gradient(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the luminance, (B, 3, H, W) -> (B, 1, H, W)."""
    return kornia.filters.sobel(kornia.color.rgb_to_grayscale(x.float().clamp(0, 1)))


def _strong(g: torch.Tensor, q: float = EDGE_QUANTILE) -> torch.Tensor:
    thr = torch.quantile(g.flatten(1), q, dim=1).view(-1, 1, 1, 1)
    return (g > thr) & (g > 1e-6)


def _energy_ratio(out: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> list[float]:
    go, gr = _gradient(out) ** 2, _gradient(ref) ** 2
    num, den = (go * mask).flatten(1).sum(1), (gr * mask).flatten(1).sum(1)
    return [float(n / d) if d > 0 else math.nan for n, d in zip(num, den)]


def reflection_edge_energy(out: torch.Tensor, I: torch.Tensor, T: torch.Tensor, R: torch.Tensor) -> list[float]:
    """Per image: the fraction of I's gradient energy on R's strong edges (not T's) that ``out`` keeps."""
    mask = _strong(_gradient(R)) & ~_strong(_gradient(T))
    return _energy_ratio(out, I, mask)


def background_edge_energy(out: torch.Tensor, T: torch.Tensor, R: torch.Tensor) -> list[float]:
    """Per image: ``out``'s gradient energy on T's strong edges (not R's), as a fraction of T's own."""
    mask = _strong(_gradient(T)) & ~_strong(_gradient(R))
    return _energy_ratio(out, T, mask)


def sharpness(out: torch.Tensor, T: torch.Tensor) -> list[float]:
    """Per image: ``out``'s mean gradient energy over the ground truth's (1 = as sharp as T)."""
    return _energy_ratio(out, T, torch.ones_like(_gradient(T), dtype=torch.bool))


def true_rcmap(I: torch.Tensor, T: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """C*, the confidence LA Eq. 7-8 asks for: per pixel, the c in [0, 1] that minimises ‖(1 − c)T + R − I‖²
    over the colour channels, c = Σ T(T + R − I) / Σ T² (clipped), (B, 1, H, W)."""
    num = (T * (T + R - I)).sum(1, keepdim=True)
    return (num / (T * T).sum(1, keepdim=True).clamp_min(1e-6)).clamp(0.0, 1.0)


def rcmap_auc(rcmap: torch.Tensor, I: torch.Tensor, T: torch.Tensor, R: torch.Tensor) -> list[float]:
    """Per image: ROC AUC of Ĉ for the reflection-dominated pixels, C* > 0.5 (:func:`true_rcmap`); NaN where
    they are all or none of the image."""
    target = (true_rcmap(I, T, R) > 0.5).flatten(1).numpy()
    score = rcmap.detach().float().flatten(1).numpy()
    return [float(roc_auc_score(t, s)) if 0 < t.sum() < t.size else math.nan for t, s in zip(target, score)]


def _rcmap_of(model: LocationAware, I: torch.Tensor) -> torch.Tensor:
    """The detector's Ĉ of the first iteration on ``I``, whose X_in is [I, I] (T̂_0 = I), in batches."""
    return _batched(lambda x: model.detect(torch.cat([x, x], 1))[0], I)


def _rcmap_loss(rcmap: torch.Tensor, I: torch.Tensor, T: torch.Tensor, R: torch.Tensor) -> list[float]:
    """Per image: L_Ĉ of LA Eq. 8 for one iteration, MSE((1 − Ĉ) ∘ T + R, I)."""
    return [float(v) for v in F.mse_loss((1.0 - rcmap) * T + R, I, reduction="none").flatten(1).mean(1)]


# ----------------------------------------------------------------------------------------------------
# Held-out triples and training data
# ----------------------------------------------------------------------------------------------------


def _photos(run: RunConfig):
    from sirrbook.experiments import _training_photos  # the one cached training pool

    return _training_photos(run)


def _held_out(run: RunConfig) -> ValidationSet:
    """The preset's validation triples (the same photos every trainer holds out), with R kept."""
    _, vs = held_out_validation(run, _photos(run))
    if vs is None:
        raise ClaimError(f"preset {run.preset.name!r} has no validation photos; the claims need held-out triples")
    return vs


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n: int = 4) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i: i + n]).detach().float().cpu() for i in range(0, x.shape[0], n)])


def _validation_measures(out: torch.Tensor, vs: ValidationSet) -> dict[str, list[float]]:
    I, T, R = vs.I.float().cpu(), vs.T.float().cpu(), vs.R.float().cpu()
    o = out.clamp(0, 1)
    p, t = o.permute(0, 2, 3, 1).numpy(), T.permute(0, 2, 3, 1).numpy()
    return {"psnr_la": [psnr(a, b, "la") for a, b in zip(p, t)], "ssim_la": [ssim(a, b, "la") for a, b in zip(p, t)],
            "reflection_edge_energy": reflection_edge_energy(o, I, T, R),
            "background_edge_energy": background_edge_energy(o, T, R), "sharpness": sharpness(o, T)}


# ----------------------------------------------------------------------------------------------------
# One run per (claim, arm, seed)
# ----------------------------------------------------------------------------------------------------


def _curve(run_dir) -> list[dict]:
    try:
        m = train.read_metrics(run_dir)
    except train.MetricsNotFoundError:
        return []
    if "val_psnr" not in m:
        return []
    v = m[m["val_psnr"].notna()]
    return [{"step": int(r.step), "val_psnr": float(r.val_psnr), "val_ssim": float(getattr(r, "val_ssim", math.nan)),
             "val_identity_psnr": float(getattr(r, "val_identity_psnr", math.nan))} for r in v.itertuples()]


def _real_measures(run: RunConfig, predict: Callable[[torch.Tensor], torch.Tensor], model,
                   method: str) -> dict[str, dict]:
    from sirrbook.experiments import _inference_path, _score, evaluation_datasets

    sets = evaluation_datasets(run, REAL_SETS)  # the real sets present, each loaded once
    fast, path = _inference_path(model, run.device, method)
    scores, _ = _score(run, fast(predict), sets, keep_images=0)
    out: dict[str, dict] = {}
    for name, s in scores.items():
        per = s["per_image"]
        out[name] = {k: per[k] for k in ("psnr_la", "ssim_la", "lpips") if k in per}
        out[name]["image"] = per.get("image", [])
    return {"sets": out, "inference_path": path}


def _final_model(rdir, res, load, run: RunConfig):
    """The weights after every step (``final.pt``: equal steps across arms, never the best-validation pick)."""
    if res.truncated or not (rdir / "final.pt").is_file():
        raise ClaimError(f"{rdir} is unfinished (stopped by its time guard?); resume it without one")
    return load(rdir / "final.pt", device=run.device).eval()


def _run_dir(run: RunConfig, c: Claim, arm: Arm):
    """The arm's run folder (checkpoints and logs) at ``run.seed``: a ``full`` arm on the preset's schedule is
    the folder of ``python -m sirr train <method>`` itself, any other arm has its own."""
    m = get_method(c.method)
    if arm.variant == "full" and arm.schedule == "preset":
        return m.run_dir(run, "full")
    return default_run_dir(run, c.method, f"claim_{c.id}_{arm.name}")


def _train_network(run: RunConfig, c: Claim, arm: Arm) -> tuple[Any, dict]:
    """Train (or load, when finished) the arm's whole network through :meth:`sirr.methods.Method.train`.

    Every arm trains the claim's steps: the preset's schedule, or stage 1 alone for all of them
    (``schedule="stage1_only"``). An arm that is exactly the preset's recipe (variant ``full``, preset schedule)
    is the run of ``python -m sirr train <method> --seed s`` itself, in its usual folder.
    """
    m = get_method(c.method)
    overrides = m.schedule_overrides(run, c.steps(run), stage1_only=arm.schedule == "stage1_only")
    rdir = _run_dir(run, c, arm)
    unpark(run, c.id, arm.name, run.seed, rdir)
    res = m.train(run, arm.variant, run_dir=rdir, resume=True, progress=False, photos=_photos(run), **overrides)
    model = _final_model(rdir, res, m.load, run)
    return model, {"run_dir": str(rdir), "steps": int(res.steps), "overrides": overrides}


def _train_rdm(run: RunConfig, c: Claim, arm: Arm, vs: ValidationSet) -> tuple[LocationAware, dict]:
    """The RDM alone (MLSM or I_ft → RCMap head), trained on L_Ĉ (LA Eq. 8) of the first iteration.

    The first iteration's X_in is [I, I] (T̂_0 = I, as in :meth:`LocationAware.forward`). Adam at the
    preset's LA learning rate and betas, batch and crop; the MLSM kernel keeps its gradient clipping. Only
    the parameters on the path to Ĉ receive gradients. A run of this size (minutes) restarts from scratch if
    interrupted.
    """
    cfg = run.preset.la
    seed_everything(run.seed)
    gen = torch.Generator().manual_seed(run.seed)
    model = LocationAware(**arm.settings, generator=gen)
    photos, _ = hold_out(_photos(run), run.preset.validation.photos)
    synth = ReflectionSynthesizer(photos, recipe="la", size=cfg.crop, device="cpu", seed=run.seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas)
    curve, t0 = [], time.perf_counter()

    def held_out_loss() -> float:
        model.eval()
        rc = _rcmap_of(model, vs.I.cpu())
        model.train()
        return float(np.mean(_rcmap_loss(rc, vs.I.cpu(), vs.T.cpu(), vs.R.cpu())))

    model.train()
    n = c.steps(run)
    for step in range(1, n + 1):
        b = synth.batch(cfg.batch_size)
        I, T, R = b["I"], b["T"], b["R"]
        rcmap, _ = model.detect(torch.cat([I, I], dim=1))
        loss = rcmap_composition_loss([rcmap], I, T, R)  # L_Ĉ, LA Eq. 8, of one iteration (θ^0 = 1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % max(1, n // 10) == 0 or step == n:
            curve.append({"step": step, "train_loss": loss.item(), "held_out_rcmap_loss": held_out_loss()})
    model.eval()
    return model, {"steps": n, "curve_rdm": curve, "train_seconds": time.perf_counter() - t0,
                   "trained_parameters": int(sum(p.numel() for p in model.parameters() if p.grad is not None))}


def claim_run(run: RunConfig, cid: str, arm: str, seed: int, verbose: bool = True) -> dict:
    """Train and measure one (claim, arm, seed), store ``results/<preset>/claims/<id>/<arm>/<seed>.json``; a
    stored result is read instead (``run.retrain`` recomputes it)."""
    c = claim(cid)
    a = c.arm(arm)
    if seed not in c.seeds:
        raise ClaimError(f"{c.id} is pre-registered with seeds {list(c.seeds)}; got seed {seed}")
    exp = _experiment(c, a.name)
    if not run.retrain:
        rec = load_result(run, exp, seed)
        if rec is not None:
            return rec
    run_s = dataclasses.replace(run, seed=int(seed))
    t0 = time.perf_counter()
    vs = _held_out(run_s)
    info: dict[str, Any]
    measures: dict[str, dict] = {}
    images: dict[str, Any] = {}
    if c.kind == "detector":
        model, info = _train_rdm(run_s, c, a, vs)
        t1 = time.perf_counter()
        I, T, R = vs.I.cpu(), vs.T.cpu(), vs.R.cpu()
        rc = _rcmap_of(model, I)
        measures["validation"] = {"rcmap_auc": rcmap_auc(rc, I, T, R), "rcmap_loss": _rcmap_loss(rc, I, T, R)}
        truth = true_rcmap(I, T, R)
        for i in range(min(EXAMPLES, I.shape[0])):  # grey maps, stored as RGB PNGs beside the record
            images[f"rcmap_{i}"] = rc[i].expand(3, -1, -1).permute(1, 2, 0).numpy()
            images[f"true_rcmap_{i}"] = truth[i].expand(3, -1, -1).permute(1, 2, 0).numpy()
    else:
        model, info = _train_network(run_s, c, a)
        info["curve"] = _curve(info["run_dir"])
        t1 = time.perf_counter()
        m = get_method(c.method)
        if a.schedule == "stage1_only":  # B_ini: the output of a stage-1-only run
            predict = lambda x: m.predict_initial(model, x)  # noqa: E731
        else:
            predict = lambda x: m.predict(model, x)  # noqa: E731
        out = _batched(predict, vs.I.to(run_s.device))
        measures["validation"] = _validation_measures(out, vs)
        for i in range(min(EXAMPLES, out.shape[0])):
            images[f"output_{i}"] = out[i].clamp(0, 1).permute(1, 2, 0).numpy()
        if "real" in c.measures:
            real = _real_measures(run_s, predict, model, c.method)
            measures.update(real["sets"])
            info["inference_path"] = real["inference_path"]
    for i in range(min(EXAMPLES, len(vs))):  # the held-out triple itself, for figures beside the outputs
        images[f"input_{i}"] = vs.I[i].float().cpu().permute(1, 2, 0).numpy()
        images[f"truth_{i}"] = vs.T[i].float().cpu().permute(1, 2, 0).numpy()
    info.setdefault("train_seconds", t1 - t0)
    payload = {"claim": c.id, "arm": a.name, "label": a.label, "variant": a.variant, "schedule": a.schedule,
               "settings": a.settings, "seed": int(seed),
               "measures": measures, "validation_images": list(vs.names), **info,
               "eval_seconds": time.perf_counter() - t1}
    save_result(run_s, exp, payload, images=images, seed=seed)
    parked = parked_dir(run_s, c.id, a.name, seed)
    if parked.is_dir():  # the finished result replaces the committed resume state
        shutil.rmtree(parked)
    return load_result(run_s, exp, seed)


def claim_runs(c: Claim | str) -> list[tuple[str, int]]:
    """Every (arm, seed) of a claim, seed by seed (so each finished seed completes a pair)."""
    c = claim(c) if isinstance(c, str) else c
    return [(a.name, s) for s in c.seeds for a in c.arms]


def claim_progress(run: RunConfig, cid: str) -> dict:
    """``{"done", "total", "missing": [(arm, seed), ...], "parked": {(arm, seed): step}}`` from the stored results
    (``parked``: the missing runs whose resume state is committed, :func:`park`)."""
    c = claim(cid)
    todo = claim_runs(c)
    missing = [(a, s) for a, s in todo if not result_path(run, _experiment(c, a), s).is_file()]
    parked = {(a, s): st for a, s in missing if (st := parked_step(run, c.id, a, s)) is not None}
    return {"done": len(todo) - len(missing), "total": len(todo), "missing": missing, "parked": parked}


def run_claim(run: RunConfig, cid: str, seeds: Sequence[int] | None = None, verbose: bool = True,
              arms: Sequence[str] | None = None) -> list[dict]:
    """Run the claim's missing (arm, seed) runs in order, each stored as soon as it finishes.

    ``seeds`` and ``arms`` pick a part of them, e.g. to run two arms of one seed in two processes."""
    c = claim(cid)
    unknown = sorted(set(seeds or ()) - set(c.seeds))
    if unknown:
        raise ClaimError(f"{c.id}: seed(s) {', '.join(map(str, unknown))} not pre-registered; its seeds are "
                         f"{', '.join(map(str, c.seeds))}")
    for name in arms or ():
        c.arm(name)  # raises, naming the valid arms
    out = []
    for arm, seed in claim_runs(c):
        if (seeds is not None and seed not in seeds) or (arms is not None and arm not in arms):
            continue
        done = result_path(run, _experiment(c, arm), seed).is_file() and not run.retrain
        if verbose:
            print(f"{c.id} {arm} seed {seed}: {'stored' if done else 'running'}", flush=True)
        out.append(claim_run(run, c.id, arm, seed, verbose=verbose))
    return out


# ----------------------------------------------------------------------------------------------------
# Parking: an unfinished run's resume state, committed beside the results
# ----------------------------------------------------------------------------------------------------

#: Largest part a parked checkpoint is split into (under the 50 MB at which Git hosts start to warn).
PARK_PART_BYTES = 48 * 2**20

#: The run-folder files a parked run keeps besides ``last.pt`` (``best.pt`` is not: claims score the final
#: step, and the resumed run writes ``best.pt`` again at its next best validation score).
PARKED_LOGS = ("metrics.jsonl", "train.log")


def parked_dir(run: RunConfig, cid: str, arm: str, seed: int):
    """``results/<preset>/claims/<id>/<arm>/<seed>.parked/``: where an unfinished run's resume state is kept."""
    c = claim(cid)
    return result_path(run, _experiment(c, c.arm(arm).name), seed).with_suffix(".parked")


def park(run: RunConfig, cid: str, seeds: Sequence[int] | None = None) -> list[dict]:
    """Copy each unfinished network run of the claim (its ``last.pt``, in parts, and logs) beside its results.

    A training of hours outlives a working session but not a fresh machine: committing the parked folder
    lets the next :func:`claim_run` resume the run where it stopped instead of starting over (the resume
    is exact: model, optimiser, data order and random state are all in ``last.pt``). A finished result
    removes its parked folder. Returns one ``{"arm", "seed", "step", "path"}`` per run parked.
    """
    c = claim(cid)
    out = []
    for arm, seed in claim_progress(run, c.id)["missing"]:
        if (seeds is not None and seed not in seeds) or c.kind != "network":
            continue
        run_s = dataclasses.replace(run, seed=int(seed))
        rdir = _run_dir(run_s, c, c.arm(arm))
        if not (rdir / "last.pt").is_file():
            continue
        dest = parked_dir(run_s, c.id, arm, seed)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        data = (rdir / "last.pt").read_bytes()  # one read: a checkpoint replaced meanwhile is not mixed in
        step = int(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["step"])
        parts = []
        for k in range(0, max(len(data), 1), PARK_PART_BYTES):
            name = f"last.pt.{k // PARK_PART_BYTES:03d}"
            (tmp / name).write_bytes(data[k:k + PARK_PART_BYTES])
            parts.append(name)
        for name in PARKED_LOGS:
            if (rdir / name).is_file():
                shutil.copy2(rdir / name, tmp / name)
        manifest = {"claim": c.id, "arm": arm, "seed": int(seed), "step": step, "steps": c.steps(run_s),
                    "run_dir": repo_relative(rdir), "parts": parts, "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "logs": [n for n in PARKED_LOGS if (tmp / n).is_file()]}
        (tmp / "parked.json").write_text(json.dumps(manifest, indent=1) + "\n")
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        out.append({"arm": arm, "seed": int(seed), "step": step, "path": dest})
    return out


def parked_step(run: RunConfig, cid: str, arm: str, seed: int) -> int | None:
    """The step a committed parked run stopped at, or None when there is none."""
    f = parked_dir(run, cid, arm, seed) / "parked.json"
    return int(json.loads(f.read_text())["step"]) if f.is_file() else None


def unpark(run: RunConfig, cid: str, arm: str, seed: int, rdir) -> bool:
    """Restore a parked run into ``rdir`` when ``rdir`` has no ``last.pt`` of its own; True when it did.

    The parts are checked against the manifest's SHA-256 before anything is written; the checkpoint lands
    atomically, so a failed restore leaves ``rdir`` as it was.
    """
    src = parked_dir(run, cid, arm, seed)
    rdir = Path(rdir)
    if not (src / "parked.json").is_file() or (rdir / "last.pt").exists():
        return False
    man = json.loads((src / "parked.json").read_text())
    missing = [p for p in man["parts"] if not (src / p).is_file()]
    if missing:
        raise ClaimError(f"{src} is incomplete: {', '.join(missing)} missing; delete the folder to start over")
    data = b"".join((src / p).read_bytes() for p in man["parts"])
    if hashlib.sha256(data).hexdigest() != man["sha256"]:
        raise ClaimError(f"{src}: the parts do not add up to the parked checkpoint (SHA-256 differs); "
                         "delete the folder to start over")
    rdir.mkdir(parents=True, exist_ok=True)
    for name in man.get("logs", []):
        atomic_write_bytes(rdir / name, (src / name).read_bytes())
    atomic_write_bytes(rdir / "last.pt", data)
    print(f"{cid} {arm} seed {seed}: resuming the parked run at step {man['step']} of {man['steps']}", flush=True)
    return True


# ----------------------------------------------------------------------------------------------------
# Summary and verdict
# ----------------------------------------------------------------------------------------------------


def _values(rec: dict, where: str, metric: str) -> tuple[list[float], list[str]] | None:
    m = rec.get("measures", {})
    if where == "real":
        vals, keys = [], []
        for name in REAL_SETS:
            if name in m and metric in m[name]:
                vals += m[name][metric]
                keys += [f"{name}/{k}" for k in m[name].get("image", range(len(m[name][metric])))]
        return (vals, keys) if vals else None
    if where in m and metric in m[where]:
        return m[where][metric], [str(i) for i in range(len(m[where][metric]))]
    return None


def _side(low: float, high: float) -> int:
    """+1 when the interval lies above 0, −1 below, 0 when it contains 0 (or is undefined)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0
    return +1 if low > 0 else -1 if high < 0 else 0


def _verdict(low: float, high: float, expect: int) -> str:
    side = _side(low, high)
    if side == 0:
        return "inconclusive at this scale"
    return "agrees with the paper" if side == expect else "disagrees"


def claim_summary(run: RunConfig, cid: str) -> dict:
    """Arm means and the paired differences (reference − each other arm) with their intervals, per measure.

    ``verdict`` (one of :data:`VERDICTS`, from the primary measure) is given only when every run is in;
    until then it is None and ``progress`` says how many are done.
    """
    c = claim(cid)
    prog = claim_progress(run, c.id)
    recs: dict[tuple[str, int], dict] = {}
    for a, s in claim_runs(c):
        if (a, s) not in prog["missing"]:
            recs[(a, s)] = load_result(run, _experiment(c, a), s)
    wheres = sorted({w for r in recs.values() for w in r.get("measures", {})} | ({"real"} if "real" in c.measures else set()))
    metrics = sorted({k for r in recs.values() for m in r.get("measures", {}).values() for k in m if k != "image"})
    arms_means: dict[str, dict] = {}
    for a in c.arms:
        for where in wheres:
            for metric in metrics:
                vals = [v for s in c.seeds if (a.name, s) in recs
                        for v in ((_values(recs[(a.name, s)], where, metric) or ([], []))[0])]
                fin = [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
                if fin:
                    arms_means.setdefault(a.name, {})[f"{where}/{metric}"] = float(np.mean(fin))
    contrasts = []
    for other in c.arms[1:]:
        rows = {}
        for where in wheres:
            for metric in metrics:
                diffs = []
                for s in c.seeds:
                    ra, rb = recs.get((c.reference.name, s)), recs.get((other.name, s))
                    if ra is None or rb is None:
                        continue
                    va, vb = _values(ra, where, metric), _values(rb, where, metric)
                    if va is None or vb is None or va[1] != vb[1]:
                        continue
                    diffs.append(np.asarray(va[0], float) - np.asarray(vb[0], float))
                if diffs:
                    d = seed_paired_difference(diffs)
                    d["direction"] = {+1: "reference higher", -1: "reference lower",
                                      0: "no clear difference"}[_side(d["low"], d["high"])]
                    rows[f"{where}/{metric}"] = d
        key = f"{c.primary[0]}/{c.primary[1]}"
        prim = rows.get(key)
        verdict = None
        if prog["done"] == prog["total"] and prim is not None:
            verdict = _verdict(prim["low"], prim["high"], c.expect)
        contrasts.append({"reference": c.reference.name, "other": other.name, "label": other.label,
                          "differences": rows, "primary": prim, "verdict": verdict})
    overall = None
    if prog["done"] == prog["total"] and contrasts and all(x["verdict"] for x in contrasts):
        vs = {x["verdict"] for x in contrasts}
        overall = ("disagrees" if "disagrees" in vs else "agrees with the paper" if vs == {"agrees with the paper"}
                   else "inconclusive at this scale")
    provenance = [r.get("_provenance", {}) for r in recs.values()]
    return {"id": c.id, "source": c.source, "claim": c.claim, "prediction": c.prediction, "paper": c.paper,
            "steps": c.steps(run), "seeds": list(c.seeds), "preset": run.preset.name, "progress": prog,
            "primary": list(c.primary), "arm_means": arms_means, "contrasts": contrasts, "verdict": overall,
            "commits": sorted({p.get("commit") for p in provenance if p.get("commit")}),
            "devices": sorted({p.get("device") for p in provenance if p.get("device")})}


# ----------------------------------------------------------------------------------------------------
# The rows of the papers' tables that no claim experiment tests, and why
# ----------------------------------------------------------------------------------------------------

#: (table, row) of :data:`sirr.registry.TABLES` -> the claim experiment that tests it.
TESTED_BY = {("la2", "laplacian_to_edge"): "E2", ("la2", "c_from_image_features"): "E2", ("la3", "wo_ssim"): "E1",
             ("ts", "wo_feature_reduction"): "E3", ("ts", "proposed"): "E4"}

#: Why a row is not tested (by :func:`untested_reason`).
REASONS = {
    "reference": "the reference row (the full method) that the others are compared with",
    "budget": "a whole-network row whose paper gap (column 'paper gap') came after 120k steps: telling it apart at "
              "this scale needs several full `cpu` trainings per arm, and the two cores' budget went to the claims "
              "that carry the paper",
    "adversarial": "the adversarial term is a small share of the loss in our `cpu` training (the loss-share table "
                   "below): removing it cannot move the result measurably at this scale",
}


def untested_reason(table: str, row: str) -> str | None:
    """Why ``row`` of ``table`` has no claim experiment (None when one tests it)."""
    if (table, row) in TESTED_BY:
        return None
    if row in ("ours",):
        return REASONS["reference"]
    if row == "wo_adversarial":
        return REASONS["adversarial"]
    return REASONS["budget"]


def la_loss_shares(metrics) -> dict[str, float]:
    """Mean share of each weighted term of LA Eq. 15 (λ1 L_comp, λ2 L_P, λ3 L_mix, λ4 L_adv) in their sum of
    magnitudes, over the logged training steps of ``metrics`` (:func:`sirr.train.read_metrics`)."""
    lam = inspect.signature(LocationAwareLoss.__init__).parameters["lambdas"].default
    terms = {"λ1 L_comp": ("comp", lam[0]), "λ2 L_P": ("perceptual", lam[1]), "λ3 L_mix": ("mix", lam[2]),
             "λ4 L_adv": ("adv", lam[3])}
    return _shares(metrics[metrics["total"].notna()] if "total" in metrics else metrics, terms)


def ts_stage2_loss_shares(metrics) -> dict[str, float]:
    """Mean share of L_rec and of the adversarial term −λ4 D(F2(z)) of TS Eq. 7 in their sum of magnitudes, over
    the logged stage-2 steps of ``metrics``."""
    lam4 = inspect.signature(stage2_generator_loss).parameters["lambda4"].default
    rows = metrics[(metrics["phase"] == "stage2") & metrics["total"].notna()] if "phase" in metrics else metrics
    return _shares(rows, {"L_rec (λ1 features + λ2 pixels)": ("rec", 1.0), "−λ4 D(F2(z))": ("adv", lam4)})


def _shares(rows, terms: dict[str, tuple[str, float]]) -> dict[str, float]:
    have = {name: (col, w) for name, (col, w) in terms.items() if col in rows}
    if not have or not len(rows):
        return {}
    mags = np.stack([np.abs(rows[col].to_numpy(dtype=float)) * w for col, w in have.values()], axis=1)
    keep = np.isfinite(mags).all(axis=1) & (mags.sum(axis=1) > 0)
    share = mags[keep] / mags[keep].sum(axis=1, keepdims=True)
    return {name: float(v) for name, v in zip(have, share.mean(axis=0))}


def pipeline_check(run: RunConfig, cid: str = "E2") -> str:
    """Run one (arm, seed) of ``cid`` at ``run``'s preset into a temporary results folder and read it back: proof
    that the claim pipeline runs (CI executes it at ``smoke``), never evidence. One line says what ran."""
    import tempfile

    c = claim(cid)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sirr-claims-") as tmp:
        r = dataclasses.replace(run, results_dir=tmp, retrain=False)
        if not r.preset.validation.photos:  # a preset without a validation set: a tiny one, for this check only
            r = dataclasses.replace(r, preset=dataclasses.replace(
                r.preset, validation=dataclasses.replace(r.preset.validation, photos=4, size=32)))
        arm, seed = claim_runs(c)[0]
        rec = claim_run(r, c.id, arm, seed)
        again = claim_run(r, c.id, arm, seed)
        n = len(next(iter(rec["measures"]["validation"].values())))
        ok = again["measures"] == rec["measures"]
    return (f"pipeline check at `{run.preset.name}`: {c.id} arm {arm!r}, seed {seed}: {rec['steps']} steps, {n} held-out "
            f"triples measured, stored and read back {'identically' if ok else 'WITH A DIFFERENCE'} in "
            f"{time.perf_counter() - t0:.0f} s (not evidence: no verdict is drawn from it)")
