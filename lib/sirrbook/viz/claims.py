"""Chapter 07's views of the claim experiments (:mod:`sirrbook.claims`): the pre-registration table, one result
table per claim, and one figure per claim that shows the effect, all read from the stored runs."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sirrbook import claims as cl
from sirr.registry import TABLES
from sirr.config import RunConfig
from sirrbook.results import load_image, load_result
from sirrbook.viz.style import wrap_title

__all__ = ["registration_frame", "registration_markdown", "claim_frame", "claim_table", "claim_sentence",
           "difference_text", "measure_name", "claim_figure", "show_claim", "status_frame",
           "coverage_frame", "coverage_markdown",
           "rdm_learning_curves",
           "loss_share_frame"]

#: Names of the measures as the chapter prints them (lower-is-better ones say so).
MEASURE_NAMES = {
    "psnr_la": "PSNR (dB)", "ssim_la": "SSIM", "lpips": "LPIPS (lower is better)",
    "reflection_edge_energy": "reflection-edge energy kept (lower: fewer reflection edges)",
    "background_edge_energy": "background-edge energy kept", "sharpness": "sharpness (gradient energy / truth's)",
    "rcmap_auc": "RCMap AUC for reflection-dominated pixels", "rcmap_loss": "L_Ĉ, Eq. 8 (lower is better)",
}
WHERE_NAMES = {"validation": "held-out synthetic triples", "real": "real photos (real20 + SIR², pooled)"}


def registration_frame(run: RunConfig) -> pd.DataFrame:
    """One row per claim as registered before it ran: claim, prediction, arms, seeds, steps, primary measure."""
    rows = []
    for c in cl.CLAIMS.values():
        where, metric = c.primary
        rows.append({"id": c.id, "paper": c.source, "claim": c.claim, "our prediction": c.prediction,
                     "arms": " vs ".join(a.label for a in c.arms), "seeds": ", ".join(map(str, c.seeds)),
                     "steps per arm": c.steps(run),
                     "decided by": f"{MEASURE_NAMES.get(metric, metric)} on {WHERE_NAMES.get(where, where)}"})
    return pd.DataFrame(rows).set_index("id")


def status_frame(run: RunConfig) -> pd.DataFrame:
    """One row per claim: runs done of all, and the verdict (none until every run is in)."""
    rows = []
    for cid in cl.CLAIMS:
        s = cl.claim_summary(run, cid)
        p = s["progress"]
        rows.append({"id": cid, "paper": s["source"], "runs done": f"{p['done']} of {p['total']}",
                     "verdict": s["verdict"] or "—"})
    return pd.DataFrame(rows).set_index("id")


def difference_text(d: dict, spec: str = "+.3g") -> str:
    """A difference as "mean [low, high]" (just the mean when there is no interval), each number as ``spec``."""
    if not math.isfinite(d.get("low", math.nan)):
        return format(d["mean"], spec)
    return f"{format(d['mean'], spec)} [{format(d['low'], spec)}, {format(d['high'], spec)}]"


def measure_name(metric: str) -> str:
    """A measure's name without its parenthesis (:data:`MEASURE_NAMES` of ``metric``, else the key itself)."""
    return MEASURE_NAMES.get(metric, metric).split(" (")[0]


#: Where a measure was taken, as the claim tables print it (short, so the table fits the page).
WHERE_SHORT = {"validation": "held-out triples", "real": "real, pooled", "real20": "real20",
               "sir2_postcard": "SIR² Postcard", "sir2_solidobject": "SIR² Object", "sir2_wild": "SIR² Wild"}
#: The order of the claim tables' rows: the deciding measure first, then by place, then by measure.
_WHERE_ORDER = ("real", "real20", "sir2_postcard", "sir2_solidobject", "sir2_wild", "validation")
_METRIC_ORDER = ("psnr_la", "ssim_la", "lpips", "rcmap_auc", "rcmap_loss", "reflection_edge_energy",
                 "background_edge_energy", "sharpness")


#: Measures marked ↓ (lower is better): the claims' lower-is-better ones, and the reflection-edge energy that B_ini
#: keeps (fewer of the reflection's edges is what TS predicts).
_LOWER_SHOWN = frozenset({*cl.LOWER, "reflection_edge_energy"})


#: The claim tables' short measure names (the long ones, :data:`MEASURE_NAMES`, are for sentences).
_TABLE_NAMES = {"rcmap_auc": "RCMap AUC", "rcmap_loss": "L_Ĉ (Eq. 8)",
                "reflection_edge_energy": "reflection-edge energy", "background_edge_energy": "background-edge energy"}
#: Decimals per measure in the claim tables (PSNR in dB to 0.01; L_Ĉ is about 0.01, its differences 1e-5).
_DECIMALS = {"psnr_la": 2, "rcmap_loss": 5}


