"""Where the package lives: the repository root of a checkout (``pip install -e .``), for results, figures and runs."""

from pathlib import Path

__all__ = ["REPO_ROOT"]

#: The repository root when the package is used from a checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]
