"""Who made a number: preset, seed, device, package versions and git commit, recorded beside every output."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from typing import Any

import torch

from sirr.losses.vgg import vgg_description
from sirr.paths import REPO_ROOT

__all__ = ["git_commit", "package_versions", "device_name", "provenance", "header"]

_PACKAGES = ("sirr", "torch", "torchvision", "numpy", "scikit-image", "scikit-learn", "scipy", "pillow")


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Commit of the checkout the package runs from (``+dirty`` when it has uncommitted changes), or ``unknown``."""

    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no", "--", "lib"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_name(device: str = "cpu") -> str:
    """Human-readable name of a torch device, e.g. ``cuda (NVIDIA H100 80GB HBM3)`` or ``cpu (2 threads)``."""

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"


def provenance(run=None, **extra: Any) -> dict[str, Any]:
    """The record written beside results, figures and checkpoints."""
    rec: dict[str, Any] = {
        "commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
    }
    if run is not None:

        rec.update(preset=run.preset.name, seed=run.seed, device=device_name(run.device),
                   vgg_weights=run.preset.vgg_weights, vgg_source=vgg_description(run.preset.vgg_weights))
    rec.update(extra)
    return rec


def header(run=None) -> str:
    """One block of text every notebook prints first: versions, device and commit."""
    p = provenance(run)
    v = p["versions"]
    lines = [
        f"sirr {v['sirr']} | commit {p['commit']} | python {v['python']} | torch {v['torch']} | "
        f"torchvision {v['torchvision']} | numpy {v['numpy']} | scikit-image {v['scikit-image']}",
    ]
    if run is not None:
        lines.append(
            f"preset {run.preset.name!r} | seed {run.seed} | device {p['device']} | "
            f"data root {run.data_root or 'none (falling back to sample photos shipped in packages)'}"
        )
        lines.append(f"perceptual losses: {p['vgg_source']}")
        if run.preset.vgg_weights == "random":
            lines.append("NOTE: VGG-19 uses RANDOM seeded weights (offline fallback), not ImageNet: "
                         "perceptual losses are a plumbing check only in this run.")
    return "\n".join(lines)
