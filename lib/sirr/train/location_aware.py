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
Eq. 15 with the updated (frozen) D. bf16 autocast on CUDA when ``la.amp_bf16``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sirr.train.engine import (
    CheckpointError,
    Session,
    TrainResult,
    as_floats,
    default_run_dir,
    load_checkpoint,
    progress_bar,
    restore_rng,
    variant_name,
)

__all__ = ["train_location_aware", "load_location_aware", "RealPairSampler", "la_model_kwargs"]


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
    from sirr.data.datasets import real_training_pairs

    return [(s.I, s.T) for s in real_training_pairs(run.data_root_arg, sets=sets) if s.T is not None]


def _default_photos(run: Any) -> list:
    from sirr.data.pool import natural_photos

    return natural_photos(run.data_root_arg)


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
    from sirr.data.synthesis import ReflectionSynthesizer
    from sirr.losses import LocationAwareLoss, discriminator_loss
    from sirr.models.location_aware import LocationAware, LocationAwareDiscriminator

    cfg = run.preset.la
    n_steps = cfg.steps if steps is None else int(steps)
    n_fine = cfg.fine_tune_steps if fine_tune_steps is None else int(fine_tune_steps)
    if n_steps < 0 or n_fine < 0 or n_steps + n_fine < 1:
        raise ValueError(f"train_location_aware: need steps + fine_tune_steps >= 1, got {n_steps} + {n_fine}")
    total = n_steps + n_fine
    mk = la_model_kwargs(run, model_kwargs)
    lk = dict(loss_kwargs or {})
    if run_dir is None:
        run_dir = default_run_dir(run, "la", variant_name(**(model_kwargs or {}), **lk))
    session = Session(run, "la", Path(run_dir), resume=resume, progress=progress)
    log, dist, device = session.log, session.dist, session.device
    try:
        gen = torch.Generator().manual_seed(run.seed)
        model = LocationAware(**mk, generator=gen).to(device)
        disc = LocationAwareDiscriminator(generator=gen).to(device)
        loss_fn = LocationAwareLoss(vgg_weights=run.preset.vgg_weights, **lk).to(device)
        vgg_note = loss_fn.vgg.description if loss_fn.vgg is not None else "none (L_P off)"  # the source in words, recorded in logs, checkpoints and results
        log(f"loss network: {vgg_note}")
        if getattr(loss_fn.vgg, "is_fallback", False):
            log("WARNING: VGG-19 with RANDOM weights (offline fallback, vgg_weights='random'): the perceptual "
                "loss L_P is NOT the paper's ImageNet VGG-19; label every result of this run accordingly")
        use_adv = loss_fn.use_adversarial
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas)
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=cfg.betas)

        if photos is None:
            photos = _default_photos(run)
        if hasattr(photos, "summary"):
            log(photos.summary())
        synth = ReflectionSynthesizer(photos, recipe="la", size=cfg.crop, device=device, seed=run.seed + dist.rank)
        if real_pairs is None:
            real_pairs = _real_training_pairs(run, ALIGNED_REAL_SETS)
        if fine_tune_pairs is None:
            fine_tune_pairs = _real_training_pairs(run, FINE_TUNE_REAL_SETS) if n_fine else []
        real_seed = run.seed + 7919 * (dist.rank + 1)
        real = RealPairSampler(real_pairs, cfg.crop, device, seed=real_seed) if real_pairs else None
        real = real if real is not None and len(real) > 0 else None
        both = list(real_pairs or []) + list(fine_tune_pairs or [])
        real_ft = RealPairSampler(both, cfg.crop, device, seed=real_seed + 1) if fine_tune_pairs else real
        real_ft = real_ft if real_ft is not None and len(real_ft) > 0 else None
        log(f"data: {len(synth)} photos for LA synthesis ({cfg.crop} px); real pairs: {len(real) if real else 0} "
            f"from step 0, {len(real_ft) if real_ft else 0} from the fine-tuning switch (step {n_steps}); "
            f"synthetic fraction {cfg.synthetic_fraction if real or real_ft else 1.0}")
        mix_gen = torch.Generator().manual_seed(run.seed + 104729 * (dist.rank + 1))

        compat = {"model_kwargs": mk, "loss_kwargs": lk, "crop": cfg.crop, "batch_size": cfg.batch_size,
                  "photos": len(synth), "real_pairs": len(real) if real else 0,
                  "fine_tune_pairs": len(real_ft) if real_ft else 0, "vgg_weights": vgg_note,
                  "overfit_batch": overfit_batch}
        ck = session.load_last(compat)
        start = 0
        last_losses: dict[str, float] = {}
        if ck is not None:
            model.load_state_dict(ck["model"])
            disc.load_state_dict(ck["discriminator"])
            opt.load_state_dict(ck["optimizer"])
            opt_d.load_state_dict(ck["optimizer_d"])
            mine = ck["per_rank"][dist.rank]
            synth.load_state_dict(mine["synthesizer"])
            mix_gen.set_state(mine["mix_generator"])
            if real is not None and "real_generator" in mine:
                real.generator.set_state(mine["real_generator"])
            if real_ft is not None and real_ft is not real and "fine_tune_generator" in mine:
                real_ft.generator.set_state(mine["fine_tune_generator"])
            restore_rng(mine["rng"], device)
            start = int(ck["step"])
            last_losses = dict(ck.get("losses", {}))
            if start > total:
                raise CheckpointError(
                    f"{session.last_path} is at step {start}, past the {total} steps asked; pass resume=False "
                    "or more steps"
                )
        session.open_metrics(start if ck is not None else None)
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            model_t = DDP(model, device_ids=ids)
            disc_t = DDP(disc, device_ids=ids)
        else:
            model_t, disc_t = model, disc
        amp = device.type == "cuda" and cfg.amp_bf16
        clip = mk.get("laplacian_grad_clip")

        def next_batch(phase: str = "train") -> dict[str, torch.Tensor]:
            B = cfg.batch_size
            real = real_ft if phase == "fine_tune" else real_aligned
            if real is None:
                b = synth.batch(B)
                return {"I": b["I"], "T": b["T"], "R": b["R"], "alpha": b["alpha"], "is_synthetic": None}
            is_syn = torch.rand(B, generator=mix_gen) < cfg.synthetic_fraction
            n_syn = int(is_syn.sum())
            parts_I, parts_T, parts_R, parts_a = [], [], [], []
            if n_syn:
                b = synth.batch(n_syn)
                parts_I.append(b["I"]); parts_T.append(b["T"]); parts_R.append(b["R"]); parts_a.append(b["alpha"])  # noqa: E702
            if B - n_syn:
                i, t = real.batch(B - n_syn)
                parts_I.append(i); parts_T.append(t); parts_R.append(torch.zeros_like(i))  # noqa: E702
                parts_a.append(torch.ones(B - n_syn, device=device, dtype=i.dtype))
            mask = torch.arange(B) < n_syn
            return {"I": torch.cat(parts_I), "T": torch.cat(parts_T), "R": torch.cat(parts_R),
                    "alpha": torch.cat(parts_a), "is_synthetic": mask.to(device)}

        real_aligned = real
        fixed = next_batch() if overfit_batch else None
        bar = progress_bar(total, start, session.progress, desc=f"LA {run.preset.name}")
        model.train()
        disc.train()
        try:
            for step in range(start, total):
                phase = "train" if step < n_steps else "fine_tune"
                lr = cfg.lr if phase == "train" else cfg.fine_tune_lr
                for o in (opt, opt_d):
                    for g in o.param_groups:
                        g["lr"] = lr
                b = fixed if fixed is not None else next_batch(phase)
                I, T = b["I"], b["T"]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    out = model_t(I)
                d_value = None
                if use_adv:  # discriminator update on the detached prediction (real and fake in one pass)
                    disc.requires_grad_(True)
                    opt_d.zero_grad(set_to_none=True)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        logits = disc_t(torch.cat([T, out.transmission.detach()]))
                        d_loss = discriminator_loss(logits[: T.shape[0]], logits[T.shape[0]:])
                    d_loss.backward()
                    opt_d.step()
                    d_value = d_loss.detach()
                    disc.requires_grad_(False)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    d_fake = disc(out.transmission) if use_adv else None
                    losses = loss_fn(out, I, T, b["R"], b["alpha"], d_fake_logits=d_fake, is_synthetic=b["is_synthetic"])
                opt.zero_grad(set_to_none=True)
                losses["total"].backward()
                if dist.enabled and clip is not None and model.laplacian_kernel is not None \
                        and model.laplacian_kernel.grad is not None:
                    # DDP writes the averaged gradient back after the model's post-accumulate hook ran:
                    # clip again (idempotent when already within the norm) so DDP training is clipped too.
                    torch.nn.utils.clip_grad_norm_(model.laplacian_kernel, clip)
                opt.step()
                done = step + 1
                bar.update(1)
                if done % cfg.log_every == 0 or done == total:
                    vals = as_floats(losses)
                    if d_value is not None:
                        vals["discriminator"] = float(d_value)
                    last_losses = vals
                    session.metrics.write({"step": done, "phase": phase, "lr": lr, **vals,
                                           "seconds": round(session.elapsed(), 3), "vgg_weights": vgg_note})
                    bar.set_postfix(loss=f"{vals['total']:.4f}")
                if done % cfg.checkpoint_every == 0 or done == total:
                    per_rank = {"synthesizer": synth.state_dict(), "mix_generator": mix_gen.get_state()}
                    if real is not None:
                        per_rank["real_generator"] = real.generator.get_state()
                    if real_ft is not None and real_ft is not real:
                        per_rank["fine_tune_generator"] = real_ft.generator.get_state()
                    meta = {"model_kwargs": mk, "loss_kwargs": lk, "vgg_weights": vgg_note, "losses": last_losses,
                            "total_steps": total, "notes": log.notes}
                    states = {"model": model.state_dict(), "discriminator": disc.state_dict(),
                              "optimizer": opt.state_dict(), "optimizer_d": opt_d.state_dict()}
                    session.save(done, "done" if done == total else phase, states, per_rank, meta, compat,
                                 final_model={"model": model.state_dict()} if done == total else None)
        finally:
            bar.close()
        return session.result(model, f"LA: {total} steps", steps=total, start=start, resumed=ck is not None,
                              losses=last_losses)
    finally:
        session.close()


def load_location_aware(path: str | Path, device: str | torch.device = "cpu"):
    """The :class:`~sirr.models.LocationAware` of one of our LA checkpoints (``final.pt`` or ``last.pt``), eval mode.

    Refuses a TS checkpoint, a file with pickled code and a file that is not ours (for the authors'
    released ``model.pth`` use :meth:`LocationAware.from_release`).
    """
    from sirr.models.location_aware import LocationAware

    p = Path(path)
    if p.is_dir():
        p = p / "final.pt" if (p / "final.pt").is_file() else p / "last.pt"
    ck = load_checkpoint(p, "la")
    model = LocationAware(**ck["model_kwargs"])
    model.load_state_dict(ck["model"])
    model.checkpoint_meta = {k: ck.get(k) for k in ("step", "phase", "vgg_weights", "losses", "provenance")}
    return model.to(device).eval()

