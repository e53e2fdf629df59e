"""Training of the location-aware network (LA, Dong et al., ICCV 2021, Sec. 5) at a preset.

The paper's recipe (``paper`` preset; ``demo`` and ``smoke`` scale it down):

- Adam, lr 2e-4, betas (0.5, 0.99), batch 2, weights ~ normal(0, 0.02) (the model's seeded init);
- the Laplacian kernel's gradient clipped to norm 0.25 after every backward (the model's hook,
  ``laplacian_grad_clip``);
- loss Eq. 15, λ = 0.4, 0.2, 0.4, 0.01 (:class:`sirr.losses.LocationAwareLoss`), with a PatchGAN
  discriminator (:class:`sirr.models.LocationAwareDiscriminator`) trained by its own Adam on
  ½[−log D(T) − log(1 − D(T̂))];
- ``la.steps`` optimiser steps at ``la.lr``, then ``la.fine_tune_steps`` at ``la.fine_tune_lr`` (1e-4);
- training triples synthesised on the training device (LA recipe, Eq. 6) from natural photos, mixed
  with real pairs at ``la.synthetic_fraction`` when real training pairs exist under the data root.

One step: G forward → one discriminator update on the detached T̂_N → one generator update on
Eq. 15 with the updated (frozen) D. ``la.precision`` picks fp32 or bf16 autocast (+ channels_last on
the CPU; :func:`sirr.train.engine.resolve_precision`); ``la.time_budget_s`` bounds the wall time, and a
preset ``validation`` set is held out of the pool and scored every ``la.validate_every`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from sirr.data.datasets import real_training_pairs
from sirr.losses import LocationAwareLoss, discriminator_loss
from sirr.models.location_aware import LocationAware, LocationAwareDiscriminator
from sirr.train.engine import (
    Job,
    Phase,
    Session,
    TrainResult,
    as_floats,
    default_run_dir,
    fit,
    load_checkpoint,
    resolve_precision,
    variant_name,
)
from sirr.train.data import TrainingData, synthetic_training_data

__all__ = ["train_location_aware", "load_location_aware", "LATraining", "la_step", "RealPairSampler", "la_model_kwargs"]


def la_model_kwargs(run: Any, model_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Constructor arguments of the trained :class:`~sirr.models.LocationAware`: preset values, then overrides."""
    cfg = run.preset.la
    kwargs: dict[str, Any] = {"iterations": cfg.iterations, "laplacian_grad_clip": cfg.laplacian_grad_clip,
                              "init_std": cfg.init_std}
    kwargs.update(model_kwargs or {})
    return kwargs


class RealPairSampler:
    """Random aligned crops (with flips) of real (I, T) training pairs, from its own seeded generator."""

    def __init__(self, pairs: Sequence[tuple[Any, Any]], size: int, device: torch.device, seed: int) -> None:
        self.size = size
        self.device = device
        self.pairs = []
        def chw(a: Any) -> torch.Tensor:
            x = torch.as_tensor(a)
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
            return x.permute(2, 0, 1)

        for I, T in pairs:
            i, t = chw(I), chw(T)
            if i.shape != t.shape:
                continue
            short = min(i.shape[1:])
            if short < size:  # upscale small pairs once so a crop fits
                hw = (max(size, math.ceil(i.shape[1] * size / short)), max(size, math.ceil(i.shape[2] * size / short)))
                i = F.interpolate(i[None], size=hw, mode="bilinear", align_corners=False, antialias=True)[0]
                t = F.interpolate(t[None], size=hw, mode="bilinear", align_corners=False, antialias=True)[0]
            self.pairs.append((i.clamp(0, 1), t.clamp(0, 1)))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        Is, Ts = [], []
        for u in torch.rand(n, 5, generator=self.generator, dtype=torch.float64).tolist():
            i, t = self.pairs[min(int(u[0] * len(self.pairs)), len(self.pairs) - 1)]
            h, w = i.shape[1:]
            y = min(int(u[1] * (h - self.size + 1)), h - self.size)
            x = min(int(u[2] * (w - self.size + 1)), w - self.size)
            ci, ct = i[:, y:y + self.size, x:x + self.size], t[:, y:y + self.size, x:x + self.size]
            if u[3] < 0.5:
                ci, ct = ci.flip(2), ct.flip(2)
            if u[4] < 0.5:
                ci, ct = ci.flip(1), ct.flip(1)
            Is.append(ci)
            Ts.append(ct)
        return torch.stack(Is).to(self.device), torch.stack(Ts).to(self.device)


