"""The committed results of a larger preset (``cpu``: a fixed number of fp32 training steps per method on two CPU cores),
shown in every chapter beside what the chapter itself executes (``smoke`` in CI), always labelled with
their preset.

Everything here only reads ``results/<preset>/``: the training records (:func:`sirrbook.experiments.training_record`),
the stored evaluations (:func:`sirrbook.experiments.experiment`) and the committed weights'
manifest. Nothing is trained or scored; a missing record gives ``None`` and the chapter says so.
"""

from __future__ import annotations

import dataclasses
import math

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from sirr import paper_numbers
from sirr.config import RunConfig, get_preset
from sirrbook.evaluation import verdict_phrase
from sirrbook.results import load_result, load_results
from sirr.train.engine import read_metrics
from sirrbook.viz.tables import CONVENTION_NAMES, DASH, DATASET_NAMES
from sirrbook.viz.training import training_curves

__all__ = ["STORED_PRESET", "stored_run", "pooled_mean", "stored_training", "table_caption", "validation_sentence", "stored_stage1_study", "stage1_study_summary", "stage1_study_sentence", "stored_metrics", "stored_curves", "scale_line",
           "stored_scores", "evaluation_table", "evaluation_display", "stored_verdicts", "verdicts_display", "verdict_sentence", "stored_lesson", "lesson_sentence"]

#: The preset whose committed results every chapter shows.
STORED_PRESET = "cpu"


def stored_run(run: RunConfig, preset: str = STORED_PRESET, seed: int = 0) -> RunConfig:
    """``run`` pointed at the stored results of ``preset``/``seed`` (same results folder and data root)."""
    return dataclasses.replace(run, preset=get_preset(preset), seed=seed)


def stored_training(run: RunConfig, method: str, preset: str = STORED_PRESET, seed: int = 0) -> dict | None:
    """The training record of ``method`` at ``preset`` (steps, samples, seconds, validation, load average)."""
    return load_result(stored_run(run, preset, seed), f"training/{method}")


def scale_line(rec: dict | None, method: str, preset: str = STORED_PRESET) -> str:
    """One sentence: how much training the stored ``method`` model had (steps, samples, the selected checkpoint, the
    fraction of the paper's compute), whether a time guard truncated it, and where it ran."""
    if rec is None:
        return f"No stored {method.upper()} training at preset `{preset}` (results/{preset}/training/{method}/)."
    minutes = sum((rec.get("phase_seconds") or {}).values()) / 60
    phases = ", ".join(f"{n} {k} steps" for k, n in (rec.get("phase_steps") or {}).items() if n)
    load = (rec.get("load_average") or {}).get("one_minute_mean")
    best = rec.get("best_validation")
    chosen = (f"; the model of record is its best-validation checkpoint, step {best['step']} "
              f"({best['val_psnr']:.2f} dB on the validation triples, identity {best['val_identity_psnr']:.2f} dB; "
              "chosen on validation only)" if best else "")
    flops = rec.get("compute_fraction_flops")
    frac = f"{100 * rec['compute_fraction']:.3g}% of the paper's training compute (samples × pixels"
    if flops is not None and abs(flops - rec["compute_fraction"]) > 1e-12:
        frac += f"; {100 * flops:.3g}% in FLOPs at {rec.get('width_scale', 1):g} of the release's widths"
    frac += f"; {rec['paper_compute']['source']})"
    truncated = " It is TRUNCATED: a time guard stopped it, so it is not the preset's model." if rec.get(
        "truncated") else ""
    return (f"{method.upper()} at preset `{preset}` (seed {rec['_provenance'].get('seed', 0)}, fp32): {phases}, "
            f"{rec['samples_seen']} samples of {rec['crop']}×{rec['crop']} px{chosen}; {minutes:.0f} min on "
            f"{rec.get('machine', 'the CPU')}"
            + (f" (load average {load:.2f})" if load is not None else "")
            + f"; that is {frac}.{truncated}")