def _row_order(key: str, primary: str) -> tuple:
    where, metric = key.split("/", 1)
    rank = lambda seq, x: seq.index(x) if x in seq else len(seq)  # noqa: E731
    return (key != primary, rank(_WHERE_ORDER, where), where, rank(_METRIC_ORDER, metric), metric)


def claim_frame(summary: dict) -> pd.DataFrame | None:
    """The claim's table, narrow enough for the page: one row per measure and place (the deciding one first,
    marked ★), the arms' means, and per contrast the paired difference reference − other with its 95% interval
    over seeds and images (column ``Δ vs <other>``). The ``on`` column is left out when every row is on the same
    place (the caption says where). None before any run is in."""
    if not summary["arm_means"]:
        return None
    primary = "/".join(summary["primary"])
    keys = {k for c in summary["contrasts"] for k in c["differences"]}  # measures with a paired difference ...
    keys |= {k for means in summary["arm_means"].values() for k in means}  # ... and those of arms without a pair yet
    keys = sorted(keys, key=lambda k: _row_order(k, primary))
    rows, decimals = [], []
    for k in keys:
        where, metric = k.split("/", 1)
        name = _TABLE_NAMES.get(metric) or measure_name(metric)
        row = {"measure": ("★ " if k == primary else "") + name + ("\u00a0↓" if metric in _LOWER_SHOWN else ""),
               "on": WHERE_SHORT.get(where, where)}
        dec = _DECIMALS.get(metric, 3)
        decimals.append(dec)
        for arm, means in summary["arm_means"].items():
            row[arm] = means.get(k, math.nan)
        for c in summary["contrasts"]:
            d = c["differences"].get(k)
            row[f"Δ vs {c['other']}"] = difference_text(d, f"+.{dec}f") if d else ""
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["decimals"] = decimals  # per row, for claim_table
    if frame["on"].nunique() == 1:
        frame = frame.drop(columns="on")
    return frame


def claim_table(summary: dict):
    """:func:`claim_frame` as the chapter shows it: no index, and a caption that says what the marks mean. None
    before any run is in."""
    frame = claim_frame(summary)
    if frame is None:
        return None
    refs = sorted({c["reference"] for c in summary["contrasts"]})
    on = "" if "on" in frame.columns else f" All on {WHERE_SHORT.get(summary['primary'][0], summary['primary'][0])}."
    caption = ("★ decides the verdict; ↓ lower is better. "
               + (f"Δ = {refs[0]} − the other arm, mean [95% interval] over seeds and images." if refs else "")
               + on)
    styler = frame.style.hide(axis="index")
    arms = list(summary["arm_means"])
    for dec in set(frame.attrs["decimals"]):
        rows = [i for i, d in enumerate(frame.attrs["decimals"]) if d == dec]
        styler = styler.format(f"{{:.{dec}f}}", subset=pd.IndexSlice[rows, arms], na_rep="—")
    return (styler.set_caption(caption).set_table_styles([{"selector": "caption",
                                                     "props": "caption-side: bottom; font-size: 0.85em;"}]))


def registration_markdown(run: RunConfig) -> str:
    """The claims as registered before they ran, one list item each (a table of this prose would not fit)."""
    items = []
    for cid, r in registration_frame(run).iterrows():
        items.append(f"- **{cid}** ({r['paper']}). *Claim:* {r['claim']} *Our prediction:* {r['our prediction']} "
                     f"*Arms:* {r['arms']}; seeds {r['seeds']}; {r['steps per arm']} steps per arm. "
                     f"*Decided by:* {r['decided by']}.")
    return "\n".join(items)


def claim_sentence(summary: dict) -> str:
    """The claim's verdict in one line with its numbers and provenance, or how many runs are still missing."""
    p = summary["progress"]
    where = f"`{summary['preset']}` preset, {summary['steps']} steps per arm, seeds {summary['seeds']}"
    if summary["verdict"] is None:
        parked = [f"{arm} seed {seed} at step {step}" for (arm, seed), step in sorted(p.get("parked", {}).items())]
        resume = (f" Stopped runs whose checkpoints are committed, resumed by the next `sirr claims` "
                  f"({summary['steps']} steps each): {', '.join(parked)}." if parked else "")
        return (f"**{summary['id']}: no verdict yet** — {p['done']} of {p['total']} runs are in ({where}); "
                "a verdict is drawn only when every run of the experiment is." + resume)
    parts = []
    for c in summary["contrasts"]:
        d = c["primary"]
        parts.append(f"{c['reference']} − {c['other']}: {difference_text(d)} "
                     f"({d['n_seeds']} seeds, {d['n']} paired values)")
    commits = ", ".join(summary.get("commits") or []) or "unknown"
    devices = "; ".join(summary.get("devices") or []) or "unknown"
    return (f"**{summary['id']}: {summary['verdict']}.** " + "; ".join(parts)
            + f". Paper: {summary['paper']}. ({where}; commit {commits}; device {devices}.)")


