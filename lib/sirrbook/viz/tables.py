"""Table formatting for the evaluation and ablation chapters: ours (mean ± std) beside the paper's numbers.

The functions take the plain DataFrames of :mod:`sirrbook.experiments` (numbers only) and return
display DataFrames of strings with labelled column headers ("ours …" / "paper …"), which render as
HTML in a notebook and convert with :func:`to_markdown` / :func:`to_html`. Missing values print as
an em dash so an absent dataset or a row without a paper number is visible, not blank.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sirrbook.viz.style import wrap_title

__all__ = [
    "DASH",
    "CONVENTION_NAMES",
    "METRIC_NAMES",
    "DATASET_NAMES",
    "fmt",
    "mean_std",
    "rate",
    "ablation_display",
    "la_table1_display",
    "ts_table1_display",
    "to_markdown",
    "to_html",
    "breakable",
    "ordering_plot",
    "scores_plot",
]

DASH = "—"

CONVENTION_NAMES = {"la": "LA conv.", "errnet": "ERRNet conv."}
METRIC_NAMES = {"psnr": "PSNR", "ssim": "SSIM"}

#: Display names of datasets (the LA paper's row names where it has them).
DATASET_NAMES = {
    "sir2_postcard": "SIR² Postcard", "sir2_solidobject": "SIR² Object", "sir2_wild": "SIR² Wild",
    "real20": "Zhang et al. real20", "nature": "Li et al. Nature", "average": "Average",
    "ceilnet_synthetic": "CEILNet synthetic", "ceilnet_table2": "CEILNet synthetic (Table 2)",
    "synthetic_from_sample_photos": "synthesised from sample photos (no data root)",
}

_PAPER_COLS = {"sir2": "SIR²", "real20": "real20", "nature": "Nature"}


def _digits(metric: str) -> int:
    return 3 if "ssim" in metric else 2


def _nan(x: Any) -> bool:
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; NaN/None -> "—", inf -> "∞"."""
    if _nan(x):
        return DASH
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}f}"


def rate(lr: float) -> str:
    """A learning rate as the papers write it: 0.0002 -> "2e-4"."""
    return f"{lr:.0e}".replace("e-0", "e-")


def mean_std(mean: Any, std: Any = None, digits: int = 2) -> str:
    """``"23.12 ± 0.31"``; without a std (or std NaN) just the mean."""
    if _nan(mean):
        return DASH
    if _nan(std):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}"


def _metric_header(m: str) -> str:
    metric, _, conv = m.partition("_")
    return f"{METRIC_NAMES.get(metric, metric)} ({CONVENTION_NAMES.get(conv, conv)})"


def ablation_display(df, metrics: Sequence[str] = ("psnr_la", "ssim_la", "psnr_errnet", "ssim_errnet"),
                     paper: bool = True):
    """Display form of :func:`sirrbook.experiments.ablation_table`: the paper's row label, "ours" columns
    as mean ± std over seeds for each metric, then the paper's columns (labelled "paper …")."""
    out = pd.DataFrame({"row (paper)": df["label"]})
    out["seeds"] = df["n_seeds"].astype(int)
    for m in metrics:
        if f"{m}_mean" in df:
            out[f"ours {_metric_header(m)}"] = [mean_std(a, b, _digits(m)) for a, b in zip(df[f"{m}_mean"], df[f"{m}_std"])]
    if paper:
        for c in df.columns:
            if c.startswith("paper_") and c != "paper_psnr":
                ds, _, metric = c[len("paper_"):].rpartition("_")
                name = f"paper {_PAPER_COLS.get(ds, ds)} {METRIC_NAMES.get(metric, metric)}".replace("  ", " ")
                out[name] = [fmt(x, _digits(metric)) for x in df[c]]
    out.attrs.update(getattr(df, "attrs", {}))
    return out


