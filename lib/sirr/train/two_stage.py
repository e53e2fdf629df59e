"""Training of the two-stage method (TS, Li & Lun, IEEE SPL 2019, Sec. IV-B) at a preset.

Stage 1 (``ts.stage1_steps``): F1 alone, RMSprop at ``ts.lr_stage1`` on L_ini = L_rec + L_FR
(TS Eq. 2-4, :func:`sirr.losses.initial_loss`; ``use_feature_reduction=False`` is the paper's
Fig. 1e ablation).

Stage 2 (``ts.stage2_steps``): F1 frozen (eval mode); F2 on z = [I, E_B, E_R] with RMSprop at
``ts.lr_stage2`` on L_2 (Eq. 7, :func:`sirr.losses.stage2_generator_loss`; ``use_adversarial=False`` is
Table I's "without the adversarial term"), and the WGAN critic D with RMSprop at
``ts.lr_discriminator`` on Eq. 8 (:func:`sirr.losses.critic_loss`) with weight clipping to
``±ts.weight_clip`` after every critic step — one critic step per F2 step. The edge sets E_B, E_R come
from the ground truth (``stage2_edges="ground_truth"``, the release's training:
:func:`sirr.models.two_stage.ground_truth_edge_sets`) or from F1's confidence map and the 2-means split
(``"confidence_map"``, the paper's test-time path: :meth:`TwoStage.split`).

Training triples come from the TS synthesis recipe on the training device (release: 256² crops).
bf16 autocast on CUDA when ``ts.amp_bf16``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

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

__all__ = ["train_two_stage", "load_two_stage", "STAGE2_EDGES"]

STAGE2_EDGES = ("ground_truth", "confidence_map")


def _default_photos(run: Any) -> list:
    from sirr.data.pool import natural_photos

    return natural_photos(run.data_root_arg)


def _sync_buffers(dist, *modules: torch.nn.Module) -> None:
    """Give every rank rank 0's BatchNorm running statistics (DDP broadcasts them only at each forward)."""
    if not dist.enabled:
        return
    import torch.distributed as tdist

    for m in modules:
        for b in m.buffers():
            tdist.broadcast(b, 0)


