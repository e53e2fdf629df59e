"""Inference paths: the ways a trained network can run on a device, and the one ``sirr bench`` chose.

A path is a :class:`~sirr.train.engine.Precision` (fp32 or bf16 autocast, NCHW or channels_last).
``python -m sirr bench`` times every path available on a device *on trained weights* and keeps the
fastest one whose output scores at least :data:`MIN_PSNR_DB` PSNR against the fp32 output
(:func:`output_psnr`); it writes that choice as ``remove_path`` into
``results/bench/<device-slug>.json``. ``python -m sirr remove`` then runs in that path
(:func:`precision_for`); without a bench report for the device it falls back to
:func:`sirr.train.engine.resolve_precision` ``("auto")``: bf16 autocast + channels_last where the
hardware computes in bf16, fp32 elsewhere.
"""

from __future__ import annotations

import ctypes
import json
import math
import platform
import re
from pathlib import Path

import torch

from sirr.metrics import _psnr
from sirr.paths import REPO_ROOT
from sirr.train.engine import Precision, cpu_has_native_bf16, resolve_precision

__all__ = ["MIN_PSNR_DB", "PATHS", "paths_here", "device_slug", "cpu_model", "bench_report_path", "chosen_path",
           "precision_for", "inference_precision", "output_psnr", "reuse_freed_memory"]

#: A faster path is used only if its output is at least this close to the fp32 output (PSNR, dB).
MIN_PSNR_DB = 40.0

#: Every path by its name in the bench report (compiled variants are bench-only and not listed).
PATHS: dict[str, Precision] = {
    "fp32 eager": Precision("fp32", autocast=False, channels_last=False),
    "fp32 channels_last": Precision("fp32", autocast=False, channels_last=True),
    "bf16 autocast channels_last": Precision("bf16", autocast=True, channels_last=True),
}


def paths_here(device: str) -> list[str]:
    """The names of :data:`PATHS` worth running on ``device``: bf16 only on CUDA or a CPU with native bf16
    (:func:`~sirr.train.engine.cpu_has_native_bf16`; emulated bf16 is many times slower than fp32)."""
    names = ["fp32 eager", "fp32 channels_last"]
    if str(device).startswith("cuda") or cpu_has_native_bf16():
        names.append("bf16 autocast channels_last")
    return names


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere; may be empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def device_slug(device: str) -> str:
    """File-name slug of a device: ``cpu-x86_64-avx2-2threads`` (architecture, PyTorch's CPU capability, threads:
    what decides which path is fastest) or ``cuda-nvidia-h200``."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        name = f"cuda-{torch.cuda.get_device_name(torch.device(device))}"
    else:
        name = (f"cpu-{platform.machine() or 'unknown'}-{torch.backends.cpu.get_cpu_capability()}-"
                f"{torch.get_num_threads()}threads")
    return re.sub(r"[^a-z0-9_.]+", "-", name.lower()).strip("-")


def bench_report_path(device: str, bench_dir: str | Path | None = None) -> Path:
    """Where ``sirr bench`` writes its report for ``device``: ``results/bench/<device-slug>.json``."""
    return Path(bench_dir or REPO_ROOT / "results" / "bench") / f"{device_slug(device)}.json"


def chosen_path(device: str, bench_dir: str | Path | None = None) -> dict | None:
    """The bench's ``remove_path`` entry for ``device`` (path, size, psnr_vs_fp32_db, speedup, weights), or
    ``None`` when there is no report, it was measured on random weights, or the path cannot run here."""
    path = bench_report_path(device, bench_dir)
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    choice = report.get("remove_path") if isinstance(report, dict) else None
    if not isinstance(choice, dict) or choice.get("path") not in paths_here(device):
        return None
    if not (choice.get("weights") or {}).get("trained"):
        return None
    return {**choice, "report": str(path)}


def precision_for(device: str, bench_dir: str | Path | None = None) -> tuple[Precision, str]:
    """The path ``sirr remove`` runs in on ``device`` and a few words on why."""
    choice = chosen_path(device, bench_dir)
    if choice is not None:
        db = choice.get("psnr_vs_fp32_db")
        close = "identical to fp32" if db is None else f"{db:.1f} dB vs fp32"
        return PATHS[choice["path"]], (f"{choice['path']} (fastest path of sirr bench at {choice.get('size')} on "
                                        f"trained weights, {close})")
    precision = resolve_precision("auto", device)
    return precision, f"{precision.describe()} (no bench report for this device: resolve_precision('auto'))"


def inference_precision(method, device: str, bench_dir: str | Path | None = None) -> tuple[Precision, str]:
    """The path a trained network of ``method`` (a :class:`sirr.methods.Method`) runs in on ``device``, and why:
    :func:`precision_for` for a network the bench measures (:attr:`~sirr.methods.Method.benchmarked`), else
    ``resolve_precision("auto")``. ``sirr remove``, the experiments and the chapters all run through it."""
    if method.benchmarked:
        return precision_for(device, bench_dir)
    precision = resolve_precision("auto", device)
    return precision, (f"{precision.describe()} (resolve_precision('auto'); sirr bench does not measure "
                       f"{method.name.upper()})")


def output_psnr(out: torch.Tensor, ref: torch.Tensor) -> float | None:
    """PSNR (dB, peak 1; :mod:`sirr.metrics`' formula) of ``out`` against ``ref`` after clamping both to [0, 1];
    ``None`` when identical (JSON has no infinity)."""
    db = _psnr(out.detach().float().clamp(0, 1).cpu().numpy(), ref.detach().float().clamp(0, 1).cpu().numpy(), 1.0)
    return None if math.isinf(db) else db


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_LIBC: list = []


def reuse_freed_memory(on: bool = True) -> bool:
    """CPU allocator setting of the fast path: let glibc keep freed activation buffers for reuse.

    By default glibc hands every allocation above 32 MiB straight to ``mmap`` and back to the kernel
    on ``free``, so each of the ~1000 activations of a 400×540 forward (a 64-channel map is 55 MB)
    is page-faulted afresh: ~1.2 million minor faults and ~2 s of system time per forward on the
    2-core machine. ``on=True`` raises the mmap threshold to 1 GiB and the trim threshold to 2 GiB
    (buffers are reused, ~7 thousand faults, no change in any number); ``on=False`` restores
    thresholds of 32 / 64 MiB (glibc's dynamic defaults for large blocks). Process-wide; returns
    False where the C library is not glibc.
    """
    if not _LIBC:
        try:
            _LIBC.append(ctypes.CDLL("libc.so.6"))
        except OSError:
            _LIBC.append(None)
    libc = _LIBC[0]
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    mmap_t, trim_t = ((1 << 30), (1 << 31) - 1) if on else (32 << 20, 64 << 20)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_t)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_t))
