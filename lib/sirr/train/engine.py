"""What both training loops share: seeding and determinism, torchrun/DDP set-up, atomic checkpoints
that load with ``weights_only=True``, RNG-state capture for a bit-exact resume, the metrics file.

Determinism
-----------
:func:`configure_determinism` seeds ``random``, NumPy and torch and calls
``torch.use_deterministic_algorithms(True, warn_only=True)``. On the CPU this makes the same preset
and seed give bitwise-identical weights (same PyTorch build and thread count). On CUDA it also sets
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (before the first cuBLAS call) and
``torch.backends.cudnn.deterministic = True`` / ``benchmark = False``; see :data:`CUDA_DETERMINISM_NOTES`
for what stays non-deterministic there.

Resume
------
A checkpoint holds every piece of state the next step reads: the model, optimiser(s), the
discriminator / critic and its optimiser, the synthesizer's ``torch.Generator`` state (the whole data
order: crops, flips, blend parameters), the torch / NumPy / Python (and CUDA) RNG states of every
rank, the step and the phase. The learning-rate schedule is a pure function of the step (constant,
then the fine-tuning rate), so the step *is* the scheduler state. Resuming from ``last.pt`` therefore
continues the identical sequence of updates: on the CPU the final weights equal those of an
uninterrupted run bit for bit (tested, including a SIGKILL mid-run).

Checkpoints contain only tensors and primitive containers (RNG states converted to tensors/lists) so
that :func:`load_checkpoint` can use ``torch.load(..., weights_only=True)``; a file with pickled code is
refused with one line. Writes go through :func:`sirr.atomic.atomic_write` (a temporary file in the same
folder, fsynced and renamed with ``os.replace``) — a crash mid-write never leaves a half file under the real name.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import random
import re
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from sirr.atomic import atomic_write, atomic_write_text
from sirr.data.pool import build_pool
from sirr.errors import SirrError
from sirr.messages import repo_relative
from sirr.paths import REPO_ROOT
from sirr.provenance import provenance

__all__ = [
    "CHECKPOINT_FORMAT",
    "CUDA_DETERMINISM_NOTES",
    "CheckpointError",
    "CheckpointNotFoundError",
    "MetricsNotFoundError",
    "Distributed",
    "MetricsLog",
    "RunLog",
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
    "default_run_dir",
    "selected_checkpoint",
    "data_fingerprint",
    "load_checkpoint",
    "read_metrics",
    "restore_rng",
    "seed_everything",
    "setup_distributed",
    "variant_name",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sirr-checkpoint"
CHECKPOINT_VERSION = 1
_KIND_NAMES = {"la": "LA (location-aware, Dong et al. 2021)", "ts": "TS (two-stage, Li & Lun 2019)"}

#: What is and is not bitwise reproducible on CUDA (text for the README / "running this book" page).
CUDA_DETERMINISM_NOTES = """\
On CUDA the training engine sets CUBLAS_WORKSPACE_CONFIG=:4096:8 (before the first cuBLAS call),
torch.backends.cudnn.deterministic=True, cudnn.benchmark=False and
torch.use_deterministic_algorithms(True, warn_only=True), seeds every RNG and checkpoints every RNG
state, so a resumed run continues the same data order and the same random draws. Runs are still NOT
guaranteed to be bitwise identical on a GPU, because:
- bilinear up-sampling backward (upsample_bilinear2d_backward, used by LA's multi-scale Laplacian
  module and by the 1/2, 1/4 perceptual targets) has no deterministic CUDA kernel and accumulates with
  atomicAdd; PyTorch warns once ("...does not have a deterministic implementation") and runs it anyway
  (warn_only=True), so gradients differ in the last bits from run to run;
- bf16 autocast (preset la.precision / ts.precision "auto", i.e. bf16 on CUDA) rounds activations to
  8 mantissa bits, so the GPU result differs from the fp32 CPU result by far more than the last bit,
  and the atomics above are then amplified; set la__precision="fp32" / ts__precision="fp32" for fp32;
- cuDNN/cuBLAS pick algorithms per GPU model, driver and library version: different cards (an H100
  and an H200, say) give different bits even when each is deterministic with itself;
- under torchrun with NCCL, the all-reduce order depends on the topology (ring/tree), so the sum of
  gradients can differ in the last bits between machines with different GPU counts or interconnects.
