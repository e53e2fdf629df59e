"""Trained weights that ship with the book: a run's ``final.pt`` exported in fp16, listed in the checkpoint manifest.

The committed weights live in ``results/<preset>/weights/<method>-<preset>-seed<seed>.fp16.pt`` (our checkpoint
format: ``weights_only``-loadable, the model's constructor arguments inside, the network only: no optimiser,
no discriminator). Each is listed in ``results/checkpoints.json`` (:func:`sirrbook.results.register_checkpoint`)
with its sha256, the preset, the steps and samples seen, the training pool's fingerprint, the VGG-19 source,
the commit and the machine it was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sirr.atomic import atomic_write
from sirrbook.results import load_manifest, register_checkpoint, sha256_file
from sirr.train.engine import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint

__all__ = ["export_weights", "committed_weights", "weights_name"]

_KEEP = ("model_kwargs", "loss_kwargs", "step", "phase", "vgg_weights", "losses", "provenance", "samples_seen",
         "phase_steps", "phase_seconds", "time_guard_s", "truncated", "best_validation", "total_steps", "pool", "precision", "validation_photos", "config",
         "stage1_steps", "stage2_steps", "use_adversarial", "use_feature_reduction", "stage2_edges", "vgg_normalize")


def weights_name(method: str, preset: str, seed: int) -> str:
    """The manifest key and file stem of committed weights, e.g. ``la-cpu-seed0``."""
    return f"{method}-{preset}-seed{seed}"


def export_weights(checkpoint: str | Path, run, *, dtype: torch.dtype = torch.float16,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the network of ``checkpoint`` (a finished run's model of record: ``best.pt`` or ``final.pt``) in ``dtype``
    to ``results/<preset>/weights/`` and list it in the manifest; ``extra`` (e.g. the load average while it trained)
    is recorded too. A truncated run's checkpoint is refused. Returns the entry."""
    ck = load_checkpoint(checkpoint)
    if ck.get("truncated") or ck.get("phase") not in ("done", "best"):
        raise ValueError(f"{checkpoint} is from an unfinished or truncated run (phase {ck.get('phase')!r}); only a "
                         "finished run's final.pt or best.pt can be committed")
    kind, cfg = ck["kind"], ck["config"]
    preset, seed = cfg["preset"]["name"], int(cfg["seed"])
    if preset != run.preset.name or seed != run.seed:
        raise ValueError(f"{checkpoint} is preset {preset!r} seed {seed}; the run is {run.preset.name!r} seed {run.seed}")
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in ck["model"].items()}
    out = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, "dtype": str(dtype),
           **{k: ck[k] for k in _KEEP if k in ck}, "model": state}
    name = weights_name(kind, preset, seed)
    path = atomic_write(Path(run.results_dir) / preset / "weights" / f"{name}.fp16.pt", lambda fh: torch.save(out, fh))
    pool = ck.get("pool") or {}
    info = {
        "method": kind, "dtype": str(dtype), "steps": int(ck.get("total_steps") or ck["step"]),
        "selected_step": int(ck["step"]), "checkpoint": "best.pt" if ck.get("phase") == "best" else "final.pt",
        "best_validation": ck.get("best_validation"), "samples_seen": ck.get("samples_seen"),
        "crop": cfg["preset"][kind]["crop"], "phase_steps": ck.get("phase_steps"),
        "phase_seconds": ck.get("phase_seconds"),
        "pool_fingerprint": pool.get("fingerprint"), "pool_size": pool.get("size"),
        "vgg_weights": ck.get("vgg_weights"), "precision": ck.get("precision"),
        "parameters": int(sum(v.numel() for v in state.values() if v.is_floating_point())),
        "trained_commit": ck.get("provenance", {}).get("commit"), "trained_device": ck.get("provenance", {}).get("device"),
        "trained": ck.get("provenance", {}).get("created"), **(extra or {}),
    }
    return register_checkpoint(path, run, name, extra=info)


def committed_weights(run_or_results_dir, method: str = "la", preset: str = "cpu",
                      seed: int = 0) -> tuple[Path, dict[str, Any]] | None:
    """``(path, manifest entry)`` of the committed weights of ``method`` at ``preset``/``seed``, checked against the
    manifest's sha256; ``None`` when there are none. A file whose hash differs is an error (a Git LFS pointer?)."""
    results_dir = Path(getattr(run_or_results_dir, "results_dir", run_or_results_dir))
    entry = load_manifest(results_dir).get("checkpoints", {}).get(weights_name(method, preset, seed))
    if entry is None:
        return None
    path = results_dir.parent / entry["path"]
    if not path.is_file():
        return None
    if sha256_file(path) != entry["sha256"]:
        raise ValueError(f"{path}: its sha256 differs from results/checkpoints.json (a Git LFS pointer or a damaged "
                         "file?); restore it with git checkout")
    return path, entry
