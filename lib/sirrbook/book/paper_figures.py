"""The papers' figures, rebuilt from our models: one function per figure, each returning a matplotlib Figure.

LA = Dong et al., "Location-aware Single Image Reflection Removal", ICCV 2021 (Figs. 1, 3, 4, 5, 8, 9, 10).
TS = Li & Lun, "Single image reflection removal via two-stage background recovery", IEEE SPL 2019
(Figs. 1, 3, 4).

The functions only draw: they take images as tensors ``(1, 3, H, W)`` / ``(3, H, W)`` or arrays
``(H, W[, 3])`` in [0, 1] that the chapter computed with :mod:`sirr.models`, and label every panel
with the paper's panel name. Where a paper figure compares with other methods that this book does
not implement (CEILNet, PLNet, Zhang et al., BDN, ERRNet, IBCLN, ...), the panel is left out and
the figure's subtitle says so; the caption written by :func:`sirrbook.viz.save_figure` names the run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import kornia
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from sirr.config import REPO_ROOT
from sirr.data.datasets import Sample, available_datasets, load_dataset, sample_photos
from sirr.data.synthesis import synthesize_la
from sirr.gradients import edge_map, laplacian_map
from sirr.losses.location_aware import binary_rcmap_target
from sirr.messages import repo_relative
from sirr.methods import get_method
from sirrbook.viz.figures import _as_image
from sirrbook.viz.style import CMAP_CONFIDENCE, CMAP_RCMAP, map_panel
from sirrbook.weights import committed_weights

__all__ = [
    "NOT_IMPLEMENTED",
    "la_fig01",
    "la_fig03",
    "la_fig04",
    "la_fig05",
    "la_fig08",
    "la_fig09",
    "la_fig10",
    "ts_fig01",
    "ts_fig03",
    "ts_fig04",
    "relative_rcmap_target",
    "learned_laplacian_kernel",
    "largest_change_box",
    "TrainedModel",
    "trained",
    "committed",
    "figure_pairs",
    "run_note",
]

#: The methods each paper figure compares with that this book does not implement (shown in subtitles).
NOT_IMPLEMENTED = {
    "la_fig01": "(b)-(f) Zhang et al., BDN, ERRNet, IBCLN, Kim et al.",
    "ts_fig01": "(b) CEILNet, (c) PLNet",
    "ts_fig03": "CEILNet, PLNet",
}


def _img(x) -> np.ndarray:
    return _as_image(x)


def _show(ax, img, title: str | None = None, cmap: str = "gray", vmax: float = 1.0) -> None:
    a = _img(img)
    if a.ndim == 2 and cmap != "gray":  # a map (RCMap, C_rf): its colour map and a colour bar
        map_panel(ax, a, cmap, title, vmin=0, vmax=vmax, fontsize=8)
        return
    ax.imshow(a, cmap=cmap if a.ndim == 2 else None, vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=8)


def _blank(ax, text: str = "") -> None:
    ax.axis("off")
    if text:
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, wrap=True, transform=ax.transAxes)


def _grid(nrows: int, ncols: int, aspect: float, size: float = 2.2, title: str | None = None):
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * aspect * nrows + (0.55 if title else 0.25)),
                             squeeze=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig, axes


def _aspect(x) -> float:
    a = _img(x)
    return a.shape[0] / max(a.shape[1], 1)


def _finish(fig):
    # Map panels' colour bars are placed beside their image by their own axes locator
    # (sirrbook.viz.style.map_panel); tight_layout lays out the other axes and warns that it cannot lay out
    # those. The warning says nothing to a reader (and printed this file's absolute path into the book).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This figure includes Axes that are not compatible with tight_layout")
        fig.tight_layout()
    return fig


def _t(x) -> torch.Tensor:
    """Anything image-like -> (1, C, H, W) float tensor on the CPU."""
    if isinstance(x, torch.Tensor):
        t = x.detach().float().cpu()
    else:
        a = np.asarray(x, dtype=np.float32)
        t = torch.from_numpy(a[..., None] if a.ndim == 2 else a).permute(2, 0, 1)
    while t.ndim < 4:
        t = t[None]
    return t


# ------------------------------------------------------------------------------------------------
# LA
# ------------------------------------------------------------------------------------------------


def la_fig01(image, rcmap, transmission, ground_truth=None, title: str | None = None):
    """LA Fig. 1: (a) input, (g) the RCMap Ĉ_N, (h) our T̂_N, (i) ground truth (other methods' (b)-(f) omitted)."""
    panels = [(image, "(a) input I"), (rcmap, "(g) RCMap Ĉ (ours)"), (transmission, "(h) T̂ (ours)")]
    if ground_truth is not None:
        panels.append((ground_truth, "(i) ground truth T"))
    fig, axes = _grid(1, len(panels), _aspect(image),
                      title=title or f"LA Fig. 1 (not implemented here: {NOT_IMPLEMENTED['la_fig01']})")
    for ax, (img, name) in zip(axes[0], panels):
        _show(ax, img, name, cmap=CMAP_RCMAP if "RCMap" in name else "gray")
    return _finish(fig)


def la_fig03(image, transmissions: Sequence, ground_truth=None, title: str | None = None):
    """LA Fig. 3: the input, then T̂_i after each iteration i = 1..N (and the ground truth when known)."""
    panels = [(image, "input I")] + [(t, f"T̂_{i + 1} (iteration {i + 1})") for i, t in enumerate(transmissions)]
    if ground_truth is not None:
        panels.append((ground_truth, "ground truth T"))
    fig, axes = _grid(1, len(panels), _aspect(image),
                      title=title or "LA Fig. 3: gradual refinement of the transmission over the iterations")
    for ax, (img, name) in zip(axes[0], panels):
        _show(ax, img, name)
    return _finish(fig)


def learned_laplacian_kernel(model) -> torch.Tensor | None:
    """The 3×3 kernel a trained LA network's MLSM applies to I (mean over I's three channels), or None."""
    k = getattr(model, "laplacian_kernel", None)
    if k is None:
        return None
    mlsm = model.mlsm
    per = getattr(mlsm, "filters_per_channel", 1)
    if per != 1:  # the "Laplacian -> Edge" variant has two derivative filters per channel
        return None
    return k.detach().float().cpu()[:3, 0].mean(dim=0)


def la_fig04(images: Sequence[tuple[str, object]], learned_kernel: torch.Tensor | None = None,
             normalize: str = "max", title: str | None = None):
    """LA Fig. 4: per row an input, 1 − E (CEILNet edge map) and 1 − L (|k_L * I|, normalised).

    With ``learned_kernel`` (see :func:`learned_laplacian_kernel`) a fourth column shows 1 − L with the
    trained MLSM kernel (what LA Fig. 7's "M" shows).
    """
    ncols = 3 + (learned_kernel is not None)
    fig, axes = _grid(len(images), ncols, _aspect(images[0][1]), size=2.6,
                      title=title or "LA Fig. 4: inverse edge and Laplacian maps")
    for row, (name, img) in zip(axes, images):
        x = _t(img)
        _show(row[0], x, f"input: {name}")
        _show(row[1], 1 - edge_map(x, normalize), "1 − E (edge map)")
        _show(row[2], 1 - laplacian_map(x, normalize), "1 − L (k_L)")
        if learned_kernel is not None:
            _show(row[3], 1 - laplacian_map(x, normalize, kernel=learned_kernel), "1 − L (learned kernel)")
    return _finish(fig)


def la_fig05(rows: Sequence[tuple[object, Sequence[object]]], names: Sequence[str] | None = None,
             title: str | None = None):
    """LA Fig. 5: per row a (synthesised) input and its RCMaps Ĉ_1..Ĉ_N over the iterations."""
    n = max(len(r[1]) for r in rows)
    fig, axes = _grid(len(rows), n + 1, _aspect(rows[0][0]),
                      title=title or "LA Fig. 5: the RCMap over the iterations")
    for k, (row, (image, rcmaps)) in enumerate(zip(axes, rows)):
        _show(row[0], image, f"input {names[k]}" if names else "input I")
        for i, c in enumerate(rcmaps):
            _show(row[i + 1], c, f"Ĉ_{i + 1}", cmap=CMAP_RCMAP)
        for ax in row[len(rcmaps) + 1:]:
            _blank(ax)
    return _finish(fig)


def la_fig08(image, outputs: Mapping[str, object], ground_truth=None, ncols: int = 4, title: str | None = None):
    """LA Fig. 8: the input, T̂ of each Table 2 variant (label -> image) and the ground truth."""
    panels = [(image, "input I")] + [(img, name) for name, img in outputs.items()]
    if ground_truth is not None:
        panels.append((ground_truth, "ground truth T"))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = _grid(nrows, ncols, _aspect(image),
                      title=title or "LA Fig. 8: results of the Table 2 ablations")
    for ax, (img, name) in zip(axes.flat, panels):
        _show(ax, img, name)
    for ax in list(axes.flat)[len(panels):]:
        _blank(ax)
    return _finish(fig)


def la_fig09(image, variants: Mapping[str, tuple[object, object]], ground_truth=None, title: str | None = None):
    """LA Fig. 9: per variant (e.g. RKI, L_C^B, ours) its RCMap (top row) and T̂ (bottom row)."""
    n = len(variants) + 1
    fig, axes = _grid(2, n, _aspect(image),
                      title=title or "LA Fig. 9: RCMaps and transmissions with RKI, L_C^B and ours")
    _show(axes[0, 0], image, "input I")
    if ground_truth is not None:
        _show(axes[1, 0], ground_truth, "ground truth T")
    else:
        _blank(axes[1, 0])
    for j, (name, (rcmap, t)) in enumerate(variants.items(), start=1):
        _show(axes[0, j], rcmap, f"Ĉ: {name}", cmap=CMAP_RCMAP)
        _show(axes[1, j], t, f"T̂: {name}")
    return _finish(fig)


def relative_rcmap_target(I, T, beta: float = 0.1) -> torch.Tensor:
    """A "relative intensity" ground-truth RCM (LA Fig. 10, last column, β = 0.1), in our reading.

    The paper names the method without defining it; here the residual is taken relative to the
    input's intensity, R_rel = |I − T|_grey / max(I_grey, 1e-3), and thresholded with the same rule
    as L_C^B (γ = max{R_min + β (R_max − R_min), β}, LA Sec. 5.2).
    """
    I, T = _t(I), _t(T)
    grey = kornia.color.rgb_to_grayscale((I - T).abs()) / kornia.color.rgb_to_grayscale(I).clamp(min=1e-3)
    flat = grey.flatten(1)
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    gamma = torch.clamp(lo + beta * (hi - lo), min=beta).view(-1, 1, 1, 1)
    return (grey > gamma).float()


def la_fig10(image, transmission_gt, rcmap, beta: float = 0.3, beta_relative: float = 0.1,
             threshold: float = 0.5, title: str | None = None):
    """LA Fig. 10: GT RCMs by thresholding |I − T| (β = 0.3, as L_C^B) and relatively (β = 0.1), our
    predicted RCMap and the RCMap thresholded at 0.5 ("Ours [th.=0.5]")."""
    I, T = _t(image), _t(transmission_gt)
    residual = (I - T).abs()
    c = _t(rcmap)
    panels = [
        (I, "input I", "gray"),
        (residual / residual.max().clamp(min=1e-6), "|I − T| (scaled)", "gray"),
        (binary_rcmap_target(I, T, beta), f"GT RCM, β={beta}", "gray"),
        (relative_rcmap_target(I, T, beta_relative), f"GT RCM relative, β={beta_relative}", "gray"),
        (c, "Ours (RCMap Ĉ)", CMAP_RCMAP),
        ((c > threshold).float(), f"Ours [th.={threshold}]", "gray"),
    ]
    fig, axes = _grid(1, len(panels), _aspect(image), title=title or "LA Fig. 10: calculated RCMs")
    for ax, (img, name, cmap) in zip(axes[0], panels):
        _show(ax, img, name, cmap=cmap)
    return _finish(fig)


# ------------------------------------------------------------------------------------------------
# TS
# ------------------------------------------------------------------------------------------------


def ts_fig01(image, out, b_initial_without_fr=None, ground_truth=None, title: str | None = None):
    """TS Fig. 1 from a :class:`~sirr.models.two_stage.TwoStageOutput`: (a) input, (d) B_ini,
    (e) B_ini without L_FR, (f) I − B_ini, (g) the confidence map C_rf, (h) B_final, (i) ground truth,
    plus the edge sets E_B / E_R of Eq. 6 ((b) CEILNet and (c) PLNet are not implemented here)."""
    conf = _t(out.confidence)
    conf = conf / conf.max().clamp(min=1e-12)
    residual = _t(out.residual).abs()
    panels = [
        (image, "(a) input I", "gray"),
        (out.b_initial, "(d) B_ini", "gray"),
        (b_initial_without_fr, "(e) B_ini without L_FR", "gray"),
        (residual / residual.max().clamp(min=1e-6), "(f) |I − B_ini| (scaled)", "gray"),
        (conf, "(g) confidence map C_rf", CMAP_CONFIDENCE),
        (out.b_final, "(h) B_final", "gray"),
        (ground_truth, "(i) ground truth", "gray"),
        (out.edges_background, "E_B (C_rf < ξ)", "gray"),
        (out.edges_reflection, "E_R (C_rf > ξ)", "gray"),
    ]
    panels = [p for p in panels if p[0] is not None]
    ncols = 5 if len(panels) > 5 else len(panels)
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = _grid(nrows, ncols, _aspect(image),
                      title=title or f"TS Fig. 1 (not implemented here: {NOT_IMPLEMENTED['ts_fig01']})")
    for ax, (img, name, cmap) in zip(axes.flat, panels):
        _show(ax, img, name, cmap=cmap)
    for ax in list(axes.flat)[len(panels):]:
        _blank(ax)
    return _finish(fig)


def ts_fig03(rows: Sequence[Mapping[str, object]], title: str | None = None):
    """TS Fig. 3: per row input, initial result B_ini, final result B_final and the ground truth
    (keys ``input``, ``b_initial``, ``b_final``, ``ground_truth`` (optional), ``name``)."""
    cols = [("input", "input"), ("b_initial", "proposed initial B_ini"), ("b_final", "proposed final B_final"),
            ("ground_truth", "ground truth")]
    if not any(r.get("ground_truth") is not None for r in rows):
        cols = cols[:3]
    fig, axes = _grid(len(rows), len(cols), _aspect(rows[0]["input"]),
                      title=title or f"TS Fig. 3 (not implemented here: {NOT_IMPLEMENTED['ts_fig03']})")
    for row_axes, r in zip(axes, rows):
        for ax, (key, name) in zip(row_axes, cols):
            if r.get(key) is None:
                _blank(ax, "(none)")
            else:
                _show(ax, r[key], f"{name}" + (f": {r['name']}" if key == "input" and r.get("name") else ""))
    return _finish(fig)


def largest_change_box(a, b, size: int | None = None) -> tuple[int, int, int, int]:
    """The (y, x, h, w) square of side ``size`` (default: a third of the shorter side) where |a − b| sums highest."""
    d = np.abs(_img(a) - _img(b))
    d = d.mean(axis=2) if d.ndim == 3 else d
    h, w = d.shape
    s = size or max(8, min(h, w) // 3)
    s = min(s, h, w)
    ii = np.pad(d, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sums = ii[s:, s:] - ii[:-s, s:] - ii[s:, :-s] + ii[:-s, :-s]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x), s, s


def ts_fig04(image, b_initial, b_final, box: tuple[int, int, int, int] | None = None, title: str | None = None):
    """TS Fig. 4: blow-ups of one region, initial (B_ini) vs final (B_final) result.

    ``box`` = (y, x, h, w); by default the region where the two differ most (:func:`largest_change_box`).
    """
    y, x, h, w = box or largest_change_box(b_initial, b_final)
    crop = lambda im: _img(im)[y:y + h, x:x + w]  # noqa: E731
    fig, axes = _grid(1, 3, 1.0, size=2.6, title=title or "TS Fig. 4: blow-ups, initial vs final")
    _show(axes[0, 0], image, "input (red box)")
    axes[0, 0].add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.5))
    _show(axes[0, 1], crop(b_initial), "initial B_ini")
    _show(axes[0, 2], crop(b_final), "final B_final")
    return _finish(fig)


