"""sirr: single-image reflection removal, two papers side by side.

- LA: Dong et al., *Location-aware Single Image Reflection Removal*, ICCV 2021.
- TS: Li & Lun, *Single-Image Reflection Removal via a Two-Stage Background Recovery Process*, IEEE SPL 2019.

Sub-modules: ``sirr.data`` (data root, datasets, synthesis), ``sirr.models``, ``sirr.losses``,
``sirr.metrics``, ``sirr.train``, ``sirr.viz``, ``sirr.book`` and the CLI ``python -m sirr``.
"""

__version__ = "0.1.0"

_SUBMODULES = {
    "bench", "book", "config", "data", "experiments", "gradients", "losses", "metrics", "models",
    "paper_numbers", "provenance", "remove", "results", "train", "viz",
}


def __getattr__(name: str):
    """``sirr.config``, ``sirr.models``, ... imported on first use, so ``import sirr`` stays cheap."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"sirr.{name}")
    raise AttributeError(f"module 'sirr' has no attribute {name!r}")
