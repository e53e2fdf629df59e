"""The experiment registry of the book: every row of the papers' tables as a named, cached run.

A chapter asks for "row *w/o TSM* of LA Table 2 at this preset and seed"; this module trains it
(:func:`sirr.train.train_location_aware` / :func:`sirr.train.train_two_stage`, which reuse a finished
checkpoint under ``runs/``), evaluates it with :func:`sirrbook.evaluation.evaluate` under both metric
conventions on the test sets that are present, and stores the numbers with their provenance under
``results/<preset>/<experiment>/<seed>.json`` via :func:`sirrbook.results.load_or_compute`. Stored results
are reused unless ``run.retrain`` is set, so a book rebuild is cheap and results computed on a GPU
show up in a CPU-built book.

Registry (paper row -> what changes):

- :data:`LA_TABLE2_VARIANTS` — LA Table 2 (network structure), each a set of
  :class:`sirr.models.LocationAware` flags.
- :data:`LA_TABLE3_VARIANTS` — LA Table 3 (loss terms), each a set of
  :class:`sirr.losses.LocationAwareLoss` switches (plus RKI model flags for the last row).
- :data:`TS_VARIANTS` — TS: the full method, "w/o the adversarial term" (Table I) and "w/o L_FR"
  (Fig. 1e, qualitative in the paper: no number to compare with).
- :data:`EVAL_DATASETS` — the test sets scored when present under the data root.

Tables: :func:`main_tables` (chapter 06, LA Table 1 and TS Table I layouts), :func:`ablation_table`
(chapter 07) and :func:`ordering_agreement` (does our ordering of the rows agree with the paper's).
The sentences the chapters print beside these numbers are built in :mod:`sirrbook.book.prose`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau, spearmanr

from sirr import paper_numbers, train
from sirr.atomic import atomic_write_bytes
from sirr.config import RunConfig
from sirr.errors import SirrError
from sirr.data.datasets import (
    DATASETS,
    Sample,
    available_datasets,
    evaluation_subset,
    load_dataset,
    sample_photos,
)
from sirr.data.images import read_image, to_image, to_tensor
from sirr.data.pool import natural_photos
from sirr.data.synthesis import ReflectionSynthesizer
from sirr.methods import get_method
from sirr.metrics import downsize_max_side, resize_multiple_of
from sirr.registry import FULL, LA_TABLE2_VARIANTS, LA_TABLE3_VARIANTS, LA_VARIANTS, TABLES, TS_VARIANTS, Variant
from sirrbook.evaluation import evaluate, paired_difference
from sirrbook.photos import real_reflection_photos
from sirrbook.results import load_image, load_or_compute, result_path, save_result
from sirrbook.viz import image_grid
from sirrbook.viz.tables import DATASET_NAMES

__all__ = [
    "PAPER_COMPUTE",
    "compute_fraction",
    "training_record",
    "publish",
    "load_average_record",
    "machine_line",
    "ts_flops_ratio",
    "ExperimentError",
    "Variant",
    "LA_TABLE2_VARIANTS",
    "LA_TABLE3_VARIANTS",
    "LA_VARIANTS",
    "TS_VARIANTS",
    "TABLES",
    "EVAL_DATASETS",
    "PAPER_COLUMNS",
    "METRICS",
    "FALLBACK_DATASET",
    "with_seed",
    "evaluation_datasets",
    "ablation_dataset",
    "dataset_inventory",
    "experiment",
    "identity_experiment",
    "identity_comparison",
    "COMPARED_METRICS",
    "ts_stage1_study",
    "loss_probe",
    "PROBE_PERTURBATIONS",
    "TS_STAGE1_STUDIES",
    "ablation_results",
    "ablation_table",
    "ordering_agreement",
    "main_tables",
    "registry_frame",
    "trained_model",
    "stored_example_grid",
    "real_photos",
    "run_ablations",
    "experiment_name",
]


class ExperimentError(SirrError, ValueError):
    """An unknown table, dataset, perturbation or study name (the message lists the valid ones), or a run that is
    not there yet. An unknown method or variant is :class:`sirr.methods.UnknownMethodError` (the one variant
    lookup, :meth:`sirr.methods.Method.variant`)."""


#: Test sets with ground truth scored when present under the data root, in table order.
EVAL_DATASETS = ("sir2_postcard", "sir2_solidobject", "sir2_wild", "real20", "nature", "la_release",
                 "ceilnet_synthetic", "ceilnet_table2")

#: Paper table column prefix of each dataset (LA Tables 2/3: SIR², Zhang et al. real20, Li et al. Nature).
PAPER_COLUMNS = {"sir2_postcard": "sir2", "sir2_solidobject": "sir2", "sir2_wild": "sir2",
                 "real20": "real20", "nature": "nature"}

#: The metric columns stored for every dataset: both conventions of :mod:`sirr.metrics`, and LPIPS (VGG) when
#: the preset's ``eval.lpips`` asks for it.
METRICS = ("psnr_la", "ssim_la", "psnr_errnet", "ssim_errnet", "lpips")

#: Name of the evaluation set synthesised from sample photos when there is no data root.
FALLBACK_DATASET = "synthetic_from_sample_photos"
_FALLBACK_SEED = 2021  # fixed: the fallback set is the same for every run and seed


def with_seed(run: RunConfig, seed: int | None) -> RunConfig:
    """``run`` with its seed replaced (``None`` keeps it)."""
    return run if seed is None or seed == run.seed else dataclasses.replace(run, seed=int(seed))


# ----------------------------------------------------------------------------------------------------
# Evaluation sets
# ----------------------------------------------------------------------------------------------------


class _FallbackDataset(list):
    """Triples synthesised from the packaged sample photos (CEILNet recipe), for runs without data."""

    name = FALLBACK_DATASET
    has_ground_truth = True


def _fallback_dataset(run: RunConfig):
    n = run.preset.eval.max_images or 8
    size = min(run.preset.eval.max_side or 224, 224)
    synth = ReflectionSynthesizer(sample_photos(), recipe="ceilnet", size=size, seed=_FALLBACK_SEED)
    b = synth.batch(n)
    ds = _FallbackDataset()
    for i in range(n):
        img = {k: b[k][i].permute(1, 2, 0).numpy().astype(np.float32) for k in ("I", "T", "R")}
        ds.append(Sample(f"synth_{i:02d}", img["I"], img["T"], img["R"]))
    return ds


_PHOTOS: dict[str, list] = {}


def _training_photos(run: RunConfig) -> list:
    """The training pool (:func:`sirr.data.pool.natural_photos`) once per data root and process (rows share it)."""
    key = str(run.data_root)
    if key not in _PHOTOS:
        _PHOTOS[key] = natural_photos(_root_arg(run))
    return _PHOTOS[key]


def _photo_summary(photos) -> str:
    """e.g. ``"160 photos: 41 ceilnet_synthetic, 100 ceilnet_table2, 19 bsds500"``."""
    names = [p[0] if isinstance(p, tuple) else "array" for p in photos]
    c = Counter(n.split("/")[0] if "/" in n else n.split("_")[0] for n in names)
    return f"{len(names)} photos: " + ", ".join(f"{k} {v}" for k, v in c.items())


def _root_arg(run: RunConfig):
    """:attr:`RunConfig.data_root_arg`."""
    return run.data_root_arg


def real_photos(run: RunConfig, n: int = 3) -> list:
    """:func:`sirrbook.photos.real_reflection_photos` for this run (longer side ≤ ``preset.eval.max_side``)."""
    return real_reflection_photos(_root_arg(run), n=n, max_side=run.preset.eval.max_side)


def _present(run: RunConfig) -> list[str]:
    if run.data_root is None:
        return []
    return list(available_datasets(run.data_root))


def evaluation_datasets(run: RunConfig, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The test sets to score, name -> dataset (the preset's ``eval.subset``: all images or the declared subset
    that covers every scene, :func:`sirr.data.datasets.evaluation_subset`; ``eval.max_images`` caps it, smoke only).

    ``names`` defaults to :data:`EVAL_DATASETS`; the ones present under the data root are loaded.
    With none present (e.g. ``SIRR_DATA=none``) a fixed set of CEILNet-recipe triples synthesised
    from the packaged sample photos is returned under :data:`FALLBACK_DATASET`.
    """
    out: dict[str, Any] = {}
    for name in _wanted(run, names):
        out[name] = (_fallback_dataset(run) if name == FALLBACK_DATASET else
                     _capped(evaluation_subset(load_dataset(name, run.data_root), run.preset.eval.subset),
                             run.preset.eval.max_images))
    return out