def la_table1_display(df, conventions: Sequence[str] = ("la", "errnet")):
    """Display form of the LA Table 1 layout of :func:`sirrbook.experiments.main_tables`: one row per
    dataset; identity / LA / TS PSNR and SSIM under each convention; the paper's LA "Ours" column."""
    out = pd.DataFrame({"dataset": [DATASET_NAMES.get(d, d) for d in df["dataset"]]})
    out["images"] = [DASH if _nan(n) else str(int(n)) for n in df["n"]]
    names = {"identity": "input", "la": "LA ours", "ts": "TS ours"}
    for conv in conventions:
        for method, label in names.items():
            for metric in ("psnr", "ssim"):
                col = f"{method}_{metric}_{conv}"
                if col in df:
                    out[f"{label} {METRIC_NAMES[metric]} ({CONVENTION_NAMES[conv]})"] = [
                        fmt(x, _digits(metric)) for x in df[col]]
    out["paper LA PSNR"] = [fmt(x, 3) for x in df["paper_la_psnr"]]
    out["paper LA SSIM"] = [fmt(x, 3) for x in df["paper_la_ssim"]]
    return out


def ts_table1_display(df):
    """Display form of the TS Table I layout: method, the paper's average PSNR on SIR², ours per dataset."""
    out = pd.DataFrame({"method": df["method"], "paper PSNR (SIR² avg.)": [fmt(x, 2) for x in df["paper_psnr"]]})
    for c in df.columns:
        if c.startswith("psnr_"):
            metric, _, rest = c.partition("[")
            conv = metric.split("_", 1)[1]
            ds = rest.rstrip("]")
            out[f"ours PSNR ({CONVENTION_NAMES.get(conv, conv)}) {DATASET_NAMES.get(ds, ds)}"] = [
                fmt(x, 2) for x in df[c]]
    return out


def to_markdown(df, index: bool = False) -> str:
    """A GitHub-flavoured markdown table (tabulate when installed, else a plain pipe table)."""
    try:
        return df.to_markdown(index=index)
    except ImportError:
        cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for idx, row in df.iterrows():
            cells = ([str(idx)] if index else []) + [str(v) for v in row]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def to_html(df, index: bool = False, classes: str | None = None) -> str:
    """An HTML table (no index by default); ``classes`` are added to the table's ``dataframe`` class."""
    return df.to_html(index=index, escape=True, na_rep=DASH, classes=classes)


def breakable(df):
    """``df`` as an HTML table whose cells may break anywhere (URLs, file paths, lists of flags): such a table
    fits the column instead of scrolling (class ``sirr-breakable`` in ``book/_static/sirr.css``)."""
    from IPython.display import HTML

    return HTML(to_html(df, classes="sirr-breakable"))


def _rank_desc(v: np.ndarray) -> np.ndarray:
    """1-based rank of each finite value, largest first (ties share the better rank); NaN -> 0."""
    out = np.zeros(len(v), dtype=int)
    ok = np.isfinite(v)
    out[ok] = [1 + int((v[ok] > x).sum()) for x in v[ok]]
    return out


