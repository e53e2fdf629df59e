"""The committed results of a larger preset (``cpu``: 40 minutes of training per method on two CPU cores),
shown in every chapter beside what the chapter itself executes (``smoke`` in CI), always labelled with
their preset.

Everything here only reads ``results/<preset>/``: the training records (:func:`sirr.experiments.training_record`),
the stored evaluations (:func:`sirr.experiments.la_experiment` and friends) and the committed weights'
manifest. Nothing is trained or scored; a missing record gives ``None`` and the chapter says so.
"""

from __future__ import annotations

import dataclasses
import math

from pathlib import Path

import pandas as pd

from sirr import paper_numbers
from sirr.config import RunConfig, get_preset
from sirr.results import load_result
from sirr.train.engine import read_metrics
from sirr.viz.tables import CONVENTION_NAMES, DASH, DATASET_NAMES
from sirr.viz.training import training_curves

__all__ = ["STORED_PRESET", "stored_run", "stored_training", "table_caption", "validation_sentence", "stored_width", "width_sentence", "stored_metrics", "stored_curves", "scale_line",
           "stored_scores", "evaluation_table", "evaluation_display", "beats_identity_sentence"]

#: The preset whose committed results every chapter shows.
STORED_PRESET = "cpu"


def stored_run(run: RunConfig, preset: str = STORED_PRESET, seed: int = 0) -> RunConfig:
    """``run`` pointed at the stored results of ``preset``/``seed`` (same results folder and data root)."""
    return dataclasses.replace(run, preset=get_preset(preset), seed=seed)


def stored_training(run: RunConfig, method: str, preset: str = STORED_PRESET, seed: int = 0) -> dict | None:
    """The training record of ``method`` at ``preset`` (steps, samples, seconds, validation, load average)."""
    return load_result(stored_run(run, preset, seed), f"training/{method}")


def scale_line(rec: dict | None, method: str, preset: str = STORED_PRESET) -> str:
    """One sentence: how much training the stored ``method`` model had, next to the paper's."""
    if rec is None:
        return f"No stored {method.upper()} training at preset `{preset}` (results/{preset}/training/{method}/)."
    minutes = sum((rec.get("phase_seconds") or {}).values()) / 60
    phases = ", ".join(f"{n} {k} steps" for k, n in (rec.get("phase_steps") or {}).items() if n)
    load = (rec.get("load_average") or {}).get("one_minute_mean")
    return (f"{method.upper()} at preset `{preset}` (seed {rec['_provenance'].get('seed', 0)}): {phases}, "
            f"{rec['samples_seen']} samples of {rec['crop']}×{rec['crop']} px in {minutes:.0f} min on "
            f"{rec.get('machine', 'the CPU')}"
            + (f" (load average {load:.2f} while it trained)" if load is not None else "")
            + f"; that is {100 * rec['compute_fraction']:.3g}% of the paper's training compute "
              f"(samples × pixels; {rec['paper_compute']['source']}).")


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
            f"(higher is better) and LPIPS (VGG, lower is better; convention-free) on at most {ev.max_images} images "
            f"per set, longer side ≤ {ev.max_side} px; {note or 'no stored training record'}. The papers' columns "
            "are their own models, trained to the end on full-size images.")


def validation_sentence(rec: dict | None, method: str) -> str:
    """What the validation curve of the stored training says: start, end, best, identity, and whether it was still
    rising when the time budget stopped it (last third of the validations against the one before)."""
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
    state = (f"still rising when the time budget stopped it ({trend:+.2f} dB, {how}): more training would help"
             if trend > 0.1 else f"flat or noisy at the end ({trend:+.2f} dB, {how})")
    gap = "" if ident is None else (f", {last['val_psnr'] - ident:+.2f} dB against the identity baseline's "
                                    f"{ident:.2f} dB on the same triples")
    return (f"{method.upper()}'s validation PSNR went from {first['val_psnr']:.2f} dB (step {first['step']}) to "
            f"{last['val_psnr']:.2f} dB (step {last['step']}; best {best['val_psnr']:.2f} at step {best['step']})"
            f"{gap}; it was {state}.")


def stored_width(run: RunConfig, preset: str = STORED_PRESET, seed: int = 0) -> dict | None:
    """The stored :func:`sirr.experiments.ts_width_experiment` at ``preset`` (read only; ``None`` if absent)."""
    return load_result(stored_run(run, preset, seed), "ts_width")