def _arm_curves(run: RunConfig, c: cl.Claim, arm: cl.Arm, key: str, value: str):
    """``(steps, values (seeds × steps), records)`` of an arm's stored curve ``key`` over its seeds, or None."""
    recs = [r for r in (load_result(run, f"claims/{c.id}/{arm.name}", s) for s in c.seeds) if r and r.get(key)]
    if not recs:
        return None
    curves = [r[key] for r in recs]
    steps = [p["step"] for p in curves[0]]
    vals = np.array([[p[value] for p in cv][: len(steps)] for cv in curves if len(cv) >= len(steps)])
    return steps, vals, recs


def _curves(ax, run: RunConfig, c: cl.Claim) -> bool:
    drew = False
    ident = None
    for i, arm in enumerate(c.arms):
        got = _arm_curves(run, c, arm, "curve", "val_psnr")
        if got is None:
            continue
        steps, vals, recs = got
        curves = [r["curve"] for r in recs]
        n = "1 seed" if len(vals) == 1 else f"mean of {len(vals)} seeds"
        ax.plot(steps, vals.mean(0), color=f"C{i}", lw=1.5, marker="o", ms=2.5, label=f"{arm.label} ({n})")
        if len(vals) > 1:
            ax.fill_between(steps, vals.min(0), vals.max(0), color=f"C{i}", alpha=0.2, lw=0)
        ident = curves[0][-1].get("val_identity_psnr", ident)
        drew = True
    if drew:
        if ident is not None and math.isfinite(ident):
            ax.axhline(ident, color="0.4", ls="--", lw=1, label=f"identity (input) {ident:.2f} dB")
        ax.set_xlabel("training step")
        ax.set_ylabel("validation PSNR (dB)")
        ax.legend(fontsize=7)
    return drew


def claim_figure(run: RunConfig, cid: str, seed: int = 0, n: int = 2):
    """The figure that shows the claim's effect, from the stored runs of ``seed`` (None when they are missing):

    - E2: the true confidence C* and each arm's RCMap on held-out triples;
    - E3: B_ini with and without L_FR beside the input and the truth;
    - E1, E4: validation PSNR by step, the mean over seeds with the min-max band, and the identity line.
    """
    c = cl.claim(cid)
    if c.id in ("E1", "E4"):
        fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
        if not _curves(ax, run, c):
            plt.close(fig)
            return None
        ax.set_title(wrap_title(f"{c.id}: {c.claim}", 70), fontsize=10)
        return fig
    recs = [load_result(run, f"claims/{c.id}/{a.name}", seed) for a in c.arms]
    if any(r is None for r in recs):
        return None
    cols = [("input I", recs[0], "input")]
    if c.id == "E2":
        cols.append(("true C* (Eq. 7-8)", recs[0], "true_rcmap"))
        cols += [(f"Ĉ: {a.label}", r, "rcmap") for a, r in zip(c.arms, recs)]
    else:
        cols += [(f"B_ini: {a.label}", r, "output") for a, r in zip(c.arms, recs)]
    cols.append(("ground truth T", recs[0], "truth"))
    fig, axes = plt.subplots(n, len(cols), figsize=(1.9 * len(cols), 2.0 * n), layout="constrained", squeeze=False)
    for i in range(n):
        for j, (title, rec, key) in enumerate(cols):
            ax = axes[i, j]
            img = load_image(rec, f"{key}_{i}")
            ax.imshow(img[..., 0] if key in ("rcmap", "true_rcmap") else img,
                      cmap="magma" if key in ("rcmap", "true_rcmap") else None, vmin=0, vmax=1)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(wrap_title(title, 22), fontsize=8)
    return fig


TABLE_NAMES = {"la2": "LA Table 2", "la3": "LA Table 3", "ts": "TS Table I / Fig. 1"}


def coverage_frame(run: RunConfig) -> pd.DataFrame:
    """Every row of the papers' ablation tables: the paper's gap to the full method (mean of its PSNR columns),
    the claim experiment that tests it with that experiment's verdict, or why none does."""
    verdicts = {cid: cl.claim_summary(run, cid) for cid in cl.CLAIMS}
    rows = []
    for table, (_, variants, paper) in TABLES.items():
        ref = "ours" if "ours" in paper else "proposed"
        for name, v in variants.items():
            gap = math.nan
            if name in paper and ref in paper:
                cols = [k for k in paper[ref] if k.endswith("psnr") and k in paper[name]]
                gap = float(np.mean([paper[ref][k] - paper[name][k] for k in cols])) if cols else math.nan
            cid = cl.TESTED_BY.get((table, name))
            s = verdicts.get(cid) if cid else None
            status = (f"{cid}: {s['verdict'] or 'no verdict yet'} ({s['progress']['done']} of "
                      f"{s['progress']['total']} runs)") if s else "not tested"
            rows.append({"table": TABLE_NAMES.get(table, table), "row": v.label,
                         "paper gap (dB)": gap, "status": status,
                         "why not tested": cl.untested_reason(table, name) or ""})
    return pd.DataFrame(rows).set_index(["table", "row"])


