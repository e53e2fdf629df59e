"""Figures of chapters 01 (Laplacian vs edge maps, LA Fig. 4 / Eq. 4) and 02 (data synthesis).

The maps come from :mod:`sirr.gradients`, the triples from :mod:`sirr.data.synthesis`; each
``*_figure`` returns a matplotlib figure (the notebooks save them with
:func:`sirrbook.viz.save_figure`). ``make_*_render`` build the ``render(**controls)`` callables that
:func:`sirrbook.viz.explorer` needs. A few small helpers gather what the figures show (images resized
for a preset, the per-scale layer ratios, parameter samples, skip-rule rates, triple statistics)
so the notebooks stay short.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from sirr.data import datasets
from sirr.data.synthesis import (
    LA_SKIP_RULES,
    RECIPES,
    ReflectionSynthesizer,
    synthesize_ceilnet,
    synthesize_la,
    synthesize_ts,
)
from sirr.gradients import edge_map, laplacian_map, layer_response_ratio, multiscale_responses
from sirr.models.location_aware import MultiScaleLaplacian
from sirr.provenance import device_name, git_commit
from sirrbook.results import load_result, save_result
from sirrbook.viz.figures import _as_image

__all__ = [
    "laplacian_vs_edge_figure",
    "multiscale_figure",
    "scale_energy_figure",
    "make_mlsm_render",
    "synthesis_figure",
    "skip_rules_figure",
    "overflow_figure",
    "make_synthesis_render",
    "statistic_figure",
    "parameter_figure",
    "prepare_images",
    "reflection_triples",
    "layer_ratios",
    "ratio_table",
    "sample_parameters",
    "skip_rule_rates",
    "triple_statistics",
    "overflow_pair",
    "ceilnet_comparison",
    "record_throughput",
    "pool_description",
    "SCALE_LABELS",
    "KERNEL_CHOICES",
]

#: Scale labels of the MLSM output, in its concatenation order.
SCALE_LABELS = ("1/8", "1/4", "1/2", "1")
#: Kernel choices of the chapter-01 explorer -> ``MultiScaleLaplacian`` options.
KERNEL_CHOICES = {
    "Laplacian k_L": {"gradient_filter": "laplacian", "kernel_init": "laplacian"},
    "Edge (x/y derivatives)": {"gradient_filter": "edge", "kernel_init": "laplacian"},
    "random": {"gradient_filter": "laplacian", "kernel_init": "random"},
}


def _show(ax, img, title: str | None = None, cmap: str = "gray") -> None:
    a = _as_image(img)
    ax.imshow(a, cmap=cmap if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)


def _grid(nrows: int, ncols: int, aspect: float, size: float = 2.6):
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * aspect * nrows + 0.4), squeeze=False)
    return fig, axes


def laplacian_vs_edge_figure(images: Sequence[tuple[str, torch.Tensor]], normalize: str = "max"):
    """LA Fig. 4: per row an input, ``1 - E`` (CEILNet edge map) and ``1 - L`` (normalised |k_L * I|)."""
    h, w = images[0][1].shape[-2:]
    fig, axes = _grid(len(images), 3, h / w, size=3.2)
    for row, (name, img) in zip(axes, images):
        _show(row[0], img, f"input: {name}")
        _show(row[1], 1 - edge_map(img, normalize), "1 - E (edge map, CEILNet)")
        _show(row[2], 1 - laplacian_map(img, normalize), "1 - L (|k_L * I|, normalised)")
    fig.tight_layout()
    return fig


def multiscale_figure(img: torch.Tensor, responses: torch.Tensor, labels: Sequence[str] = SCALE_LABELS,
                      title: str | None = None):
    """The input and ``1 - response`` of each MLSM scale (each normalised by its own maximum)."""
    n = responses.shape[1]
    h, w = img.shape[-2:]
    fig, axes = _grid(1, n + 1, h / w)
    _show(axes[0, 0], img, "input")
    for s in range(n):
        r = responses[0, s]
        _show(axes[0, s + 1], 1 - r / r.max().clamp(min=1e-12), f"1 - |L_ap(X)|, scale {labels[s]}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def scale_energy_figure(ratios: Mapping[str, np.ndarray], labels: Sequence[str] = SCALE_LABELS,
                        title: str = "response in reflection-dominated / transmission-dominated regions",
                        ylabel: str = "energy ratio (R-dominated / T-dominated)"):
    """Bars: mean (and std over images) of the energy ratio per scale, one group per kernel; 1 = no preference."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    names = list(ratios)
    width = 0.8 / len(names)
    x = np.arange(len(labels))
    for i, name in enumerate(names):
        r = np.asarray(ratios[name], dtype=float)
        ax.bar(x + (i - (len(names) - 1) / 2) * width, np.nanmean(r, 0), width, yerr=np.nanstd(r, 0),
               label=name, capsize=3)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, [f"scale {s}" for s in labels])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def make_mlsm_render(images: Mapping[str, torch.Tensor], seed: int = 0) -> Callable[..., object]:
    """``render(image, scale, kernel)`` for the chapter-01 explorer: the input and one scale's ``1 - |response|``."""
    modules = {}
    for name, opts in KERNEL_CHOICES.items():
        m = MultiScaleLaplacian(channels=3, **opts)
        if opts["kernel_init"] == "random":
            m.reset_kernel(generator=torch.Generator().manual_seed(seed))
        modules[name] = m.eval()

    def render(image: str, scale: str, kernel: str):
        img = images[image]
        resp = multiscale_responses(img, modules[kernel])[0, SCALE_LABELS.index(scale)]
        h, w = img.shape[-2:]
        fig, axes = _grid(1, 2, h / w, size=3.4)
        _show(axes[0, 0], img, image)
        _show(axes[0, 1], 1 - resp / resp.max().clamp(min=1e-12), f"1 - |response|: {kernel}, scale {scale}")
        fig.tight_layout()
        return fig

    return render