def width_sentence(result: dict | None) -> str:
    """What the width comparison shows: steps, samples and final validation PSNR of B_ini per width, against
    the identity baseline, on the same wall-clock budget."""
    if not result or not result.get("rows"):
        return "No stored width comparison."
    bits, ident = [], None
    for row in result["rows"]:
        v = row["validation"]
        last = f"{v[-1]['val_psnr']:.2f} dB" if v else "no validation yet"
        best = f" (best {max(p['val_psnr'] for p in v):.2f})" if v else ""
        ident = v[-1]["val_identity_psnr"] if v else ident
        load = (row.get("load_average") or {}).get("one_minute_mean")
        bits.append(f"widths × {row['width_scale']:g} ({row['stage1_parameters'] / 1e6:.1f}M parameters): "
                    f"{row['steps']} steps, {row['samples_seen']} samples, last validation {last}{best}"
                    + (f", load average {load:.2f}" if load is not None else ""))
    p = result.get("_provenance", {})
    verdict = ""
    rows = [r for r in result["rows"] if r["validation"]]
    if len(rows) >= 2:
        wide, narrow = sorted(rows[:2], key=lambda r: -r["width_scale"])
        d = wide["validation"][-1]["val_psnr"] - narrow["validation"][-1]["val_psnr"]
        ratio = narrow["steps"] / max(wide["steps"], 1)
        verdict = (f" At the end of the budget the wider network scores {d:+.2f} dB against the narrower one, with "
                   f"{ratio:.1f}× fewer steps: " + ("at this budget narrowing did not help stage 1." if d > 0 else
                                                   "at this budget the narrower network learns faster."))
    return (f"In {result['seconds_each'] / 60:.0f} minutes of stage-1 training each ({result['crop']}-px crops, batch "
            f"{result['batch_size']}, seed {p.get('seed', 0)}, commit {p.get('commit', '?')}): " + "; ".join(bits)
            + (f". The identity baseline scores {ident:.2f} dB on the same validation triples." if ident else ".")
            + verdict)


def stored_scores(run: RunConfig, preset: str = STORED_PRESET, seed: int = 0) -> dict[str, dict | None]:
    """The stored evaluations at ``preset``: ``{"identity", "la", "ts"}`` -> payload or None."""
    r = stored_run(run, preset, seed)
    return {"identity": load_result(stored_run(run, preset, 0), "baseline/identity"),
            "la": load_result(r, "la/full"), "ts": load_result(r, "ts/full")}


def _get(payload: dict | None, dataset: str, metric: str) -> float:
    if payload is None:
        return math.nan
    return float(payload.get("scores", {}).get(dataset, {}).get(metric, math.nan))


def evaluation_table(run: RunConfig, convention: str = "la", preset: str = STORED_PRESET,
                     seed: int = 0) -> pd.DataFrame | None:
    """Per test set: images scored, then PSNR / SSIM (and LPIPS) of the identity baseline, LA and TS at
    ``preset`` under ``convention``, and the papers' own numbers beside them (LA Table 1, TS Table I:
    SIR² average only). Numbers only (NaN where absent); ``None`` when nothing is stored."""
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
        row[("TS paper", "psnr")] = paper_numbers.TS_TABLE1["proposed"] if d.startswith("sir2") else math.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df.set_index(("", "test set")).rename_axis("test set")


def beats_identity_sentence(df: pd.DataFrame | None, method: str) -> str:
    """Plainly, per test set, whether ``method`` ("la" or "ts") beats the identity baseline in PSNR."""
    if df is None:
        return f"No stored {method.upper()} evaluation."
    col, base = (method, "psnr"), ("identity", "psnr")
    if col not in df or df[col].isna().all():
        return f"No stored {method.upper()} evaluation."
    better = [i for i in df.index if df.loc[i, col] > df.loc[i, base]]
    worse = [i for i in df.index if df.loc[i, col] <= df.loc[i, base]]
    parts = []
    if better:
        parts.append("beats the identity baseline (the input itself) on " + ", ".join(
            f"{i} ({df.loc[i, col] - df.loc[i, base]:+.2f} dB)" for i in better))
    if worse:
        parts.append("does not on " + ", ".join(f"{i} ({df.loc[i, col] - df.loc[i, base]:+.2f} dB)" for i in worse))
    return f"{method.upper()} " + "; it ".join(parts) + "."


def stored_metrics(run: RunConfig, method: str, preset: str = STORED_PRESET, seed: int = 0) -> pd.DataFrame | None:
    """The stored ``metrics.jsonl`` of ``method``'s training at ``preset`` (losses and validation scores)."""
    rec = stored_training(run, method, preset, seed)
    if rec is None:
        return None
    path = Path(rec["_path"]).parent / f"{seed}.metrics.jsonl"
    return read_metrics(path) if path.is_file() else None


def stored_curves(run: RunConfig, method: str, preset: str = STORED_PRESET, seed: int = 0):
    """:func:`sirr.viz.training.training_curves` of the stored training, titled with its scale; None if absent."""
    df = stored_metrics(run, method, preset, seed)
    if df is None:
        return None
    rec = stored_training(run, method, preset, seed)
    title = (f"{method.upper()}, preset {preset}, seed {seed}: {rec['steps']} steps, {rec['samples_seen']} samples "
             f"of {rec['crop']} px ({100 * rec['compute_fraction']:.3g}% of the paper's training compute)")
    return training_curves(df, title)


def evaluation_display(df: pd.DataFrame | None) -> pd.DataFrame | str:
    """:func:`evaluation_table` as strings: PSNR with 2 decimals, SSIM and LPIPS with 3, an em dash where absent;
    columns grouped by who (input, LA, TS, the papers)."""
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
        label = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS ↓"}[metric]
        out[(names[who], label)] = [DASH if pd.isna(v) else f"{v:.{digits}f}" for v in df[col]]
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out
