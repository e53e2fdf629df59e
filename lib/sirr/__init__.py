"""sirr: single-image reflection removal, two papers side by side -- the science.

- LA: Dong et al., *Location-aware Single Image Reflection Removal*, ICCV 2021.
- TS: Li & Lun, *Single-Image Reflection Removal via a Two-Stage Background Recovery Process*, IEEE SPL 2019.

This package holds what the papers compute: ``sirr.data`` (data root, datasets, synthesis, the leak-free
training pool), ``sirr.models``, ``sirr.losses``, ``sirr.metrics`` (with ``sirr.lpips_vgg``),
``sirr.gradients``, ``sirr.train`` (the loop and the two methods' steps), ``sirr.config`` (the presets) and
``sirr.methods`` (the one place that knows LA from TS).

The book's machinery -- experiments and the results store, the book build, figures and tables, the bench,
``remove`` and the command line -- is the package ``sirrbook`` beside it. ``sirr`` never imports ``sirrbook``
(tested); the one exception is ``python -m sirr``, whose ``main`` imports the command line from ``sirrbook``
when it is called.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "atomic", "config", "data", "gradients", "losses", "lpips_vgg", "messages", "metrics", "methods",
    "models", "paper_numbers", "paths", "provenance", "registry", "train",
}


def __getattr__(name: str):
    """``sirr.config``, ``sirr.models``, ... imported on first use, so ``import sirr`` stays cheap."""
    if name in _SUBMODULES:
        return importlib.import_module(f"sirr.{name}")
    raise AttributeError(f"module 'sirr' has no attribute {name!r}")
