"""Training of both methods: LA (Dong et al. 2021) and TS (Li & Lun 2019), at a preset.

``train_location_aware`` / ``train_two_stage`` run (or resume) a training at ``run``'s preset and
return a :class:`TrainResult`; ``load_location_aware`` / ``load_two_stage`` read the checkpoints
they write; ``read_metrics`` gives the logged losses as a DataFrame. The loop both share is
:mod:`sirr.train.engine` (``fit`` and the ``Session`` around it); each other job of training is a module of its
own: :mod:`~sirr.train.precision`, :mod:`~sirr.train.determinism` (seeding, RNG state), :mod:`~sirr.train.ddp`,
:mod:`~sirr.train.checkpoint` (atomic ``weights_only`` checkpoints), :mod:`~sirr.train.logs` (``train.log``,
``metrics.jsonl``) and :mod:`~sirr.train.rundir` (run-folder names, which never read the data).
The command line ``python -m sirr train`` is :mod:`sirrbook.train_cli` (above this package: it goes
through :mod:`sirr.methods`).
"""

from sirr.train.engine import (
    CUDA_DETERMINISM_NOTES,
    CheckpointError,
    CheckpointNotFoundError,
    MetricsNotFoundError,
    TrainResult,
    default_run_dir,
    load_checkpoint,
    read_metrics,
    selected_checkpoint,
)
from sirr.train.location_aware import load_location_aware, train_location_aware
from sirr.train.two_stage import load_two_stage, train_two_stage

__all__ = [
    "CUDA_DETERMINISM_NOTES",
    "CheckpointError",
    "CheckpointNotFoundError",
    "MetricsNotFoundError",
    "TrainResult",
    "default_run_dir",
    "load_checkpoint",
    "read_metrics",
    "selected_checkpoint",
    "train_location_aware",
    "load_location_aware",
    "train_two_stage",
    "load_two_stage",
]
