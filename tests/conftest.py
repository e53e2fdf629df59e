"""Shared fixtures: the shared data root (skipped when absent) and a seeded torch."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def data_root():
    from sirr.data.root import find_data_root

    root = find_data_root(None)
    if root is None:
        pytest.skip("no data root (../shared/data or $SIRR_DATA)")
    return root


@pytest.fixture(autouse=True)
def _seeded():
    import torch

    torch.manual_seed(0)
    yield