def _param_text(out: Mapping[str, torch.Tensor], i: int) -> str:
    bits = []
    for key, fmt in (("alpha", "alpha={:.2f}"), ("sigma", "sigma={:.2f}"), ("vignette", "vignette={:.2f}")):
        if key in out:
            bits.append(fmt.format(float(out[key][i])))
    if "shift" in out:
        dx, dy = out["shift"][i].tolist()
        bits.append(f"ghost=({dx:.1f},{dy:.1f}) px")
    return ", ".join(bits)


def synthesis_figure(outputs: Mapping[str, Mapping[str, torch.Tensor]], index: int = 0):
    """One row per recipe: ``I``, ``T``, ``R`` of sample ``index`` (``R`` contrast-stretched ``x / max`` too)."""
    first = next(iter(outputs.values()))["I"]
    h, w = first.shape[-2:]
    fig, axes = _grid(len(outputs), 4, h / w)
    for row, (name, out) in zip(axes, outputs.items()):
        r = out["R"][index]
        _show(row[0], out["I"][index], f"{name}: I\n{_param_text(out, index)}")
        _show(row[1], out["T"][index], "T (ground truth)")
        _show(row[2], r, "R (ground truth)")
        _show(row[3], r / r.max().clamp(min=1e-6), "R / max(R)")
    fig.tight_layout()
    return fig


def skip_rules_figure(out: Mapping[str, torch.Tensor], rule_names: Sequence[str], max_rows: int = 3):
    """The first skipped samples of an LA batch: ``I``, ``T``, ``R`` and which rule fired."""
    bad = (~out["keep"]).nonzero().flatten().tolist()[:max_rows]
    if not bad:
        bad = [0]
    h, w = out["I"].shape[-2:]
    fig, axes = _grid(len(bad), 3, h / w)
    for row, i in zip(axes, bad):
        fired = [n for n, f in zip(rule_names, out["rules"][i].tolist()) if f] or ["(kept)"]
        _show(row[0], out["I"][i], "I: " + "; ".join(fired))
        _show(row[1], out["T"][i], f"T (mean {float(out['T'][i].mean()):.2f})")
        _show(row[2], out["R"][i], f"R (max {float(out['R'][i].max()):.2f})")
    fig.tight_layout()
    return fig


