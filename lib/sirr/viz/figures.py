"""Matplotlib figures that carry their provenance: every saved PNG gets a JSON sidecar and a caption naming its run."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from sirr.atomic import atomic_write_bytes, atomic_write_text
from sirr.paths import REPO_ROOT
from sirr.provenance import git_commit, provenance

__all__ = ["save_figure", "image_grid", "show_images", "FIGURES_DIR", "caption_for"]

FIGURES_DIR = REPO_ROOT / "figures"


def _as_image(x) -> np.ndarray:
    """Tensor (3,H,W)/(1,3,H,W)/(1,H,W) or array (H,W[,3]) -> float array for imshow, clipped to [0, 1]."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu()
        if x.ndim == 4:
            x = x[0]
        x = x.permute(1, 2, 0).numpy() if x.ndim == 3 else x.numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    return np.clip(x, 0.0, 1.0)


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int | None = None,
               size: float = 2.6, cmap: str = "gray", suptitle: str | None = None):
    """A row/grid of images with titles; grey maps use ``cmap``. Returns the matplotlib figure."""
    n = len(images)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    first = _as_image(images[0])
    aspect = first.shape[0] / max(first.shape[1], 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * aspect * nrows + (0.5 if suptitle else 0.25)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = _as_image(images[i])
            ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def show_images(images: Sequence, titles: Sequence[str] | None = None, **kw):
    """Display an :func:`image_grid` inline and return the figure."""
    fig = image_grid(images, titles, **kw)
    plt.show()
    return fig


def caption_for(run, text: str = "") -> str:
    """Caption suffix naming the run a figure came from (and the VGG fallback, when used)."""
    if run is None:
        return text
    bits = [f"preset {run.preset.name}", f"seed {run.seed}", f"device {run.device}", f"commit {git_commit()}"]
    if run.preset.vgg_weights == "random":
        bits.append("VGG-19 with RANDOM weights (offline fallback)")
    return (text + " " if text else "") + "[" + ", ".join(bits) + "]"


def save_figure(fig, name: str, run=None, caption: str = "", figures_dir: str | os.PathLike | None = None,
                dpi: int = 110) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` with ``<name>.json`` (caption + provenance), each written atomically."""
    out_dir = Path(figures_dir) if figures_dir else FIGURES_DIR
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, bbox_inches="tight", format="png")
    png = atomic_write_bytes(out_dir / f"{name}.png", buf.getvalue())
    meta = {"figure": png.name, "caption": caption_for(run, caption), **provenance(run)}
    atomic_write_text(out_dir / f"{name}.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return png
