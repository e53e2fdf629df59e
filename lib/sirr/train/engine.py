"""The training loop both methods share (:func:`fit`) and the session around it (:class:`Session`).

A training call builds a :class:`Session` (run folder, process group, seeding, resume, checkpoints, metrics) and a
:class:`Job` (one method's models, optimisers, data and step: :class:`sirr.train.location_aware.LATraining`,
:class:`sirr.train.two_stage.TSTraining`), then runs :func:`fit`. The other jobs of training live beside this
module, one each:

- :mod:`sirr.train.precision` -- fp32 or bf16 autocast (:func:`resolve_precision`);
- :mod:`sirr.train.determinism` -- seeding, deterministic algorithms, RNG state for a bit-exact resume;
- :mod:`sirr.train.ddp` -- torchrun / DistributedDataParallel;
- :mod:`sirr.train.checkpoint` -- ``weights_only`` checkpoints, written atomically;
- :mod:`sirr.train.logs` -- ``train.log`` and ``metrics.jsonl``;
- :mod:`sirr.train.rundir` -- the run folder's name (which never reads the data).

Their public names are importable from here too, as before the split.

Resume
------
A checkpoint holds every piece of state the next step reads: the model, optimiser(s), the
discriminator / critic and its optimiser, the synthesizer's ``torch.Generator`` state (the whole data
order: crops, flips, blend parameters), the torch / NumPy / Python (and CUDA) RNG states of every
rank, the step and the phase. The learning-rate schedule is a pure function of the step (constant,
then the fine-tuning rate), so the step *is* the scheduler state. Resuming from ``last.pt`` therefore
continues the identical sequence of updates: on the CPU the final weights equal those of an
uninterrupted run bit for bit (tested, including a SIGKILL mid-run).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sirr.messages import repo_relative
from sirr.provenance import provenance
from sirr.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    CheckpointNotFoundError,
    atomic_torch_save,
    load_checkpoint,
    plain,
    selected_checkpoint,
)
from sirr.train.ddp import Distributed, setup_distributed
from sirr.train.determinism import (
    CUDA_DETERMINISM_NOTES,
    capture_rng,
    configure_determinism,
    restore_rng,
    seed_everything,
)
from sirr.train.logs import MetricsLog, MetricsNotFoundError, RunLog, read_metrics
from sirr.train.precision import Precision, cpu_has_native_bf16, resolve_precision
from sirr.train.rundir import data_tag, default_run_dir, variant_name

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CUDA_DETERMINISM_NOTES",
    "CheckpointError",
    "CheckpointNotFoundError",
    "MetricsNotFoundError",
    "Distributed",
    "MetricsLog",
    "RunLog",
    "Session",
    "TrainResult",
    "Job",
    "Phase",
    "Precision",
    "fit",
    "cpu_has_native_bf16",
    "resolve_precision",
    "atomic_torch_save",
    "capture_rng",
    "configure_determinism",
    "data_state",
    "data_tag",
    "default_run_dir",
    "selected_checkpoint",
    "load_checkpoint",
    "plain",
    "read_metrics",
    "restore_rng",
    "seed_everything",
    "setup_distributed",
    "variant_name",
]


# ------------------------------------------------------------------------------------------------
# Result
# ------------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a training call returns: the trained model (eval mode) and where its files are."""

    model: Any
    run_dir: Path
    checkpoint: Path
    metrics_path: Path
    steps: int
    losses: dict[str, float] = field(default_factory=dict)
    resumed_from: int | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)  # steps, seconds and samples per phase (fit's record)
    truncated: bool = False  # the time guard stopped the run before its steps: not the preset's model
    best: dict[str, Any] | None = None  # the best validation score ({"step", "val_psnr", ...}); weights in best.pt

    @property
    def best_checkpoint(self) -> Path | None:
        """``best.pt``: the weights of the best validation score (None without a validation set)."""
        p = self.run_dir / "best.pt"
        return p if self.best is not None and p.is_file() else None

    def __repr__(self) -> str:
        resumed = f", resumed_from={self.resumed_from}" if self.resumed_from is not None else ""
        resumed += ", TRUNCATED" if self.truncated else ""
        return (f"TrainResult({type(self.model).__name__}, steps={self.steps}{resumed}, "
                f"checkpoint={repo_relative(self.checkpoint)!r}, seconds={self.seconds:.1f})")


