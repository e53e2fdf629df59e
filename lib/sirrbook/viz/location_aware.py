"""Plotting and table helpers for the LA chapters (03: the network, 04: its training).

Every function takes computed things (a model, its :class:`~sirr.models.LocationAwareOutput`, a
metrics DataFrame, bench reports) and returns a matplotlib Figure or a pandas DataFrame; nothing
here trains or times anything.
"""

from __future__ import annotations

import textwrap
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from sirr.losses.vgg import VGG19Features
from sirr.models.location_aware import count_flops
from sirrbook.viz.style import CMAP_ERROR, CMAP_RCMAP, map_panel, wrap_title

__all__ = [
    "MODULE_GROUPS",
    "parameter_table",
    "flops_table",
    "iteration_grid",
    "iteration_figure",
    "loss_curves",
    "cost_table",
    "cost_sentences",
    "first_layer_filters",
    "architecture_diagram",
]

#: Parts of the network in LA Fig. 2's vocabulary -> the attribute prefixes that hold them.
MODULE_GROUPS = (
    ("G_R image branch (conv + 6 SE-ResBlocks on [I, T_{i-1}])", ("image_in", "image_blocks")),
    ("G_R RDM: MLSM kernel (Eq. 4)", ("mlsm",)),
    ("G_R RDM: f_Lap (conv + PReLU + 3 SE-ResBlocks)", ("laplacian_in", "laplacian_in_act", "laplacian_blocks", "shared_prelu")),
    ("G_R RDM: RCMap head (Eq. 5)", ("rcmap_head",)),
    ("G_R TSM (3 SE-ResBlocks, x (1 - C))", ("suppression_blocks",)),
    ("G_R conv-LSTM", ("lstm", "lstm_replacement")),
    ("G_R reflection head", ("reflection_head",)),
    ("G_T CBAM contextual auto-encoder (Eq. 3)", ("transmission_net",)),
)


def _to_np(t) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) tensor -> HxWx3 / HxW float array in [0, 1]."""
    if isinstance(t, torch.Tensor):
        t = t.detach().float().cpu()
        if t.ndim == 4:
            t = t[0]
        a = t.permute(1, 2, 0).numpy()
    else:
        a = np.asarray(t, dtype=np.float32)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return np.clip(a, 0.0, 1.0)


def parameter_table(model) -> "pandas.DataFrame":  # noqa: F821
    """Parameters per part of the network (LA Fig. 2 names) with the total; every parameter is counted once."""
    rows, seen = [], set()
    for label, prefixes in MODULE_GROUPS:
        n = 0
        for name, p in model.named_parameters():
            if name.split(".")[0] in prefixes:
                n += p.numel()
                seen.add(name)
        if n:
            rows.append({"part (LA Fig. 2)": label, "parameters": n})
    rest = sum(p.numel() for name, p in model.named_parameters() if name not in seen)
    if rest:
        rows.append({"part (LA Fig. 2)": "other", "parameters": rest})
    total = sum(r["parameters"] for r in rows)
    rows.append({"part (LA Fig. 2)": "total", "parameters": total})
    df = pd.DataFrame(rows)
    df["share"] = (df["parameters"] / total).map(lambda v: f"{v:.1%}")
    return df


def flops_table(model, sizes: Sequence[tuple[int, int]] = ((256, 256), (400, 540)), paper_gflops: float | None = None):
    """FLOPs per iteration at each size (``count_flops``), GMACs, and the paper's number beside."""
    rows = []
    for h, w in sizes:
        c = count_flops(model, h, w)
        row = {"size (H x W)": f"{h} x {w}", "runs at": f"{c['padded_height']} x {c['padded_width']}",
               "GFLOPs / iteration (ours)": round(c["gflops_per_iteration"], 2),
               "GMACs / iteration (ours)": round(c["gmacs_per_iteration"], 2),
               "GFLOPs, 3 iterations (ours)": round(c["gflops_total"], 2)}
        if paper_gflops is not None:
            row["paper (per iteration, size/convention unstated)"] = paper_gflops
        rows.append(row)
    return pd.DataFrame(rows)


