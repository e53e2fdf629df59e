"""Table formatting for the evaluation and ablation chapters: ours (mean ± std) beside the paper's numbers.

The functions take the plain DataFrames of :mod:`sirr.experiments` (numbers only) and return
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

__all__ = [
    "DASH",
    "CONVENTION_NAMES",
    "METRIC_NAMES",
    "DATASET_NAMES",
    "fmt",
    "mean_std",
    "ablation_display",
    "la_table1_display",
    "ts_table1_display",
    "to_markdown",
    "to_html",
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
    """Display form of :func:`sirr.experiments.ablation_table`: the paper's row label, "ours" columns
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
    """Display form of the LA Table 1 layout of :func:`sirr.experiments.main_tables`: one row per
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


def to_html(df, index: bool = False) -> str:
    """An HTML table (no index by default)."""
    return df.to_html(index=index, escape=True, na_rep=DASH)


def ordering_plot(df, ours: str = "psnr_la", paper: str = "paper_psnr", title: str = ""):
    """Scatter of our mean ± std (y) against the paper's number (x) for each row of an ablation table,
    each point labelled with the paper's row name. Returns the matplotlib figure."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = df[paper].to_numpy(dtype=float)
    y = df[f"{ours}_mean"].to_numpy(dtype=float)
    e = df[f"{ours}_std"].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    ax.errorbar(x[ok], y[ok], yerr=np.nan_to_num(e[ok]), fmt="o", capsize=3)
    for xi, yi, lab in zip(x[ok], y[ok], df["label"][ok]):
        ax.annotate(str(lab), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
    attrs = getattr(df, "attrs", {})
    ax.set_xlabel(f"paper PSNR ({attrs.get('paper_column', paper)})")
    ax.set_ylabel(f"ours {_metric_header(ours)}, mean ± std over {len(attrs.get('seeds', []))} seeds")
    ax.set_title(title or "ours vs paper", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def scores_plot(df, metric: str = "psnr_la", title: str = ""):
    """Grouped bars: the identity baseline, LA and TS on each scored test set (the Table 1 layout frame)."""
    methods = [("identity", "input"), ("la", "LA ours"), ("ts", "TS ours")]
    names = [DATASET_NAMES.get(d, d) for d in df["dataset"]]
    fig, ax = plt.subplots(figsize=(max(5.0, 2.2 * len(names)), 3.6))
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
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel(_metric_header(metric))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