def as_floats(losses: dict[str, torch.Tensor | float]) -> dict[str, float]:
    return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in losses.items()}


def progress_bar(total: int, initial: int, enabled: bool, desc: str):
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True, leave=True)



# ------------------------------------------------------------------------------------------------
# One training session (shared by the LA and TS loops)
# ------------------------------------------------------------------------------------------------


class Session:
    """Run folder, process group, resume, checkpoints and metrics of one training call.

    Only rank 0 creates the folder and writes files; every rank reads ``last.pt`` on resume (the run
    folder must be on a filesystem all ranks see). Per-rank state (synthesizer generator, RNG states)
    is gathered from all ranks into the checkpoint, so a resumed DDP run also continues bit-exactly.
    """

    def __init__(self, run: Any, kind: str, run_dir: Path, *, resume: bool, progress: bool) -> None:
        self.run = run
        self.kind = kind
        self.dist = setup_distributed(run.device)
        self.device = torch.device(self.dist.device)
        self._deterministic_before = (torch.are_deterministic_algorithms_enabled(),
                                      torch.is_deterministic_algorithms_warn_only_enabled())
        configure_determinism(self.device)
        seed_everything(run.seed + self.dist.rank)
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress and self.dist.is_main
        self.log = RunLog(self.run_dir, enabled=self.dist.is_main)
        self.last_path = self.run_dir / "last.pt"
        self.final_path = self.run_dir / "final.pt"
        self.best_path = self.run_dir / "best.pt"
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.metrics: MetricsLog | None = None
        self.t0 = time.perf_counter()
        self.seconds_before = 0.0
        if self.dist.is_main and self.run_dir.is_dir():  # temporaries of a run killed mid-write
            for stale in self.run_dir.glob(".*.pt.*.tmp"):
                stale.unlink(missing_ok=True)
        if self.dist.enabled:
            self.log(f"torchrun: rank {self.dist.rank} of {self.dist.world_size} on {self.device} "
                     f"({'nccl' if self.device.type == 'cuda' else 'gloo'}); only rank 0 writes files")

    # -- resume --------------------------------------------------------------------------------
    def load_last(self, compatible: dict[str, Any], pool: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """``last.pt`` when resuming and present, after checking ``compatible`` entries match and that it trained
        on the same photos (``pool``'s fingerprint, when both record one: the run folder's name does not say);
        else None.

        A fresh start (``resume=False`` or no ``last.pt``) removes stale ``last.pt``/``final.pt``.
        """
        if self.resume and self.last_path.is_file():
            ck = load_checkpoint(self.last_path, self.kind)
            for key, want in plain(compatible).items():
                have = ck.get("compat", {}).get(key)
                if have != want:
                    raise CheckpointError(
                        f"{self.last_path} was trained with {key}={have!r}, this run asks for {want!r}; "
                        "pass resume=False (or --run-dir elsewhere) to start a new run"
                    )
            had, has = (ck.get("pool") or {}).get("fingerprint"), (pool or {}).get("fingerprint")
            if had and has and had != has:
                raise CheckpointError(
                    f"{self.last_path} was trained on another pool of photos (fingerprint {had}, this run's is "
                    f"{has}); pass resume=False (or --run-dir elsewhere) to start a new run"
                )
            if ck.get("world_size", 1) != self.dist.world_size:
                raise CheckpointError(
                    f"{self.last_path} was written by {ck.get('world_size', 1)} process(es); resume it with the "
                    f"same number (this run has {self.dist.world_size})"
                )
            self.seconds_before = float(ck.get("seconds", 0.0))
            self.log(f"resuming from {self.last_path} at step {ck['step']} (phase {ck.get('phase')})")
            return ck
        if self.dist.is_main:
            for p in (self.last_path, self.final_path, self.best_path):
                if p.exists():
                    p.unlink()
        self.dist.barrier()
        return None

    def open_metrics(self, resume_step: int | None) -> None:
        self.metrics = MetricsLog(self.metrics_path, enabled=self.dist.is_main, resume_step=resume_step)

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.t0

    # -- saving ---------------------------------------------------------------------------------
    def save(self, step: int, phase: str, states: dict[str, Any], per_rank: dict[str, Any],
             meta: dict[str, Any], compatible: dict[str, Any], final_model: dict[str, Any] | None = None) -> None:
        """Write ``last.pt`` (and ``final.pt`` with the model weights and metadata when ``final_model``).

        Collective under DDP (every rank must call it): ``per_rank`` values are gathered from all ranks.
        """
        per_rank = {**per_rank, "rng": capture_rng(self.device)}
        gathered = self.dist.gather(per_rank)
        if not self.dist.is_main:
            return
        common = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "kind": self.kind,
            "step": int(step),
            "phase": phase,
            "world_size": self.dist.world_size,
            "seconds": self.elapsed(),
            "compat": plain(compatible),
            "config": plain(self.run.as_dict()),
            "provenance": plain(provenance(self.run)),
            **plain(meta),
        }
        atomic_torch_save({**common, **states, "per_rank": gathered}, self.last_path)
        if final_model is not None:
            atomic_torch_save({**common, **final_model}, self.final_path)

    def save_best(self, best: dict[str, Any], meta: dict[str, Any], weights: dict[str, Any]) -> None:
        """Write ``best.pt``: the model weights at the best validation score so far, with that score and step."""
        if not self.dist.is_main:
            return
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": self.kind,
                           "step": int(best["step"]), "phase": "best", "world_size": self.dist.world_size,
                           "seconds": self.elapsed(), "config": plain(self.run.as_dict()),
                           "provenance": plain(provenance(self.run)), **plain(meta), "best_validation": plain(best),
                           **weights}, self.best_path)

    def result(self, model: Any, summary: str, *, steps: int, start: int, resumed: bool,
               losses: dict[str, float]) -> TrainResult:
        """End of a training call (both loops): say if it only loaded a finished run, log where the files
        are, put ``model`` in eval mode and return the :class:`TrainResult`."""
        if start == steps:
            self.log(f"already trained: {self.last_path} is at step {steps}; loaded it")
        model.eval()
        if self.dist.is_main:
            self.log(f"{summary}; checkpoint {self.final_path}; metrics {self.metrics_path}")
        return TrainResult(model=model, run_dir=self.run_dir, checkpoint=self.final_path,
                           metrics_path=self.metrics_path, steps=steps, losses=losses,
                           resumed_from=start if resumed else None,
                           seconds=round(self.elapsed() - self.seconds_before, 3), notes=list(self.log.notes))

    def close(self) -> None:
        """Close the metrics file, leave the process group we created, restore the caller's determinism flags."""
        if self.metrics is not None:
            self.metrics.close()
        self.dist.close()
        enabled, warn_only = self._deterministic_before
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