def overflow_figure(without: Mapping[str, torch.Tensor], with_fix: Mapping[str, torch.Tensor], index: int = 0):
    """The same LA sample without (``att=0``) and with the overflow fix: ``I``, ``R`` and the saturated pixels."""
    h, w = without["I"].shape[-2:]
    fig, axes = _grid(2, 3, h / w)
    for row, (name, out) in zip(axes, (("no fix", without), ("fix", with_fix))):
        sat = (out["I"][index] >= 1 - 1e-6).any(dim=0).float()
        _show(row[0], out["I"][index], f"I, {name}")
        _show(row[1], out["R"][index], f"R, {name} (subtracted {out['overflow'][index].mean():.3f})")
        _show(row[2], sat, f"saturated pixels: {100 * float(sat.mean()):.1f}%")
    fig.tight_layout()
    return fig


def make_synthesis_render(T: torch.Tensor, R: torch.Tensor, seed: int = 0) -> Callable[..., object]:
    """``render(recipe, alpha, sigma, ghost)`` for the chapter-02 explorer on one ``(1, 3, H, W)`` pair.

    ``alpha`` is used by LA and TS, ``sigma`` by all three, ``ghost`` (px, applied as ``(dx, dy) =
    (ghost, ghost / 2)``) by TS; the other parameters are drawn from ``seed``, the same for every call.
    """
    def render(recipe: str, alpha: float, sigma: float, ghost: float):
        g = torch.Generator(device=T.device).manual_seed(seed)
        if recipe == "la":
            out = synthesize_la(T, R, g, alpha=alpha, sigma=sigma)
        elif recipe == "ceilnet":
            out = synthesize_ceilnet(T, R, g, sigma=sigma)
        else:
            out = synthesize_ts(T, R, g, alpha=alpha, sigma=sigma, shift=(ghost, ghost / 2))
        return synthesis_figure({recipe: out})

    return render


def statistic_figure(samples: Mapping[str, np.ndarray], xlabel: str, bins: int = 20):
    """Overlaid histograms (density) of one per-image statistic for several sources, with their means."""
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    lo = min(float(np.min(v)) for v in samples.values())
    hi = max(float(np.max(v)) for v in samples.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-3, bins + 1)
    for name, v in samples.items():
        v = np.asarray(v, dtype=float)
        ax.hist(v, bins=edges, density=True, alpha=0.5, label=f"{name} (n={len(v)}, mean {v.mean():.3f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def parameter_figure(params: Mapping[str, Mapping[str, np.ndarray]], bins: int = 24, ncols: int = 3):
    """One panel per parameter (``params[recipe][parameter] -> samples``), the recipes that draw it overlaid."""
    names: list[str] = []
    for per in params.values():
        names += [n for n in per if n not in names]
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.5 * nrows), squeeze=False)
    colours = {r: f"C{i}" for i, r in enumerate(params)}
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, pname in zip(axes.flat, names):
        have = {r: np.asarray(per[pname], dtype=float) for r, per in params.items() if pname in per}
        lo = min(float(v.min()) for v in have.values())
        hi = max(float(v.max()) for v in have.values())
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-3, bins + 1)
        for recipe, v in have.items():
            kw = dict(bins=edges, density=True, color=colours[recipe])
            ax.hist(v, histtype="stepfilled", alpha=0.25, **kw)
            ax.hist(v, histtype="step", lw=1.5, label=f"{recipe} [{v.min():.2f}, {v.max():.2f}]", **kw)
        ax.set_title(pname, fontsize=9)
        ax.set_yticks([])
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# What the figures show
# --------------------------------------------------------------------------------------------