def _capped(ds, n: int | None):
    """``ds`` cut to its first ``n`` images (the smoke preset's plumbing check only; None keeps all)."""
    if n is None or n >= len(ds):
        return ds
    return dataclasses.replace(ds, items=ds.items[:n]) if dataclasses.is_dataclass(ds) else ds[:n]


def _wanted(run: RunConfig, names: Sequence[str] | None = None) -> list[str]:
    """The names of ``names`` (default :data:`EVAL_DATASETS`) that can be scored in this run, or the fallback."""
    present = set(_present(run))
    out = [d for d in (names or EVAL_DATASETS) if d in present or d == FALLBACK_DATASET]
    return out or [FALLBACK_DATASET]


def ablation_dataset(run: RunConfig) -> str:
    """The one test set the ablation rows are scored on: the first of the paper's columns present
    (SIR², real20, Nature), else the CEILNet synthetic set, else :data:`FALLBACK_DATASET`."""
    present = _present(run)
    for name in (*PAPER_COLUMNS, "ceilnet_synthetic", "ceilnet_table2"):
        if name in present:
            return name
    return FALLBACK_DATASET


def _found(run: RunConfig, name: str) -> str:
    """How many of ``name``'s images are under the data root, e.g. ``"60 of 199"`` (a partial copy says so)."""
    from sirr.data.datasets import find_dataset

    try:
        n = len(find_dataset(name, _root_arg(run))[1])
    except (FileNotFoundError, ValueError):
        return "not present"
    count = getattr(DATASETS[name], "count", None)
    return f"{n} of {count}" if count else str(n)


def dataset_inventory(run: RunConfig):
    """DataFrame of every known dataset: present or not under the data root, ground truth, where published."""
    present = set(_present(run))
    rows = []
    for name, spec in DATASETS.items():
        count = getattr(spec, "count", None)
        rows.append({
            "dataset": name,
            "what": getattr(spec, "title", name),
            "images (published)": "?" if count is None else str(count),
            "present (images found)": _found(run, name) if name in present else "not present",
            "ground truth": "yes" if getattr(spec, "has_ground_truth", False) else "no",
            "used here for": ("scores (Table 1 layout)" if name in EVAL_DATASETS else
                              "training" if getattr(spec, "split", "") == "train" else "photos / qualitative"),
            "published at": getattr(spec, "url", ""),
        })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------


def _thumb(img: np.ndarray, side: int = 160) -> np.ndarray:
    """Longer side capped at ``side`` and both sides a multiple of 8 (what the networks take)."""
    return resize_multiple_of(downsize_max_side(np.asarray(img, dtype=np.float32), side), 8).astype(np.float32)


def _score(run: RunConfig, predict: Callable[[torch.Tensor], torch.Tensor], datasets: dict[str, Any],
           keep_images: int = 1) -> tuple[dict, dict[str, np.ndarray]]:
    """Score ``predict`` on each dataset under both conventions: ``{dataset: {metric: mean, metric_std,
    n, per_image: {metric: [...]}}}`` plus a few thumbnails (input | output | ground truth)."""
    scores: dict[str, Any] = {}
    images: dict[str, np.ndarray] = {}
    ev = run.preset.eval

    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    @torch.no_grad()
    def pred(x: torch.Tensor) -> torch.Tensor:
        y = predict(x.to(run.device)).detach().float().cpu().clamp(0, 1)
        if len(seen) < keep_images:  # keep the first examples (no extra forward pass)
            seen.append((x.detach().float().cpu(), y))
        return y

    for dname, ds in datasets.items():
        seen.clear()
        df = evaluate(pred, ds, conventions=("la", "errnet"), max_side=ev.max_side, max_images=ev.max_images,
                      lpips=ev.lpips)
        entry: dict[str, Any] = {"n": int(len(df))}
        for m in METRICS:
            if m not in df:
                continue
            v = np.asarray(df[m], dtype=np.float64)
            fin = v[np.isfinite(v)]
            entry[m] = float(fin.mean()) if fin.size else math.inf
            entry[f"{m}_std"] = float(fin.std()) if fin.size > 1 else 0.0
        entry["per_image"] = {c: [x if isinstance(x, str) else float(x) for x in df[c]]
                              for c in df.columns if c in (*METRICS, "image", "seconds")}
        scores[dname] = entry
        gts = [smp for smp in (ds[i] for i in range(min(len(ds), ev.max_images or len(ds)))) if smp.T is not None]
        for i, ((x, y), smp) in enumerate(zip(seen, gts)):
            images[f"{dname}_{i}_input"] = to_image(x)
            images[f"{dname}_{i}_output"] = to_image(y)
            images[f"{dname}_{i}_truth"] = _thumb(smp.T, ev.max_side or 512)
    return scores, images