Numbers from GPU runs therefore agree between reruns to within training noise, not bit for bit; the
CPU path (the `smoke` preset, CI) is bitwise reproducible and is what the tests check. On the CPU,
"the same" means the same PyTorch build and the same number of threads (torch.get_num_threads(),
OMP_NUM_THREADS): a different thread count splits reductions differently and changes the last bits.
These notes were written from PyTorch's documentation; no GPU run was measured for them.
"""


# ------------------------------------------------------------------------------------------------
# Precision: bf16 autocast where the hardware computes in bf16, fp32 elsewhere
# ------------------------------------------------------------------------------------------------


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 arithmetic (AVX-512 BF16 or AMX, read from ``/proc/cpuinfo``; False elsewhere).

    Without it PyTorch emulates bf16 on the CPU and autocast is slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class Precision:
    """How a network runs: ``autocast`` in bf16 or not, and channels_last memory format or not."""

    name: str  # "fp32" or "bf16"
    autocast: bool
    channels_last: bool

    def context(self, device_type: str):
        """``torch.autocast`` in bf16 when :attr:`autocast`, else a no-op context."""
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format this precision runs in (4-D tensors only)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def describe(self) -> str:
        kind = "bf16 autocast" if self.autocast else "fp32"
        return f"{kind} + channels_last" if self.channels_last else kind


def resolve_precision(precision: str, device: str | torch.device) -> Precision:
    """``"auto"``: bf16 autocast on CUDA, fp32 on the CPU (so a CPU preset trains the same model on every CPU);
    ``"fp32"`` / ``"bf16"`` force one (bf16 on the CPU: autocast + channels_last, only when asked for)."""
    kind = torch.device(device).type
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16'; got {precision!r}")
    if precision == "auto":
        precision = "bf16" if kind == "cuda" else "fp32"
    if precision == "fp32":
        return Precision("fp32", autocast=False, channels_last=False)
    return Precision("bf16", autocast=True, channels_last=kind == "cpu")


class CheckpointError(SirrError, ValueError):
    """A checkpoint that cannot be used here: pickled code, another model's, unreadable, incompatible."""


class CheckpointNotFoundError(SirrError, FileNotFoundError):
    """No checkpoint file at the given path."""


class MetricsNotFoundError(SirrError, FileNotFoundError):
    """No metrics.jsonl in the given run folder."""


# ------------------------------------------------------------------------------------------------
# Seeding and determinism
# ------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(device: str | torch.device) -> None:
    """Deterministic algorithms where PyTorch has them (see :data:`CUDA_DETERMINISM_NOTES` for CUDA)."""
    if torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def capture_rng(device: str | torch.device = "cpu") -> dict[str, Any]:
    """The torch / NumPy / Python (and CUDA) RNG states as tensors and primitives (``weights_only``-safe)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    dev = torch.device(device)
    if dev.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dev)
    return state


def restore_rng(state: dict[str, Any], device: str | torch.device = "cpu") -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    dev = torch.device(device)
    if dev.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], dev)


# ------------------------------------------------------------------------------------------------
# torchrun / DistributedDataParallel
# ------------------------------------------------------------------------------------------------


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (a list indexed by rank) on every rank; ``[obj]`` without DDP."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this run created it."""
        if self.initialized_here:
            if dist.is_initialized():
                dist.destroy_process_group()
            self.initialized_here = False


def setup_distributed(device: str) -> Distributed:
    """Join the torchrun process group when ``RANK``/``WORLD_SIZE`` say so (NCCL on CUDA, gloo on CPU).

    Under torchrun each process trains on ``cuda:LOCAL_RANK`` (CUDA) or the CPU; without torchrun (or
    ``WORLD_SIZE=1``) this is a no-op returning rank 0 of 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return Distributed(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    is_cuda = torch.device(device).type == "cuda"
    if is_cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if is_cuda else "gloo")
        here = True
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                       device=device, initialized_here=here)


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`sirr.atomic.atomic_write` (temporary beside ``path``, fsync, ``os.replace``)."""
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def plain(obj: Any) -> Any:
    """Dataclasses, paths and tuples as JSON-/``weights_only``-friendly primitives (dicts, lists, str, numbers)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None, map_location: Any = "cpu") -> dict[str, Any]:
    """Read one of our checkpoints with ``torch.load(weights_only=True)``.

    ``kind`` ("la" or "ts") refuses another model's checkpoint. Raises :class:`CheckpointNotFoundError`
    for a missing file and :class:`CheckpointError` (one line) for pickled code, an unreadable or
    truncated file, or a file that is not a sirr training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"checkpoint {str(path)!r} does not exist; train first (python -m sirr train ...) or pass the "
            "path of a final.pt / last.pt"
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: refusing to load pickled code (torch.load weights_only=True failed: {first}); "
            "only checkpoints of plain tensors are accepted"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {first}") from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        hint = ""
        if isinstance(obj, dict) and any(isinstance(v, torch.Tensor) for v in obj.values()):
            hint = " (a bare state dict; for the LA authors' released model.pth use LocationAware.from_release)"
        raise CheckpointError(f"{path} is not a sirr training checkpoint{hint}")
    got = obj.get("kind")
    if kind is not None and got != kind:
        raise CheckpointError(
            f"{path} is a {str(got).upper()} checkpoint, not {kind.upper()}: it holds "
            f"{_KIND_NAMES.get(got, got)} weights; pass a {kind.upper()} checkpoint"
        )
    return obj


