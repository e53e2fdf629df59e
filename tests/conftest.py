"""Shared fixtures: a seeded torch, and pickled code for the loaders to refuse."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seeded():
    import torch

    torch.manual_seed(0)
    yield


class PickledCode:
    """An object whose unpickling would run code: it creates the file ``marker``. A loader that refuses it
    (``torch.load(weights_only=True)``) leaves ``marker`` absent, which the tests assert."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def pickled_code(tmp_path):
    """``(payload, marker)``: save ``payload`` in a checkpoint; after a refused load, ``marker`` must not exist."""
    marker = tmp_path / "pickled-code-ran"
    return PickledCode(marker), marker