def compute_note(run: RunConfig, preset: str = STORED_PRESET, seed: int = 0) -> str:
    """"LA had x% and TS y% of its paper's training compute (samples x pixels)" for captions ("" if not stored)."""
    parts = []
    for m in ("la", "ts"):
        rec = stored_training(run, m, preset, seed)
        if rec is not None and rec.get("compute_fraction") is not None:
            parts.append(f"{m.upper()} {100 * rec['compute_fraction']:.3g}%")
    return (f"training compute as a fraction of the paper's (samples × pixels): {', '.join(parts)}"
            if parts else "")


def table_caption(run: RunConfig, convention: str, preset: str = STORED_PRESET, seed: int = 0) -> str:
    """Markdown caption of a stored evaluation table: preset, seed, convention, compute fraction, what is shown."""
    ev = get_preset(preset).eval
    note = compute_note(run, preset, seed)
    return (f"**Preset `{preset}`, seed {seed}, {CONVENTION_NAMES.get(convention, convention)}** — PSNR/SSIM "
            f"(higher is better) and LPIPS (VGG, lower is better; convention-free) on "
            + ("every image of each set" if ev.subset == "all" and ev.max_images is None else
               "every image of real20 and CEILNet and every scene of SIR² (a declared subset: two settings per "
               "SolidObject scene)" if ev.subset == "scenes" else f"the first {ev.max_images} images of each set")
            + f", longer side ≤ {ev.max_side} px; {note or 'no stored training record'}. The papers' columns "
            "are their own models, trained to the end on full-size images.")