def coverage_markdown(run: RunConfig) -> str:
    """:func:`coverage_frame` as a Markdown table that fits the page: the reason a row is not tested is a letter
    whose sentence follows the table once, instead of the same sentence in fourteen cells."""
    frame = coverage_frame(run).reset_index()
    letters: dict[str, str] = {}
    lines = ["| paper table | row | paper gap (dB) | tested by |", "| --- | --- | --- | --- |"]
    for _, r in frame.iterrows():
        if r["why not tested"]:
            mark = letters.setdefault(r["why not tested"], "abcdefgh"[len(letters)])
            tested = f"not tested ({mark})"
        else:
            tested = r["status"]
        gap = f"{r['paper gap (dB)']:.2f}" if math.isfinite(r["paper gap (dB)"]) else "—"
        lines.append(f"| {r['table']} | {r['row']} | {gap} | {tested} |".replace("\n", " "))
    notes = [f"({m}) {why}." for why, m in letters.items()]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def loss_share_frame(la_metrics: pd.DataFrame | None, ts_metrics: pd.DataFrame | None) -> pd.DataFrame | None:
    """The weighted loss terms' mean shares in the stored `cpu` trainings (LA Eq. 15; TS Eq. 7, stage 2)."""
    rows = []
    if la_metrics is not None:
        rows += [{"loss": "LA, Eq. 15", "term": k, "mean share": v} for k, v in cl.la_loss_shares(la_metrics).items()]
    if ts_metrics is not None:
        rows += [{"loss": "TS stage 2, Eq. 7", "term": k, "mean share": v}
                 for k, v in cl.ts_stage2_loss_shares(ts_metrics).items()]
    return pd.DataFrame(rows).set_index(["loss", "term"]) if rows else None


def rdm_learning_curves(run: RunConfig):
    """E2's held-out L_Ĉ (Eq. 8) by step for each input, mean over the stored seeds with the min-max band, and the
    wall time per run (minutes on two cores). None before any E2 run is in."""
    c = cl.claim("E2")
    fig, ax = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    seconds = []
    for i, arm in enumerate(c.arms):
        got = _arm_curves(run, c, arm, "curve_rdm", "held_out_rcmap_loss")
        if got is None:
            continue
        steps, vals, recs = got
        seconds += [r.get("train_seconds", math.nan) for r in recs]
        ax.plot(steps, vals.mean(0), color=f"C{i}", marker="o", ms=2.5, lw=1.5,
                label=f"{arm.label} ({len(vals)} seeds)")
        if len(vals) > 1:
            ax.fill_between(steps, vals.min(0), vals.max(0), color=f"C{i}", alpha=0.2, lw=0)
    if not seconds:
        plt.close(fig)
        return None
    ax.set_xlabel("training step (batch 2, 128 px)")
    ax.set_ylabel("held-out L_Ĉ (Eq. 8)")
    ax.legend(fontsize=7)
    ax.set_title(wrap_title(f"E2: the reflection detector alone, about {np.nanmedian(seconds) / 60:.0f} min per run "
                            "on this machine", 70), fontsize=10)
    return fig


#: What :func:`claim_figure` draws for each claim (the visible caption; the verdict goes in its details line).
FIGURE_CAPTIONS = {
    "E1": "E1 arms' validation PSNR by step (mean over seeds, min–max band).",
    "E2": "E2: the true confidence C* and the RCMap learned from each input on held-out triples (seed 0).",
    "E3": "E3: B_ini with and without L_FR on held-out triples (seed 0).",
    "E4": "E4 arms' validation PSNR by step (mean over seeds, min–max band).",
}


def show_claim(run: RunConfig, cid: str) -> None:
    """A claim's section in chapter 07: its verdict line, its table and its figure (saved as
    ``figures/07_<preset>_claim_<id>.png``), from the stored runs at ``run``'s preset."""
    from IPython.display import Markdown, display

    from sirrbook.viz.figures import save_figure

    summary = cl.claim_summary(run, cid)
    sentence = claim_sentence(summary)
    display(Markdown(sentence))
    table = claim_table(summary)
    if table is not None:
        display(table)
    fig = claim_figure(run, cid)
    if fig is None:
        print("no figure: its runs are not in yet")
    else:
        save_figure(fig, f"07_{run.preset.name}_claim_{summary['id'].lower()}", run=run, trained=True,
                    caption=FIGURE_CAPTIONS[summary["id"]], details=sentence.replace("**", ""))
        plt.show()
