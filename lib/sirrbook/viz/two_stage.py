"""Figures of chapter 05 (two-stage background recovery, Li & Lun 2019): the steps of TS Fig. 1, the
2-means threshold (Eq. 6) on a histogram, the edge split at any threshold, training curves and the
initial-vs-final blow-ups of TS Fig. 4. Every function returns a matplotlib Figure."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from sirr.models.two_stage import edge_masks
from sirrbook.viz.figures import _as_image
from sirrbook.viz.style import CMAP_CONFIDENCE, map_panel, wrap_title

__all__ = [
    "fig1_panels",
    "threshold_histogram",
    "edge_split_figure",
    "training_curves",
    "initial_vs_final",
    "residual_image",
    "stage1_study",
]


def _np(x, index: int = 0) -> np.ndarray:
    """Tensor (B,C,H,W) / (C,H,W) or array → H×W[×3] float array (no clipping)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu()
        if x.ndim == 4:
            x = x[index]
        x = x.permute(1, 2, 0).numpy()
    x = np.asarray(x, dtype=np.float32)
    return x[..., 0] if x.ndim == 3 and x.shape[2] == 1 else x


def residual_image(I, b_initial, index: int = 0, gain: float = 3.0) -> np.ndarray:
    """|I − B_ini| × ``gain``, clipped to [0, 1], for display (TS Fig. 1f)."""
    return np.clip(np.abs(_np(I, index) - _np(b_initial, index)) * gain, 0.0, 1.0)


def threshold_histogram(ax, confidence, split, bins: int = 60, title: str = "2-means on non-zero $C_{rf}$") -> None:
    """Histogram of the non-zero confidence values with the two centres and the threshold ξ (TS Eq. 6)."""
    values = _np(confidence).ravel()
    values = values[values != 0]
    ax.hist(values, bins=bins, color="0.6")
    ax.axvline(split.low, color="tab:blue", ls="--", label=f"centre low {split.low:.2f}")
    ax.axvline(split.high, color="tab:red", ls="--", label=f"centre high {split.high:.2f}")
    ax.axvline(split.threshold, color="k", lw=2, label=f"ξ = {split.threshold:.2f}")
    ax.set_xlabel("$C_{rf}$")
    ax.set_ylabel("pixels")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def _mask_overlay(I, mask, color, index: int = 0) -> np.ndarray:
    grey = _as_image(_np(I, index)).mean(axis=-1, keepdims=True)
    img = np.repeat(0.35 * grey, 3, axis=-1)
    m = _np(mask, index).astype(bool)
    img[m] = color
    return img


def fig1_panels(I, out, split, index: int = 0, gain: float = 3.0, size: float = 2.6):
    """The steps of TS Fig. 1 for one image of a :class:`sirr.models.two_stage.TwoStageOutput`.

    Panels: input I, B_ini (Fig. 1d), |I − B_ini| (1f, × ``gain``), C_rf (1g), the 2-means histogram
    with ξ, E_B and E_R (Eq. 6; I masked, shown over a dimmed grey I), B_final (1h).
    """
    conf = _np(out.confidence, index)
    panels = [
        (_as_image(_np(I, index)), "input $I$"),
        (_as_image(_np(out.b_initial, index)), "$B_{ini} = F_1(I)$"),
        (residual_image(I, out.b_initial, index, gain), f"$|I - B_{{ini}}|$ ×{gain:g}"),
        (conf, "confidence $C_{rf}$ (Eq. 5)"),
        (None, "histogram"),
        (_mask_overlay(I, out.background_mask, (0.2, 0.6, 1.0), index), "$E_B$: $C_{rf} < \\xi$"),
        (_mask_overlay(I, out.reflection_mask, (1.0, 0.3, 0.2), index), "$E_R$: $C_{rf} > \\xi$"),
        (_as_image(_np(out.b_final, index)), "$B_{final} = F_2([I, E_B, E_R])$"),
    ]
    h, w = conf.shape
    fig, axes = plt.subplots(2, 4, figsize=(4 * size + 0.6, 2 * size * max(h / w, 0.6) + 1.0), layout="constrained")
    width = max(12, int(size * 13))
    for ax, (img, title) in zip(axes.flat, panels):
        if img is None:
            threshold_histogram(ax, out.confidence[index], split)
            continue
        if img.ndim == 2:
            map_panel(ax, img, CMAP_CONFIDENCE, title, vmin=0, width=width)
            continue
        ax.imshow(img, interpolation="nearest")
        ax.set_title(wrap_title(title, width), fontsize=9)
        ax.axis("off")
    return fig