def _stored(run: RunConfig, experiment: str, compute: Callable[[], dict], seed: int | None,
            verbose: bool = True) -> dict:
    """:func:`sirrbook.results.load_or_compute`, with the ``_images`` of the payload saved as PNGs beside it."""
    held: dict[str, Any] = {}

    def payload() -> dict:
        out = compute()
        held["images"] = out.pop("_images", None)
        return out

    return load_or_compute(run, experiment, payload, seed=seed, images=lambda: held.get("images"), verbose=verbose)


def _cached(run: RunConfig, experiment: str, wanted: list[str], compute: Callable[[list[str], bool], dict],
            verbose: bool, model_loader: Callable[[], Any] | None = None,
            predictors: Callable[[Any], dict[str, Callable]] | None = None) -> dict:
    """The stored result of ``experiment`` (computed when missing or ``run.retrain``).

    A stored result that lacks some of the ``wanted`` test sets (e.g. computed with a data root and
    read without one) is completed: with the run's finished checkpoint under ``runs/``
    (``model_loader``) only the missing sets are scored and merged in; without it the run is
    recomputed on all of them.
    """
    res = _stored(run, experiment, lambda: compute(wanted, not run.retrain), run.seed, verbose)
    have = list(res.get("scores", {}))
    missing = [d for d in wanted if d not in have]
    if not missing:
        return res
    if verbose:
        print(f"{experiment} (seed {run.seed}): stored result has no scores on {', '.join(missing)}; scoring them")
    model = model_loader() if model_loader is not None else None
    if model is None:
        return _stored(dataclasses.replace(run, retrain=True), experiment, lambda: compute(have + missing, True),
                       run.seed, verbose)
    payload = {k: v for k, v in res.items() if not k.startswith("_")}
    images = {k: read_image(p) for k, p in (res.get("_images") or {}).items()}
    sets = evaluation_datasets(run, missing)
    for key, fn in (predictors(model) if predictors else {"scores": model}).items():
        new, imgs = _score(run, fn, sets, keep_images=1 if key == "scores" else 0)
        payload.setdefault(key, {}).update(new)
        images.update(imgs)
    payload["rescored_from_checkpoint"] = sorted(set(payload.get("rescored_from_checkpoint", [])) | set(missing))
    return _stored(dataclasses.replace(run, retrain=True), experiment, lambda: {**payload, "_images": images},
                   run.seed, verbose)


def _final(rdir) -> Any:
    """The finished run's model of record (``best.pt`` with a validation set, else ``final.pt``), or None."""
    return train.selected_checkpoint(rdir)


def _trained_or_reused(m, run, done, train):
    """``(model, steps, truncated)``: the finished run ``done`` when there is one, else ``train()``'s model of record."""
    if done is not None:  # final.pt exists only for a run that did all its steps
        return done, int(done.checkpoint_meta.get("total_steps") or done.checkpoint_meta["step"]), False
    res = train()
    model, truncated = _model_of_record(res, res.model.eval(), m.load, run.device)
    return model, int(res.steps), truncated


def _model_of_record(res, model, load, device):
    """``(model, truncated)`` after a training call: its best-validation weights when it kept some and finished,
    else the trained model as it is (a stand-in trainer's result may lack the newer fields)."""
    truncated = bool(getattr(res, "truncated", False))
    best = getattr(res, "best_checkpoint", None)
    if best is not None and not truncated:
        model = load(best, device=device).eval()
    return model, truncated


def _inference_path(model, device: str, method: str = "la"):
    """``(wrap, words)``: ``wrap(fn)`` runs ``fn`` in the path ``sirr remove`` uses (:func:`sirrbook.inference.
    inference_precision`: for a method the bench measures, the one ``sirr bench`` accepted for this device; else
    ``resolve_precision("auto")``) -- and which path that is, in words."""
    from sirrbook.inference import inference_precision

    prec, why = inference_precision(get_method(method), device)
    if prec.channels_last and isinstance(model, torch.nn.Module):
        model.to(memory_format=torch.channels_last)
    kind = torch.device(device).type

    def wrap(fn):
        def run(x):
            with prec.context(kind):
                return fn(prec.prepare(x)).float()
        return run

    return wrap, why


def _selection(model) -> dict:
    """Which checkpoint of its run ``model`` is: the best-validation one (step and score) or the last."""
    meta = getattr(model, "checkpoint_meta", None) or {}
    best = meta.get("best_validation")
    if meta.get("phase") == "best" and best:
        return {"checkpoint": "best.pt", "step": int(best["step"]), "val_psnr": best.get("val_psnr"),
                "val_identity_psnr": best.get("val_identity_psnr"), "rule": "best validation PSNR, validation only"}
    return {"checkpoint": "final.pt", "step": meta.get("step")}


def experiment_name(run: RunConfig, name: str) -> str:
    """The results-store key of ``name`` (``"la/wo_tsm"``): as is with a data root, under ``nodata/``
    without one (the models are then trained on other photos and scored on other images)."""
    return name if run.data_root is not None else f"nodata/{name}"


def _run_dir(run: RunConfig, method: str, variant: str):
    """The run folder of ``method``'s ``variant`` (:meth:`sirr.methods.Method.run_dir`: one scheme, which names
    the training data, so rows trained without a data root never share a folder with rows trained with one)."""
    return get_method(method).run_dir(run, variant)


