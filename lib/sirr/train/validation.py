"""A fixed synthetic validation set, scored while a network trains (preset ``validation``).

Its photos are held out of the training pool (:func:`hold_out`: the photos whose names hash lowest,
so the choice does not depend on listing order), and its triples are drawn once, with a fixed seed,
by one recipe for both methods (preset ``validation.recipe``), so LA's and TS's curves share one identity
line. :class:`ValidationSet` scores the network's current estimate of T against the ground truth (PSNR and
SSIM, LA convention) beside the identity baseline (the input itself).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sirr.data.pool import PhotoPool
from sirr.data.synthesis import ReflectionSynthesizer
from sirr.metrics import psnr, ssim

__all__ = ["hold_out", "ValidationSet", "VALIDATION_SEED", "held_out_validation", "split_for_validation"]

#: Seed of the validation triples (the same triples for every training seed).
VALIDATION_SEED = 20_211_019


def _name(photos: Sequence, i: int) -> str:
    if isinstance(photos, PhotoPool):
        return photos.photos[i].name
    item = photos[i]
    return str(item[0]) if isinstance(item, tuple) else f"photo-{i}"


def hold_out(photos: Sequence, n: int) -> tuple[Sequence, Sequence]:
    """``(training photos, held-out photos)``: the ``n`` photos whose names hash lowest (sha256) are held out."""
    if n <= 0:
        return photos, []
    if n > len(photos) - 2:
        raise ValueError(f"cannot hold out {n} validation photos from a pool of {len(photos)}: at least 2 must "
                         "remain for training")
    order = sorted(range(len(photos)), key=lambda i: hashlib.sha256(_name(photos, i).encode()).hexdigest())
    held = set(order[:n])
    keep = [i for i in range(len(photos)) if i not in held]
    if isinstance(photos, PhotoPool):
        return photos.select(keep), photos.select(sorted(held))
    return [photos[i] for i in keep], [photos[i] for i in sorted(held)]


class ValidationSet:
    """``len(photos)`` synthetic triples at ``size`` px by ``recipe`` (``"la"`` or ``"ts"``), drawn once."""

    def __init__(self, photos: Sequence, recipe: str, size: int, device: torch.device | str = "cpu",
                 batch_size: int = 4) -> None:
        synth = ReflectionSynthesizer(photos, recipe=recipe, size=size, device="cpu", seed=VALIDATION_SEED)
        b = synth.batch(len(photos))
        self.I, self.T = b["I"].to(device), b["T"].to(device)
        self.R = b["R"].to(device)  # the reflection as it appears in I (for the claim experiments' measures)
        self.names = [_name(photos, i) for i in range(len(photos))]
        self.batch_size = batch_size
        self.recipe, self.size = recipe, size
        self.identity_psnr, self.identity_ssim = self._means(self.I)

    def __len__(self) -> int:
        return int(self.I.shape[0])

    def _means(self, pred: torch.Tensor) -> tuple[float, float]:
        p = pred.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        t = self.T.float().permute(0, 2, 3, 1).cpu().numpy()
        return (float(np.mean([psnr(a, b, "la") for a, b in zip(p, t)])),
                float(np.mean([ssim(a, b, "la") for a, b in zip(p, t)])))

    def score_output(self, pred: torch.Tensor) -> tuple[float, float]:
        """Mean PSNR and SSIM (LA convention) of ``pred`` (one output per triple, in order) against T."""
        if pred.shape != self.T.shape:
            raise ValueError(f"ValidationSet.score_output: need one output per triple, {tuple(self.T.shape)}; "
                             f"got {tuple(pred.shape)}")
        return self._means(pred)

    @torch.no_grad()
    def score(self, predict: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, Any]:
        """``{"val_psnr", "val_ssim", "val_identity_psnr", "val_identity_ssim"}`` of ``predict`` (the caller puts
        the network in eval mode)."""
        outs = [predict(self.I[i: i + self.batch_size]).float() for i in range(0, len(self), self.batch_size)]
        p, s = self._means(torch.cat(outs))
        return {"val_psnr": round(p, 4), "val_ssim": round(s, 4), "val_identity_psnr": round(self.identity_psnr, 4),
                "val_identity_ssim": round(self.identity_ssim, 4)}


def held_out_validation(run: Any, photos: Sequence, device: torch.device | str = "cpu"
                        ) -> tuple[Sequence, ValidationSet | None]:
    """``(training photos, validation set)``: ``run.preset.validation.photos`` held out of ``photos`` and made
    into triples by the preset's one validation recipe; ``(photos, None)`` when the preset holds none out."""
    val = run.preset.validation
    if not val.photos:
        return photos, None
    photos, held = hold_out(photos, val.photos)
    return photos, ValidationSet(held, val.recipe, val.size, device)


def split_for_validation(run: Any, photos: Sequence, device: torch.device | str, every: int,
                         log: Callable[[str], None]) -> tuple[Sequence, ValidationSet | None]:
    """:func:`held_out_validation` for a training job, said in one line of its log."""
    photos, vset = held_out_validation(run, photos, device)
    if vset is not None:
        log(f"validation: {len(vset)} photos held out of the training pool, {len(vset)} {vset.recipe.upper()} triples "
            f"at {vset.size} px (identity PSNR {vset.identity_psnr:.2f} dB, SSIM {vset.identity_ssim:.3f}), scored "
            f"every {every} steps")
    return photos, vset
