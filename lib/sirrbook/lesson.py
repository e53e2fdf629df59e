"""Chapter 05's ten-minute experiment: TS's second stage F2 learns to rebuild a background from its edges.

TS Sec. III: F2 takes z = [I, E_B, E_R] and returns B_final, trained on L_2 (Eq. 7). Here E_B and E_R
come from the ground truth, as the release trains F2 (:func:`sirr.models.two_stage.ground_truth_edge_sets`),
so F2 only has to learn to fill in a background between edges it is told about. The recipe is the same at
every preset except ``smoke`` (a laptop experiment: a quarter of the release's widths, 96 px crops, batch 4,
fp32, step budget), and F2 is scored every few steps on held-out triples against the identity baseline.

``edges="none"`` feeds z = [I, 0, 0]: the same network and steps without the edge hint (the chapter's
exercise). The adversarial term is left out: its weighted value is about 4e-4 of L_2 at this scale (chapter
07), and the critic would double the cost of a step.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import trange

from sirr.config import RunConfig
from sirr.data.pool import natural_photos
from sirr.data.synthesis import ReflectionSynthesizer
from sirr.errors import SirrError
from sirr.losses.two_stage import stage2_generator_loss, two_stage_vgg
from sirr.models.two_stage import TwoStage, ground_truth_edge_sets
from sirr.train.determinism import seed_everything
from sirr.train.validation import ValidationSet, hold_out
from sirrbook.results import load_or_compute

EDGE_INPUTS = ("ground_truth", "none")


class LessonError(SirrError, ValueError):
    """A bad argument to the ten-minute experiment."""


@dataclass(frozen=True)
class EdgeLesson:
    """The ten-minute experiment's recipe (optimiser steps, not seconds: the same run on any machine)."""

    steps: int = 600
    evaluate_every: int = 50
    batch_size: int = 4
    crop: int = 96
    width_scale: float = 0.25  # of the release's widths (the `cpu` preset's TS)
    held_out: int = 16  # photos held out of the training pool and scored (their triples are drawn once)
    examples: int = 3  # held-out triples whose outputs are kept as pictures


#: ``smoke`` checks the plumbing in seconds; every other preset runs the laptop recipe.
LESSONS = {"smoke": EdgeLesson(steps=4, evaluate_every=2, crop=64, held_out=4, examples=2)}


def lesson_recipe(run: RunConfig) -> EdgeLesson:
    return LESSONS.get(run.preset.name, EdgeLesson())


def _edges(I: torch.Tensor, T: torch.Tensor, R: torch.Tensor, edges: str) -> torch.Tensor:
    """z = [I, E_B, E_R] (TS Sec. III) with ideal edges, or [I, 0, 0] without them."""
    if edges == "none":
        return torch.cat([I, torch.zeros_like(I), torch.zeros_like(I)], dim=1)
    e_b, e_r = ground_truth_edge_sets(I, T, R)
    return torch.cat([I, e_b, e_r], dim=1)


def _picture(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def edges_to_background(run: RunConfig, edges: str = "ground_truth", recipe: EdgeLesson | None = None, *,
                        progress: bool = True, verbose: bool = True) -> dict:
    """Train F2 alone from ideal edges for ``recipe.steps`` steps and score it as it learns; stored under
    ``results/<preset>/lesson/edges_<edges>/<seed>.json`` with pictures (a rerun reads it, ``retrain`` redoes it).

    Returns the stored record: ``curve`` (one row per evaluation: ``step``, held-out ``psnr`` and ``ssim``
    of F2's output, and the training ``loss`` averaged since the last row), ``identity_psnr``/``identity_ssim``
    (doing nothing, I as the answer), ``seconds``, ``threads`` and the recipe. Pictures: ``input_k``,
    ``edges_k`` (E_B, what F2 is told), ``before_k`` (step 0), ``after_k`` (last step), ``truth_k``.
    """
    if edges not in EDGE_INPUTS:
        raise LessonError(f"edges must be one of {', '.join(EDGE_INPUTS)}; got {edges!r}")
    recipe = recipe or lesson_recipe(run)
    if recipe.steps < 1 or recipe.evaluate_every < 1:
        raise LessonError(f"the lesson needs steps >= 1 and evaluate_every >= 1; got {recipe}")
    pictures: dict[str, np.ndarray] = {}

    def compute() -> dict:
        seed_everything(run.seed)
        photos = natural_photos(run.data_root_arg)
        train_photos, held = hold_out(photos, min(recipe.held_out, len(photos) - 2))
        vs = ValidationSet(held, "ts", recipe.crop)
        z_held = _edges(vs.I, vs.T, vs.R, edges)
        f2 = TwoStage(width_scale=recipe.width_scale, generator=torch.Generator().manual_seed(run.seed)).stage2
        vgg = two_stage_vgg(weights=run.preset.vgg_weights, normalize=run.preset.ts.vgg_normalize)
        opt = torch.optim.RMSprop(f2.parameters(), lr=run.preset.ts.lr_stage2)
        synth = ReflectionSynthesizer(train_photos, recipe="ts", size=recipe.crop, seed=run.seed)

        @torch.no_grad()
        def outputs() -> torch.Tensor:
            f2.eval()
            step = vs.batch_size
            out = torch.cat([f2(z_held[i: i + step]) for i in range(0, len(vs), step)]).clamp(0, 1)
            f2.train()
            return out

        def evaluate(step: int, losses: list[float]) -> dict:
            psnr, ssim = vs.score_output(outputs())
            return {"step": step, "psnr": round(psnr, 4), "ssim": round(ssim, 4),
                    "loss": round(float(np.mean(losses)), 6) if losses else None}

        k = min(recipe.examples, len(vs))
        before = outputs()
        for i in range(k):
            pictures.update({f"input_{i}": _picture(vs.I[i]), f"edges_{i}": _picture(z_held[i, 3:6]),
                             f"before_{i}": _picture(before[i]), f"truth_{i}": _picture(vs.T[i])})
        curve, losses, t0 = [evaluate(0, [])], [], time.perf_counter()
        for step in trange(1, recipe.steps + 1, desc=f"F2 from edges={edges}", disable=not progress):
            b = synth.batch(recipe.batch_size)
            out = f2(_edges(b["I"], b["T"], b["R"], edges))
            loss = stage2_generator_loss(vgg, out, b["T"], None, use_adversarial=False)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if step % recipe.evaluate_every == 0 or step == recipe.steps:
                curve.append(evaluate(step, losses))
                losses = []
        seconds = time.perf_counter() - t0
        after = outputs()
        for i in range(k):
            pictures[f"after_{i}"] = _picture(after[i])
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return {"edges": edges, "recipe": dataclasses.asdict(recipe), "curve": curve,
                "identity_psnr": round(vs.identity_psnr, 4), "identity_ssim": round(vs.identity_ssim, 4),
                "held_out": list(vs.names), "train_photos": len(train_photos), "seconds": round(seconds, 1),
                "threads": torch.get_num_threads(), "load_average_1min_at_end": load,
                "loss_network": vgg.description, "f2_parameters": sum(p.numel() for p in f2.parameters())}

    return load_or_compute(run, f"lesson/edges_{edges}", compute, seed=run.seed, images=lambda: pictures,
                           verbose=verbose)
