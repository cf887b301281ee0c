"""Fast probe fits for these tests: one L2 strength instead of the validation grid (the grid's
weakest strengths make L-BFGS run to its iteration cap on a few separable examples)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_l2_strength(monkeypatch):
    monkeypatch.setattr("vqlsp.train.heads.L2_GRID", (1e-2,))