def experiment(run: RunConfig, method: str, variant: str = FULL, seed: int | None = None, *,
               datasets: Sequence[str] | None = None, progress: bool = False, verbose: bool = True,
               **schedule: int | None) -> dict:
    """Train (or reuse) one variant of ``method``, score each of its outputs, store
    ``results/<preset>/<method>/<variant>/<seed>.json``.

    ``variant="full"`` is the model of the method's training chapter (the preset's schedule, the same run folder,
    so its checkpoint is reused) and is scored on every test set present; a table row trains the preset's
    ablation budget and is scored on :func:`ablation_dataset` only, unless ``datasets`` names others.
    ``schedule`` overrides the trainer's step counts (LA ``steps=``; TS ``stage1_steps=``, ``stage2_steps=``).
    Every output of :meth:`sirr.methods.Method.outputs` is scored under its key (``scores``: the transmission;
    TS also ``scores_initial``, B_ini) and compared with the identity baseline (``vs_identity``,
    ``vs_identity_initial``). An unknown method or variant is :class:`sirr.methods.UnknownMethodError`.
    """
    m = get_method(method)
    v = m.variant(variant)
    run_s = with_seed(run, seed)
    if datasets is None:
        datasets = [ablation_dataset(run_s)] if variant != FULL else None
    schedule = {k: n for k, n in schedule.items() if n is not None}
    rdir = _run_dir(run_s, m.name, variant)

    def loader():
        p = _final(rdir)
        return m.load(p, device=run_s.device).eval() if p else None

    def compute(names: list[str], resume: bool) -> dict:
        t0 = time.perf_counter()
        done = loader() if resume else None  # a finished run under runs/: just load it
        model, n_steps, truncated = _trained_or_reused(  # Method.train adds the variant's switches and budget
            m, run_s, done, lambda: m.train(run_s, variant, run_dir=rdir, resume=resume, progress=progress,
                                            photos=_training_photos(run_s), **schedule))
        rec: dict[str, Any] = {
            "method": m.name, "variant": variant, "label": v.label,
            **{k: getattr(v, k) for k in ("model_kwargs", "loss_kwargs", "train_kwargs") if getattr(v, k)},
            "truncated": truncated, "selected": _selection(model), "train_photos": _photo_summary(_training_photos(run_s)),
            "steps": n_steps, "checkpoint_reused": done is not None, "train_seconds": time.perf_counter() - t0}
        sets = evaluation_datasets(run_s, names)
        fast, rec["inference_path"] = _inference_path(model, run_s.device, m.name)
        ident = identity_experiment(run_s, names, verbose=False)
        for key, predict in m.outputs().items():
            suffix = key[len("scores"):]  # "" or "_initial"
            t = time.perf_counter()
            scores, images = _score(run_s, fast(lambda x, p=predict: p(model, x)), sets,
                                    keep_images=1 if key == "scores" else 0)
            rec[key], rec[f"vs_identity{suffix}"] = scores, identity_comparison({"scores": scores}, ident)
            rec[f"eval_seconds{suffix}"] = time.perf_counter() - t
            if key == "scores":
                rec["_images"] = images
        return rec

    return _cached(run_s, experiment_name(run_s, f"{m.name}/{variant}"), _wanted(run_s, datasets), compute, verbose,
                   loader, lambda net: {key: (lambda x, p=p: p(net, x)) for key, p in m.outputs().items()})


#: The metrics compared with the identity baseline (the LA convention's PSNR and SSIM, and LPIPS when scored).
COMPARED_METRICS = ("psnr_la", "ssim_la", "lpips")


def identity_comparison(result: dict, identity: dict, metrics: Sequence[str] = COMPARED_METRICS,
                        key: str = "scores") -> dict[str, dict[str, dict]]:
    """``{dataset: {metric: paired difference}}`` of a stored result against the identity baseline, image by image.

    The images are matched by name, so only images both scored are compared; each entry is
    :func:`sirrbook.evaluation.paired_difference` (mean, 95% paired bootstrap interval, images better, verdict).
    """
    out: dict[str, dict[str, dict]] = {}
    for dname, entry in (result.get(key) or {}).items():
        base = (identity.get("scores") or {}).get(dname)
        if not base or "per_image" not in entry or "per_image" not in base:
            continue
        mine = entry["per_image"]
        theirs = dict(zip(base["per_image"].get("image", []), range(len(base["per_image"].get("image", [])))))
        names = [n for n in mine.get("image", []) if n in theirs]
        if not names:
            continue
        here = {n: i for i, n in enumerate(mine["image"])}
        out[dname] = {}
        for m in metrics:
            if m not in mine or m not in base["per_image"]:
                continue
            a = [mine[m][here[n]] for n in names]
            b = [base["per_image"][m][theirs[n]] for n in names]
            out[dname][m] = paired_difference(a, b, m)
    return out


def identity_experiment(run: RunConfig, datasets: Sequence[str] | None = None, verbose: bool = True) -> dict:
    """The identity baseline: PSNR/SSIM of the input itself against the ground truth.

    It has no randomness, so it is stored once per preset under ``baseline/identity/0.json``.
    """
    run = with_seed(run, 0)

    def compute(names: list[str], resume: bool) -> dict:
        scores, _ = _score(run, lambda x: x, evaluation_datasets(run, names), keep_images=0)
        return {"method": "identity", "variant": "identity", "label": "Input (identity)", "scores": scores}

    return _cached(run, experiment_name(run, "baseline/identity"), _wanted(run, datasets), compute, verbose, lambda: (lambda x: x))


#: What :func:`loss_probe` does to the ground truth T before scoring it as if it were the network's output.
PROBE_PERTURBATIONS = ("ground truth", "darker (x0.8)", "hue shifted (+0.5 rad)", "desaturated (x0.5)",
                       "blurred (5x5 box)", "mean colour", "grey 0.5", "black")


def _perturb(T: torch.Tensor, name: str) -> torch.Tensor:
    import kornia

    if name == "ground truth":
        return T
    if name == "darker (x0.8)":
        return T * 0.8
    if name == "hue shifted (+0.5 rad)":
        return kornia.enhance.adjust_hue(T, 0.5).clamp(0, 1)
    if name == "desaturated (x0.5)":
        return kornia.enhance.adjust_saturation(T, 0.5).clamp(0, 1)
    if name == "blurred (5x5 box)":
        return torch.nn.functional.avg_pool2d(T, 5, 1, 2, count_include_pad=False)
    if name == "mean colour":
        return T.mean((2, 3), keepdim=True).expand_as(T).contiguous()
    if name == "grey 0.5":
        return torch.full_like(T, 0.5)
    if name == "black":
        return torch.zeros_like(T)
    raise ExperimentError(f"unknown perturbation {name!r}; valid: {', '.join(PROBE_PERTURBATIONS)}")


