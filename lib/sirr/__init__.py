"""sirr: single-image reflection removal, two papers side by side.

- LA: Dong et al., *Location-aware Single Image Reflection Removal*, ICCV 2021.
- TS: Li & Lun, *Single-Image Reflection Removal via a Two-Stage Background Recovery Process*, IEEE SPL 2019.

The library: ``sirr.data`` (data root, datasets, synthesis), ``sirr.models``, ``sirr.losses``,
``sirr.metrics``, ``sirr.train`` and ``sirr.experiments`` (the papers' tables as cached runs), with
``sirr.viz`` for figures. The book's own tooling (building it, the benchmark, chapter helpers and
prose) is ``sirr.book``; the command line is ``python -m sirr`` (``sirr.cli`` for ``train``).
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "atomic", "book", "cli", "config", "data", "experiments", "gradients", "losses", "messages", "metrics", "methods",
    "models", "paper_numbers", "paths", "provenance", "registry", "remove", "results", "train", "viz", "weights",
}


def __getattr__(name: str):
    """``sirr.config``, ``sirr.models``, ... imported on first use, so ``import sirr`` stays cheap."""
    if name in _SUBMODULES:
        return importlib.import_module(f"sirr.{name}")
    raise AttributeError(f"module 'sirr' has no attribute {name!r}")