def prepare_images(photos, max_side: int | None = None) -> dict[str, torch.Tensor]:
    """``[(name, HxWx3 array)]`` -> ``{name: (1, 3, H, W) float tensor}``, the longer side at most ``max_side``.

    uint8 arrays are scaled to [0, 1]; downscaling is bilinear with antialiasing (torch), aspect kept.
    """
    out = {}
    for item in photos:
        name, arr = item if isinstance(item, tuple) else (f"image {len(out)}", item)
        a = np.asarray(arr)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"prepare_images: {name!r} must be an (H, W, 3) array, got shape {a.shape}")
        x = torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1)[None]  # a copy: inputs may be read-only
        x = x.float() / 255.0 if a.dtype == np.uint8 else x.float().clamp(0, 1)
        h, w = x.shape[-2:]
        if max_side is not None and max(h, w) > max_side:
            f = max_side / max(h, w)
            x = F.interpolate(x, size=(max(1, round(h * f)), max(1, round(w * f))), mode="bilinear",
                              align_corners=False, antialias=True).clamp(0, 1)
        out[str(name)] = x
    return out


def reflection_triples(data_root=None, n: int | None = None, size: int = 224, seed: int = 0):
    """``([(name, T, R)], source)``: triples whose ``I = T + R`` exactly, ``T``/``R`` ``(1, 3, H, W)`` tensors.

    CEILNet's published synthetic test set (``ceilnet_synthetic``: ``R`` = blend minus transmission)
    when the data root has it; otherwise -- and it prints so -- ``n`` (default 16) triples of our
    CEILNet recipe (:func:`sirr.data.synthesis.synthesize_ceilnet`, same construction) on the
    sample photos at ``size``.
    """
    try:
        ds = datasets.load_dataset("ceilnet_synthetic", data_root, max_images=n)
        triples = [(s.name, _tensor(s.T), _tensor(s.R)) for s in ds]
        return triples, "CEILNet published synthetic triples"
    except FileNotFoundError as e:  # DataRootError / DatasetNotFoundError
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"CEILNet synthetic triples not available ({first}); using CEILNet-recipe triples "
              f"synthesised from the packaged sample photos instead.")
    out = ReflectionSynthesizer(datasets.sample_photos(), recipe="ceilnet", size=size, seed=seed).batch(n or 16)
    triples = [(f"synthetic {i}", out["T"][i:i + 1], out["R"][i:i + 1]) for i in range(out["T"].shape[0])]
    return triples, "CEILNet recipe on sample photos (fallback)"


def _tensor(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32))).permute(2, 0, 1)[None]


def layer_ratios(triples, kernels: Sequence[str] = ("Laplacian k_L", "Edge (x/y derivatives)"),
                 border: int = 16) -> dict[str, np.ndarray]:
    """Per kernel, ``(N, S, 2)``: :func:`sirr.gradients.layer_response_ratio` of each ``(name, T, R)`` triple.

    The region is the reflection-dominated part of the image, ``mean_c R > mean_c T`` (``[..., 0]``),
    against the rest (``[..., 1]``). ``kernels`` are keys of :data:`KERNEL_CHOICES`; the MLSM is
    :class:`sirr.models.location_aware.MultiScaleLaplacian` with its initial kernel.
    """
    out = {}
    for k in kernels:
        if k not in KERNEL_CHOICES:
            raise ValueError(f"layer_ratios: unknown kernel {k!r}; choose from {list(KERNEL_CHOICES)}")
        mlsm = MultiScaleLaplacian(channels=3, **KERNEL_CHOICES[k]).eval()
        rows = []
        for _name, T, R in triples:
            mask = R.mean(dim=1, keepdim=True) > T.mean(dim=1, keepdim=True)
            rows.append(layer_response_ratio(T, R, mlsm, mask, border=border)[0].numpy())
        out[k] = np.stack(rows) if rows else np.zeros((0, len(SCALE_LABELS), 2))
    return out