@torch.no_grad()
def loss_probe(run: RunConfig, method: str, n: int = 8, size: int = 128, vgg_normalize: bool | None = None):
    """Each loss term of ``method`` on perturbed ground truths, as if they were the network's output.

    ``n`` validation triples (held-out photos, the preset's validation recipe, its fixed seed) are drawn at
    ``size`` px; T̂ = perturb(T) for each of :data:`PROBE_PERTURBATIONS` is scored by every term that looks at T̂
    (LA: L_P, L_pixel, L_SSIM, weighted as in Eq. 15; TS: Eq. 3's λ1 feature and λ2 pixel terms and Eq. 4's L_FR,
    with ``vgg_normalize`` choosing Φ's input, default the preset's). A term that is lower on a perturbed T than on
    T itself pulls the network towards that perturbation. Returns a DataFrame, one row per perturbation.
    """
    from sirr.train.validation import VALIDATION_SEED, hold_out

    m = get_method(method)
    photos = _training_photos(run)
    n = max(1, min(n, len(photos) - 2))  # the packaged fallback pool has only a few photos
    _, held = hold_out(photos, min(max(run.preset.validation.photos, n), len(photos) - 2))
    synth = ReflectionSynthesizer(held[:n] if not hasattr(held, "select") else held.select(range(n)),
                                  recipe=run.preset.validation.recipe, size=size, seed=VALIDATION_SEED)
    T = synth.batch(n)["T"]
    terms = m.probe_terms(run, vgg_normalize)  # the method's loss terms on T̂ (sirr.methods.Method.probe_terms)
    rows = [{"perturbation": name, **terms(_perturb(T, name), T)} for name in PROBE_PERTURBATIONS]
    df = pd.DataFrame(rows).set_index("perturbation")
    df["total"] = df.sum(axis=1)
    return df


#: Chapter 05's equal-step comparisons of TS stage 1: each names its arms (TSTrainConfig overrides).
TS_STAGE1_STUDIES = {
    "vgg_input": {"what": "Φ's input: ImageNet-normalised (ours before) vs raw [0, 1] (the release)",
                  "arms": {"imagenet_normalised": {"vgg_normalize": True}, "raw_01": {"vgg_normalize": False}}},
    "width": {"what": "the release's widths vs a quarter of them",
              "arms": {"full": {"width_scale": 1.0}, "quarter": {"width_scale": 0.25}}},
}


def ts_stage1_study(run: RunConfig, study: str, steps: int = 150, validate_every: int = 25,
                    verbose: bool = True) -> dict:
    """One of :data:`TS_STAGE1_STUDIES`: TS stage 1 (B_ini) trained ``steps`` steps per arm at ``run``'s preset and seed.

    Every arm starts from the same initialisation and draws the same batches (same seed), and is scored on the
    preset's validation triples every ``validate_every`` steps, so the arms differ only in what the study changes.
    Each arm's run is resumable under ``runs/``; the result is stored as
    ``results/<preset>/ts_stage1/<study>/<seed>.json`` once every arm is done (a rerun reads it).
    """
    if study not in TS_STAGE1_STUDIES:
        raise ExperimentError(f"unknown TS stage-1 study {study!r}; valid: {', '.join(TS_STAGE1_STUDIES)}")
    spec = TS_STAGE1_STUDIES[study]

    def compute() -> dict:
        rows = []
        for arm, changes in spec["arms"].items():
            ts_cfg = dataclasses.replace(run.preset.ts, validate_every=int(validate_every), time_budget_s=None,
                                         **changes)
            r = dataclasses.replace(run, preset=dataclasses.replace(run.preset, ts=ts_cfg), retrain=False)
            run_dir = train.default_run_dir(r, "ts", f"stage1_{study}_{arm}")
            res = get_method("ts").train(r, run_dir=run_dir, resume=True, stage1_steps=int(steps), stage2_steps=0,
                                         photos=_training_photos(r), progress=False)
            m = train.read_metrics(run_dir)
            val = m[m["val_psnr"].notna()] if "val_psnr" in m else m.iloc[0:0]
            train_rows = m[m["val_psnr"].isna()] if "val_psnr" in m else m
            losses = {k: float(train_rows[k].iloc[-1]) for k in ("feature", "pixel", "fr", "total")
                      if k in train_rows and len(train_rows)}
            rows.append({"arm": arm, **changes, "steps": int(res.steps),
                         "stage1_parameters": int(sum(p.numel() for p in res.model.stage1.parameters())),
                         "final_losses": losses, "seconds": float(res.seconds),
                         "validation": [{"step": int(v.step), "val_psnr": float(v.val_psnr),
                                         "val_ssim": float(getattr(v, "val_ssim", math.nan)),
                                         "val_identity_psnr": float(v.val_identity_psnr)} for v in val.itertuples()]})
        return {"what": spec["what"], "study": study, "steps": int(steps), "validate_every": int(validate_every),
                "crop": run.preset.ts.crop, "batch_size": run.preset.ts.batch_size, "rows": rows}

    return load_or_compute(run, f"ts_stage1/{study}", compute, seed=run.seed, verbose=verbose)


# ----------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------


def _table(table: str):
    if table not in TABLES:
        raise ExperimentError(f"unknown table {table!r}; valid: {', '.join(TABLES)}")
    return TABLES[table]


def ablation_results(run: RunConfig, table: str, seeds: Sequence[int] | None = None, *,
                     progress: bool = False, on_result: Callable[[str, int, dict], None] | None = None) -> dict:
    """``{variant: [result per seed]}`` for every row of ``table`` ("la2", "la3", "ts"), computing the
    missing ones (each stored, so a second call only reads)."""
    method, variants, _ = _table(table)
    seeds = tuple(run.preset.ablation.seeds if seeds is None else seeds)
    out: dict[str, list[dict]] = {}
    for name in variants:
        out[name] = []
        for s in seeds:
            r = experiment(run, method, name, s, progress=progress, verbose=False)
            out[name].append(r)
            if on_result:
                on_result(name, s, r)
    return out


def run_ablations(run: RunConfig, tables: Sequence[str] = ("la2", "la3", "ts"), seeds: Sequence[int] | None = None,
                  log: Callable[[str], None] | None = print) -> None:
    """Compute (or read) every row of ``tables`` for every seed, seed-major so a partial run covers all
    rows once before repeating: the batch job that fills ``results/<preset>/`` for chapter 7, e.g. on a GPU::

        python -c "import sirr.config as c, sirrbook.experiments as ex; ex.run_ablations(c.resolve('smoke', device='cuda'))"
    """
    seeds = tuple(run.preset.ablation.seeds if seeds is None else seeds)
    t00 = time.perf_counter()
    for s in seeds:
        for table in tables:
            method, variants, _ = _table(table)
            for name in variants:
                t = time.perf_counter()
                r = experiment(run, method, name, s, verbose=False)
                if log:
                    d = ablation_dataset(run)
                    log(f"[{time.perf_counter() - t00:7.1f} s] {table} {name} seed {s}: {time.perf_counter() - t:.1f} s, "
                        f"PSNR (LA conv.) {r['scores'].get(d, {}).get('psnr_la', float('nan')):.3f} on {d}")


