"""``python -m sirr train la|ts``: one training at a preset, single process or under ``torchrun``.

Multi-GPU (or multi-process CPU) training uses PyTorch's own launcher, e.g.::

    torchrun --nproc_per_node 4 -m sirr train la --preset demo
    torchrun --nproc_per_node 2 -m sirr train ts --preset smoke --device cpu   # gloo on the CPU

Each process trains on its own GPU (``cuda:LOCAL_RANK``, NCCL) or on the CPU (gloo); rank 0
writes the checkpoints and the metrics. This module sits above :mod:`sirr.methods` and
:mod:`sirr.train` (it imports both); nothing in the library imports it. Its ``print`` calls are the
command's own output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sirr.config import resolve
from sirr.methods import get_method
from sirr.provenance import header

__all__ = ["train_cli"]


def train_cli(method: str, preset: str = "smoke", seed: int = 0, device: str | None = None,
              data_root: str | None = None, results_dir: str | None = None, run_dir: str | None = None,
              resume: bool = False, overrides: dict[str, Any] | None = None):
    """Resolve the run, train ``method`` ("la" or "ts") and print where the checkpoints and metrics went.

    Without ``--resume`` an existing run folder is started over; with it, training continues from
    its ``last.pt`` (or returns at once when that run is finished).
    """
    m = get_method(method)
    run = resolve(preset, seed=seed, device=device, data_root=data_root, results_dir=results_dir,
                  **(overrides or {}))
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        print(header(run), flush=True)
    result = m.train(run, run_dir=Path(run_dir) if run_dir else None, resume=resume, progress=True)
    if main:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items() if k != "seconds")
        print(f"trained {method.upper()} for {result.steps} steps in {result.seconds:.1f} s"
              + (f" (resumed from step {result.resumed_from})" if result.resumed_from is not None else ""))
        if result.truncated:
            print(f"TRUNCATED: the time guard stopped the run at step {result.steps}; it is not the preset's model "
                  "(run again with --resume to finish it)")
        print(f"final losses: {losses}")
        if result.best is not None:
            print(f"best validation: {result.best['val_psnr']:.2f} dB at step {result.best['step']} "
                  f"(identity {result.best['val_identity_psnr']:.2f} dB): {result.best_checkpoint}")
        print(f"checkpoint: {result.checkpoint}  (resume state: {result.run_dir / 'last.pt'})")
        print(f"metrics:    {result.metrics_path}  (sirr.train.read_metrics)")
        print(f"log:        {result.run_dir / 'train.log'}")
    return result
