"""The two methods behind one interface: LA (Dong et al., ICCV 2021) and TS (Li & Lun, IEEE SPL 2019).

A :class:`Method` knows, for a run and a variant (a row of a paper table, or ``"full"``): how to
build and train its network(s) (:meth:`Method.train`; one optimisation step is
:func:`sirr.train.location_aware.la_step` / :func:`sirr.train.two_stage.ts_step`), where the run lives
(:meth:`Method.run_dir`, the one run-folder scheme), how to load a checkpoint and how to predict the
transmission. The CLI, the remover, the experiments and the figures ask the method instead of
branching on its name::

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
from sirr.registry import FULL, LA_VARIANTS, TS_VARIANTS, Variant
from sirr.train.engine import TrainResult, default_run_dir, load_checkpoint, selected_checkpoint
from sirr.train.location_aware import la_step, load_location_aware, train_location_aware
from sirr.train.two_stage import load_two_stage, train_two_stage, ts_step

__all__ = ["Method", "LocationAwareMethod", "TwoStageMethod", "METHODS", "get_method", "method_of_checkpoint",
           "UnknownMethodError"]


class UnknownMethodError(ValueError):
    """A method or variant name that does not exist (the message lists the valid ones)."""


class Method:
    """One method: its variants, training, run folders, checkpoints and prediction (see the module docstring)."""

    name: str
    title: str
    variants: dict[str, Variant]
    step: Callable[..., dict[str, float]]

    def variant(self, name: str) -> Variant:
        if name == FULL:
            return Variant(FULL, f"{self.name.upper()} (full schedule)")
        if name not in self.variants:
            close = difflib.get_close_matches(name, list(self.variants), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownMethodError(f"unknown {self.name.upper()} variant {name!r}; valid: {FULL}, "
                                     f"{', '.join(self.variants)}.{hint}")
        return self.variants[name]

    def run_dir(self, run: RunConfig, variant: str = FULL) -> Path:
        """``runs/<preset>/<method>/<variant>/<data fingerprint>/seed<seed>`` (:func:`sirr.train.engine.default_run_dir`)."""
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

    def predict(self, model: torch.nn.Module, I: torch.Tensor) -> torch.Tensor:
        """The estimated transmission of ``I`` (B, 3, H, W)."""
        raise NotImplementedError

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

    def predict(self, model, I):
        return model(I).transmission  # T̂_N, the last iteration


class TwoStageMethod(Method):
    name = "ts"
    title = "TS: Single-Image Reflection Removal via a Two-Stage Background Recovery Process (Li & Lun, 2019)"
    variants = TS_VARIANTS
    step = staticmethod(ts_step)

    def train(self, run, variant=FULL, *, run_dir=None, resume=True, progress=False, **overrides):
        v = self.variant(variant)
        kw: dict[str, Any] = dict(v.train_kwargs)
        if variant != FULL:
            kw.update(stage1_steps=run.preset.ablation.ts_stage1_steps, stage2_steps=run.preset.ablation.ts_stage2_steps)
        kw.update(overrides)
        return train_two_stage(run, run_dir or self.run_dir(run, variant), resume=resume, progress=progress, **kw)

    def load(self, checkpoint, device="cpu"):
        return load_two_stage(checkpoint, device=device)

    def predict(self, model, I):
        return model(I).b_final  # B_final of stage 2


METHODS: dict[str, Method] = {"la": LocationAwareMethod(), "ts": TwoStageMethod()}


def get_method(name: str) -> Method:
    """The method called ``name`` (``"la"`` or ``"ts"``); anything else is one clear error."""
    try:
        return METHODS[str(name).lower()]
    except KeyError:
        raise UnknownMethodError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


def method_of_checkpoint(path: str | Path) -> Method:
    """The method whose trainer wrote ``path`` (read from the checkpoint, ``weights_only``)."""
    return get_method(load_checkpoint(path)["kind"])