def train_two_stage(
    run: Any,
    run_dir: str | Path | None = None,
    *,
    resume: bool = True,
    use_adversarial: bool = True,
    use_feature_reduction: bool = True,
    stage2_edges: str | None = None,
    stage1_steps: int | None = None,
    stage2_steps: int | None = None,
    photos: Sequence | None = None,
    progress: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    overfit_batch: bool = False,
) -> TrainResult:
    """Train TS (stage 1 then stage 2) at ``run``'s preset; resumable, deterministic on the CPU, torchrun-aware.

    Args:
        run: a :class:`sirr.config.RunConfig`.
        run_dir: default :func:`default_run_dir` (``runs/<preset>/ts/<variant>/seed<seed>``; the
            variant names the non-default switches, e.g. ``use_adversarial-False``).
        resume: continue from ``run_dir/last.pt`` when present (a finished run is just loaded).
        use_adversarial: the WGAN term of Eq. 7 (False: Table I's ablation; the critic is not trained).
        use_feature_reduction: L_FR in stage 1 (False: Fig. 1e's ablation).
        stage2_edges: ``"ground_truth"`` (release) or ``"confidence_map"``; default ``run.preset.ts.stage2_edges``.
        stage1_steps, stage2_steps: override the preset's step counts.
        photos: natural photos for synthesis (default: the leak-free pool, ``sirr.data.pool.natural_photos``).
        progress: show a tqdm bar.
        model_kwargs: extra :class:`~sirr.models.two_stage.TwoStage` arguments (on top of
            :meth:`TwoStage.for_preset`, e.g. ``width_scale``).
        overfit_batch: reuse the first batch at every step (the overfit-one-batch check).

    Under ``torchrun`` each process draws its own synthetic stream (seed + rank), the batch size is
    per process, F1, F2 and D are each wrapped in DistributedDataParallel and only rank 0 writes.
    """
    from sirr.data.synthesis import ReflectionSynthesizer
    from sirr.losses import clip_critic_weights, critic_loss, initial_loss, stage2_generator_loss, two_stage_vgg
    from sirr.models.two_stage import TwoStage, ground_truth_edge_sets

    cfg = run.preset.ts
    n1 = cfg.stage1_steps if stage1_steps is None else int(stage1_steps)
    n2 = cfg.stage2_steps if stage2_steps is None else int(stage2_steps)
    if n1 < 0 or n2 < 0 or n1 + n2 < 1:
        raise ValueError(f"train_two_stage: need stage1_steps + stage2_steps >= 1, got {n1} + {n2}")
    total = n1 + n2
    edges_mode = cfg.stage2_edges if stage2_edges is None else stage2_edges
    if edges_mode not in STAGE2_EDGES:
        raise ValueError(f"stage2_edges must be one of {STAGE2_EDGES}, got {edges_mode!r}")
    switches = {"use_adversarial": use_adversarial, "use_feature_reduction": use_feature_reduction}
    non_default = {k: v for k, v in switches.items() if v is not True}
    if stage2_edges is not None and stage2_edges != cfg.stage2_edges:
        non_default["stage2_edges"] = stage2_edges
    if run_dir is None:
        run_dir = default_run_dir(run, "ts", variant_name(**non_default, **(model_kwargs or {})))
    session = Session(run, "ts", Path(run_dir), resume=resume, progress=progress)
    log, dist, device = session.log, session.dist, session.device
    try:
        gen = torch.Generator().manual_seed(run.seed)
        model = TwoStage.for_preset(run.preset, generator=gen, **(model_kwargs or {})).to(device)
        mk = dict(model.config)
        vgg = two_stage_vgg(weights=run.preset.vgg_weights).to(device)
        vgg_note = vgg.description  # the source in words, recorded in logs, checkpoints and results
        log(f"loss network: {vgg_note}")
        if getattr(vgg, "is_fallback", False):
            log("WARNING: VGG-19 with RANDOM weights (offline fallback, vgg_weights='random'): L_rec, L_FR and L_2 "
                "are NOT the paper's ImageNet VGG-19 losses; label every result of this run accordingly")
        opt1 = torch.optim.RMSprop(model.stage1.parameters(), lr=cfg.lr_stage1)
        opt2 = torch.optim.RMSprop(model.stage2.parameters(), lr=cfg.lr_stage2)
        opt_d = torch.optim.RMSprop(model.discriminator.parameters(), lr=cfg.lr_discriminator)
        if photos is None:
            photos = _default_photos(run)
        if hasattr(photos, "summary"):
            log(photos.summary())
        synth = ReflectionSynthesizer(photos, recipe="ts", size=cfg.crop, device=device, seed=run.seed + dist.rank)
        log(f"data: synthetic TS triples from {len(synth)} photos at {cfg.crop} px; stage-2 edges from "
            f"{'the ground truth (release)' if edges_mode == 'ground_truth' else 'the confidence map of F1 (paper)'}")

        compat = {"model_kwargs": mk, "crop": cfg.crop, "batch_size": cfg.batch_size, "photos": len(synth),
                  "vgg_weights": vgg_note, "stage2_edges": edges_mode, "overfit_batch": overfit_batch, **switches}
        ck = session.load_last(compat)
        start = 0
        last_losses: dict[str, float] = {}
        if ck is not None:
            model.load_state_dict(ck["model"])
            opt1.load_state_dict(ck["optimizer_stage1"])
            opt2.load_state_dict(ck["optimizer_stage2"])
            opt_d.load_state_dict(ck["optimizer_d"])
            mine = ck["per_rank"][dist.rank]
            synth.load_state_dict(mine["synthesizer"])
            restore_rng(mine["rng"], device)
            start = int(ck["step"])
            last_losses = dict(ck.get("losses", {}))
            if start > total:
                raise CheckpointError(
                    f"{session.last_path} is at step {start}, past the {total} steps asked; pass resume=False "
                    "or more steps"
                )
            if ck.get("stage1_steps") is not None and ck["stage1_steps"] != n1 and start > min(n1, ck["stage1_steps"]):
                raise CheckpointError(
                    f"{session.last_path} switched to stage 2 after {ck['stage1_steps']} stage-1 steps; "
                    f"this run asks for {n1}: pass resume=False"
                )
        session.open_metrics(start if ck is not None else None)
        amp = device.type == "cuda" and cfg.amp_bf16
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            f1, f2, critic = (DDP(m, device_ids=ids) for m in (model.stage1, model.stage2, model.discriminator))
        else:
            f1, f2, critic = model.stage1, model.stage2, model.discriminator

        fixed = synth.batch(cfg.batch_size) if overfit_batch else None
        bar = progress_bar(total, start, session.progress, desc=f"TS {run.preset.name}")
        model.train()
        try:
            for step in range(start, total):
                b = fixed if fixed is not None else synth.batch(cfg.batch_size)
                I, T, R = b["I"], b["T"], b["R"]
                vals: dict[str, Any]
                if step < n1:
                    phase, lr = "stage1", cfg.lr_stage1
                    model.stage1.train()
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        b_ini = f1(I)
                        losses = initial_loss(vgg, b_ini, T, use_feature_reduction=use_feature_reduction)
                    opt1.zero_grad(set_to_none=True)
                    losses["total"].backward()
                    opt1.step()
                    vals = as_floats(losses)
                else:
                    phase, lr = "stage2", cfg.lr_stage2
                    model.stage1.eval()
                    with torch.no_grad():  # hard masks, no gradient (Eq. 5-6 or the release's ground-truth edges)
                        if edges_mode == "ground_truth":
                            e_b, e_r = ground_truth_edge_sets(I, T, R)
                        else:
                            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                                b_ini = model.stage1(I)
                            parts = model.split(I, b_ini.float())
                            e_b, e_r = parts["edges_background"], parts["edges_reflection"]
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        b_final = f2(torch.cat([I, e_b.to(I.dtype), e_r.to(I.dtype)], dim=1))
                    d_value = None
                    if use_adversarial:  # one critic step (Eq. 8) on the detached F2 output, then clipping
                        model.discriminator.requires_grad_(True)
                        opt_d.zero_grad(set_to_none=True)
                        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                            d_loss = critic_loss(critic(T), critic(b_final.detach()))
                        d_loss.backward()
                        opt_d.step()
                        clip_critic_weights(model.discriminator, cfg.weight_clip)
                        d_value = float(d_loss.detach())
                        model.discriminator.requires_grad_(False)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        d_fake = model.discriminator(b_final) if use_adversarial else None
                        losses = stage2_generator_loss(vgg, b_final, T, d_fake, use_adversarial=use_adversarial)
                    opt2.zero_grad(set_to_none=True)
                    losses["total"].backward()
                    opt2.step()
                    vals = as_floats(losses)
                    if d_value is not None:
                        vals["critic"] = d_value
                done = step + 1
                bar.update(1)
                # log every log_every steps, and the last step of each stage (the curves' end points)
                if done % cfg.log_every == 0 or done == total or done == n1:
                    last_losses = vals
                    session.metrics.write({"step": done, "phase": phase, "lr": lr, **vals,
                                           "seconds": round(session.elapsed(), 3), "vgg_weights": vgg_note})
                    bar.set_postfix(stage=phase[-1], loss=f"{vals['total']:.4f}")
                if done % cfg.checkpoint_every == 0 or done == total or done == n1:
                    _sync_buffers(dist, model)
                    meta = {"model_kwargs": mk, "vgg_weights": vgg_note, "losses": last_losses, "total_steps": total,
                            "stage1_steps": n1, "stage2_steps": n2, "notes": log.notes, **switches,
                            "stage2_edges": edges_mode}
                    states = {"model": model.state_dict(), "optimizer_stage1": opt1.state_dict(),
                              "optimizer_stage2": opt2.state_dict(), "optimizer_d": opt_d.state_dict()}
                    session.save(done, "done" if done == total else phase, states,
                                 {"synthesizer": synth.state_dict()}, meta, compat,
                                 final_model={"model": model.state_dict()} if done == total else None)
        finally:
            bar.close()
        _sync_buffers(dist, model)
        return session.result(model, f"TS: {n1} stage-1 + {n2} stage-2 steps", steps=total, start=start,
                              resumed=ck is not None, losses=last_losses)
    finally:
        session.close()


def load_two_stage(path: str | Path, device: str | torch.device = "cpu"):
    """The :class:`~sirr.models.two_stage.TwoStage` of one of our TS checkpoints (``final.pt`` or ``last.pt``), eval mode.

    Refuses an LA checkpoint, a file with pickled code and a file that is not ours.
    """
    from sirr.models.two_stage import TwoStage

    p = Path(path)
    if p.is_dir():
        p = p / "final.pt" if (p / "final.pt").is_file() else p / "last.pt"
    ck = load_checkpoint(p, "ts")
    model = TwoStage(**ck["model_kwargs"])
    model.load_state_dict(ck["model"])
    model.checkpoint_meta = {k: ck.get(k) for k in ("step", "phase", "vgg_weights", "losses", "provenance",
                                                    "use_adversarial", "use_feature_reduction", "stage2_edges")}
    return model.to(device).eval()