def _rgb_panel(ax, a, title: str, width: int) -> None:
    ax.imshow(a, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(wrap_title(title, width), fontsize=9)
    ax.axis("off")


def iteration_grid(I, out, title: str | None = None, size: float = 2.4):
    """LA Figs. 3/5 style: one row per iteration i — input I, RCMap Ĉ_i (colour map :data:`CMAP_RCMAP`
    with its colour bar), R̂_i (x3 for visibility), T̂_i. Constrained layout; the title is wrapped."""
    n = len(out.transmissions)
    img = _to_np(I)
    aspect = img.shape[0] / max(img.shape[1], 1)
    fig, axes = plt.subplots(n, 4, figsize=(4 * size + 0.6, n * size * aspect + 0.8), squeeze=False,
                             layout="constrained")
    width = max(12, int(size * 13))
    for i in range(n):
        _rgb_panel(axes[i, 0], img, "input $I$", width)
        map_panel(axes[i, 1], _to_np(out.rcmaps[i]), CMAP_RCMAP, f"RCMap $\\hat C_{i + 1}$", vmin=0, vmax=1,
                  width=width)
        _rgb_panel(axes[i, 2], np.clip(_to_np(out.reflections[i]) * 3, 0, 1), f"$\\hat R_{i + 1}$ (x3)", width)
        _rgb_panel(axes[i, 3], _to_np(out.transmissions[i]), f"$\\hat T_{i + 1}$", width)
    if title:
        fig.suptitle(wrap_title(title, max(40, int(4 * size * 11))), fontsize=10)
    return fig


#: |T̂_i − I| is shown on [0, ERROR_VMAX] (brighter = larger change; the colour bar marks larger values).
ERROR_VMAX = 0.25


def iteration_figure(I, out, iteration: int, size: float = 2.6):
    """One iteration (1-based) of ``out``: input, RCMap (with colour bar), R̂ (x3), T̂ and |T̂_i − I|
    (mean over RGB, colour map :data:`CMAP_ERROR`, with colour bar) — the widget's render."""
    n = len(out.transmissions)
    if not 1 <= iteration <= n:
        raise ValueError(f"iteration must be in 1..{n}, got {iteration}")
    i = iteration - 1
    img = _to_np(I)
    t = _to_np(out.transmissions[i])
    aspect = img.shape[0] / max(img.shape[1], 1)
    fig, axes = plt.subplots(1, 5, figsize=(5 * size + 0.8, size * aspect + 0.7), layout="constrained")
    width = max(12, int(size * 13))
    _rgb_panel(axes[0], img, "input $I$", width)
    map_panel(axes[1], _to_np(out.rcmaps[i]), CMAP_RCMAP, f"RCMap $\\hat C_{iteration}$", vmin=0, vmax=1,
              width=width)
    _rgb_panel(axes[2], np.clip(_to_np(out.reflections[i]) * 3, 0, 1), f"$\\hat R_{iteration}$ (x3)", width)
    _rgb_panel(axes[3], t, f"$\\hat T_{iteration}$", width)
    map_panel(axes[4], np.abs(t - img).mean(-1), CMAP_ERROR, f"$|\\hat T_{iteration} - I|$ (mean over RGB)",
              vmin=0, vmax=ERROR_VMAX, width=width, extend="max")
    return fig


def loss_curves(metrics, columns: Sequence[str] | None = None, title: str | None = None):
    """Logged losses against step (one panel per loss; fine-tuning steps shaded)."""
    if metrics is None or len(metrics) == 0:
        raise ValueError("loss_curves: the metrics table is empty (no training step was logged)")
    skip = {"step", "phase", "lr", "time", "seconds", "epoch", "wall", "elapsed"}
    if columns is None:
        columns = [c for c in metrics.columns if c not in skip and metrics[c].dtype.kind in "fi"
                   and metrics[c].notna().any()]
    columns = list(columns)
    if not columns:
        raise ValueError(f"loss_curves: no numeric loss columns in {list(metrics.columns)}")
    ncols = min(4, len(columns))
    nrows = int(np.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows + (0.4 if title else 0)),
                             squeeze=False, layout="constrained")
    fine = metrics[metrics["phase"].astype(str).str.contains("fine")] if "phase" in metrics else metrics.iloc[:0]
    for ax, col in zip(axes.flat, columns):
        d = metrics[["step", col]].dropna()
        ax.plot(d["step"], d[col], marker="o" if len(d) < 30 else None, ms=3, lw=1)
        if len(fine):
            ax.axvspan(fine["step"].min(), fine["step"].max(), color="0.9", zorder=0)
        ax.set_title(wrap_title(col, 34), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    if title:
        fig.suptitle(wrap_title(title, max(40, int(3.2 * ncols * 11))), fontsize=10)
    return fig


def cost_table(reports: Sequence[dict], paper_seconds: float | None = None):
    """One row per (device, size) of stored ``python -m sirr bench`` reports: fp32 eager, the fastest accepted
    path, its speed-up and how close its output is to fp32 (PSNR on the bench's weights); then the training
    step and, if given, the paper's time. Every path of every report stays in the JSON (``results/bench``); the
    conditions of each report (weights, load, commit) are in :func:`cost_sentences`, so the table fits the page."""
    rows = []
    for rep in reports:
        eager = {r["size"]: r["median_s"] for r in rep.get("inference", []) if r.get("path") == "fp32 eager"
                 and "median_s" in r}
        common = {"device": rep.get("device")}
        for size, best in rep.get("fastest", {}).items():
            db = best.get("psnr_vs_fp32_db")
            rows.append({**common, "size": size, "fp32 eager s": _round_s(eager.get(size)),
                         "fastest path": best["path"], "fastest s": _round_s(best["median_s"]),
                         "speed-up": f"{best['speedup_vs_fp32_eager']:.2f}x" if best.get("speedup_vs_fp32_eager")
                         else "",
                         "vs fp32": "identical" if best["path"] == "fp32 eager" else
                         (f"{db:.1f} dB" if db is not None else f"max|dT| {best.get('max_abs_diff', 0):.0e}")})
        steps = rep.get("train_steps") or ([rep["train_step"]] if "train_step" in rep else [])
        eager_step = next((t["median_s"] for t in steps if t.get("memory_format") == "contiguous"), None)
        for t in steps:  # one row per path of the training step
            path = f"{t.get('amp', '')} {t.get('memory_format', '')}".strip()
            rows.append({**common, "size": f"{t['size']}, batch {t.get('batch', 2)}: one training step",
                         "fp32 eager s": _round_s(eager_step) if eager_step else "", "fastest path": path,
                         "fastest s": _round_s(t["median_s"]),
                         "speed-up": f"{eager_step / t['median_s']:.2f}x" if eager_step else "", "vs fp32": ""})
    if paper_seconds is not None:
        rows.append({"device": "paper: RTX 2080 Ti (LA Sec. 5)", "size": "400x540", "fp32 eager s": "",
                     "fastest path": "", "fastest s": paper_seconds,
                     "speed-up": "", "vs fp32": ""})
    cols = ["device", "size", "fp32 eager s", "fastest path", "fastest s", "speed-up", "vs fp32"]
    return pd.DataFrame(rows, columns=cols).fillna("")


def _round_s(v):
    if v is None or v == "":
        return ""
    return round(float(v), 4 if v < 1 else 2)


def cost_sentences(reports: Sequence[dict]) -> str:
    """Each stored bench report's conditions, and what it says about the speed goals, as Markdown bullet lines."""
    lines = []
    for rep in reports:
        w = rep.get("weights") or {}
        weights = ("random-init weights" if not w.get("trained") else
                   f"weights trained for {w['steps']} steps" if w.get("steps") is not None else "trained weights")
        load = (rep.get("conditions", {}).get("start", {}).get("loadavg_1_5_15") or [None])[0]
        lines.append(f"- {rep['device']}: measured on {weights}, load average "
                     f"{'unknown' if load is None else f'{load:.1f}'} at the start, commit "
                     f"{str(rep.get('provenance', {}).get('commit', ''))[:10] or 'unknown'}.")
        g = rep.get("goal")
        if g:
            lines.append(f"- {rep['device']}: {g['size']} in {g['measured_s']:.3g} s with {g['path']} "
                         f"({'within' if g['met'] else 'over'} the {g['seconds']:g} s goal).")
        r = rep.get("release_ratio_goal")
        if r and r.get("measured_ratio_vs_fp32_eager") is not None:
            lines.append(f"- {rep['device']}: the fastest path takes {r['measured_ratio_vs_fp32_eager']:.2f}x the "
                         f"fp32 eager time (goal {r['ratio_goal']}x of the release's)"
                         + (f"; {r['note']}." if r.get("note") else "."))
        c = rep.get("remove_path")
        if c:
            db = c.get("psnr_vs_fp32_db")
            lines.append(f"- {rep['device']}: `sirr remove` runs in **{c['path']}** "
                         f"({'identical to' if db is None else f'{db:.1f} dB from'} fp32 on trained weights).")
    return "\n".join(lines)


def first_layer_filters(vgg_or_weights="auto", size: float = 0.7):
    """The 64 conv1_1 filters of the perceptual-loss VGG-19 as an 8x8 grid (RGB order), titled with its source.

    ``vgg_or_weights``: a :class:`~sirr.losses.vgg.VGG19Features` or a ``weights`` setting (``"auto"``,
    ``"imagenet"``, ``"oxford"``, ``"random"``). Each 3x3 filter is min-max normalised to [0, 1] on its own.
    ImageNet filters look smooth and colour-opponent; random ones look like noise.
    """
    vgg = vgg_or_weights
    if not isinstance(vgg, VGG19Features):
        vgg = VGG19Features(("conv1_1",), weights=str(vgg_or_weights))
    w = vgg.features[0].weight.detach().float().cpu()  # (64, 3, 3, 3)
    if vgg.source == "oxford":
        w = w.flip(1)  # the Oxford weights see BGR input: show them in RGB order
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = ((w - lo) / (hi - lo).clamp_min(torch.finfo(w.dtype).tiny)).permute(0, 2, 3, 1).numpy()
    fig, axes = plt.subplots(8, 8, figsize=(8 * size, 8 * size + 0.8), gridspec_kw={"wspace": 0.08, "hspace": 0.08})
    for k, ax in enumerate(axes.flat):
        ax.imshow(w[k], vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"conv1_1 filters (64, 3x3, each scaled to [0, 1])\n{textwrap.fill(vgg.description, 64)}",
                 fontsize=8)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.87)
    return fig