# ------------------------------------------------------------------------------------------------
# Run folder, logs and metrics
# ------------------------------------------------------------------------------------------------


def variant_name(**options: Any) -> str:
    """A folder-safe name for non-default options, e.g. ``use_lstm-False`` (``full`` when none)."""
    parts = []
    for k, v in sorted(options.items()):
        if v is None or v == {}:
            continue
        if isinstance(v, dict):
            parts.extend(f"{kk}-{vv}" for kk, vv in sorted(v.items()))
        else:
            parts.append(f"{k}-{v}")
    if not parts:
        return "full"
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(parts))[:120]


_FINGERPRINTS: dict[str, str] = {}


def data_fingerprint(run: Any) -> str:
    """``"nodata"`` without a data root, else 8 hex digits naming the training pool's photos
    (:attr:`sirr.data.pool.PhotoPool.fingerprint`), so runs trained on other photos never share a folder."""
    if run.data_root is None:
        return "nodata"
    key = str(run.data_root)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = build_pool(run.data_root, verbose=False).fingerprint[:8]
    return _FINGERPRINTS[key]


def selected_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The model of record of a finished run: ``best.pt`` (the best validation score, chosen on validation only)
    when the run had a validation set, else ``final.pt``; ``None`` while the run is unfinished or truncated."""
    d = Path(run_dir)
    if not (d / "final.pt").is_file():
        return None
    return d / "best.pt" if (d / "best.pt").is_file() else d / "final.pt"


def default_run_dir(run: Any, method: str, variant: str = "full") -> Path:
    """``<repo>/runs/<preset>/<method>/<variant>/<data fingerprint>/seed<seed>``: the one run-folder scheme
    (``runs/`` is git-ignored)."""
    if method not in ("la", "ts"):
        raise ValueError(f"method must be 'la' or 'ts', got {method!r}")
    return REPO_ROOT / "runs" / run.preset.name / method / variant / data_fingerprint(run) / f"seed{run.seed}"


class RunLog:
    """Notes a run must not hide (VGG fallback, synthetic-only data, resume): kept in ``notes`` and
    ``train.log`` and echoed through logging (INFO on ``sirr.train.engine``)."""

    def __init__(self, run_dir: Path, enabled: bool = True, echo: bool = True) -> None:
        self.path = Path(run_dir) / "train.log"
        self.enabled = enabled
        self.echo = echo
        self.notes: list[str] = []

    def __call__(self, message: str) -> None:
        self.notes.append(message)
        if not self.enabled:
            return
        if self.echo:
            log.info("[train] %s", message)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")


class MetricsLog:
    """``metrics.jsonl``: one JSON object per logged step, flushed line by line (rank 0 only).

    On resume from step ``k`` the lines of steps > ``k`` (logged after the checkpoint, before the
    interruption) and any torn last line are dropped (the file is rewritten atomically), so the file
    never holds a step twice.
    """

    def __init__(self, path: Path, enabled: bool = True, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._fh = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[str] = []
        if resume_step is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and int(rec.get("step", 0)) <= resume_step:
                    kept.append(line)
        atomic_write_text(self.path, "".join(k + "\n" for k in kept))
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(record, sort_keys=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_metrics(run_dir_or_file: str | os.PathLike):
    """The metrics of a run as a ``pandas.DataFrame`` (columns: step, phase, lr, seconds and the loss names).

    Accepts a run folder (reads its ``metrics.jsonl``) or the file itself; a torn last line (a run
    killed mid-write) is skipped.
    """
    p = Path(run_dir_or_file)
    f = p / "metrics.jsonl" if p.is_dir() else p
    if not f.is_file():
        raise MetricsNotFoundError(f"no metrics file at {str(f)!r}; train first or pass a run folder")
    rows = []
    for line in f.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            rows.append(rec)
    df = pd.DataFrame(rows)
    if "step" in df:
        df = df.sort_values("step", kind="stable").reset_index(drop=True)
    return df


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
    def load_last(self, compatible: dict[str, Any]) -> dict[str, Any] | None:
        """``last.pt`` when resuming and present, after checking ``compatible`` entries match; else None.

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