def ratio_table(ratios: Mapping[str, np.ndarray], labels: Sequence[str] = SCALE_LABELS,
                regions: Sequence[str] = ("R-dominated", "T-dominated")):
    """A pandas table of :func:`layer_ratios`: rows (kernel, region), columns the scales; mean over images (NaN skipped)."""
    rows, index = [], []
    for kernel, r in ratios.items():
        r = np.asarray(r, dtype=float)
        for j, region in enumerate(regions):
            rows.append(np.nanmean(r[..., j], axis=0) if len(r) else np.full(len(labels), np.nan))
            index.append((kernel, region))
    df = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["kernel", "region"]),
                      columns=[f"scale {s}" for s in labels])
    return df


def sample_parameters(n: int = 2000, seed: int = 0, side: int = 24) -> dict[str, dict[str, np.ndarray]]:
    """The parameters each recipe draws, ``n`` samples (on tiny random images; the draws do not depend on content).

    ``{"la": {alpha, sigma, att}, "ceilnet": {sigma}, "ts": {alpha, sigma, att, vignette, ghost offset}}``,
    ghost offset = ``|(dx, dy)|`` in px at 256-px images.
    """
    g = torch.Generator().manual_seed(seed)
    T = torch.rand(n, 3, side, side, generator=g)
    R = torch.rand(n, 3, side, side, generator=g)
    out: dict[str, dict[str, np.ndarray]] = {}
    for recipe, fn in RECIPES.items():
        res = fn(T, R, torch.Generator().manual_seed(seed))
        per = {k: res[k].numpy() for k in ("alpha", "sigma", "att", "vignette") if k in res}
        if recipe == "ceilnet":
            per.pop("alpha")  # always 1: CEILNet does not weight T
        if "shift" in res:
            per["ghost offset (px at 256)"] = (res["shift"] * 256.0 / side).norm(dim=1).numpy()
        out[recipe] = per
    return out


def skip_rule_rates(photos, size: int, n: int = 64, seed: int = 0):
    """How often each LA skip rule fires on ``n`` fresh photo pairs (no redraws): ``(pandas Series of fractions, batch)``.

    The batch (the LA recipe's output dict, ``keep`` and ``rules`` included) feeds :func:`skip_rules_figure`.
    """
    logger = logging.getLogger("sirr.data.synthesis")
    level = logger.level
    logger.setLevel(logging.ERROR)  # max_retries=0 on purpose: do not warn about the skipped samples we count
    try:
        out = ReflectionSynthesizer(photos, recipe="la", size=size, seed=seed, max_retries=0).batch(n)
    finally:
        logger.setLevel(level)
    rates = {rule: float(out["rules"][:, i].float().mean()) for i, rule in enumerate(LA_SKIP_RULES)}
    rates["any rule (pair skipped)"] = float((~out["keep"]).float().mean())
    return pd.Series(rates, name=f"fraction of {n} pairs"), out