# ------------------------------------------------------------------------------------------------
# Where the chapter's models and images come from
# ------------------------------------------------------------------------------------------------


@dataclass
class TrainedModel:
    """A trained network (eval mode) with the checkpoint it came from and its training step."""

    method: str
    variant: str
    model: torch.nn.Module
    checkpoint: Path
    step: int | None
    trained_now: bool

    def __call__(self, x):
        return self.model(x)

    def note(self) -> str:
        """``la/full: runs/smoke/la/full/seed0/final.pt (step 6)`` -- for captions."""
        where = repo_relative(self.checkpoint)
        step = f", step {self.step}" if self.step is not None else ""
        return f"{self.method}/{self.variant}: {where}{step}" + (" (trained in this chapter)" if self.trained_now else "")


def trained(run, method: str = "la", variant: str = "full", *, train_missing: bool = True,
            progress: bool = False) -> TrainedModel | None:
    """The network trained at ``run``'s preset and seed, from :meth:`sirr.methods.Method.run_dir`.

    ``variant="full"`` is the model of chapters 04 (LA) / 05 (TS); other variants are the rows of
    chapter 07 (:data:`sirr.registry.LA_VARIANTS` / ``TS_VARIANTS``). When the run folder has no
    ``final.pt`` (or ``run.retrain``) and ``train_missing`` is true, the run is trained now
    (:meth:`sirr.methods.Method.train`: full schedule for ``full``, ``run.preset.ablation`` steps for the
    table rows); with ``train_missing=False`` it returns None instead.
    """
    m = get_method(method)
    ckpt = m.checkpoint(run, variant)
    trained_now = False
    if run.retrain or not ckpt.is_file():
        if not train_missing:
            return None
        ckpt = Path(m.train(run, variant, resume=not run.retrain, progress=progress).checkpoint)
        trained_now = True
    model = m.load(ckpt, device=run.device).eval()
    meta = getattr(model, "checkpoint_meta", None) or {}
    step = meta.get("step")
    return TrainedModel(method, variant, model, ckpt, int(step) if step is not None else None, trained_now)