def ablation_table(run: RunConfig, table: str = "la2", seeds: Sequence[int] | None = None, *,
                   results: dict | None = None, scores: str = "scores", progress: bool = False):
    """One row per paper row of ``table``: our mean and std over ``seeds`` of every metric (both
    conventions) on :func:`ablation_dataset` (``scores="scores_initial"``: TS's first stage B_ini),
    the paper's numbers beside them (``paper_*`` columns,
    ``paper_psnr`` = the paper column matching our dataset, else the mean of its PSNR columns).

    Columns: ``variant, label, n_seeds, <metric>_mean, <metric>_std`` for each of :data:`METRICS`,
    then ``paper_<col>`` for each paper column and ``paper_psnr``. ``df.attrs`` holds ``table``,
    ``dataset``, ``seeds``, ``paper_column``, ``preset``.
    """
    method, variants, paper = _table(table)
    seeds = tuple(run.preset.ablation.seeds if seeds is None else seeds)
    results = results if results is not None else ablation_results(run, table, seeds, progress=progress)
    dataset = ablation_dataset(run)
    paper_cols = sorted({c for row in paper.values() for c in row}, key=lambda c: (
        ["sir2", "real20", "nature"].index(c.split("_")[0]), c))
    match = PAPER_COLUMNS.get(dataset)
    rows = []
    for name, v in variants.items():
        rs = results.get(name, [])
        row: dict[str, Any] = {"variant": name, "label": v.label, "n_seeds": len(rs)}
        for m in METRICS:
            vals = np.array([r[scores][dataset][m] for r in rs if dataset in r.get(scores, {})
                             and m in r[scores][dataset]], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            row[f"{m}_mean"] = float(vals.mean()) if vals.size else np.nan
            row[f"{m}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else (0.0 if vals.size else np.nan)
        p = paper.get(name, {})
        for c in paper_cols:
            row[f"paper_{c}"] = p.get(c, np.nan)
        psnrs = [p[c] for c in paper_cols if c.endswith("psnr") and c in p]
        if match and f"{match}_psnr" in p:
            row["paper_psnr"] = p[f"{match}_psnr"]
        else:
            row["paper_psnr"] = float(np.mean(psnrs)) if psnrs else np.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    prov = [r.get("_provenance", {}) for rs in results.values() for r in rs]
    df.attrs.update(table=table, method=method, dataset=dataset, seeds=list(seeds), preset=run.preset.name,
                    scores=scores, provenance=prov,
                    paper_column=(f"{match}_psnr" if match else [c for c in paper_cols if c.endswith("psnr")][0]
                                  if sum(c.endswith("psnr") for c in paper_cols) == 1
                                  else "mean of the paper's PSNR columns"))
    return df


def ordering_agreement(df, ours: str = "psnr_la_mean", paper: str = "paper_psnr", tol: float = 1e-3) -> dict:
    """Does our ordering of the rows by ``ours`` agree with the paper's by ``paper``?

    Uses the rows where both are finite. Returns ``n``, ``spearman`` and ``kendall`` (scipy;
    NaN below 2 rows or for constant columns), ``pairs_agree`` / ``pairs`` (row pairs ordered the same
    way; pairs within ``tol`` of each other in either column are ties, counted in ``ties`` and
    excluded), ``paper_best`` / ``our_best`` (row names) and ``our_rank_of_paper_best``
    (1 = also our best).
    """
    sub = df[np.isfinite(df[ours].astype(float)) & np.isfinite(df[paper].astype(float))]
    n = len(sub)
    key = "variant" if "variant" in sub else sub.index.name
    names = list(sub["variant"]) if key == "variant" else list(sub.index)
    a = sub[ours].to_numpy(dtype=float)
    b = sub[paper].to_numpy(dtype=float)
    out: dict[str, Any] = {"n": n, "spearman": math.nan, "kendall": math.nan, "pairs": 0, "pairs_agree": 0, "ties": 0,
                           "paper_best": None, "our_best": None, "our_rank_of_paper_best": None,
                           "ours": ours, "paper": paper}
    if n == 0:
        return out
    if n >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0:
        out["spearman"] = float(spearmanr(a, b).statistic)
        out["kendall"] = float(kendalltau(a, b).statistic)
    for i in range(n):
        for j in range(i + 1, n):
            da = 0 if abs(a[i] - a[j]) <= tol else np.sign(a[i] - a[j])
            db = 0 if abs(b[i] - b[j]) <= tol else np.sign(b[i] - b[j])
            if da == 0 or db == 0:
                out["ties"] += 1
            else:
                out["pairs"] += 1
                out["pairs_agree"] += int(da == db)
    pb = int(np.argmax(b))
    out["paper_best"] = names[pb]
    out["our_best"] = names[int(np.argmax(a))]
    out["our_rank_of_paper_best"] = int(1 + np.sum(a > a[pb]))
    return out


def main_tables(run: RunConfig, la: dict | None = None, ts: dict | None = None,
                identity: dict | None = None, ts_wo_adversarial: dict | None = None):
    """Chapter 06: ``(la_table1, ts_table1)`` DataFrames filled from stored results.

    ``la_table1``: one row per dataset scored, columns ``dataset, n`` then for each of identity / LA /
    TS and each of :data:`METRICS` ``<method>_<metric>``, then ``paper_la_psnr``, ``paper_la_ssim``
    (LA Table 1 "Ours" where the dataset is one of its rows). ``ts_table1``: TS Table I's rows
    (``method``), ``paper_psnr`` (average PSNR on SIR²), and ours per dataset (``psnr_la`` and
    ``psnr_errnet`` columns suffixed with the dataset); methods the book does not reimplement
    (CEILNet, PLNet) have only the paper number.
    """
    methods = {"identity": identity, "la": la, "ts": ts}
    dnames: list[str] = []
    for r in methods.values():
        for d in (r or {}).get("scores", {}):
            if d not in dnames:
                dnames.append(d)
    rows = []
    for d in dnames:
        row: dict[str, Any] = {"dataset": d}
        for mname, r in methods.items():
            s = (r or {}).get("scores", {}).get(d, {})
            row.setdefault("n", s.get("n"))
            for m in METRICS:
                row[f"{mname}_{m}"] = s.get(m, np.nan)
        p = paper_numbers.LA_TABLE1.get(d, {})
        row["paper_la_psnr"], row["paper_la_ssim"] = p.get("psnr", np.nan), p.get("ssim", np.nan)
        rows.append(row)
    la_df = pd.DataFrame(rows)

    ts_rows = []
    ours = {"CEILNet": None, "PLNet": None, "wo_adversarial": ts_wo_adversarial, "proposed": ts}
    labels = {"CEILNet": "CEILNet [7] (not reimplemented)", "PLNet": "PLNet [8] (not reimplemented)",
              "wo_adversarial": "Proposed w/o the adversarial term", "proposed": "Proposed"}
    for key, paper_psnr in paper_numbers.TS_TABLE1.items():
        row = {"method": labels.get(key, key), "paper_psnr": paper_psnr}
        r = ours.get(key)
        for d in dnames:
            s = (r or {}).get("scores", {}).get(d, {})
            row[f"psnr_la[{d}]"] = s.get("psnr_la", np.nan)
            row[f"psnr_errnet[{d}]"] = s.get("psnr_errnet", np.nan)
        ts_rows.append(row)
    row = {"method": "Input (identity)", "paper_psnr": np.nan}
    for d in dnames:
        s = (identity or {}).get("scores", {}).get(d, {})
        row[f"psnr_la[{d}]"] = s.get("psnr_la", np.nan)
        row[f"psnr_errnet[{d}]"] = s.get("psnr_errnet", np.nan)
    ts_rows.append(row)
    return la_df, pd.DataFrame(ts_rows)


# ----------------------------------------------------------------------------------------------------
# The registry as a table
# ----------------------------------------------------------------------------------------------------


def registry_frame():
    """DataFrame of every ablation row: table, key, the paper's row label and what it changes."""
    rows = []
    for table, (method, variants, _) in TABLES.items():
        for v in variants.values():
            rows.append({"table": {"la2": "LA Table 2", "la3": "LA Table 3", "ts": "TS"}[table], "variant": v.name,
                         "paper row": v.label,
                         "model flags": ", ".join(f"{k}={val!r}" for k, val in v.model_kwargs.items()) or "—",
                         "loss / training switches": ", ".join(f"{k}={val!r}" for k, val in
                                                                {**v.loss_kwargs, **v.train_kwargs}.items()) or "—",
                         "result": f"results/<preset>/{method}/{v.name}/<seed>.json"})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------
# Models and example figures
# ----------------------------------------------------------------------------------------------------


def trained_model(run: RunConfig, method: str = "la", variant: str = "full", seed: int | None = None):
    """The trained network of one run (eval mode): its ``final.pt`` under ``runs/`` if present, else trained now
    (:meth:`sirr.methods.Method.trained`)."""
    m = get_method(method)
    m.variant(variant)  # one UnknownMethodError for an unknown row, before anything trains
    return m.trained(with_seed(run, seed), variant)


@torch.no_grad()
def _apply(run: RunConfig, method: str, model, img: np.ndarray) -> np.ndarray:
    y = get_method(method).predict(model, to_tensor(img).to(run.device))
    return np.clip(to_image(y.float().cpu()), 0, 1)


def real_photo_grid(run: RunConfig, photos: Sequence[tuple[str, np.ndarray]], methods: dict[str, str]):
    """Figure: per real photo (no ground truth), the photo and the output of each method's trained model
    (``methods``: column label -> method name; :func:`trained_model`, run through :meth:`Method.predict`)."""
    models = {label: (m, trained_model(run, m)) for label, m in methods.items()}
    images, titles = [], []
    for name, img in photos:
        x = _thumb(img, run.preset.eval.max_side or 512)
        images.append(x)
        titles.append(str(name).split("/")[-1])
        for label, (m, model) in models.items():
            images.append(_apply(run, m, model, x))
            titles.append(label)
    return image_grid(images, titles=titles, ncols=len(models) + 1)


def stored_example_grid(results: dict[str, dict], index: int = 0):
    """Figure from the example images stored with results (no model run): per test set, the input,
    each result's output and the ground truth. ``results`` maps a column title to a stored result."""
    first = next(iter(results.values()))
    images, titles = [], []
    for dname in first.get("scores", {}):
        key = f"{dname}_{index}"
        if f"{key}_input" not in (first.get("_images") or {}):
            continue
        images.append(load_image(first, f"{key}_input"))
        titles.append(f"{DATASET_NAMES.get(dname, dname)}: input")
        for label, r in results.items():
            ok = f"{key}_output" in (r.get("_images") or {})
            images.append(load_image(r, f"{key}_output") if ok else images[-1] * 0)
            titles.append(label if ok else f"{label} (not stored)")
        images.append(load_image(first, f"{key}_truth"))
        titles.append("ground truth")
    if not images:
        raise ExperimentError("no example images stored with these results")
    return image_grid(images, titles=titles, ncols=len(results) + 2)


# ----------------------------------------------------------------------------------------------------
# Training records: what a (time-budgeted) training run did, stored beside the results
# ----------------------------------------------------------------------------------------------------

#: The papers' training compute in samples x pixels. LA Sec. 5: 60 epochs of 4000 pairs at 256x256 (the
#: fine-tuning length is not given, so this is a lower bound). TS gives no schedule: our ``paper`` preset's
#: assumption (100k steps per stage at batch 6, 256x256) stands in for it, labelled as such.
PAPER_COMPUTE = {
    "la": {"samples": 60 * 4000, "pixels": 256 * 256, "source": "LA Sec. 5: 60 epochs x 4000 pairs of 256x256 "
           "(fine-tuning not counted: its length is not given)"},
    "ts": {"samples": 2 * 100_000 * 6, "pixels": 256 * 256, "source": "not given by the TS paper or release; our "
           "`paper` preset's assumption: 100k steps per stage at batch 6, 256x256"},
}


def compute_fraction(method: str, samples_seen: int, crop: int) -> float:
    """The fraction of the paper's training compute (samples x pixels, :data:`PAPER_COMPUTE`) a run had."""
    ref = PAPER_COMPUTE[method]
    return samples_seen * crop * crop / (ref["samples"] * ref["pixels"])


def ts_flops_ratio(width_scale: float, size: int = 128) -> float:
    """FLOPs of TS's networks at ``width_scale`` over those at the release's widths
    (:meth:`sirr.methods.TwoStageMethod.flops_ratio`)."""
    return get_method("ts").flops_ratio(width_scale, size)


def training_record(run: RunConfig, method: str, run_dir=None, extra: dict | None = None) -> dict:
    """Store what ``method``'s training at ``run`` did: ``results/<preset>/training/<method>/<seed>.json``
    (steps, samples, seconds and budget per phase, the last validation scores, the compute fraction,
    ``extra`` such as the load average) plus its ``metrics.jsonl`` and ``train.log`` beside it.
    Reads the run's ``final.pt``; returns the stored payload."""
    rdir = run_dir or _run_dir(run, method, "full")
    ck = train.load_checkpoint(rdir / "final.pt", method)
    metrics = train.read_metrics(rdir)
    val = metrics[metrics["validation"].fillna(False).astype(bool)] if "validation" in metrics else metrics.iloc[:0]
    crop = getattr(run.preset, method).crop
    payload = {
        "method": method, "steps": int(ck["step"]), "samples_seen": ck.get("samples_seen"), "crop": crop,
        "batch_size": getattr(run.preset, method).batch_size,
        "phase_steps": ck.get("phase_steps"), "phase_seconds": ck.get("phase_seconds"),
        "precision": ck.get("precision"), "vgg_weights": ck.get("vgg_weights"), "pool": ck.get("pool"),
        "validation_photos": ck.get("validation_photos"), "model_kwargs": ck.get("model_kwargs"),
        "validation": val[[c for c in ("step", "phase", "val_psnr", "val_ssim", "val_identity_psnr",
                               "val_identity_ssim") if c in val]].to_dict(orient="records"),
        "final_losses": ck.get("losses"), "trained_on": ck.get("provenance", {}),
        "compute_fraction": compute_fraction(method, int(ck.get("samples_seen") or 0), crop),
        "truncated": bool(ck.get("truncated")), "best_validation": ck.get("best_validation"),
        "time_guard_s": ck.get("time_guard_s"),
        "paper_compute": PAPER_COMPUTE[method], **(extra or {}),
    }
    w = get_method(method).width_scale(ck.get("model_kwargs"), run.preset)
    if w is not None:  # a network that may train narrower than the release: samples x pixels overstates its compute
        payload["width_scale"] = w
        payload["compute_fraction_flops"] = payload["compute_fraction"] * get_method(method).flops_ratio(w)
    else:  # one architecture: FLOPs scale with samples x pixels
        payload["compute_fraction_flops"] = payload["compute_fraction"]
    out = save_result(run, f"training/{method}", payload)
    for name in ("metrics.jsonl", "train.log"):
        if (rdir / name).is_file():
            atomic_write_bytes(out.parent / f"{run.seed}.{name}", (rdir / name).read_bytes())
    return payload


def load_average_record(path: str | os.PathLike | None) -> dict | None:
    """Mean and max of a load log (lines ``<ISO time> <1-minute load average>``, e.g. from
    ``while true; do echo "$(date -u +%FT%TZ) $(cut -d' ' -f1 /proc/loadavg)"; sleep 30; done``); None without one."""
    if path is None:
        return None
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                rows.append((parts[0], float(parts[1])))
            except ValueError:
                continue
    if not rows:
        return None
    loads = [v for _, v in rows]
    return {"start": rows[0][0], "end": rows[-1][0], "one_minute_mean": round(float(np.mean(loads)), 2),
            "one_minute_max": round(float(np.max(loads)), 2), "samples": len(rows),
            "note": "2 cores: about 2.0 means the training alone"}


def machine_line() -> str:
    """The machine in words: CPU model, cores, torch threads and PyTorch's CPU capability."""
    from sirrbook.inference import cpu_model

    return (f"{cpu_model() or 'unknown CPU'}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
            f"capability {torch.backends.cpu.get_cpu_capability()}")


def load_checkpoint_meta(path) -> dict:
    """``{"step", "samples_seen"}`` of a checkpoint (the samples it had seen when it was written)."""
    ck = train.load_checkpoint(path)
    batch = ck["config"]["preset"][ck["kind"]]["batch_size"]
    return {"step": int(ck["step"]), "samples_seen": int(ck.get("samples_seen") or int(ck["step"]) * batch)}


def publish(run: RunConfig, method: str, load_log: str | os.PathLike | None = None, verbose: bool = True) -> dict:
    """Turn a finished ``full`` training at ``run`` into the book's committed results, in one repeatable step:

    1. the training record ``results/<preset>/training/<method>/<seed>.json`` (+ metrics and log);
    2. the evaluation ``results/<preset>/<method>/full/<seed>.json`` of the model of record (best-validation
       checkpoint), with the identity baseline on the same images and the paired intervals (``vs_identity``);
    3. for LA, the fp16 weights and their manifest entry with the real20 verdicts.

    Refuses a run that is unfinished or truncated. Returns ``{"training", "evaluation", "weights"}``.
    """
    m = get_method(method)
    rdir = m.run_dir(run)
    ckpt = train.selected_checkpoint(rdir)
    if ckpt is None:
        raise ExperimentError(f"{rdir} holds no finished {method.upper()} run (no final.pt: unfinished or truncated); "
                              f"train it first: python -m sirr train {method} --preset {run.preset.name} --resume")
    extra = {"machine": machine_line()}
    load = load_average_record(load_log)
    if load is not None:
        extra["load_average"] = load
    rec = training_record(run, method, rdir, extra=extra)
    run = dataclasses.replace(run, retrain=False)  # score the finished run's checkpoint; never retrain it
    for name, seed in ((f"{method}/full", run.seed), ("baseline/identity", 0)):
        stale = result_path(run, name, seed)  # recomputed: the baseline on exactly the images scored now
        stale.unlink(missing_ok=True)
        for f in stale.parent.glob(f"{seed}_*.png"):
            f.unlink()
    identity_experiment(run, verbose=verbose)
    res = experiment(run, method, verbose=verbose)
    out = {"training": rec, "evaluation": res, "weights": None}
    if m.commits_weights:
        from sirrbook.weights import export_weights

        real = (res.get("vs_identity") or {}).get("real20")
        score = None
        if real:
            score = {"n": real["psnr_la"]["n"], "max_side": run.preset.eval.max_side,
                     **{k: {kk: v[kk] for kk in ("mean", "low", "high", "n_better", "verdict")}
                        for k, v in real.items()}}
        sel = load_checkpoint_meta(ckpt)
        crop = run.preset.la.crop
        out["weights"] = export_weights(ckpt, run, extra={
            **extra, "steps": rec["steps"], "selected_step": sel["step"], "samples_seen": sel["samples_seen"],
            "compute_fraction": compute_fraction(method, sel["samples_seen"], crop),  # of the weights committed
            "run_compute_fraction": rec["compute_fraction"], "real20": score})
    return out