def triple_statistics(I: torch.Tensor, T: torch.Tensor, R: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image statistics of ``(B, 3, H, W)`` triples, for comparing a recipe with a published set.

    ``saturated``: fraction of pixels of ``I`` with a channel at 1 (within 1/255 -- 8-bit files);
    ``mean R``: mean of the reflection layer; ``R share``: ``mean(R) / mean(I)``;
    ``R edge / T edge``: mean CEILNet edge map (unnormalised) of ``R`` over that of ``T`` (how sharp R is).
    """
    sat = (I >= 254.5 / 255).any(dim=1).float().mean(dim=(1, 2))
    mean_r = R.mean(dim=(1, 2, 3))
    share = mean_r / I.mean(dim=(1, 2, 3)).clamp(min=1e-6)
    er = edge_map(R.clamp(0, 1), "bound").mean(dim=(1, 2, 3))
    et = edge_map(T.clamp(0, 1), "bound").mean(dim=(1, 2, 3)).clamp(min=1e-6)
    return {"saturated": sat.numpy(), "mean R": mean_r.numpy(), "R share": share.numpy(),
            "R edge / T edge": (er / et).numpy()}


def overflow_pair(T: torch.Tensor, R: torch.Tensor, seed: int = 0):
    """The LA recipe on the same pairs and draws, without (``att=0``) and with the overflow fix: ``(without, with_fix)``.

    alpha, sigma and att are drawn once and passed to both calls, so the vignetting windows (drawn
    after them) are the same too; only the fix differs.
    """
    def gen():
        return torch.Generator(device=T.device).manual_seed(seed)

    first = synthesize_la(T, R, gen())
    fixed = {"alpha": first["alpha"], "sigma": first["sigma"]}
    without = synthesize_la(T, R, gen(), att=0.0, **fixed)
    with_fix = synthesize_la(T, R, gen(), att=first["att"], **fixed)
    return without, with_fix


def _quantise(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0, 1) * 255) / 255


def ceilnet_comparison(photos, data_root=None, n: int = 32, size: int = 224, seed: int = 0):
    """Per-image :func:`triple_statistics` of our CEILNet recipe and of CEILNet's published synthetic triples.

    Ours: ``n`` triples of :class:`~sirr.data.synthesis.ReflectionSynthesizer` (``recipe="ceilnet"``) at
    ``size`` (the published set is 224 px), stored as 8 bit like the published PNGs. Published: the
    first ``n`` of ``ceilnet_synthetic``; missing (no data root), only ours is returned and it prints so.
    Returns ``{source: {statistic: (N,) array}}``.
    """
    out = ReflectionSynthesizer(photos, recipe="ceilnet", size=size, seed=seed).batch(n)
    I, T = _quantise(out["I"]), _quantise(out["T"])
    res = {"our CEILNet recipe": triple_statistics(I, T, I - T)}
    try:
        ds = datasets.load_dataset("ceilnet_synthetic", data_root, max_images=n)
    except FileNotFoundError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"published CEILNet triples not available ({first}); showing our recipe only")
        return res
    per: dict[str, list] = {}
    for smp in ds:
        st = triple_statistics(_tensor(smp.I), _tensor(smp.T), _tensor(smp.R))
        for k, v in st.items():
            per.setdefault(k, []).append(v)
    res["CEILNet published"] = {k: np.concatenate(v) for k, v in per.items()}
    return res


def pool_description(photos) -> str:
    """``"160 photos: bsds500, ceilnet_synthetic, ceilnet_table2"`` -- the sources of a ``[(name, array)]`` pool."""
    if hasattr(photos, "counts"):  # a PhotoPool: names without decoding a photo
        return f"{len(photos)} photos: " + ", ".join(f"{k} {v}" for k, v in photos.counts.items()) + \
            f" (pool {photos.fingerprint})"
    names = [p[0] if isinstance(p, tuple) else "unnamed" for p in photos]
    sources = sorted({n.split("/")[0] if "/" in n else n.split("_")[0] for n in names})
    return f"{len(names)} photos: {', '.join(sources)}"


def record_throughput(run, rates: Mapping[str, float], size: int, batch: int, seconds: float,
                      experiment: str = "synthesis_throughput", pool: str = ""):
    """Store measured pairs/s per recipe under ``experiment``, one entry per device type (cpu, cuda, ...).

    The stored record keeps the other devices' entries (a CPU run does not erase a GPU measurement);
    each entry carries its own device name, commit and time. Returns ``(path, pandas table)`` of all entries.
    """
    dev = str(run.device)
    old = load_result(run, experiment) or {}
    by_device = dict(old.get("by_device", {}))
    by_device[dev.split(":")[0]] = {
        "device": device_name(dev), "size": int(size), "batch": int(batch), "seconds": float(seconds),
        "pairs_per_s": {k: float(v) for k, v in rates.items()}, "commit": git_commit(), "pool": pool,
        "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = save_result(run, experiment, {"by_device": by_device})
    table = pd.DataFrame({e["device"]: e["pairs_per_s"] for e in by_device.values()}).T
    table.index.name = f"pairs/s at {size}x{size}"
    table["batch"] = [e.get("batch") for e in by_device.values()]
    table["pool"] = [e.get("pool", "") for e in by_device.values()]
    table["commit"] = [e["commit"] for e in by_device.values()]
    table["measured"] = [e.get("measured", "") for e in by_device.values()]
    return path, table