def architecture_diagram():
    """LA Fig. 2 as a block diagram of one iteration i (of N = 3): G_R (image branch, RDM with MLSM and the
    RCMap head, TSM, conv-LSTM, reflection head) then G_T (the CBAM auto-encoder); each box names its
    equation and the attribute of :class:`~sirr.models.LocationAware` that holds it. Drawn, not trained."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(9.6, 4.6), layout="constrained")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 50)
    ax.set_axis_off()
    boxes = {
        "x": (1, 21, 12, 8, "X_in = [I, T̂_{i−1}]\n(B, 6, H, W)", "#eeeeee"),
        "img": (18, 33, 17, 8, "image branch I_ft\nconv + 6 SE-ResBlocks\nimage_in, image_blocks", "#dbe9f6"),
        "mlsm": (18, 9, 17, 8, "MLSM (Eq. 4)\nLaplacian at 3 scales\nmlsm", "#fde2c8"),
        "lap": (39, 9, 16, 8, "f_Lap: 3 SE-ResBlocks\nlaplacian_blocks", "#fde2c8"),
        "c": (39, 21, 16, 7, "RCMap Ĉ_i (Eq. 5)\nrcmap_head", "#f8c9c9"),
        "tsm": (59, 9, 15, 8, "TSM: 3 SE-ResBlocks\n× (1 − Ĉ_i)", "#fde2c8"),
        "lstm": (59, 31, 15, 9, "conv-LSTM\n(h, c) carried\nacross iterations", "#dbe9f6"),
        "r": (78, 31, 14, 9, "R̂_i\nreflection_head", "#e4d7f2"),
        "gt": (78, 9, 20, 11, "G_T (Eq. 3): CBAM\nauto-encoder on\n[I, T̂_{i−1}, R̂_i, Ĉ_i]\n→ T̂_i at 3 scales", "#d6efd6"),
    }
    centre = {}
    for key, (x, y, w, h, text, colour) in boxes.items():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.4", fc=colour, ec="0.35", lw=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=7.2)
        centre[key] = (x, y, w, h)

    def arrow(a, b, side_a="r", side_b="l", text=None, rad=0.0):
        def point(k, side):
            x, y, w, h = centre[k]
            return {"r": (x + w + 0.4, y + h / 2), "l": (x - 0.4, y + h / 2), "t": (x + w / 2, y + h + 0.4),
                    "b": (x + w / 2, y - 0.4)}[side]
        p, q = point(a, side_a), point(b, side_b)
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=9, lw=0.9, color="0.25",
                                     connectionstyle=f"arc3,rad={rad}"))
        if text:
            ax.text((p[0] + q[0]) / 2, (p[1] + q[1]) / 2 + 1.2, text, fontsize=6.5, ha="center", color="0.25")

    arrow("x", "img", rad=-0.15)
    arrow("x", "mlsm", rad=0.15)
    arrow("mlsm", "lap")
    arrow("lap", "c", "t", "b")
    arrow("lap", "tsm")
    arrow("c", "tsm", "b", "t", rad=0.3)
    arrow("img", "lstm", text="concat")
    arrow("tsm", "lstm", "t", "b")
    arrow("lstm", "r")
    arrow("r", "gt", "b", "t")
    arrow("c", "gt", "r", "l", rad=0.25)
    ax.annotate("", xy=(7, 21), xytext=(88, 8.2), arrowprops=dict(arrowstyle="-|>", color="tab:green", lw=1.1,
                                                                   connectionstyle="arc3,rad=-0.25"))
    ax.text(47, 1.2, "T̂_i becomes T̂_{i−1} of the next iteration (N = 3); T̂_N is the output", fontsize=7,
            ha="center", color="tab:green")
    ax.text(1, 47.5, "G_R (LA Eq. 2): locate the reflection, then estimate it", fontsize=8, weight="bold")
    ax.set_title("One iteration of the location-aware network (LA Fig. 2)", fontsize=10)
    return fig