def validation_sentence(rec: dict | None, method: str) -> str:
    """What the validation curve of the stored training says: start, end, best, identity, and whether it was still
    rising when training ended (last third of the validations against the one before)."""
    vals = [v for v in (rec or {}).get("validation") or [] if v.get("val_psnr") is not None]
    if len(vals) < 2:
        return f"No stored validation curve for {method.upper()}."
    first, last = vals[0], vals[-1]
    best = max(vals, key=lambda v: v["val_psnr"])
    ident = last.get("val_identity_psnr")
    k = max(1, len(vals) // 3)
    tail = [v["val_psnr"] for v in vals[-k:]]
    before = [v["val_psnr"] for v in vals[-2 * k:-k]] or [first["val_psnr"]]
    trend = sum(tail) / len(tail) - sum(before) / len(before)
    how = "mean of the last third of the validations against the third before it"
    state = (f"still rising when its steps ran out ({trend:+.2f} dB, {how}): more training would help"
             if trend > 0.1 else f"flat or noisy at the end ({trend:+.2f} dB, {how})")
    gap = "" if ident is None else (f", {last['val_psnr'] - ident:+.2f} dB against the identity baseline's "
                                    f"{ident:.2f} dB on the same triples")
    return (f"{method.upper()}'s validation PSNR went from {first['val_psnr']:.2f} dB (step {first['step']}) to "
            f"{last['val_psnr']:.2f} dB (step {last['step']}; best {best['val_psnr']:.2f} at step {best['step']})"
            f"{gap}; it was {state}.")


def stored_stage1_study(run: RunConfig, study: str, preset: str = STORED_PRESET) -> list[dict]:
    """Every stored seed of :func:`sirrbook.experiments.ts_stage1_study` ``study`` at ``preset`` (read only; [] if none)."""
    return load_results(stored_run(run, preset), f"ts_stage1/{study}")


def stage1_study_summary(results: list[dict]) -> dict | None:
    """Final validation PSNR of each arm per seed, and the paired difference of the first arm minus the second
    (mean over seeds with a 95% interval from the seed-to-seed spread; a t interval, as there are few seeds)."""
    if not results:
        return None
    arms = [r["arm"] for r in results[0]["rows"]]
    final = {a: [] for a in arms}
    for res in results:
        for row in res["rows"]:
            if row["validation"]:
                final[row["arm"]].append(row["validation"][-1]["val_psnr"])
    out = {"arms": arms, "final": final, "seeds": [r["_provenance"].get("seed") for r in results],
           "steps": results[0]["steps"], "identity": None}
    v = results[0]["rows"][0]["validation"]
    out["identity"] = v[-1]["val_identity_psnr"] if v else None
    if len(arms) == 2 and len(final[arms[0]]) == len(final[arms[1]]) >= 2:
        d = np.subtract(final[arms[0]], final[arms[1]])
        half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
        out["difference"] = {"mean": float(d.mean()), "low": float(d.mean() - half), "high": float(d.mean() + half),
                             "n": int(len(d))}
    return out


def stage1_study_sentence(results: list[dict]) -> str:
    """What a stage-1 study shows, with its numbers and a verdict from the interval ("" data: says none is stored)."""
    sm = stage1_study_summary(results)
    if sm is None:
        return "No stored result of this study yet."
    a, b = sm["arms"]
    mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
    p = results[0].get("_provenance", {})
    text = (f"After {sm['steps']} stage-1 steps ({results[0]['crop']}-px crops, batch {results[0]['batch_size']}, "
            f"seeds {', '.join(str(x) for x in sm['seeds'])}, commit {p.get('commit', '?')}), B_ini scores "
            f"{mean(sm['final'][a]):.2f} dB with `{a}` and {mean(sm['final'][b]):.2f} dB with `{b}` on the 48 "
            f"validation triples (identity {sm['identity']:.2f} dB).")
    d = sm.get("difference")
    if d is None:
        return text + " Fewer than two seeds are stored, so no interval and no verdict."
    verdict = (f"`{a}` is better" if d["low"] > 0 else f"`{b}` is better" if d["high"] < 0 else
               "no clear difference at this scale")
    return text + (f" Paired difference ({a} − {b}): {d['mean']:+.2f} dB, 95% interval {d['low']:+.2f} to "
                   f"{d['high']:+.2f} over {d['n']} seeds: {verdict}.")


def stored_scores(run: RunConfig, preset: str = STORED_PRESET, seed: int = 0) -> dict[str, dict | None]:
    """The stored evaluations at ``preset``: ``{"identity", "la", "ts"}`` -> payload or None."""
    r = stored_run(run, preset, seed)
    return {"identity": load_result(stored_run(run, preset, 0), "baseline/identity"),
            "la": load_result(r, "la/full"), "ts": load_result(r, "ts/full")}


def _get(payload: dict | None, dataset: str, metric: str) -> float:
    if payload is None:
        return math.nan
    return float(payload.get("scores", {}).get(dataset, {}).get(metric, math.nan))


def pooled_mean(payload: dict | None, datasets: Sequence[str], metric: str) -> float:
    """Mean of ``metric`` over every image of ``datasets`` (from the stored per-image scores)."""
    if payload is None:
        return math.nan
    vals = [v for d in datasets
            for v in (payload.get("scores", {}).get(d, {}).get("per_image", {}).get(metric) or [])
            if isinstance(v, (int, float)) and math.isfinite(v)]
    return float(sum(vals) / len(vals)) if vals else math.nan


def evaluation_table(run: RunConfig, convention: str = "la", preset: str = STORED_PRESET,
                     seed: int = 0) -> pd.DataFrame | None:
    """Per test set: images scored, then PSNR / SSIM (and LPIPS) of the identity baseline, LA and TS at
    ``preset`` under ``convention``, and the papers' own numbers beside them (LA Table 1 per set; TS Table I's
    SIR² average only on a last row that pools the SIR² sets' images). Numbers only (NaN where absent); ``None`` when nothing is stored."""
    s = stored_scores(run, preset, seed)
    if all(v is None for v in s.values()):
        return None
    datasets = [d for d in (s["la"] or s["ts"] or s["identity"])["scores"]]
    rows = []
    for d in datasets:
        n = ((s["la"] or s["identity"])["scores"].get(d) or {}).get("n")
        row = {("", "test set"): DATASET_NAMES.get(d, d), ("", "images"): n}
        for who in ("identity", "la", "ts"):
            for m in ("psnr", "ssim"):
                row[(who, m)] = _get(s[who], d, f"{m}_{convention}")
            row[(who, "lpips")] = _get(s[who], d, "lpips")
        paper_la = paper_numbers.LA_TABLE1.get(d, {})
        row[("LA paper", "psnr")] = paper_la.get("psnr", math.nan)
        row[("LA paper", "ssim")] = paper_la.get("ssim", math.nan)
        row[("TS paper", "psnr")] = math.nan  # TS Table I gives only the SIR² average: on the pooled row below
        rows.append(row)
    sir2 = [d for d in datasets if d.startswith("sir2")]
    if sir2:  # the images of the SIR² sets pooled: what TS Table I's "average PSNR on SIR²" is compared with
        row = {("", "test set"): f"SIR² pooled ({len(sir2)} sets)",
               ("", "images"): sum(((s["la"] or s["identity"])["scores"].get(d) or {}).get("n") or 0 for d in sir2)}
        for who in ("identity", "la", "ts"):
            for m in ("psnr", "ssim"):
                row[(who, m)] = pooled_mean(s[who], sir2, f"{m}_{convention}")
            row[(who, "lpips")] = pooled_mean(s[who], sir2, "lpips")
        row[("LA paper", "psnr")] = row[("LA paper", "ssim")] = math.nan
        row[("TS paper", "psnr")] = paper_numbers.TS_TABLE1["proposed"]
        rows.append(row)
    df = pd.DataFrame(rows)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df.set_index(("", "test set")).rename_axis("test set")


def stored_verdicts(run: RunConfig, method: str, preset: str = STORED_PRESET, seed: int = 0) -> pd.DataFrame | None:
    """Per test set: ``method``'s stored evaluation against the identity baseline, image by image: the mean paired
    difference of PSNR, SSIM and LPIPS with its 95% bootstrap interval, how many images improved, and the verdict
    the interval gives (:func:`sirrbook.experiments.identity_comparison`). ``None`` when either is not stored."""
    from sirrbook.experiments import identity_comparison

    res = load_result(stored_run(run, preset, seed), f"{method}/full")
    if res is None:
        return None
    cmp = res.get("vs_identity")  # the intervals computed when the evaluation was stored (sirr publish)
    if not cmp:  # an older record without them: compute them from the per-image scores
        ident = load_result(stored_run(run, preset, 0), "baseline/identity")
        if ident is None:
            return None
        cmp = identity_comparison(res, ident)
    rows = []
    for dname, by_metric in cmp.items():
        row = {"test set": DATASET_NAMES.get(dname, dname), "n": next(iter(by_metric.values()))["n"]}
        for m, label in (("psnr_la", "PSNR"), ("ssim_la", "SSIM"), ("lpips", "LPIPS")):
            d = by_metric.get(m)
            if d is None:
                continue
            row[f"Δ{label}"] = d["mean"]
            row[f"Δ{label} low"], row[f"Δ{label} high"] = d["low"], d["high"]
            row[f"{label} better on"] = d["n_better"]
            row[f"{label} verdict"] = d["verdict"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("test set") if rows else None


def verdicts_display(df: pd.DataFrame | None) -> pd.DataFrame | str:
    """:func:`stored_verdicts` as short strings: "+0.52 [+0.10, +0.93] better (14/19)" per metric."""
    if df is None:
        return "No stored evaluation with per-image scores to compare with the identity baseline."
    out = pd.DataFrame(index=df.index)
    out["images"] = df["n"]
    for label, fmt in (("PSNR", "{:+.2f}"), ("SSIM", "{:+.3f}"), ("LPIPS", "{:+.3f}")):
        if f"Δ{label}" not in df:
            continue
        out[f"Δ{label}" + ("\u00a0↓" if label == "LPIPS" else "")] = [
            (f"{fmt.format(r[f'Δ{label}'])} [{fmt.format(r[f'Δ{label} low'])}, {fmt.format(r[f'Δ{label} high'])}] "
             f"{r[f'{label} verdict']} ({int(r[f'{label} better on'])}/{int(r['n'])})")
            if pd.notna(r.get(f"Δ{label}")) else DASH for _, r in df.iterrows()]
    return out


def verdict_sentence(df: pd.DataFrame | None, method: str) -> str:
    """Per test set, in words, whether ``method`` is better than the input, worse, or not clearly different, in PSNR
    (the 95% paired interval decides), with SSIM's verdict beside it."""
    if df is None:
        return f"No stored {method.upper()} evaluation with per-image scores."
    groups: dict[str, list[str]] = {}
    for name, r in df.iterrows():
        ssim = f", SSIM {r['SSIM verdict']}" if "SSIM verdict" in r and isinstance(r["SSIM verdict"], str) else ""
        groups.setdefault(r["PSNR verdict"], []).append(
            f"{name} ({r['ΔPSNR']:+.2f} dB, 95% interval {r['ΔPSNR low']:+.2f} to {r['ΔPSNR high']:+.2f}{ssim})")
    parts = [f"{verdict_phrase(k)} on " + "; ".join(groups[k]) for k in ("better", "no clear difference", "worse")
             if k in groups]
    return f"In PSNR, {method.upper()} is " + ", and ".join(parts) + "."


def stored_metrics(run: RunConfig, method: str, preset: str = STORED_PRESET, seed: int = 0) -> pd.DataFrame | None:
    """The stored ``metrics.jsonl`` of ``method``'s training at ``preset`` (losses and validation scores)."""
    rec = stored_training(run, method, preset, seed)
    if rec is None:
        return None
    path = Path(rec["_path"]).parent / f"{seed}.metrics.jsonl"
    return read_metrics(path) if path.is_file() else None


def stored_curves(run: RunConfig, method: str, preset: str = STORED_PRESET, seed: int = 0):
    """:func:`sirrbook.viz.training.training_curves` of the stored training, titled with its scale; None if absent."""
    df = stored_metrics(run, method, preset, seed)
    if df is None:
        return None
    rec = stored_training(run, method, preset, seed)
    title = (f"{method.upper()}, preset {preset}, seed {seed}: {rec['steps']} steps, {rec['samples_seen']} samples "
             f"of {rec['crop']} px ({100 * rec['compute_fraction']:.3g}% of the paper's training compute)")
    return training_curves(df, title)


def evaluation_display(df: pd.DataFrame | None) -> pd.DataFrame | str:
    """:func:`evaluation_table` as strings: PSNR with 2 decimals, SSIM and LPIPS with 3, an em dash where absent;
    one column per test set and one row per (who, metric), grouped by who (input, LA, TS, the papers)."""
    if df is None:
        return "no stored results"
    names = {"identity": "input (identity)", "la": "LA ours", "ts": "TS ours", "LA paper": "LA paper",
             "TS paper": "TS paper (SIR² avg.)"}
    out = pd.DataFrame(index=df.index)
    out[("", "images")] = df[("", "images")]
    for col in df.columns:
        who, metric = col
        if who == "":
            continue
        digits = 2 if metric == "psnr" else 3
        label = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS\u00a0↓"}[metric]
        out[(names[who], label)] = [DASH if pd.isna(v) else f"{v:.{digits}f}" for v in df[col]]
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out.T.rename_axis(["", ""])  # one column per test set, one row per (who, metric): fits the page


def stored_lesson(run: RunConfig, edges: str = "ground_truth", preset: str = STORED_PRESET, seed: int = 0) -> dict | None:
    """The committed run of chapter 05's ten-minute experiment (:func:`sirrbook.lesson.edges_to_background`)."""
    return load_result(stored_run(run, preset, seed), f"lesson/edges_{edges}", seed)


def lesson_sentence(rec: dict | None) -> str:
    """What the ten-minute experiment did and reached, with its numbers and where it ran."""
    if rec is None:
        return "No stored run of the ten-minute experiment yet (results/cpu/lesson/)."
    r, c, p = rec["recipe"], rec["curve"], rec.get("_provenance", {})
    best = max(c, key=lambda x: x["psnr"])
    load = rec.get("load_average_1min_at_end")
    return (f"F2 ({rec['f2_parameters']:,} parameters) trained {r['steps']} steps at batch {r['batch_size']} on "
            f"{r['crop']}-px crops in {rec['seconds'] / 60:.1f} min on {rec['threads']} CPU threads"
            + (f" (load average {load:.2f})" if load is not None else "")
            + f". Held-out PSNR went from {c[0]['psnr']:.2f} dB at step 0 to {c[-1]['psnr']:.2f} dB at step "
            f"{c[-1]['step']} (best {best['psnr']:.2f} dB at step {best['step']}); doing nothing (the input) scores "
            f"{rec['identity_psnr']:.2f} dB on the same {len(rec['held_out'])} triples (one seed). Preset {p.get('preset')}, seed "
            f"{p.get('seed')}, device {p.get('device')}, commit {p.get('commit')}.")