def edge_split_figure(I, confidence, threshold: float, split=None, index: int = 0, size: float = 3.0):
    """E_B and E_R (TS Eq. 6) at an arbitrary ``threshold``, with the pixel counts, for the threshold explorer."""
    background, reflection = edge_masks(confidence[index : index + 1], float(threshold))
    nb, nr = int(background.sum()), int(reflection.sum())
    fig, axes = plt.subplots(1, 3, figsize=(3 * size + 0.8, size + 0.3), layout="constrained")
    axes[0].imshow(_mask_overlay(I, background, (0.2, 0.6, 1.0), index), interpolation="nearest")
    axes[0].set_title(f"$E_B$ ($C_{{rf}} < {threshold:.2f}$): {nb} px", fontsize=9)
    axes[1].imshow(_mask_overlay(I, reflection, (1.0, 0.3, 0.2), index), interpolation="nearest")
    axes[1].set_title(f"$E_R$ ($C_{{rf}} > {threshold:.2f}$): {nr} px", fontsize=9)
    for ax in axes[:2]:
        ax.axis("off")
    values = _np(confidence, index).ravel()
    values = values[values != 0]
    axes[2].hist(values, bins=50, color="0.6")
    axes[2].axvline(threshold, color="k", lw=2, label="threshold")
    if split is not None:
        axes[2].axvline(split.threshold, color="tab:green", ls=":", label=f"2-means ξ {split.threshold:.2f}")
        axes[2].axvline(split.low, color="tab:blue", ls="--", lw=1)
        axes[2].axvline(split.high, color="tab:red", ls="--", lw=1)
    axes[2].legend(fontsize=7)
    axes[2].set_xlabel("$C_{rf}$")
    return fig