def fit(session: Session, job: Job, *, overfit_batch: bool = False, time_guard_s: float | None = None) -> TrainResult:
    """Run (or resume) ``job`` for exactly the steps of its phases: one step at a time, logging every
    ``job.log_every`` steps, checkpointing every ``job.checkpoint_every`` steps and at the end of each phase,
    scoring the validation set (if any) every ``job.validate_every`` steps and at the end of each phase, and
    keeping the best-validation weights in ``best.pt``.

    The schedule is in steps, so the same preset and seed give the same steps and batches on any machine.
    ``time_guard_s`` is only a guard: when the run's wall time passes it, training stops at the next step
    boundary, saves, and the run is marked ``truncated`` (in the checkpoint, the metrics, the log and the
    result); resuming it later without the guard continues the same sequence. Returns the :class:`TrainResult`."""
    cap = sum(p.steps for p in job.phases)
    ck = session.load_last(job.compat)
    done = {p.name: 0 for p in job.phases}
    spent = {p.name: 0.0 for p in job.phases}
    start, last = 0, {}
    best: dict[str, Any] | None = None
    if ck is not None:
        mine = ck["per_rank"][session.dist.rank]
        job.restore(ck, mine)
        restore_rng(mine["rng"], session.device)
        start, last = int(ck["step"]), dict(ck.get("losses", {}))
        if start > cap:
            raise CheckpointError(f"{session.last_path} is at step {start}, past the {cap} steps asked; pass "
                                  "resume=False or more steps")
        done, spent = _phase_progress(ck, job.phases)
        best = ck.get("best_validation")
    session.open_metrics(start if ck is not None else None)
    job.wrap(session.dist)
    fixed = job.batch(job.phases[0]) if overfit_batch else None
    bar = progress_bar(cap, start, session.progress, desc=f"{job.kind.upper()} {session.run.preset.name}")
    samples_per_step = job.batch_size * session.dist.world_size
    step = start
    truncated = False

    def record() -> dict[str, Any]:
        return {"phase_steps": dict(done), "phase_seconds": {k: round(v, 3) for k, v in spent.items()},
                "samples_seen": step * samples_per_step, "time_guard_s": time_guard_s, "truncated": truncated,
                "best_validation": best}

    def save(phase_name: str) -> None:
        finished = step == cap and not truncated
        job.before_save()
        meta = {**job.meta(), "vgg_weights": job.vgg_note, "losses": last, "total_steps": cap,
                "notes": session.log.notes, **record()}
        session.save(step, "done" if finished else phase_name, job.states(), job.per_rank(), meta, job.compat,
                     final_model={"model": job.model.state_dict()} if finished else None)

    job.model.train()
    try:
        for phase in job.phases:
            while done[phase.name] < phase.steps:
                t0 = time.perf_counter()
                job.set_phase(phase)
                vals = job.step(phase, fixed if fixed is not None else job.batch(phase))
                done[phase.name] += 1
                step += 1
                bar.update(1)
                ends = done[phase.name] == phase.steps
                if step % job.log_every == 0 or ends:  # and the last step of each phase
                    last = vals
                    session.metrics.write({"step": step, "phase": phase.name, "lr": phase.lr, **vals,
                                           "seconds": round(session.elapsed(), 3), "data_state": data_state(job),
                                           "vgg_weights": job.vgg_note})
                    bar.set_postfix(phase=phase.name, loss=f"{vals['total']:.4f}")
                if job.validation is not None and (step % job.validate_every == 0 or ends):
                    job.model.eval()
                    scores = job.validation.score(lambda x, ph=phase: job.predict(ph, x))
                    job.model.train()
                    job.set_phase(phase)
                    session.metrics.write({"step": step, "phase": phase.name, "validation": True, **scores,
                                           "seconds": round(session.elapsed(), 3)})
                    if job.selects_best(phase) and (best is None or scores["val_psnr"] > best["val_psnr"]):
                        best = {"step": step, "phase": phase.name, **scores}
                        job.before_save()
                        session.save_best(best, {**job.meta(), "vgg_weights": job.vgg_note, "total_steps": cap,
                                                 "samples_seen": step * samples_per_step},
                                          {"model": job.model.state_dict()})
                spent[phase.name] += time.perf_counter() - t0
                if step < cap and time_guard_s is not None and session.elapsed() > time_guard_s:
                    truncated = True  # checked after a step, so every call makes progress
                    break
                if step % job.checkpoint_every == 0 or ends:
                    save(phase.name)
            if truncated:
                break
        if truncated:
            save("truncated")
            session.log(f"TRUNCATED: the {time_guard_s:.0f} s time guard stopped the run at step {step} of {cap}; "
                        "this is not the preset's model (resume without the guard to finish it)")
            session.metrics.write({"step": step, "truncated": True, "seconds": round(session.elapsed(), 3)})
    finally:
        bar.close()
    job.before_save()
    summary = job.summary() if not truncated else f"{job.kind.upper()}: TRUNCATED at step {step} of {cap}"
    result = session.result(job.model, summary, steps=step, start=start, resumed=ck is not None, losses=last)
    if truncated:  # no final.pt: a truncated run is never taken for a finished one
        result.checkpoint = session.last_path
    result.progress = record()
    result.truncated = truncated
    result.best = best
    return result
