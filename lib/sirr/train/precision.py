"""How a network runs: bf16 autocast where the hardware computes in bf16, fp32 elsewhere.

Training and inference share it: :func:`resolve_precision` turns a preset's ``precision`` ("auto", "fp32",
"bf16") into a :class:`Precision` for a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Precision", "cpu_has_native_bf16", "resolve_precision"]


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
