"""Every chapter's first cell: one call instead of the same setup lines in nine notebooks."""

from __future__ import annotations

import os

import torch

from sirr.config import RunConfig, resolve
from sirr.messages import show_messages
from sirr.provenance import header


def open_chapter(preset: str, *, seed: int = 0, device: str | None = None,
                 data_root: str | os.PathLike | None = None, results_dir: str | os.PathLike | None = None,
                 retrain: bool = False) -> RunConfig:
    """Resolve the chapter's run from its papermill parameters, print its provenance header (preset, seed,
    device, commit), show the library's progress lines below the cells that make them, and seed torch."""
    run = resolve(preset, seed=seed, device=device, data_root=data_root, results_dir=results_dir, retrain=retrain)
    print(header(run))
    show_messages()
    torch.manual_seed(run.seed)
    return run
