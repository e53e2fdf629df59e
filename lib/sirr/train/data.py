"""What a run learns from, built once before its job: the training pool after the validation hold-out, the
synthetic stream drawn from it, the validation triples and (LA) the real pairs.

The trainers (:func:`sirr.train.location_aware.train_location_aware`, :func:`sirr.train.two_stage.train_two_stage`)
build a :class:`TrainingData` and hand it to their job, so a job's ``__init__`` only builds networks and
optimisers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sirr.data.pool import natural_photos
from sirr.data.synthesis import ReflectionSynthesizer
from sirr.train.validation import ValidationSet, split_for_validation

__all__ = ["TrainingData", "synthetic_training_data"]


@dataclass
class TrainingData:
    """A run's data: ``synth`` (the synthetic stream, seeded ``seed + rank``), ``validation`` (None without a
    preset validation set), ``pool_record`` (the pool after the hold-out, for manifests) and, for LA, the real-pair
    samplers used from step 0 (``real``) and from the fine-tuning switch on (``real_ft``)."""

    synth: ReflectionSynthesizer
    validation: ValidationSet | None
    pool_record: dict[str, Any]
    real: Any = None
    real_ft: Any = None

    @property
    def validation_photos(self) -> list[str]:
        return list(self.validation.names) if self.validation is not None else []


def synthetic_training_data(run: Any, recipe: str, crop: int, device: torch.device, rank: int, validate_every: int,
                            log: Callable[[str], None], photos: Sequence | None = None) -> TrainingData:
    """The leak-free pool (or ``photos``), less the preset's validation photos, as a ``recipe`` synthesizer at ``crop``
    px; says what it built in the run's log."""
    if photos is None:
        photos = natural_photos(run.data_root_arg, verbose=False)  # summarised in the log just below
    if hasattr(photos, "summary"):
        log(photos.summary())
    photos, validation = split_for_validation(run, photos, device, validate_every, log)
    record = photos.describe() if hasattr(photos, "describe") else {"size": len(photos)}
    synth = ReflectionSynthesizer(photos, recipe=recipe, size=crop, device=device, seed=run.seed + rank)
    return TrainingData(synth, validation, record)
