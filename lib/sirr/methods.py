"""The two methods behind one interface: LA (Dong et al., ICCV 2021) and TS (Li & Lun, IEEE SPL 2019).

A :class:`Method` knows, for a run and a variant (a row of a paper table, or ``"full"``): how to
build and train its network(s) (:meth:`Method.train`; one optimisation step is
:func:`sirr.train.location_aware.la_step` / :func:`sirr.train.two_stage.ts_step`), where the run lives
(:meth:`Method.run_dir`, the one run-folder scheme), how to load a checkpoint and how to predict the
transmission, how its loss terms score a candidate output (:meth:`Method.probe_terms`), and the facts the
book's machinery needs about it (:attr:`Method.benchmarked`, :attr:`Method.commits_weights`,
:attr:`Method.release_url`, :meth:`Method.width_scale`). It is the only place that knows LA from TS: the CLI,
the remover, the experiments and the figures ask the method instead of branching on its name::

    method = get_method("la")
    model = method.trained(run)                  # final.pt of the run if present, else trained now
    T_hat = method.predict(model, I)

The call graph only goes down: CLI -> method -> engine -> models / losses / data.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sirr.config import RunConfig
from sirr.errors import SirrError
from sirr.models.location_aware import RELEASE_URL, LocationAware
from sirr.registry import FULL, LA_VARIANTS, TS_VARIANTS, Variant
from sirr.train.engine import TrainResult, default_run_dir, load_checkpoint, selected_checkpoint
from sirr.train.location_aware import la_step, load_location_aware, train_location_aware
from sirr.train.two_stage import load_two_stage, train_two_stage, ts_step

__all__ = ["Method", "LocationAwareMethod", "TwoStageMethod", "METHODS", "get_method", "method_of_checkpoint",
           "UnknownMethodError"]


class UnknownMethodError(SirrError, ValueError):
    """A method or variant name that does not exist: the one error of :func:`get_method` and of the one variant
    lookup, :meth:`Method.variant`. The message lists the valid names; so do the fields ``name`` (what was asked
    for), ``valid`` (the names there are) and ``closest`` (the nearest valid name, or ``None``)."""

    def __init__(self, message: str, *, name: str = "", valid: tuple[str, ...] = (), closest: str | None = None):
        super().__init__(message)
        self.name, self.valid, self.closest = name, tuple(valid), closest


ProbeTerms = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]


class Method:
    """One method: its variants, training, run folders, checkpoints and prediction (see the module docstring)."""

    name: str
    title: str
    variants: dict[str, Variant]
    step: Callable[..., dict[str, float]]
    #: The paper's own row label of the method at the preset's full schedule (stored with its results).
    full_label: str
    #: The chapter (notebook number) that trains the method.
    chapter: str
    #: Where the authors published trained weights (``None``: they did not).
    release_url: str | None = None
    #: ``python -m sirr bench`` times this network, so its inference runs in the path the bench chose.
    benchmarked: bool = False
    #: ``publish`` exports its fp16 weights into ``results/<preset>/weights/`` (they ship with the book).
    commits_weights: bool = False

    def variant(self, name: str) -> Variant:
        """The row ``name`` of the method's tables (or :data:`~sirr.registry.FULL`): the one variant lookup, which
        raises :class:`UnknownMethodError` with the valid names and the closest one."""
        if name == FULL:
            return Variant(FULL, self.full_label)
        if name not in self.variants:
            close = difflib.get_close_matches(name, list(self.variants), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownMethodError(f"unknown {self.name.upper()} variant {name!r}; valid: {FULL}, "
                                     f"{', '.join(self.variants)}.{hint}", name=name,
                                     valid=(FULL, *self.variants), closest=close[0] if close else None)
        return self.variants[name]

    def run_dir(self, run: RunConfig, variant: str = FULL) -> Path:
        """``runs/<preset>/<method>/<variant>/<data tag>/seed<seed>`` (:func:`sirr.train.rundir.default_run_dir`; names
        the folder without reading the data)."""
        self.variant(variant)
        return default_run_dir(run, self.name, variant)

    def checkpoint(self, run: RunConfig, variant: str = FULL) -> Path:
        """The run's model of record: ``best.pt`` when it had a validation set, else ``final.pt``
        (:func:`sirr.train.engine.selected_checkpoint`; ``final.pt``'s path while the run is unfinished)."""
        d = self.run_dir(run, variant)
        return selected_checkpoint(d) or d / "final.pt"

    def train(self, run: RunConfig, variant: str = FULL, *, run_dir: str | Path | None = None,
              resume: bool = True, progress: bool = False, **overrides: Any) -> TrainResult:
        """Train ``variant`` at ``run``'s preset: ``full`` at the preset's schedule, a table row at the
        preset's ablation budget (``run.preset.ablation``); ``overrides`` go to the trainer."""
        raise NotImplementedError

    def load(self, checkpoint: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
        raise NotImplementedError

    def schedule_overrides(self, run: RunConfig, steps: int, *, stage1_only: bool = False) -> dict[str, int]:
        """Trainer arguments for ``steps`` optimiser steps in all (``stage1_only``: in the first stage alone)."""
        raise NotImplementedError

    def predict_initial(self, model: torch.nn.Module, I: torch.Tensor) -> torch.Tensor:
        """The first stage's estimate of the background (for a method with stages)."""
        raise NotImplementedError(f"{self.name.upper()} has a single stage")

    def predict(self, model: torch.nn.Module, I: torch.Tensor) -> torch.Tensor:
        """The estimated transmission of ``I`` (B, 3, H, W): the one way to run a trained network."""
        raise NotImplementedError

    def outputs(self) -> dict[str, Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]]:
        """What an evaluation scores, by results key: the transmission (``scores``, :meth:`predict`) and, for a
        method with stages, the first stage's estimate (``scores_initial``, :meth:`predict_initial`)."""
        return {"scores": self.predict}

    def load_release(self, path: str | Path) -> torch.nn.Module:
        """The authors' released weights as our network (only where :attr:`release_url` is set)."""
        raise UnknownMethodError(f"{self.name.upper()} has no released weights of its authors; "
                                 f"{path} cannot be loaded as {self.name.upper()}")

    def probe_terms(self, run: RunConfig, vgg_normalize: bool | None = None) -> ProbeTerms:
        """``terms(T_hat, T) -> {term: weighted value}``: every loss term of the method that looks at the output
        T̂ (with its weight in the paper's total), for scoring a candidate output against the ground truth."""
        raise NotImplementedError

    def width_scale(self, model_kwargs: dict[str, Any] | None, preset: Any) -> float | None:
        """The network's width relative to the release (``None``: one architecture, FLOPs scale with samples x
        pixels)."""
        return None

    def flops_ratio(self, width_scale: float, size: int = 128) -> float:
        """FLOPs of the network at ``width_scale`` over those at the release's widths."""
        return 1.0

    def trained(self, run: RunConfig, variant: str = FULL, *, train_missing: bool = True,
                progress: bool = False) -> torch.nn.Module | None:
        """The trained network (eval mode): the run's model of record (:meth:`checkpoint`) when present (and not
        ``run.retrain``), else trained now; ``None`` when it is missing and ``train_missing`` is false."""
        ckpt = self.checkpoint(run, variant)
        if ckpt.is_file() and not run.retrain:
            return self.load(ckpt, run.device)
        if not train_missing:
            return None
        res = self.train(run, variant, resume=not run.retrain, progress=progress)
        best = res.best_checkpoint
        return self.load(best, run.device) if best is not None and not res.truncated else res.model.eval()

    def __repr__(self) -> str:
        return f"<method {self.name}: {self.title}>"


class LocationAwareMethod(Method):
    name = "la"
    title = "LA: Location-aware Single Image Reflection Removal (Dong et al., ICCV 2021)"
    variants = LA_VARIANTS
    step = staticmethod(la_step)
    full_label = "Ours (full schedule)"
    chapter = "04"
    release_url = RELEASE_URL
    benchmarked = True
    commits_weights = True

    def train(self, run, variant=FULL, *, run_dir=None, resume=True, progress=False, **overrides):
        v = self.variant(variant)
        kw: dict[str, Any] = {"model_kwargs": dict(v.model_kwargs), "loss_kwargs": dict(v.loss_kwargs)}
        if variant != FULL:
            kw.update(steps=run.preset.ablation.la_steps, fine_tune_steps=0)
        kw.update(overrides)
        return train_location_aware(run, run_dir or self.run_dir(run, variant), resume=resume, progress=progress,
                                    **kw)

    def load(self, checkpoint, device="cpu"):
        return load_location_aware(checkpoint, device=device)

    def schedule_overrides(self, run, steps, *, stage1_only=False):
        if stage1_only:
            raise ValueError("LA has a single stage: stage1_only does not apply")
        return {"steps": int(steps), "fine_tune_steps": 0}

    def predict(self, model, I):
        return model(I).transmission  # T̂_N, the last iteration

    def load_release(self, path):
        return LocationAware.from_release(path, map_location="cpu")

    def probe_terms(self, run, vgg_normalize=None):
        from sirr.losses import LocationAwareLoss
        from sirr.losses.location_aware import perceptual_loss, pixel_loss, ssim_loss

        loss = LocationAwareLoss(vgg_weights=run.preset.vgg_weights)
        lam_p, lam_mix, beta = loss.lambdas[1], loss.lambdas[2], loss.beta

        def terms(t, T):  # LA Eq. 15's terms on T̂: L_P over three scales, L_SSIM and L_pixel
            scales = [t] + [torch.nn.functional.interpolate(t, scale_factor=f, mode="bilinear", antialias=True,
                                                            align_corners=False) for f in (0.5, 0.25)]
            p = float(perceptual_loss(loss.vgg, scales, T, loss.gammas))
            px, ss = float(pixel_loss([t], T)), float(ssim_loss([t], T))
            return {"λ_P·L_P": lam_p * p, "λ_mix·β·L_SSIM": lam_mix * beta * ss,
                    "λ_mix·(1−β)·L_pixel": lam_mix * (1 - beta) * px}

        return terms


class TwoStageMethod(Method):
    name = "ts"
    title = "TS: Single-Image Reflection Removal via a Two-Stage Background Recovery Process (Li & Lun, 2019)"
    variants = TS_VARIANTS
    step = staticmethod(ts_step)
    full_label = "Proposed (full schedule)"
    chapter = "05"

    def train(self, run, variant=FULL, *, run_dir=None, resume=True, progress=False, **overrides):
        v = self.variant(variant)
        kw: dict[str, Any] = dict(v.train_kwargs)
        if variant != FULL:
            kw.update(stage1_steps=run.preset.ablation.ts_stage1_steps, stage2_steps=run.preset.ablation.ts_stage2_steps)
        kw.update(overrides)
        return train_two_stage(run, run_dir or self.run_dir(run, variant), resume=resume, progress=progress, **kw)

    def load(self, checkpoint, device="cpu"):
        return load_two_stage(checkpoint, device=device)

    def schedule_overrides(self, run, steps, *, stage1_only=False):
        if stage1_only:
            return {"stage1_steps": int(steps), "stage2_steps": 0}
        ts = run.preset.ts
        if steps != ts.stage1_steps + ts.stage2_steps:
            raise ValueError(f"TS's two stages take the preset's {ts.stage1_steps} + {ts.stage2_steps} steps, not {steps}")
        return {"stage1_steps": ts.stage1_steps, "stage2_steps": ts.stage2_steps}

    def predict_initial(self, model, I):
        return model.initial(I)  # B_ini of stage 1

    def predict(self, model, I):
        return model(I).b_final  # B_final of stage 2

    def outputs(self):
        return {"scores": self.predict, "scores_initial": self.predict_initial}

    def probe_terms(self, run, vgg_normalize=None):
        from sirr.losses import two_stage_vgg
        from sirr.losses.two_stage import initial_loss

        normalize = run.preset.ts.vgg_normalize if vgg_normalize is None else bool(vgg_normalize)
        vgg = two_stage_vgg(weights=run.preset.vgg_weights, normalize=normalize)

        def terms(t, T):  # TS Eq. 3's λ1 feature and λ2 pixel terms and Eq. 4's L_FR, on B̂ = t
            parts = initial_loss(vgg, t, T)
            return {"λ1·feature (Eq. 3)": 3.0 * float(parts["feature"]),
                    "λ2·pixel (Eq. 3)": 0.4 * float(parts["pixel"]), "L_FR (Eq. 4, λ3 = 3)": float(parts["fr"])}

        return terms

    def width_scale(self, model_kwargs, preset):
        # TS may train narrower than the release: samples x pixels then overstates its compute
        return float((model_kwargs or {}).get("width_scale") or getattr(preset.ts, "width_scale", None) or 1.0)

    def flops_ratio(self, width_scale, size=128):
        """FLOPs of F1 and F2 at ``width_scale`` over those at the release's widths (one forward at ``size``²,
        counted by :class:`torch.utils.flop_counter.FlopCounterMode`; backward scales the same way)."""
        from torch.utils.flop_counter import FlopCounterMode

        from sirr.models.two_stage import TwoStage

        def flops(w: float) -> int:
            m = TwoStage(width_scale=w).eval()
            x = torch.zeros(1, 3, size, size)
            with torch.no_grad(), FlopCounterMode(display=False) as fc:
                m.stage1(x)
                m.stage2(torch.zeros(1, 9, size, size))
            return fc.get_total_flops()

        return flops(width_scale) / flops(1.0) if width_scale != 1.0 else 1.0


METHODS: dict[str, Method] = {"la": LocationAwareMethod(), "ts": TwoStageMethod()}


def get_method(name: str) -> Method:
    """The method called ``name`` (``"la"`` or ``"ts"``); anything else is one clear error."""
    try:
        return METHODS[str(name).lower()]
    except KeyError:
        close = difflib.get_close_matches(str(name).lower(), list(METHODS), n=1)
        raise UnknownMethodError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}", name=str(name),
                                 valid=tuple(METHODS), closest=close[0] if close else None) from None


def method_of_checkpoint(path: str | Path) -> Method:
    """The method whose trainer wrote ``path`` (read from the checkpoint, ``weights_only``)."""
    return get_method(load_checkpoint(path)["kind"])
