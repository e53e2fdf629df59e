"""The papers' own published numbers, quoted verbatim so tables can show them BESIDE ours.

Nothing here is a result of this book: every value is copied from the paper text in
``../shared/papers`` and labelled with its table. Chapters print these in a "paper" column next to
columns computed from runs stored under ``results/``.
"""

from __future__ import annotations

__all__ = ["LA_TABLE1", "LA_TABLE2", "LA_TABLE3", "TS_TABLE1", "LA_COST"]

#: LA Table 1 ("Ours" column): real-world test sets, PSNR / SSIM.
LA_TABLE1: dict[str, dict[str, float]] = {
    "sir2_postcard": {"psnr": 23.724, "ssim": 0.903},
    "sir2_solidobject": {"psnr": 24.361, "ssim": 0.898},
    "sir2_wild": {"psnr": 25.731, "ssim": 0.902},
    "real20": {"psnr": 23.338, "ssim": 0.812},
    "nature": {"psnr": 23.451, "ssim": 0.808},
    "average": {"psnr": 24.179, "ssim": 0.893},
}

_T2_COLS = ("sir2_psnr", "sir2_ssim", "real20_psnr", "real20_ssim", "nature_psnr", "nature_ssim")


def _rows(rows: dict[str, tuple[float, ...]]) -> dict[str, dict[str, float]]:
    return {k: dict(zip(_T2_COLS, v)) for k, v in rows.items()}


#: LA Table 2: network structure ablation (SIR², Zhang et al. real20, Li et al. Nature).
LA_TABLE2 = _rows({
    "wo_rdm_tsm": (23.237, 0.881, 22.784, 0.800, 22.607, 0.778),
    "wo_tsm": (23.304, 0.882, 22.139, 0.805, 23.088, 0.799),
    "wo_lstm": (23.808, 0.887, 21.040, 0.760, 22.721, 0.794),
    "c_from_image_features": (22.595, 0.888, 21.747, 0.792, 22.283, 0.792),
    "mlsm_to_slsm": (23.089, 0.879, 21.708, 0.796, 23.065, 0.800),
    "fix_mlsm": (23.640, 0.891, 22.951, 0.809, 22.646, 0.802),
    "laplacian_to_edge": (23.612, 0.892, 22.381, 0.808, 23.234, 0.798),
    "lki_to_rki": (24.106, 0.893, 21.784, 0.791, 22.224, 0.794),
    "wo_gradient_clipping": (23.901, 0.891, 23.051, 0.812, 23.300, 0.806),
    "ours": (24.117, 0.901, 23.338, 0.812, 23.451, 0.808),
})

#: LA Table 3: loss ablation.
LA_TABLE3 = _rows({
    "wo_pixel": (23.365, 0.888, 22.113, 0.788, 21.587, 0.788),
    "wo_ssim": (15.653, 0.673, 17.652, 0.746, 15.197, 0.642),
    "wo_perceptual": (22.725, 0.880, 22.219, 0.804, 22.778, 0.812),
    "wo_composition": (23.774, 0.894, 22.453, 0.807, 23.036, 0.801),
    "wo_adversarial": (23.571, 0.889, 22.480, 0.803, 23.240, 0.800),
    "lc_to_lcb": (24.106, 0.894, 21.296, 0.776, 22.176, 0.788),
    "lcb_and_rki": (24.114, 0.899, 21.123, 0.778, 22.253, 0.788),
    "ours": (24.117, 0.901, 23.338, 0.812, 23.451, 0.808),
})

#: TS Table I: average PSNR on SIR².
TS_TABLE1: dict[str, float] = {
    "CEILNet": 21.75,
    "PLNet": 20.28,
    "wo_adversarial": 22.25,
    "proposed": 23.01,
}

#: LA Sec. 5: cost of the released network ("10.926M" parameters; the exact count is the released
#: ``model.pth``'s, from ``../shared/spec``).
LA_COST = {"parameters": 10_925_719, "parameters_paper_rounded": "10.926M", "gflops_per_iteration": 111.63,
           "seconds_400x540_rtx2080ti": 0.068}
