"""Matplotlib figures that carry their provenance: every saved PNG gets a JSON sidecar and a caption naming its run."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["save_figure", "image_grid", "show_images", "FIGURES_DIR", "caption_for"]

from sirr.config import REPO_ROOT

FIGURES_DIR = REPO_ROOT / "figures"


def _as_image(x) -> np.ndarray:
    """Tensor (3,H,W)/(1,3,H,W)/(1,H,W) or array (H,W[,3]) -> float array for imshow, clipped to [0, 1]."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().float().cpu()
            if x.ndim == 4:
                x = x[0]
            x = x.permute(1, 2, 0).numpy() if x.ndim == 3 else x.numpy()
    except ImportError:  # pragma: no cover
        pass
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    return np.clip(x, 0.0, 1.0)


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int | None = None,
               size: float = 2.6, cmap: str = "gray", suptitle: str | None = None):
    """A row/grid of images with titles; grey maps use ``cmap``. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

    fig = image_grid(images, titles, **kw)
    plt.show()
    return fig


def caption_for(run, text: str = "") -> str:
    """Caption suffix naming the run a figure came from (and the VGG fallback, when used)."""
    from sirr.provenance import git_commit

    if run is None:
        return text
    bits = [f"preset {run.preset.name}", f"seed {run.seed}", f"device {run.device}", f"commit {git_commit()}"]
    if run.preset.vgg_weights == "random":
        bits.append("VGG-19 with RANDOM weights (offline fallback)")
    return (text + " " if text else "") + "[" + ", ".join(bits) + "]"


def save_figure(fig, name: str, run=None, caption: str = "", figures_dir: str | os.PathLike | None = None,
                dpi: int = 110) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` with ``<name>.json`` (caption + provenance); atomic rename."""
    from sirr.provenance import provenance

    out_dir = Path(figures_dir) if figures_dir else FIGURES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{name}.png"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".png.tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a figure is for everyone to read
        os.replace(tmp, png)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    meta = {"figure": png.name, "caption": caption_for(run, caption), **provenance(run)}
    side = out_dir / f"{name}.json"
    tmpj = side.with_suffix(".json.tmp")
    tmpj.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmpj, side)
    return png