def training_curves(metrics, columns: Sequence[str] | None = None, title: str = ""):
    """Loss curves of both stages from :func:`sirr.train.read_metrics` (one panel per phase).

    ``columns`` defaults to every numeric loss column except step/lr/seconds; lines with no value in
    a phase are skipped.
    """
    skip = {"step", "lr", "seconds", "phase", "epoch", "time", "wall", "elapsed"}
    phases = list(dict.fromkeys(metrics["phase"])) if "phase" in metrics else [None]
    fig, axes = plt.subplots(1, len(phases), figsize=(4.6 * len(phases), 3.2 + (0.3 if title else 0)), squeeze=False,
                             layout="constrained")
    for ax, phase in zip(axes[0], phases):
        part = metrics if phase is None else metrics[metrics["phase"] == phase]
        cols = columns or [c for c in part.columns if c not in skip and pd.api.types.is_numeric_dtype(part[c])]
        for c in cols:
            if c in part and part[c].notna().any():
                ax.plot(part["step"], part[c], marker="o", ms=3, label=c)
        ax.set_xlabel("step")
        ax.set_title(str(phase) if phase is not None else "training", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(wrap_title(title, max(40, int(4.6 * len(phases) * 11))), fontsize=10)
    return fig


def initial_vs_final(rows: Sequence[tuple], box: tuple[int, int, int, int] | None = None, size: float = 2.6):
    """TS Fig. 4: blow-ups of B_ini beside B_final.

    ``rows`` = (name, input, b_initial, b_final) per image (``input`` may be None to leave the column
    out); ``box`` = (top, left, height, width) of the crop (default: the central half).
    """
    with_input = any(r[1] is not None for r in rows)
    cols = ["input $I$"] * with_input + ["initial $B_{ini}$", "final $B_{final}$"]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(len(cols) * size + 0.3, size * len(rows) + 0.4),
                             squeeze=False, layout="constrained")
    for r, ((name, inp, ini, fin), ax_row) in enumerate(zip(rows, axes)):
        images = ([inp] if with_input else []) + [ini, fin]
        h, w = _np(ini).shape[:2]
        t, l, bh, bw = box or (h // 4, w // 4, max(h // 2, 1), max(w // 2, 1))
        for c, (ax, img) in enumerate(zip(ax_row, images)):
            if img is not None:
                ax.imshow(_as_image(_np(img))[t : t + bh, l : l + bw], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(name if len(name) <= 28 else name[:26] + "…", fontsize=8)
    return fig


def stage1_study(results: list[dict], title: str | None = None):
    """Validation PSNR of B_ini against the step, one colour per arm and one line per seed, from the stored seeds
    of :func:`sirrbook.experiments.ts_stage1_study`; the identity baseline dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    ident = None
    colours = {}
    for res in results:
        seed = res.get("_provenance", {}).get("seed", "?")
        for row in res["rows"]:
            v = row["validation"]
            if not v:
                continue
            c = colours.setdefault(row["arm"], f"C{len(colours)}")
            ax.plot([p["step"] for p in v], [p["val_psnr"] for p in v], color=c, marker="o", ms=2.5, lw=1.2,
                    ls="-" if seed in (0, "?") else ":", label=f"{row['arm']}, seed {seed}")
            ident = v[-1]["val_identity_psnr"]
    if ident is not None:
        ax.axhline(ident, color="0.4", ls="--", lw=1, label=f"identity (input) {ident:.2f} dB")
    ax.set_xlabel("stage-1 training step")
    ax.set_ylabel("validation PSNR of B_ini (dB)")
    ax.legend(fontsize=7, ncol=2)
    what = results[0]["what"] if results else ""
    ax.set_title(wrap_title(title or f"TS stage 1: {what}", 70), fontsize=10)
    return fig


def edge_lesson_figure(record: dict, size: float = 1.9):
    """Chapter 05's ten-minute experiment (:func:`sirrbook.lesson.edges_to_background`): held-out PSNR of F2 by
    step with the identity baseline, then per held-out example I, the ideal E_B F2 is given, F2 before training,
    F2 after it, and I_B."""
    from sirrbook.results import load_image

    k = len([n for n in record.get("_images", {}) if n.startswith("after_")])
    cols = ["input I", "E_B given to F2", "F2 at step 0", f"F2 at step {record['curve'][-1]['step']}", "truth I_B"]
    keys = ["input", "edges", "before", "after", "truth"]
    fig = plt.figure(figsize=(size * len(cols), 2.6 + size * k), layout="constrained")
    grid = fig.add_gridspec(k + 1, len(cols), height_ratios=[2.6 / size] + [1] * k)
    ax = fig.add_subplot(grid[0, :])
    curve = record["curve"]
    ax.plot([p["step"] for p in curve], [p["psnr"] for p in curve], "o-", ms=3, color="C0", label="F2 from ideal edges")
    ax.axhline(record["identity_psnr"], color="0.4", ls="--", lw=1,
               label=f"identity (input) {record['identity_psnr']:.2f} dB")
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.legend(fontsize=7, loc="lower right")
    for r in range(k):
        for c, key in enumerate(keys):
            a = fig.add_subplot(grid[r + 1, c])
            img = load_image(record, f"{key}_{r}")
            a.imshow(img)
            a.set_xticks([]), a.set_yticks([])
            if r == 0:
                a.set_title(cols[c], fontsize=8)
    return fig
