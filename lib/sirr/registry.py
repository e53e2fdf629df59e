"""The rows of the papers' tables as data: which switches each row turns, and the paper's numbers beside it.

LA Table 2 (network ablations, constructor flags of :class:`sirr.models.LocationAware`), LA Table 3
(loss ablations, switches of :class:`sirr.losses.LocationAwareLoss`) and TS's ablations (switches of
:func:`sirr.train.train_two_stage`). Nothing here runs anything: :mod:`sirr.methods` trains a row,
:mod:`sirrbook.experiments` scores and stores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sirr import paper_numbers

__all__ = ["Variant", "FULL", "LA_TABLE2_VARIANTS", "LA_TABLE3_VARIANTS", "LA_VARIANTS", "TS_VARIANTS", "TABLES"]


@dataclass(frozen=True)
class Variant:
    """One row of a paper table: its key, the paper's row label and what it changes."""

    name: str
    label: str  # the row as printed in the paper
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # LocationAware flags
    loss_kwargs: dict[str, Any] = field(default_factory=dict)  # LocationAwareLoss switches
    train_kwargs: dict[str, Any] = field(default_factory=dict)  # train_two_stage switches (TS)


def _v(name, label, **kw) -> tuple[str, Variant]:
    return name, Variant(name, label, **kw)


#: The model of the training chapters (04, 05): the method as released, at the preset's full schedule.
FULL = "full"

# RKI as the paper runs it (LA Sec. 5.2): "replacing LKI with random kernel initialization ... and
# cancel the gradient clipping".
_RKI = {"kernel_init": "random", "laplacian_grad_clip": None}

#: LA Table 2 (network structure ablation) in the paper's row order; "ours" = the release defaults.
LA_TABLE2_VARIANTS: dict[str, Variant] = dict([
    _v("wo_rdm_tsm", "w/o RDM & TSM", model_kwargs={"use_rdm_tsm": False}),
    _v("wo_tsm", "w/o TSM", model_kwargs={"use_tsm": False}),
    _v("wo_lstm", "w/o LSTM", model_kwargs={"use_lstm": False}),
    _v("c_from_image_features", "Ĉ from I_ft", model_kwargs={"rcmap_from": "image_features"}),
    _v("mlsm_to_slsm", "MLSM → SLSM", model_kwargs={"multiscale": False}),
    _v("fix_mlsm", "Fix MLSM", model_kwargs={"learn_laplacian": False}),
    _v("laplacian_to_edge", "Laplacian → Edge", model_kwargs={"gradient_filter": "edge"}),
    _v("lki_to_rki", "LKI → RKI", model_kwargs=dict(_RKI)),
    _v("wo_gradient_clipping", "w/o GC in MLSM", model_kwargs={"laplacian_grad_clip": None}),
    _v("ours", "Ours"),
])

#: LA Table 3 (loss ablation) in the paper's row order; L_C → L_C^B is ``rcmap_loss="bce"`` (LA Eq. 16).
LA_TABLE3_VARIANTS: dict[str, Variant] = dict([
    _v("wo_pixel", "w/o L_pixel", loss_kwargs={"use_pixel": False}),
    _v("wo_ssim", "w/o L_SSIM", loss_kwargs={"use_ssim": False}),
    _v("wo_perceptual", "w/o L_P", loss_kwargs={"use_perceptual": False}),
    _v("wo_composition", "w/o L_comp", loss_kwargs={"use_composition": False}),
    _v("wo_adversarial", "w/o L_adv", loss_kwargs={"use_adversarial": False}),
    _v("lc_to_lcb", "L_C → L_C^B", loss_kwargs={"rcmap_loss": "bce"}),
    _v("lcb_and_rki", "L_C^B & RKI", model_kwargs=dict(_RKI), loss_kwargs={"rcmap_loss": "bce"}),
    _v("ours", "Ours"),
])

#: Every LA variant by name (the "ours" row is one run shared by Tables 2 and 3).
LA_VARIANTS: dict[str, Variant] = {**LA_TABLE2_VARIANTS, **LA_TABLE3_VARIANTS}

#: TS: Table I's two rows of the method and the L_FR ablation of Fig. 1(d)/(e).
TS_VARIANTS: dict[str, Variant] = dict([
    _v("wo_adversarial", "Proposed w/o the adversarial term", train_kwargs={"use_adversarial": False}),
    _v("wo_feature_reduction", "Proposed w/o L_FR (Fig. 1e)", train_kwargs={"use_feature_reduction": False}),
    _v("proposed", "Proposed"),
])

#: Table key -> (method, variants, paper rows).
TABLES: dict[str, tuple[str, dict[str, Variant], dict]] = {
    "la2": ("la", LA_TABLE2_VARIANTS, paper_numbers.LA_TABLE2),
    "la3": ("la", LA_TABLE3_VARIANTS, paper_numbers.LA_TABLE3),
    "ts": ("ts", TS_VARIANTS, {k: {"sir2_psnr": v} for k, v in paper_numbers.TS_TABLE1.items()}),
}
