"""Seeding, deterministic algorithms and the RNG state a checkpoint carries for a bit-exact resume.

:func:`seed_everything` seeds ``random``, NumPy and torch; :func:`configure_determinism` calls
``torch.use_deterministic_algorithms(True, warn_only=True)``. On the CPU this makes the same preset and seed give
bitwise-identical weights (same PyTorch build and thread count). On CUDA it also sets
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (before the first cuBLAS call) and ``torch.backends.cudnn.deterministic = True``
/ ``benchmark = False``; see :data:`CUDA_DETERMINISM_NOTES` for what stays non-deterministic there.

:func:`capture_rng` / :func:`restore_rng` turn every RNG state (torch, NumPy, Python, CUDA) into tensors and
primitives and back, so that a checkpoint holding them loads with ``weights_only=True``.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

__all__ = ["CUDA_DETERMINISM_NOTES", "seed_everything", "configure_determinism", "capture_rng", "restore_rng"]

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