# ------------------------------------------------------------------------------------------------
# The training loop, written once for both methods
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """A stretch of training with one name and learning rate (LA: ``train`` then ``fine_tune``;
    TS: ``stage1`` then ``stage2``): exactly ``steps`` optimiser steps."""

    name: str
    steps: int
    lr: float


class Job:
    """What one method's training brings to :func:`fit`: its models, optimisers and data, built for a run.

    Subclasses (:class:`sirr.train.location_aware.LATraining`, :class:`sirr.train.two_stage.TSTraining`)
    set ``model``, ``phases``, ``compat``, ``log_every``, ``checkpoint_every``, ``batch_size`` and implement
    :meth:`batch` and :meth:`step` (one optimisation step: ``la_step`` / ``ts_step``), and say what a
    checkpoint holds (:meth:`states`, :meth:`per_rank`, :meth:`restore`, :meth:`meta`). A job with a
    ``validation`` set (:class:`sirr.train.validation.ValidationSet`) is scored every ``validate_every``
    steps and at the end of each phase through :meth:`predict`.
    """

    kind: str
    model: torch.nn.Module
    phases: list[Phase]
    compat: dict[str, Any]
    log_every: int
    checkpoint_every: int
    batch_size: int
    vgg_note: str
    validation: Any = None
    validate_every: int = 0

    def restore(self, ck: dict[str, Any], mine: dict[str, Any]) -> None:
        """Load model, optimiser and data-stream state from a checkpoint (``mine``: this rank's part)."""
        raise NotImplementedError

    def wrap(self, dist: Distributed) -> None:
        """Wrap the trained modules for DistributedDataParallel (after :meth:`restore`)."""

    def set_phase(self, phase: Phase) -> None:
        """Called before every step: learning rates, train/eval modes of the phase."""

    def batch(self, phase: Phase) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def step(self, phase: Phase, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def predict(self, phase: Phase, I: torch.Tensor) -> torch.Tensor:
        """The current estimate of the transmission of ``I`` (for the validation set; called under no_grad)."""
        raise NotImplementedError

    def selects_best(self, phase: Phase) -> bool:
        """Whether a validation score in ``phase`` may make ``best.pt`` (TS: stage 2 only, the whole method)."""
        return True

    def before_save(self) -> None:
        """Make the state consistent across ranks before it is saved (e.g. BatchNorm statistics)."""

    def states(self) -> dict[str, Any]:
        raise NotImplementedError

    def per_rank(self) -> dict[str, Any]:
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        return {}

    def summary(self) -> str:
        return f"{self.kind.upper()}: " + " + ".join(f"{p.steps} {p.name} steps" for p in self.phases)


def _phase_progress(ck: dict[str, Any], phases: list[Phase]) -> tuple[dict[str, int], dict[str, float]]:
    """Steps and seconds spent in each phase, as a checkpoint records them (a checkpoint without the record is
    split by the step counts)."""
    if "phase_steps" in ck:
        return ({p.name: int(ck["phase_steps"].get(p.name, 0)) for p in phases},
                {p.name: float((ck.get("phase_seconds") or {}).get(p.name, 0.0)) for p in phases})
    left, steps = int(ck["step"]), {}
    for p in phases:
        steps[p.name] = min(p.steps, left)
        left -= steps[p.name]
    return steps, {p.name: 0.0 for p in phases}


def data_state(job: Job) -> str:
    """8 hex digits naming where the job's data stream stands (a CRC of its generators' states): two runs whose
    metrics show the same ``data_state`` at a step have drawn the same batches up to it, whatever their speed."""
    h = 0
    for k, v in sorted(job.per_rank().items()):
        parts = [v["generator"]] if isinstance(v, dict) and "generator" in v else [v]
        for t in parts:
            if isinstance(t, torch.Tensor):
                h = zlib.crc32(t.numpy().tobytes(), h)
    return f"{h:08x}"


@dataclass
class _Progress:
    """Where a run stands: steps done per phase, seconds spent per phase, the last logged losses, the best
    validation so far, and whether the time guard stopped it."""

    cap: int
    done: dict[str, int]
    spent: dict[str, float]
    samples_per_step: int
    time_guard_s: float | None
    start: int = 0
    step: int = 0
    last: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    truncated: bool = False

    def record(self) -> dict[str, Any]:
        return {"phase_steps": dict(self.done), "phase_seconds": {k: round(v, 3) for k, v in self.spent.items()},
                "samples_seen": self.step * self.samples_per_step, "time_guard_s": self.time_guard_s,
                "truncated": self.truncated, "best_validation": self.best}


def _begin(session: Session, job: Job, time_guard_s: float | None) -> tuple[dict[str, Any] | None, _Progress]:
    """``(checkpoint or None, progress)``: a fresh start, or the state of ``last.pt`` restored into ``job`` and the
    RNGs."""
    p = _Progress(cap=sum(ph.steps for ph in job.phases), done={ph.name: 0 for ph in job.phases},
                  spent={ph.name: 0.0 for ph in job.phases},
                  samples_per_step=job.batch_size * session.dist.world_size, time_guard_s=time_guard_s)
    ck = session.load_last(job.compat, pool=job.meta().get("pool"))
    if ck is not None:
        mine = ck["per_rank"][session.dist.rank]
        job.restore(ck, mine)
        restore_rng(mine["rng"], session.device)
        p.start, p.last = int(ck["step"]), dict(ck.get("losses", {}))
        if p.start > p.cap:
            raise CheckpointError(f"{session.last_path} is at step {p.start}, past the {p.cap} steps asked; pass "
                                  "resume=False or more steps")
        p.done, p.spent = _phase_progress(ck, job.phases)
        p.best = ck.get("best_validation")
    p.step = p.start
    return ck, p


def _save(session: Session, job: Job, p: _Progress, phase_name: str) -> None:
    """``last.pt`` (and ``final.pt`` once every step is done)."""
    finished = p.step == p.cap and not p.truncated
    job.before_save()
    meta = {**job.meta(), "vgg_weights": job.vgg_note, "losses": p.last, "total_steps": p.cap,
            "notes": session.log.notes, **p.record()}
    session.save(p.step, "done" if finished else phase_name, job.states(), job.per_rank(), meta, job.compat,
                 final_model={"model": job.model.state_dict()} if finished else None)


def _validate(session: Session, job: Job, phase: Phase, p: _Progress) -> None:
    """Score the validation set, log it, and keep the weights in ``best.pt`` when they beat the best so far."""
    job.model.eval()
    scores = job.validation.score(lambda x: job.predict(phase, x))
    job.model.train()
    job.set_phase(phase)
    session.metrics.write({"step": p.step, "phase": phase.name, "validation": True, **scores,
                           "seconds": round(session.elapsed(), 3)})
    if job.selects_best(phase) and (p.best is None or scores["val_psnr"] > p.best["val_psnr"]):
        p.best = {"step": p.step, "phase": phase.name, **scores}
        job.before_save()
        session.save_best(p.best, {**job.meta(), "vgg_weights": job.vgg_note, "total_steps": p.cap,
                                   "samples_seen": p.step * p.samples_per_step}, {"model": job.model.state_dict()})


def _train_step(session: Session, job: Job, phase: Phase, p: _Progress, batch: dict[str, torch.Tensor] | None,
                bar) -> None:
    """One optimiser step of ``phase``, then whatever falls due after it: the log line, validation, the time
    guard (checked after a step, so every call makes progress) and the checkpoint."""
    t0 = time.perf_counter()
    job.set_phase(phase)
    vals = job.step(phase, batch if batch is not None else job.batch(phase))
    p.done[phase.name] += 1
    p.step += 1
    bar.update(1)
    ends = p.done[phase.name] == phase.steps
    if p.step % job.log_every == 0 or ends:  # and the last step of each phase
        p.last = vals
        session.metrics.write({"step": p.step, "phase": phase.name, "lr": phase.lr, **vals,
                               "seconds": round(session.elapsed(), 3), "data_state": data_state(job),
                               "vgg_weights": job.vgg_note})
        bar.set_postfix(phase=phase.name, loss=f"{vals['total']:.4f}")
    if job.validation is not None and (p.step % job.validate_every == 0 or ends):
        _validate(session, job, phase, p)
    p.spent[phase.name] += time.perf_counter() - t0
    if p.step < p.cap and p.time_guard_s is not None and session.elapsed() > p.time_guard_s:
        p.truncated = True
        return
    if p.step % job.checkpoint_every == 0 or ends:
        _save(session, job, p, phase.name)


def fit(session: Session, job: Job, *, overfit_batch: bool = False, time_guard_s: float | None = None) -> TrainResult:
    """Run (or resume) ``job`` for exactly the steps of its phases: one step at a time, logging every
    ``job.log_every`` steps, checkpointing every ``job.checkpoint_every`` steps and at the end of each phase,
    scoring the validation set (if any) every ``job.validate_every`` steps and at the end of each phase, and
    keeping the best-validation weights in ``best.pt``.

    The schedule is in steps, so the same preset and seed give the same steps and batches on any machine.
    ``time_guard_s`` is only a guard: when the run's wall time passes it, training stops at the next step
    boundary, saves, and the run is marked ``truncated`` (in the checkpoint, the metrics, the log and the
    result); resuming it later without the guard continues the same sequence. Returns the :class:`TrainResult`."""
    ck, p = _begin(session, job, time_guard_s)
    session.open_metrics(p.start if ck is not None else None)
    job.wrap(session.dist)
    fixed = job.batch(job.phases[0]) if overfit_batch else None
    bar = progress_bar(p.cap, p.start, session.progress, desc=f"{job.kind.upper()} {session.run.preset.name}")
    job.model.train()
    try:
        for phase in job.phases:
            while p.done[phase.name] < phase.steps and not p.truncated:
                _train_step(session, job, phase, p, fixed, bar)
        if p.truncated:
            _save(session, job, p, "truncated")
            session.log(f"TRUNCATED: the {time_guard_s:.0f} s time guard stopped the run at step {p.step} of "
                        f"{p.cap}; this is not the preset's model (resume without the guard to finish it)")
            session.metrics.write({"step": p.step, "truncated": True, "seconds": round(session.elapsed(), 3)})
    finally:
        bar.close()
    job.before_save()
    summary = job.summary() if not p.truncated else f"{job.kind.upper()}: TRUNCATED at step {p.step} of {p.cap}"
    result = session.result(job.model, summary, steps=p.step, start=p.start, resumed=ck is not None, losses=p.last)
    if p.truncated:  # no final.pt: a truncated run is never taken for a finished one
        result.checkpoint = session.last_path
    result.progress = p.record()
    result.truncated = p.truncated
    result.best = p.best
    return result