def committed(run, method: str = "la", preset: str = "cpu", seed: int = 0) -> TrainedModel | None:
    """The book's committed weights of ``method`` at ``preset`` (:func:`sirrbook.weights.committed_weights`: LA@cpu,
    fp16 on disk, run in fp32), or ``None`` when the checkout has none."""
    found = committed_weights(REPO_ROOT / "results", method, preset, seed)
    if found is None:
        return None
    path, entry = found
    model = get_method(method).load(path, device=run.device).eval()
    step = entry.get("selected_step", entry.get("steps"))  # the best-validation step the weights are from
    return TrainedModel(method, f"full@{preset}", model, path, step, False)


def run_note(*models: TrainedModel | None) -> str:
    """Caption text naming the checkpoints the figure's networks came from."""
    notes = [m.note() for m in models if m is not None]
    return ("Checkpoints: " + "; ".join(notes) + ".") if notes else ""


def figure_pairs(run, n: int = 2, side: int | None = None, verbose: bool = True) -> list:
    """``n`` test triples with ground truth, as :class:`sirr.data.datasets.Sample` (I, T, R float HxWx3).

    The CEILNet synthetic test set under the data root when present; otherwise LA-recipe blends
    (LA Eq. 6, fixed seed) of the sample photos that ship with scikit-image / scikit-learn /
    matplotlib, and it prints so. Each image is shrunk so that its longer side is at most ``side``
    and both sides are multiples of 8.
    """
    def fit(a):
        a = np.asarray(a, dtype=np.float32)
        h, w = a.shape[:2]
        s = min(1.0, (side or max(h, w)) / max(h, w))
        hh, ww = max(8, int(h * s) // 8 * 8), max(8, int(w * s) // 8 * 8)
        if (hh, ww) == (h, w):
            return a
        t = torch.nn.functional.interpolate(_t(a), size=(hh, ww), mode="bilinear", antialias=True, align_corners=False)
        return t[0].permute(1, 2, 0).clamp(0, 1).numpy()

    if run.data_root is not None and "ceilnet_synthetic" in available_datasets(run.data_root):
        ds = load_dataset("ceilnet_synthetic", run.data_root, max_images=n)
        if verbose:
            print(f"figure images: {len(ds)} CEILNet synthetic test triples from {ds.root}")
        return [Sample(s.name, fit(s.I), fit(s.T), fit(s.R) if s.R is not None else None) for s in ds]
    photos = sample_photos()
    g = torch.Generator().manual_seed(2021)
    out = []
    size = side or 224
    for k in range(n):
        (tn, t), (rn, r) = photos[(2 * k) % len(photos)], photos[(2 * k + 1) % len(photos)]
        T = _t(fit(t.astype(np.float32) / 255.0))
        R = torch.nn.functional.interpolate(_t(r.astype(np.float32) / 255.0), size=T.shape[-2:], mode="bilinear",
                                            antialias=True, align_corners=False).clamp(0, 1)
        res = synthesize_la(T, R, g)
        img = lambda x: x[0].permute(1, 2, 0).clamp(0, 1).numpy().astype(np.float32)  # noqa: E731
        out.append(Sample(f"synthetic_{tn}+{rn}", img(res["I"]), img(res["T"]), img(res["R"])))
    if verbose:
        why = "no data root" if run.data_root is None else f"no CEILNet synthetic set under {run.data_root}"
        print(f"{why}: figure images are {n} LA-recipe blends (LA Eq. 6) of sample photos "
              f"from scikit-image/scikit-learn/matplotlib, {size} px")
    return out
