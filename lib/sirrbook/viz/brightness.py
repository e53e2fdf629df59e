"""Chapter 6's views of the brightness study (:mod:`sirrbook.brightness`): a short table of paired differences and
one two-panel figure, both read from a stored study."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sirr.config import RunConfig
from sirrbook import brightness as B
from sirrbook.results import load_result
from sirrbook.viz.tables import DATASET_NAMES

__all__ = ["brightness_display", "brightness_figure", "show_brightness", "COLUMN_NAMES", "STUDY"]

#: The stored study the chapter shows (read as it was stored, with or without a data root now).
STUDY = "brightness/la"

#: How the table names each comparison (the model's name replaces "model").
COLUMN_NAMES = {B.GAIN_VS_INPUT: "gain − input", B.MODEL_VS_INPUT: "{m} − input", B.MODEL_VS_GAIN: "{m} − gain",
                B.MATCHED: "{m} − input, both at the truth's brightness"}


def _text(r: pd.Series, label: str, fmt: str = "{:+.2f}") -> str:
    return (f"{fmt.format(r[label])} [{fmt.format(r[f'{label} low'])}, {fmt.format(r[f'{label} high'])}] "
            f"{r[f'{label} verdict']}")


def brightness_display(study: dict) -> pd.DataFrame:
    """One row per real set and the pooled row: images, median brightness ratios, and each comparison as
    "mean [low, high] verdict" (PSNR in dB; the model against the gain also in SSIM)."""
    df = B.brightness_frame(study)
    m = study["method"].upper()
    out = pd.DataFrame(index=[DATASET_NAMES.get(i, i) for i in df.index])
    out.index.name = "test set"
    out["images"] = df["n"].to_numpy()
    out["truth / input"] = [f"{v:.2f}" for v in df["truth / input (median)"]]
    out[f"{m} output / input"] = [f"{v:.2f} ({lo:.2f}–{hi:.2f})" for v, (lo, hi)
                                  in zip(df["output / input (median)"], df["output / input (range)"])]
    for key, name in COLUMN_NAMES.items():
        out[f"Δ PSNR, {name.format(m=m)}"] = [_text(r, key) for _, r in df.iterrows()]
    out[f"Δ SSIM, {m} − gain"] = [_text(r, f"{B.MODEL_VS_GAIN} SSIM", "{:+.3f}") for _, r in df.iterrows()]
    return out


def brightness_figure(study: dict):
    """Two panels over every real image: (a) the brightness of the model's output and of the ground truth, each
    relative to the input, with the constant gain; (b) the PSNR change from the input of the model and of the
    constant gain, against the ground truth's relative brightness. The worst image of the model is named."""
    m = study["method"].upper()
    gain = study["gain"]["gain"]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 5.2))
    worst = None
    for i, (name, s) in enumerate(study["sets"].items()):
        x = np.asarray(s["truth_ratio"])
        label = DATASET_NAMES.get(name, name)
        ax0.scatter(x, s["output_ratio"], s=14, color=f"C{i}", alpha=0.8, label=label)
        d_model = np.asarray(s["psnr_model"]) - np.asarray(s["psnr_identity"])
        d_gain = np.asarray(s["psnr_gain"]) - np.asarray(s["psnr_identity"])
        ax1.scatter(x, d_model, s=14, color=f"C{i}", alpha=0.8, label=f"{m}, {label}")
        ax1.scatter(x, d_gain, s=10, marker="x", color="0.45", lw=0.8,
                    label=f"constant gain {gain:.3f}" if i == 0 else None)
        j = int(np.argmin(d_model))
        if worst is None or d_model[j] < worst[2]:
            worst = (x[j], s["output_ratio"][j], float(d_model[j]), f"{label} {s['image'][j]}")
    lo = min(min(s["truth_ratio"]) for s in study["sets"].values())
    hi = max(max(s["truth_ratio"]) for s in study["sets"].values())
    xs = np.array([min(lo, gain) - 0.02, max(hi, 1.0) + 0.02])
    ax0.plot(xs, xs, "k--", lw=0.8, label="as bright as the ground truth")
    ax0.axhline(gain, color="0.45", lw=1.0, ls=":", label=f"constant gain {gain:.3f} (fitted on validation)")
    ax0.axhline(1.0, color="0.75", lw=0.6)
    ax0.set(xlabel="ground truth's mean / input's mean", ylabel=f"{m} output's mean / input's mean",
            title=f"(a) how bright {m} makes each photo")
    ax0.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax1.axhline(0.0, color="k", lw=0.8)
    ax1.axvline(gain, color="0.45", lw=1.0, ls=":")
    if worst is not None:
        ax1.annotate(f"worst: {worst[3]}, {worst[2]:+.1f} dB", (worst[0], worst[2]), xytext=(-40, 0),
                     textcoords="offset points", ha="right", va="center", fontsize=7,
                     arrowprops={"arrowstyle": "-", "lw": 0.6})
    ax1.set(xlabel="ground truth's mean / input's mean", ylabel="PSNR change from the input (dB)",
            title="(b) PSNR gained over the input, per photo")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def show_brightness(run: RunConfig, figure: str = "06_cpu_brightness") -> dict | None:
    """Chapter 6: display the stored study of ``run``'s preset (its table, its sentence and its figure, saved as
    ``figures/<figure>.png``) and return it; without one, say how to compute it and return None."""
    from IPython.display import Markdown, display

    from sirrbook.viz.figures import save_figure

    study = load_result(run, STUDY, 0)
    if study is None:
        print(f"no stored brightness study at preset {run.preset.name!r} under {run.results_dir}; compute it with "
              f"`python -m sirr brightness la --preset {run.preset.name}` (it needs that preset's trained LA weights "
              "and the test sets)")
        return None
    p = study.get("_provenance", {})
    display(brightness_display(study))
    display(Markdown(B.brightness_sentence(study, DATASET_NAMES)))
    g = study["gain"]
    save_figure(brightness_figure(study), figure, run=run, weights=study["model"],
                caption=f"Brightness and PSNR of every real test photo (longer side {study['max_side']} px): "
                        f"{study['method'].upper()}@{run.preset.name} against the constant gain {g['gain']:.3f} "
                        f"fitted on {g['photos']} synthetic validation triples.",
                details=f"Stored study {STUDY} (preset {p.get('preset')}, seed {p.get('seed')}, device "
                        f"{p.get('device')}, commit {p.get('commit')}); model: {study['model']}.")
    plt.show()
    return study