#: LA Sec. 5: the aligned real pairs are used from the start; ERRNet's unaligned pairs join at fine-tuning.
ALIGNED_REAL_SETS = ("nature_train", "zhang2018_real90")
FINE_TUNE_REAL_SETS = ("errnet_unaligned_train",)


def _real_training_pairs(run: Any, sets: Sequence[str]) -> list[tuple[Any, Any]]:
    """Real (I, T) training pairs of ``sets`` under the run's data root (none without one)."""
    return [(s.I, s.T) for s in real_training_pairs(run.data_root_arg, sets=sets) if s.T is not None]


def la_training_data(run: Any, session: Session, steps: int, fine_tune_steps: int, photos: Sequence | None,
                     real_pairs: Sequence | None, fine_tune_pairs: Sequence | None) -> TrainingData:
    """LA's data (Sec. 5): LA-recipe triples from the pool, and the real pairs of :data:`ALIGNED_REAL_SETS` from step
    0 and of :data:`FINE_TUNE_REAL_SETS` from the fine-tuning switch on (``real_pairs`` / ``fine_tune_pairs`` replace
    them), each stream seeded per rank."""
    cfg, rank = run.preset.la, session.dist.rank
    data = synthetic_training_data(run, "la", cfg.crop, session.device, rank, cfg.validate_every, session.log, photos)
    if real_pairs is None:
        real_pairs = _real_training_pairs(run, ALIGNED_REAL_SETS)
    if fine_tune_pairs is None:
        fine_tune_pairs = _real_training_pairs(run, FINE_TUNE_REAL_SETS) if fine_tune_steps else []
    real_seed = run.seed + 7919 * (rank + 1)
    real = RealPairSampler(real_pairs, cfg.crop, session.device, seed=real_seed) if real_pairs else None
    data.real = real if real is not None and len(real) > 0 else None
    both = list(real_pairs or []) + list(fine_tune_pairs or [])
    real_ft = RealPairSampler(both, cfg.crop, session.device, seed=real_seed + 1) if fine_tune_pairs else data.real
    data.real_ft = real_ft if real_ft is not None and len(real_ft) > 0 else None
    session.log(f"data: {len(data.synth)} photos for LA synthesis ({cfg.crop} px); real pairs: "
                f"{len(data.real) if data.real else 0} from step 0, {len(data.real_ft) if data.real_ft else 0} from "
                f"the fine-tuning switch (step {steps}); synthetic fraction "
                f"{cfg.synthetic_fraction if data.real or data.real_ft else 1.0}")
    return data


