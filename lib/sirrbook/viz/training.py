"""Training curves of a run: its loss and its validation PSNR against the identity baseline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sirrbook.viz.style import wrap_title
from sirrbook.viz.tables import rate

__all__ = ["training_curves"]


def _smooth(v: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(v) < k:
        return v
    return np.convolve(v, np.ones(k) / k, mode="valid")


def _phase_labels(train: pd.DataFrame) -> dict:
    """Each phase's legend label with its learning rate: ``fine_tune`` -> "fine-tuning, lr 1e-4"."""
    names = {"train": "training", "fine_tune": "fine-tuning", "stage1": "stage 1", "stage2": "stage 2"}
    out = {}
    for phase, g in train.groupby("phase", sort=False):
        label = names.get(str(phase), str(phase).replace("_", " "))
        lr = g["lr"].dropna() if "lr" in g else pd.Series(dtype=float)
        if len(lr) and lr.nunique() == 1:
            label += f", lr {rate(float(lr.iloc[0]))}"
        out[phase] = label
    return out


def training_curves(metrics: pd.DataFrame, title: str = "", loss: str = "total", smooth: int = 5):
    """Two panels from :func:`sirr.train.read_metrics`: ``loss`` per logged step (thin: as logged; thick: a
    running mean over ``smooth`` points), one colour per phase; and the validation PSNR with the identity
    baseline (the PSNR of the input itself) as a dashed line. Returns the figure."""
    is_val = metrics["validation"].fillna(False).astype(bool) if "validation" in metrics else \
        pd.Series(False, index=metrics.index)
    train, val = metrics[~is_val], metrics[is_val]
    labels = _phase_labels(train)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4 + (0.3 if title else 0)), layout="constrained")
    ax = axes[0]
    for phase, g in train.groupby("phase", sort=False):
        if loss not in g or g[loss].isna().all():
            continue
        x, y = g["step"].to_numpy(), g[loss].to_numpy(dtype=float)
        line = ax.plot(x, y, lw=0.6, alpha=0.4)[0]
        ys = _smooth(y, smooth)
        ax.plot(x[len(x) - len(ys):], ys, lw=1.8, color=line.get_color(), label=labels.get(phase, str(phase)))
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss ({loss})")
    ax.legend(fontsize=8)
    ax = axes[1]
    if len(val):
        for phase, g in val.groupby("phase", sort=False):
            ax.plot(g["step"], g["val_psnr"], marker="o", label=f"network ({labels.get(phase, phase)})")
        ax.plot(val["step"], val["val_identity_psnr"], ls="--", color="grey", label="identity (the input)")
        ax.set_xlabel("step")
        ax.set_ylabel("validation PSNR (dB)")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no validation set in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    if title:
        fig.suptitle(wrap_title(title, 110), fontsize=10)
    return fig
