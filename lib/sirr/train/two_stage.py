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
``ts.precision`` picks fp32 or bf16 autocast (+ channels_last on the CPU); ``ts.time_budget_s`` bounds
the wall time (stage 1 and stage 2 share it by their step counts); a preset ``validation`` set is held
out of the pool and scored every ``ts.validate_every`` steps (B_ini in stage 1, B_final in stage 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel as DDP

from sirr.losses import clip_critic_weights, critic_loss, initial_loss, stage2_generator_loss, two_stage_vgg
from sirr.models.two_stage import TwoStage, ground_truth_edge_sets
from sirr.train.engine import (
    CheckpointError,
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

__all__ = ["train_two_stage", "load_two_stage", "TSTraining", "ts_step", "STAGE2_EDGES"]

STAGE2_EDGES = ("ground_truth", "confidence_map")


def _sync_buffers(dist, *modules: torch.nn.Module) -> None:
    """Give every rank rank 0's BatchNorm running statistics (DDP broadcasts them only at each forward)."""
    if not dist.enabled:
        return
    for m in modules:
        for b in m.buffers():
            tdist.broadcast(b, 0)


class TSTraining(Job):
    """TS's networks, optimisers and data for one run (TS Sec. IV-B); :func:`ts_step` is one update."""

    kind = "ts"

    def __init__(self, run: Any, session: Session, data: TrainingData, *, n1: int, n2: int, edges_mode: str,
                 switches: dict[str, bool], model_kwargs: dict[str, Any] | None, overfit_batch: bool) -> None:
        cfg = self.cfg = run.preset.ts
        log, dist, device = session.log, session.dist, session.device
        self.device, self.dist = device, dist
        self.n1, self.n2, self.edges_mode, self.switches = n1, n2, edges_mode, switches
        self.use_adversarial = switches["use_adversarial"]
        self.use_feature_reduction = switches["use_feature_reduction"]
        self.phases = [Phase("stage1", n1, cfg.lr_stage1), Phase("stage2", n2, cfg.lr_stage2)]
        self.log_every, self.checkpoint_every, self.batch_size = cfg.log_every, cfg.checkpoint_every, cfg.batch_size
        self.precision = resolve_precision(cfg.precision, device)
        self.amp = self.precision.autocast
        gen = torch.Generator().manual_seed(run.seed)
        self.model = TwoStage.for_preset(run.preset, generator=gen, **(model_kwargs or {})).to(device)
        self.model_kwargs = dict(self.model.config)
        if self.precision.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.vgg = two_stage_vgg(weights=run.preset.vgg_weights, normalize=cfg.vgg_normalize).to(device)
        self.vgg_note = self.vgg.description  # the source in words, recorded in logs, checkpoints and results
        log(f"loss network: {self.vgg_note}; input "
            + ("ImageNet-normalised" if cfg.vgg_normalize else "raw [0, 1] images (the release's)"))
        if getattr(self.vgg, "is_fallback", False):
            log("WARNING: VGG-19 with RANDOM weights (offline fallback, vgg_weights='random'): L_rec, L_FR and L_2 "
                "are NOT the paper's ImageNet VGG-19 losses; label every result of this run accordingly")
        self.opt1 = torch.optim.RMSprop(self.model.stage1.parameters(), lr=cfg.lr_stage1)
        self.opt2 = torch.optim.RMSprop(self.model.stage2.parameters(), lr=cfg.lr_stage2)
        self.opt_d = torch.optim.RMSprop(self.model.discriminator.parameters(), lr=cfg.lr_discriminator)
        self.synth, self.validation, self.pool_record = data.synth, data.validation, data.pool_record
        self.validation_photos, self.validate_every = data.validation_photos, cfg.validate_every
        log(f"precision: {self.precision.describe()}"
            + (f"; time guard {cfg.time_budget_s:.0f} s (a run it stops is marked truncated)"
               if cfg.time_budget_s else ""))
        log(f"data: synthetic TS triples from {len(self.synth)} photos at {cfg.crop} px; stage-2 edges from "
            f"{'the ground truth (release)' if edges_mode == 'ground_truth' else 'the confidence map of F1 (paper)'}")
        self.compat = {"model_kwargs": self.model_kwargs, "crop": cfg.crop, "batch_size": cfg.batch_size,
                       "photos": len(self.synth), "vgg_weights": self.vgg_note, "stage2_edges": edges_mode,
                       "overfit_batch": overfit_batch, "vgg_normalize": cfg.vgg_normalize, **switches}
        val = run.preset.validation
        if val.photos:  # old checkpoints stay resumable without these keys
            self.compat.update(validation_photos=val.photos, validation_recipe=val.recipe, validation_size=val.size)
        self.f1, self.f2, self.critic = self.model.stage1, self.model.stage2, self.model.discriminator
        self.last_path = session.last_path

    def restore(self, ck: dict[str, Any], mine: dict[str, Any]) -> None:
        self.model.load_state_dict(ck["model"])
        self.opt1.load_state_dict(ck["optimizer_stage1"])
        self.opt2.load_state_dict(ck["optimizer_stage2"])
        self.opt_d.load_state_dict(ck["optimizer_d"])
        self.synth.load_state_dict(mine["synthesizer"])
        start, was = int(ck["step"]), ck.get("stage1_steps")
        if was is not None and was != self.n1 and start > min(self.n1, was):
            raise CheckpointError(f"{self.last_path} switched to stage 2 after {was} stage-1 steps; this run asks "
                                  f"for {self.n1}: pass resume=False")

    def wrap(self, dist) -> None:
        if dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            m = self.model
            self.f1, self.f2, self.critic = (DDP(x, device_ids=ids) for x in (m.stage1, m.stage2, m.discriminator))

    def set_phase(self, phase: Phase) -> None:
        self.model.stage1.train(phase.name == "stage1")  # F1 frozen in eval mode during stage 2

    def batch(self, phase: Phase) -> dict[str, torch.Tensor]:
        return self.synth.batch(self.cfg.batch_size)

    def step(self, phase: Phase, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return ts_step(self, phase.name, batch)

    def predict(self, phase: Phase, I: torch.Tensor) -> torch.Tensor:
        """B_ini during stage 1, B_final (confidence map and 2-means split of B_ini) during stage 2."""
        with self.precision.context(self.device.type):
            x = self.precision.prepare(I)
            return self.model.stage1(x) if phase.name == "stage1" else self.model(x).b_final

    def selects_best(self, phase: Phase) -> bool:
        """``best.pt`` holds the whole method (B_final), so it is chosen in stage 2 (stage 1 when there is none)."""
        return phase.name == "stage2" or self.n2 == 0

    def before_save(self) -> None:
        _sync_buffers(self.dist, self.model)

    def states(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer_stage1": self.opt1.state_dict(),
                "optimizer_stage2": self.opt2.state_dict(), "optimizer_d": self.opt_d.state_dict()}

    def per_rank(self) -> dict[str, Any]:
        return {"synthesizer": self.synth.state_dict()}

    def meta(self) -> dict[str, Any]:
        return {"model_kwargs": self.model_kwargs, "stage1_steps": self.n1, "stage2_steps": self.n2,
                **self.switches, "stage2_edges": self.edges_mode, "pool": self.pool_record,
                "validation_photos": self.validation_photos, "precision": self.precision.describe(),
                "vgg_normalize": self.cfg.vgg_normalize}

    def summary(self) -> str:
        return f"TS: {self.n1} stage-1 + {self.n2} stage-2 steps"


def ts_step(job: TSTraining, stage: str, batch: dict[str, torch.Tensor]
            ) -> dict[str, float]:
    """One TS update: stage 1, F1 on L_ini (Eq. 2-4); stage 2, one WGAN
    critic step (Eq. 8, then weight clipping) and F2 on L_2 (Eq. 7) with F1
    frozen."""
    # blend I, background T, reflection R: (B, 3, H, W) each
    I, T, R = (job.precision.prepare(batch[k]) for k in ("I", "T", "R"))

    def autocast():  # bf16 autocast when job.amp, else a no-op
        return torch.autocast(
            job.device.type, dtype=torch.bfloat16, enabled=job.amp)

    if stage == "stage1":
        with autocast():  # L_ini = L_rec + L_FR on B_ini = F1(I), Eq. 2-4
            losses = initial_loss(
                job.vgg, job.f1(I), T,
                use_feature_reduction=job.use_feature_reduction)
        job.opt1.zero_grad(set_to_none=True)
        losses["total"].backward()
        job.opt1.step()
        return as_floats(losses)
    # E_B, E_R: hard masks, no gradient (Eq. 5-6, or the release's
    # ground-truth edges)
    with torch.no_grad():
        if job.edges_mode == "ground_truth":
            e_b, e_r = ground_truth_edge_sets(I, T, R)
        else:
            with autocast():
                b_ini = job.model.stage1(I)  # B_ini = F1(I), F1 frozen
            parts = job.model.split(I, b_ini.float())  # Eq. 5-6
            e_b, e_r = parts["edges_background"], parts["edges_reflection"]
    with autocast():
        # z = [I, E_B, E_R]: (B, 9, H, W)
        z = torch.cat([I, e_b.to(I.dtype), e_r.to(I.dtype)], dim=1)
        b_final = job.f2(z)  # B_final = F2(z): (B, 3, H, W)
    d_value = None
    if job.use_adversarial:  # one critic step on the detached F2 output
        job.model.discriminator.requires_grad_(True)
        job.opt_d.zero_grad(set_to_none=True)
        with autocast():  # L_adv = D(F2(z)) − D(I_B), Eq. 8
            d_loss = critic_loss(job.critic(T), job.critic(b_final.detach()))
        d_loss.backward()
        job.opt_d.step()
        # WGAN weight clipping to ±ts.weight_clip
        clip_critic_weights(job.model.discriminator, job.cfg.weight_clip)
        d_value = float(d_loss.detach())
        job.model.discriminator.requires_grad_(False)
    with autocast():
        d_fake = (job.model.discriminator(b_final)  # D(F2(z)): (B,)
                  if job.use_adversarial else None)
        losses = stage2_generator_loss(  # L_2, Eq. 7
            job.vgg, b_final, T, d_fake, use_adversarial=job.use_adversarial)
    job.opt2.zero_grad(set_to_none=True)
    losses["total"].backward()
    job.opt2.step()
    vals = as_floats(losses)
    if d_value is not None:
        vals["critic"] = d_value
    return vals


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
    cfg = run.preset.ts
    n1 = cfg.stage1_steps if stage1_steps is None else int(stage1_steps)
    n2 = cfg.stage2_steps if stage2_steps is None else int(stage2_steps)
    if n1 < 0 or n2 < 0 or n1 + n2 < 1:
        raise ValueError(f"train_two_stage: need stage1_steps + stage2_steps >= 1, got {n1} + {n2}")
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
    try:
        data = synthetic_training_data(run, "ts", cfg.crop, session.device, session.dist.rank, cfg.validate_every,
                                       session.log, photos)
        job = TSTraining(run, session, data, n1=n1, n2=n2, edges_mode=edges_mode, switches=switches,
                         model_kwargs=model_kwargs, overfit_batch=overfit_batch)
        return fit(session, job, overfit_batch=overfit_batch, time_guard_s=cfg.time_budget_s)
    finally:
        session.close()


def load_two_stage(path: str | Path, device: str | torch.device = "cpu"):
    """The :class:`~sirr.models.two_stage.TwoStage` of one of our TS checkpoints (``final.pt`` or ``last.pt``), eval mode.

    Refuses an LA checkpoint, a file with pickled code and a file that is not ours.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "final.pt" if (p / "final.pt").is_file() else p / "last.pt"
    ck = load_checkpoint(p, "ts")
    model = TwoStage(**ck["model_kwargs"])
    model.load_state_dict(ck["model"])
    model.checkpoint_meta = {k: ck.get(k) for k in ("step", "phase", "vgg_weights", "losses", "provenance", "config",
                                                    "samples_seen", "phase_steps", "phase_seconds", "time_guard_s", "truncated",
                                                    "best_validation", "use_adversarial", "use_feature_reduction", "stage2_edges")}
    return model.to(device).eval()