def ordering_plot(df, ours: str = "psnr_la", paper: str = "paper_psnr", title: str = ""):
    """The rows of an ablation table side by side: the paper's number (left) and our mean ± std over
    seeds (right), one line per row with the paper's row name on the y axis, rows sorted by the paper's
    value (best at the top, rows without a paper number last); each point carries its rank (#1 = best),
    so a reader sees at once whether our ordering follows the paper's. Returns the matplotlib figure."""
    x = df[paper].to_numpy(dtype=float)
    y = df[f"{ours}_mean"].to_numpy(dtype=float)
    e = np.nan_to_num(df[f"{ours}_std"].to_numpy(dtype=float)) if f"{ours}_std" in df else np.zeros(len(y))
    labels = [wrap_title(str(lab), 30) for lab in df["label"]]
    order = sorted(range(len(df)), key=lambda i: (not np.isfinite(x[i]), -x[i] if np.isfinite(x[i]) else 0, i))
    pos = {i: len(order) - 1 - k for k, i in enumerate(order)}  # best paper row at the top
    yy = np.array([pos[i] for i in range(len(df))], dtype=float)
    rank_paper, rank_ours = _rank_desc(x), _rank_desc(y)
    lines = max((lab.count("\n") + 1 for lab in labels), default=1)
    attrs = getattr(df, "attrs", {})
    fig, (ax_p, ax_o) = plt.subplots(1, 2, sharey=True, figsize=(8.0, 1.2 + len(df) * (0.3 + 0.14 * lines)),
                                     layout="constrained", gridspec_kw={"width_ratios": [1, 1.25]})
    for ax, v, err, ranks, color in ((ax_p, x, None, rank_paper, "0.35"), (ax_o, y, e, rank_ours, "tab:blue")):
        ok = np.isfinite(v)
        for yi in yy:
            ax.axhline(yi, color="0.92", lw=0.8, zorder=0)
        ax.errorbar(v[ok], yy[ok], xerr=None if err is None else err[ok], fmt="o", color=color, capsize=3, ms=5)
        for vi, yi, r in zip(v[ok], yy[ok], ranks[ok]):
            ax.annotate(f"#{r}", (vi, yi), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7,
                        color=color)
        for yi in yy[~ok]:
            ax.text(0.02, yi, DASH + " (no value)", transform=ax.get_yaxis_transform(), va="center", fontsize=7,
                    color="0.5")
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
        if ok.any():
            lo, hi = float(np.nanmin(v[ok] - (0 if err is None else err[ok]))), float(
                np.nanmax(v[ok] + (0 if err is None else err[ok])))
            pad = max(0.05 * (hi - lo), 0.1)
            ax.set_xlim(lo - pad, hi + pad)
    bottom_up = np.argsort(yy)
    ax_p.set_yticks(yy[bottom_up], [labels[i] for i in bottom_up], fontsize=8)
    ax_p.set_ylim(-0.7, len(df) - 0.3)
    ax_p.set_xlabel(wrap_title(f"paper PSNR ({attrs.get('paper_column', paper)})", 40), fontsize=9)
    n_seeds = len(attrs.get("seeds", [])) or "?"
    ax_o.set_xlabel(wrap_title(f"ours: {_metric_header(ours)}, mean ± std over {n_seeds} seeds", 46), fontsize=9)
    ax_p.set_title("paper", fontsize=9)
    ax_o.set_title("ours", fontsize=9)
    fig.suptitle(wrap_title(title or "ours vs paper", 80), fontsize=10)
    return fig


def scores_plot(df, metric: str = "psnr_la", title: str = ""):
    """Grouped bars: the identity baseline, LA and TS on each scored test set (the Table 1 layout frame)."""
    methods = [("identity", "input"), ("la", "LA ours"), ("ts", "TS ours")]
    names = [DATASET_NAMES.get(d, d) for d in df["dataset"]]
    fig, ax = plt.subplots(figsize=(max(5.0, 2.2 * len(names)), 3.8), layout="constrained")
    w = 0.8 / len(methods)
    xs = np.arange(len(names))
    for k, (m, lab) in enumerate(methods):
        col = f"{m}_{metric}"
        if col in df:
            v = df[col].to_numpy(dtype=float)
            ax.bar(xs + (k - 1) * w, np.where(np.isfinite(v), v, 0), width=w, label=lab)
    if metric == "psnr_la" and "paper_la_psnr" in df:
        p = df["paper_la_psnr"].to_numpy(dtype=float)
        ok = np.isfinite(p)
        if ok.any():
            ax.scatter(xs[ok] + w, p[ok], marker="*", s=80, color="k", zorder=3, label="paper LA")
    ax.set_xticks(xs)
    ax.set_xticklabels([wrap_title(n, 18) for n in names], fontsize=8)
    ax.set_ylabel(_metric_header(metric))
    ax.set_title(wrap_title(title, max(40, int(max(5.0, 2.2 * len(names)) * 11))), fontsize=10)
    ax.legend(fontsize=8)
    return fig