class LATraining(Job):
    """LA's models, optimisers and data for one run (LA Sec. 5); :func:`la_step` is one update."""

    kind = "la"

    def __init__(self, run: Any, session: Session, data: TrainingData, *, model_kwargs: dict[str, Any] | None,
                 loss_kwargs: dict[str, Any] | None, steps: int, fine_tune_steps: int, overfit_batch: bool) -> None:
        cfg = self.cfg = run.preset.la
        log, dist, device = session.log, session.dist, session.device
        self.device, self.dist = device, dist
        self.phases = [Phase("train", steps, cfg.lr), Phase("fine_tune", fine_tune_steps, cfg.fine_tune_lr)]
        self.log_every, self.checkpoint_every, self.batch_size = cfg.log_every, cfg.checkpoint_every, cfg.batch_size
        self.precision = resolve_precision(cfg.precision, device)
        self.amp = self.precision.autocast
        mk = self.model_kwargs = la_model_kwargs(run, model_kwargs)
        lk = self.loss_kwargs = dict(loss_kwargs or {})
        gen = torch.Generator().manual_seed(run.seed)
        self.model = LocationAware(**mk, generator=gen).to(device)
        self.disc = LocationAwareDiscriminator(generator=gen).to(device)
        if self.precision.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.disc.to(memory_format=torch.channels_last)
        self.loss_fn = LocationAwareLoss(vgg_weights=run.preset.vgg_weights, **lk).to(device)
        vgg = self.loss_fn.vgg
        self.vgg_note = vgg.description if vgg is not None else "none (L_P off)"  # in logs, checkpoints, results
        log(f"loss network: {self.vgg_note}")
        if getattr(vgg, "is_fallback", False):
            log("WARNING: VGG-19 with RANDOM weights (offline fallback, vgg_weights='random'): the perceptual "
                "loss L_P is NOT the paper's ImageNet VGG-19; label every result of this run accordingly")
        self.use_adv = self.loss_fn.use_adversarial
        self.opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=cfg.lr,
                                    betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=cfg.betas)

        self.synth, self.validation, self.real, self.real_ft = data.synth, data.validation, data.real, data.real_ft
        self.pool_record, self.validation_photos = data.pool_record, data.validation_photos
        self.validate_every = cfg.validate_every
        log(f"precision: {self.precision.describe()}"
            + (f"; time guard {cfg.time_budget_s:.0f} s (a run it stops is marked truncated)"
               if cfg.time_budget_s else ""))
        self.mix_gen = torch.Generator().manual_seed(run.seed + 104729 * (dist.rank + 1))
        self.compat = {"model_kwargs": mk, "loss_kwargs": lk, "crop": cfg.crop, "batch_size": cfg.batch_size,
                       "photos": len(self.synth), "real_pairs": len(self.real) if self.real else 0,
                       "fine_tune_pairs": len(self.real_ft) if self.real_ft else 0, "vgg_weights": self.vgg_note,
                       "overfit_batch": overfit_batch}
        val = run.preset.validation
        if val.photos:  # old checkpoints stay resumable without these keys
            self.compat.update(validation_photos=val.photos, validation_recipe=val.recipe, validation_size=val.size)
        self.clip = mk.get("laplacian_grad_clip")
        self.model_t, self.disc_t = self.model, self.disc  # DDP-wrapped by wrap() under torchrun

    def restore(self, ck: dict[str, Any], mine: dict[str, Any]) -> None:
        self.model.load_state_dict(ck["model"])
        self.disc.load_state_dict(ck["discriminator"])
        self.opt.load_state_dict(ck["optimizer"])
        self.opt_d.load_state_dict(ck["optimizer_d"])
        self.synth.load_state_dict(mine["synthesizer"])
        self.mix_gen.set_state(mine["mix_generator"])
        if self.real is not None and "real_generator" in mine:
            self.real.generator.set_state(mine["real_generator"])
        if self.real_ft is not None and self.real_ft is not self.real and "fine_tune_generator" in mine:
            self.real_ft.generator.set_state(mine["fine_tune_generator"])

    def wrap(self, dist) -> None:
        if dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model_t, self.disc_t = DDP(self.model, device_ids=ids), DDP(self.disc, device_ids=ids)

    def set_phase(self, phase: Phase) -> None:
        for o in (self.opt, self.opt_d):
            for g in o.param_groups:
                g["lr"] = phase.lr

    def batch(self, phase: Phase) -> dict[str, torch.Tensor]:
        """A batch of synthetic triples, mixed with real pairs at ``la.synthetic_fraction`` when there are any
        (ERRNet's unaligned pairs only from the fine-tuning phase on)."""
        B, cfg = self.cfg.batch_size, self.cfg
        real = self.real_ft if phase.name == "fine_tune" else self.real
        if real is None:
            b = self.synth.batch(B)
            return {"I": b["I"], "T": b["T"], "R": b["R"], "alpha": b["alpha"], "is_synthetic": None}
        is_syn = torch.rand(B, generator=self.mix_gen) < cfg.synthetic_fraction
        n_syn = int(is_syn.sum())
        parts: dict[str, list[torch.Tensor]] = {"I": [], "T": [], "R": [], "alpha": []}
        if n_syn:
            b = self.synth.batch(n_syn)
            for k in parts:
                parts[k].append(b[k])
        if B - n_syn:
            i, t = real.batch(B - n_syn)
            parts["I"].append(i)
            parts["T"].append(t)
            parts["R"].append(torch.zeros_like(i))
            parts["alpha"].append(torch.ones(B - n_syn, device=self.device, dtype=i.dtype))
        mask = torch.arange(B) < n_syn
        return {**{k: torch.cat(v) for k, v in parts.items()}, "is_synthetic": mask.to(self.device)}

    def step(self, phase: Phase, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return la_step(self, batch)

    def predict(self, phase: Phase, I: torch.Tensor) -> torch.Tensor:
        with self.precision.context(self.device.type):
            return self.model(self.precision.prepare(I)).transmission

    def states(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "discriminator": self.disc.state_dict(),
                "optimizer": self.opt.state_dict(), "optimizer_d": self.opt_d.state_dict()}

    def per_rank(self) -> dict[str, Any]:
        out = {"synthesizer": self.synth.state_dict(), "mix_generator": self.mix_gen.get_state()}
        if self.real is not None:
            out["real_generator"] = self.real.generator.get_state()
        if self.real_ft is not None and self.real_ft is not self.real:
            out["fine_tune_generator"] = self.real_ft.generator.get_state()
        return out

    def meta(self) -> dict[str, Any]:
        return {"model_kwargs": self.model_kwargs, "loss_kwargs": self.loss_kwargs, "pool": self.pool_record,
                "validation_photos": self.validation_photos, "precision": self.precision.describe()}

    def summary(self) -> str:
        return f"LA: {sum(p.steps for p in self.phases)} steps"


def la_step(job: LATraining, batch: dict[str, torch.Tensor]
            ) -> dict[str, float]:
    """One LA update (Sec. 5): D on the detached T̂_N, then G on Eq. 15."""
    I = job.precision.prepare(batch["I"])  # (B, 3, H, W)
    T = job.precision.prepare(batch["T"])
    bf16 = dict(dtype=torch.bfloat16, enabled=job.amp)
    with torch.autocast(job.device.type, **bf16):
        out = job.model_t(I)  # N iterations: Ĉ_i, R̂_i, T̂_i
    d_value = None
    if job.use_adv:  # D: -½[log D(T) + log(1 − D(T̂))], real and fake at once
        job.disc.requires_grad_(True)
        job.opt_d.zero_grad(set_to_none=True)
        with torch.autocast(job.device.type, **bf16):
            fake = out.transmission.detach()
            logits = job.disc_t(torch.cat([T, fake]))
            n = T.shape[0]
            d_loss = discriminator_loss(logits[:n], logits[n:])
        d_loss.backward()
        job.opt_d.step()
        d_value = float(d_loss.detach())
        job.disc.requires_grad_(False)  # G's step below leaves D as it is
    with torch.autocast(job.device.type, **bf16):
        d_fake = job.disc(out.transmission) if job.use_adv else None
        # Eq. 15: λ1 L_comp + λ2 L_P + λ3 L_mix + λ4 L_adv
        losses = job.loss_fn(
            out, I, T, batch["R"], batch["alpha"], d_fake_logits=d_fake,
            is_synthetic=batch["is_synthetic"])
    job.opt.zero_grad(set_to_none=True)
    losses["total"].backward()
    kernel = job.model.laplacian_kernel
    if (job.dist.enabled and job.clip is not None and kernel is not None
            and kernel.grad is not None):
        # DDP writes the averaged gradient back after the model's clipping
        # hook ran: clip the MLSM kernel's gradient again.
        torch.nn.utils.clip_grad_norm_(kernel, job.clip)
    job.opt.step()
    vals = as_floats(losses)
    if d_value is not None:
        vals["discriminator"] = d_value
    return vals


def train_location_aware(
    run: Any,
    run_dir: str | Path | None = None,
    *,
    resume: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    loss_kwargs: dict[str, Any] | None = None,
    steps: int | None = None,
    fine_tune_steps: int | None = None,
    photos: Sequence | None = None,
    progress: bool = True,
    real_pairs: Sequence[tuple[Any, Any]] | None = None,
    fine_tune_pairs: Sequence[tuple[Any, Any]] | None = None,
    overfit_batch: bool = False,
) -> TrainResult:
    """Train LA at ``run``'s preset (LA paper Sec. 5); resumable, deterministic on the CPU, torchrun-aware.

    Args:
        run: a :class:`sirr.config.RunConfig` (``sirr.config.resolve(...)``).
        run_dir: checkpoints (``last.pt``, ``final.pt``), ``metrics.jsonl`` and ``train.log``;
            default :func:`default_run_dir` (``runs/<preset>/la/<variant>/seed<seed>``).
        resume: continue from ``run_dir/last.pt`` when it exists (a finished run is just loaded);
            ``False`` starts over.
        model_kwargs: :class:`~sirr.models.LocationAware` flags (the Table 2 ablations).
        loss_kwargs: :class:`~sirr.losses.LocationAwareLoss` options (the Table 3 ablations).
        steps, fine_tune_steps: override ``run.preset.la.steps`` / ``fine_tune_steps``.
        photos: natural photos for synthesis (default: the leak-free pool, ``sirr.data.pool.natural_photos``).
        progress: show a tqdm bar.
        real_pairs: real ``(I, T)`` training pairs (HxWx3 float arrays) to mix in at
            ``la.synthetic_fraction``; default: the aligned sets of :data:`ALIGNED_REAL_SETS` under the data root.
        fine_tune_pairs: real pairs added to ``real_pairs`` from the fine-tuning switch on (LA Sec. 5);
            default: ERRNet's unaligned pairs (:data:`FINE_TUNE_REAL_SETS`) under the data root.
        overfit_batch: reuse the first batch at every step (the overfit-one-batch check).

    Under ``torchrun`` each process trains on its own synthetic stream (synthesizer seeded
    ``seed + rank``: the synthetic counterpart of a DistributedSampler's disjoint shards), the batch
    size is per process, gradients are averaged by DistributedDataParallel and only rank 0 writes.
    """
    cfg = run.preset.la
    n_steps = cfg.steps if steps is None else int(steps)
    n_fine = cfg.fine_tune_steps if fine_tune_steps is None else int(fine_tune_steps)
    if n_steps < 0 or n_fine < 0 or n_steps + n_fine < 1:
        raise ValueError(f"train_location_aware: need steps + fine_tune_steps >= 1, got {n_steps} + {n_fine}")
    if run_dir is None:
        run_dir = default_run_dir(run, "la", variant_name(**(model_kwargs or {}), **(loss_kwargs or {})))
    session = Session(run, "la", Path(run_dir), resume=resume, progress=progress)
    try:
        data = la_training_data(run, session, n_steps, n_fine, photos, real_pairs, fine_tune_pairs)
        job = LATraining(run, session, data, model_kwargs=model_kwargs, loss_kwargs=loss_kwargs, steps=n_steps,
                         fine_tune_steps=n_fine, overfit_batch=overfit_batch)
        return fit(session, job, overfit_batch=overfit_batch, time_guard_s=cfg.time_budget_s)
    finally:
        session.close()


def load_location_aware(path: str | Path, device: str | torch.device = "cpu"):
    """The :class:`~sirr.models.LocationAware` of one of our LA checkpoints (``final.pt`` or ``last.pt``), eval mode.

    Refuses a TS checkpoint, a file with pickled code and a file that is not ours (for the authors'
    released ``model.pth`` use :meth:`LocationAware.from_release`).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "final.pt" if (p / "final.pt").is_file() else p / "last.pt"
    ck = load_checkpoint(p, "la")
    model = LocationAware(**ck["model_kwargs"])
    model.load_state_dict(ck["model"])
    model.checkpoint_meta = {k: ck.get(k) for k in ("step", "phase", "vgg_weights", "losses", "provenance", "config",
                                                    "samples_seen", "phase_steps", "phase_seconds", "time_guard_s",
                                                    "truncated", "best_validation", "total_steps")}
    return model.to(device).eval()

