"""Trained weights that ship with the book: export a run's ``final.pt`` in fp16 with a manifest, find them again.

The committed weights live in ``results/<preset>/weights/`` as ``<method>-<preset>-seed<seed>.fp16.pt``
(our checkpoint format: ``weights_only``-loadable, the model's constructor arguments inside) beside
``manifest.json``, which records for each file its sha256, the preset, the steps and samples seen, the
training pool's fingerprint, the VGG-19 source, the commit and the machine it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from sirr.atomic import atomic_write, atomic_write_text
from sirr.config import REPO_ROOT
from sirr.train.engine import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, plain

__all__ = ["export_weights", "committed_weights", "read_manifest", "sha256_of", "weights_dir"]


def weights_dir(preset: str = "cpu", results_dir: str | Path | None = None) -> Path:
    return Path(results_dir or REPO_ROOT / "results") / preset / "weights"


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """``manifest.json`` of a weights folder (``{}`` when there is none)."""
    p = Path(folder) / "manifest.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def export_weights(checkpoint: str | Path, out_dir: str | Path, *, dtype: torch.dtype = torch.float16,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the model of ``checkpoint`` (a run's ``final.pt``) in ``dtype`` to ``out_dir`` and add it to the manifest.

    Only the network's weights are kept (no optimiser, no discriminator); floating tensors are cast to
    ``dtype``. ``extra`` (e.g. the load average during training) is recorded in the manifest entry.
    Returns that entry.
    """
    ck = load_checkpoint(checkpoint)
    kind, cfg = ck["kind"], ck["config"]
    preset, seed = cfg["preset"]["name"], int(cfg["seed"])
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in ck["model"].items()}
    keep = ("model_kwargs", "loss_kwargs", "step", "phase", "vgg_weights", "losses", "provenance", "samples_seen",
            "phase_steps", "phase_seconds", "time_budget_s", "pool", "precision", "validation_photos", "config",
            "stage1_steps", "stage2_steps", "use_adversarial", "use_feature_reduction", "stage2_edges")
    out = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, "dtype": str(dtype),
           **{k: ck[k] for k in keep if k in ck}, "model": state}
    name = f"{kind}-{preset}-seed{seed}.{str(dtype).removeprefix('torch.').replace('float16', 'fp16')}.pt"
    path = atomic_write(Path(out_dir) / name, lambda fh: torch.save(out, fh))
    pool = ck.get("pool", {})
    entry = {
        "file": name, "sha256": sha256_of(path), "bytes": path.stat().st_size, "method": kind, "preset": preset,
        "seed": seed, "dtype": str(dtype), "parameters": int(sum(v.numel() for v in state.values()
                                                                if v.is_floating_point())),
        "steps": int(ck["step"]), "samples_seen": ck.get("samples_seen"), "crop": cfg["preset"][kind]["crop"], "phase_steps": ck.get("phase_steps"), "phase_seconds": ck.get("phase_seconds"),
        "time_budget_s": ck.get("time_budget_s"), "pool_fingerprint": pool.get("fingerprint"),
        "pool_size": pool.get("size"), "validation_photos": len(ck.get("validation_photos", [])),
        "vgg_weights": ck.get("vgg_weights"), "precision": ck.get("precision"),
        "commit": ck.get("provenance", {}).get("commit"), "device": ck.get("provenance", {}).get("device"),
        "trained": ck.get("provenance", {}).get("created"), **(extra or {}),
    }
    manifest = read_manifest(out_dir)
    manifest[name] = plain(entry)
    atomic_write_text(Path(out_dir) / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return entry


def committed_weights(method: str = "la", preset: str = "cpu", seed: int = 0,
                      results_dir: str | Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """``(path, manifest entry)`` of the committed weights of ``method`` at ``preset``/``seed``, checked
    against the manifest's sha256; ``None`` when there are none. A file whose hash differs is an error."""
    folder = weights_dir(preset, results_dir)
    for name, entry in read_manifest(folder).items():
        if entry.get("method") == method and entry.get("preset") == preset and int(entry.get("seed", -1)) == seed:
            path = folder / name
            if not path.is_file():
                return None
            if sha256_of(path) != entry["sha256"]:
                raise ValueError(f"{path}: sha256 differs from manifest.json (a Git LFS pointer or a damaged "
                                 "file?); restore it with git checkout")
            return path, entry
    return None
